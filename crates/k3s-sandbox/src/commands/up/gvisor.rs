//! `up`'s hook for pods in gVisor ([`crate::gvisor_pods::agent`]): which agents get the profile,
//! and its set-up before k3s starts.

use super::{Up, say};
use crate::error::Result;
use crate::flags::{K3sVersion, Profile};
use crate::gvisor_pods::agent::Pods;
use crate::gvisor_pods::mount;
use crate::sandbox::{Sandbox, SandboxFacts};

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
    Some(pods)
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
