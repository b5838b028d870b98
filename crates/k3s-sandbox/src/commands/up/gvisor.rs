//! `up`'s hook for pods in gVisor ([`crate::k3s::gvisor_pods::agent`]): which agents get the profile,
//! and its set-up before k3s starts.

use super::{Up, say};
use crate::error::Result;
use crate::host::sandbox::{Sandbox, SandboxFacts};
use crate::k3s::flags::{K3sVersion, Profile};
use crate::k3s::gvisor_pods::agent::Pods;
use crate::k3s::gvisor_pods::mount;

/// The first k3s with `--default-runtime` (k3s-io/k3s#8751); older ones get crun as the default
/// from the imported containerd settings alone.
const DEFAULT_RUNTIME_SINCE: K3sVersion = K3sVersion {
    major: 1,
    minor: 29,
    patch: 0,
};

/// The profile for an agent in gVisor (or forced), with the flag only where k3s knows it.
pub(super) fn pods(profile: Profile, version: Option<K3sVersion>) -> Option<Pods> {
    if profile != Profile::Agent {
        return None;
    }
    let in_gvisor = matches!(SandboxFacts::probe().detect(), Sandbox::Gvisor { .. });
    let mut pods = Pods::wanted(in_gvisor)?;
    if version.is_some_and(|v| v < DEFAULT_RUNTIME_SINCE) {
        pods.flag = false;
    }
    pods.templates = version.is_none_or(has_base_template);
    Some(pods)
}

/// Whether this k3s renders its own config as the template `base` (the September 2023 releases:
/// 1.24.17, 1.25.13, 1.26.8, 1.27.5, 1.28.1, and every later one).
fn has_base_template(v: K3sVersion) -> bool {
    let first_patch = match (v.major, v.minor) {
        (1, 24) => 17,
        (1, 25) => 13,
        (1, 26) => 8,
        (1, 27) => 5,
        (1, 28) => 1,
        (1, m) => return m > 28,
        (major, _) => return major > 1,
    };
    v.patch >= first_patch
}

/// Templates, settings and mounts, before k3s starts.
pub(super) fn setup(up: &Up) -> Result<()> {
    if let Some(p) = &up.pods {
        for line in p.setup(&up.state.dir, &up.state.k3s_data, &*mount::from_env())? {
            say(&line);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_template_came_with_the_september_2023_releases() {
        let v = |minor, patch| K3sVersion {
            major: 1,
            minor,
            patch,
        };
        for (old, new) in [(v(24, 16), v(24, 17)), (v(27, 4), v(27, 5)), (v(28, 0), v(28, 1))] {
            assert!(!has_base_template(old), "{old:?}");
            assert!(has_base_template(new), "{new:?}");
        }
        assert!(!has_base_template(v(23, 99)));
        assert!(has_base_template(v(29, 0)));
        assert!(has_base_template(v(33, 2)));
    }
}
