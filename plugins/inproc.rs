//! [`InProcess`]: an [`Exec`] that runs sandbox-cni's plugins inside the calling process, through
//! [`cni_core::skel::dispatch`] with the environment and stdin the caller built, instead of starting
//! their binaries. A bridge given it ([`crate::bridge::Bridge::new`]) runs its IPAM without a process, so
//! tests can drive a whole attachment (bridge → host-local) through the dispatcher.
//!
//! Plugins are found by type name, not on disk; CNI_PATH is still validated as a real lookup does.

use std::ffi::{OsStr, OsString};
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

use cni_core::exec::{Exec, ExecOutput, find_plugin};
use cni_core::output::Outcome;
use cni_core::skel::dispatch;
use cni_core::{CniResult, EnvMap, Plugin};

use crate::bridge::Bridge;
use crate::host_local::HostLocal;
use crate::loopback::Loopback;
use crate::{bandwidth, firewall, portmap, tuning};

/// Runs sandbox-cni's plugins in-process. A bridge it runs delegates through this same `InProcess`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl InProcess {
    /// Runs `f` with the plugin of type `name`, if it is one of sandbox-cni's plugins (a unit test holds
    /// this match equal to plugins/list.txt).
    pub(crate) fn with_plugin<T>(&self, name: &str, f: impl FnOnce(&dyn Plugin) -> T) -> Option<T> {
        let plugin: &dyn Plugin = match name {
            "loopback" => &Loopback,
            "host-local" => &HostLocal,
            "bridge" => return Some(f(&Bridge::new(self))),
            "portmap" => &portmap::PLUGIN,
            "bandwidth" => &bandwidth::PLUGIN,
            "firewall" => &firewall::PLUGIN,
            "tuning" => &tuning::PLUGIN,
            _ => return None,
        };
        Some(f(plugin))
    }

    /// [`dispatch`]es one call to the plugin of type `name`; `None` when it is not one of ours.
    pub fn dispatch(&self, name: &str, vars: &EnvMap, stdin: &[u8]) -> Option<Outcome> {
        self.with_plugin(name, |plugin| dispatch(plugin, vars, stdin))
    }
}

impl Exec for InProcess {
    /// Runs the plugin `exe` names (its file name is the type) with exactly `env` and `stdin`.
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let name = exe.file_name().and_then(OsStr::to_str).unwrap_or_default();
        let mut vars = EnvMap::new();
        for (k, v) in env {
            vars.insert(k.clone(), v.clone());
        }
        let outcome = self.dispatch(name, &vars, stdin).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "{} is not a sandbox-cni plugin that can run in-process",
                    exe.display()
                ),
            )
        })?;
        Ok(ExecOutput {
            success: outcome.exit == 0,
            status: format!("exit status: {}", outcome.exit),
            stdout: outcome.stdout,
            stderr: outcome.stderr.into_bytes(),
        })
    }

    /// Finds a known plugin whatever directories CNI_PATH lists (it must list one). Other names get the
    /// real lookup and its errors (an invalid name, an empty CNI_PATH, no such plugin); a file it finds
    /// for them cannot run in-process, and [`InProcess::exec`] refuses it.
    fn find(&self, name: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
        if path.is_empty() || self.with_plugin(name, |_| ()).is_none() {
            return find_plugin(name, path);
        }
        Ok(PathBuf::from(name))
    }
}

#[cfg(test)]
mod tests;
