//! `up`'s network: the plugins and the conflist, whose pod range follows the node's podCIDR in the
//! agent profile once k3s has assigned it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Up, UpArgs};
use crate::cni::conflist::{self, WriteOutcome};
use crate::cni::plugins::{self, WrittenFiles};
use crate::commands::say;
use crate::error::{Failure, Result};
use crate::k3s::flags::Profile;
use crate::k3s::ready;
use crate::paths::{self, Dirs, StateFiles};

/// Plugins and conflist: required for the agent, merely prepared for the control plane (an
/// agentless server with flannel off never runs them).
pub(super) fn install_network(up: &Up, a: &UpArgs) -> Result<()> {
    let (dirs, state, profile) = (&up.dirs, &up.state, up.profile);
    let mut written = WrittenFiles::load(&state.written);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let source = plugins::find_source(a.plugins_from.as_deref(), exe_dir.as_deref())?;
    let soft = |e: Failure| -> Result<()> {
        match profile {
            Profile::Agent => Err(e),
            Profile::ControlPlane => {
                say(&format!(
                    "warning (the control-plane profile does not need this): {e}"
                ));
                Ok(())
            }
        }
    };
    match plugins::ensure_plugins(&dirs.cni_bin_dir, source.as_ref(), &mut written, a.force) {
        Ok(lines) => lines.iter().for_each(|l| say(&format!("plugin {l}"))),
        Err(e) => soft(e)?,
    }
    let subnet = current_subnet(state)?;
    match write_conflist(dirs, &subnet, &mut written) {
        Ok((path, WriteOutcome::Written)) => say(&format!("wrote {} (pod range {subnet})", path.display())),
        Ok((path, WriteOutcome::Unchanged)) => {
            say(&format!("{} is up to date (pod range {subnet})", path.display()))
        }
        Err(e) => soft(e)?,
    }
    written.save(&state.written)
}

/// The pod range for the conflist: the node's podCIDR recorded earlier, else
/// the default of the repository conflist.
fn current_subnet(state: &StateFiles) -> Result<String> {
    match fs::read_to_string(&state.pod_cidr) {
        Ok(t) if cni_core::result::parse_cidr(t.trim()).is_ok() => Ok(t.trim().to_string()),
        _ => conflist::default_subnet(),
    }
}

fn write_conflist(dirs: &Dirs, subnet: &str, written: &mut WrittenFiles) -> Result<(PathBuf, WriteOutcome)> {
    let content = conflist::render(conflist::TEMPLATE, subnet)?;
    let (path, outcome) = conflist::write_if_changed(&dirs.cni_conf_dir, &content)?;
    // An identical file someone else wrote (install.sh, say) stays theirs:
    // only a file this command wrote is recorded for `down --purge`.
    if outcome == WriteOutcome::Written {
        written.note(&path, plugins::sha256_hex(content.as_bytes()));
    }
    Ok((path, outcome))
}

/// Agent profile: once the node has a podCIDR, make the conflist's range
/// follow it, so nodes of one cluster never hand out the same addresses.
pub(super) fn sync_pod_cidr(k3s: &Path, dirs: &Dirs, node: &str, deadline: Instant) -> Result<()> {
    let state = dirs.state();
    let found = ready::wait_for_pod_cidr(
        k3s,
        &state.kubeconfig,
        node,
        deadline.saturating_duration_since(Instant::now()),
    );
    let current = current_subnet(&state)?;
    let cidr = match found {
        Ok(cidr) => cidr,
        Err(why) => {
            say(&format!(
                "warning: could not read spec.podCIDR of node {node} ({why}); the conflist keeps {current}. \
                 Run the same `k3s-sandbox up` again later to re-sync."
            ));
            return Ok(());
        }
    };
    if let Err(e) = cni_core::result::parse_cidr(&cidr) {
        say(&format!(
            "warning: node {node} has an unusable podCIDR: {e}; the conflist keeps {current}"
        ));
        return Ok(());
    }
    let mut written = WrittenFiles::load(&state.written);
    match write_conflist(dirs, &cidr, &mut written) {
        Ok((path, WriteOutcome::Written)) => {
            conflist::poke_watchers(&dirs.cni_conf_dir)?;
            say(&format!(
                "node {node} has podCIDR {cidr}: rewrote {} (was {current})",
                path.display()
            ));
        }
        Ok((_, WriteOutcome::Unchanged)) => say(&format!(
            "node {node} has podCIDR {cidr}: conflist already matches"
        )),
        Err(e @ Failure::Ipv6Range { .. }) => {
            say(&format!("warning: {e}; the conflist keeps {current}"));
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    written.save(&state.written)?;
    paths::atomic_write(&state.pod_cidr, format!("{cidr}\n").as_bytes(), 0o644)
        .map_err(|e| Failure::io("write", &state.pod_cidr, &e))
}
