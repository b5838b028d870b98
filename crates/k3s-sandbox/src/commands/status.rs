//! `status`: report the instance; the exit status says its state.

use std::path::PathBuf;

use clap::Args;

use super::{ConfDirOpt, InstanceOpt, data_dir_flag, dirs, say};
use crate::error::{Failure, Result};
use crate::k3s::flags::Profile;
use crate::k3s::process::{self, LiveProcesses, Liveness, RecordedProfile};
use crate::k3s::ready::{self, NotReady};
use crate::output::outln;
use crate::paths;

/// Running and ready.
pub(crate) const STATUS_READY: u8 = 0;
/// No k3s recorded in the data dir.
pub(crate) const STATUS_STOPPED: u8 = 1;
/// Running, but the API server does not answer /readyz yet.
pub(crate) const STATUS_NOT_READY: u8 = 2;
/// A pid file whose process is gone, or an unreadable one.
pub(crate) const STATUS_STALE: u8 = 3;

/// `status` takes the instance directory, and the conf dir for the agent's address stores.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    /// Print the report as one JSON object on stdout (same fields, same exit status)
    #[arg(long)]
    pub(crate) json: bool,
}

/// Why a running k3s is reported "not ready": no k3s to ask, or the first of `ready::check`'s
/// checks that fails, in the words of the `readyz` line.
fn not_ready_line(why: &std::result::Result<NotReady, Failure>) -> String {
    match why {
        Err(e) => format!("cannot ask k3s: {e}"),
        Ok(NotReady::NoKubeconfig(path)) => format!("{} not written yet", path.display()),
        Ok(NotReady::Api(e)) => e.to_string(),
    }
}

/// The report's lines, printed as `key: value` or as one JSON object.
struct Report {
    json: bool,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn line(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        if self.json {
            // `data dir` -> `dataDir`, as every JSON key of the CLI is written.
            let mut words = key.split(' ');
            let mut k = words.next().unwrap_or_default().to_string();
            for w in words {
                let mut c = w.chars();
                k.extend(c.next().map(|f| f.to_ascii_uppercase()));
                k.push_str(c.as_str());
            }
            self.fields.insert(k, serde_json::Value::String(value));
        } else {
            outln!("{key}: {value}");
        }
    }

    fn done(self, code: u8) -> u8 {
        if self.json {
            let mut f = self.fields;
            f.insert("exitCode".into(), code.into());
            crate::output::print_json(&serde_json::Value::Object(f));
        }
        code
    }
}

pub(crate) fn run(a: &StatusArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), None, Some(&a.conf))?;
    let state = dirs.state();
    let mut out = Report {
        json: a.json,
        fields: serde_json::Map::new(),
    };
    let live = if state.dir.is_dir() {
        process::liveness(&state, &LiveProcesses)
    } else {
        Liveness::Stopped
    };
    match live {
        Liveness::Stopped => {
            out.line("state", "stopped");
            out.line("data dir", state.dir.display().to_string());
            Ok(out.done(STATUS_STOPPED))
        }
        Liveness::Stale(inst) => {
            out.line(
                "state",
                format!("stale (pid file names pid {}, which is not running)", inst.pid),
            );
            out.line("data dir", state.dir.display().to_string());
            out.line("log", state.log.display().to_string());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(out.done(STATUS_STALE))
        }
        Liveness::Corrupt(why) => {
            out.line("state", format!("stale ({why})"));
            out.line("data dir", state.dir.display().to_string());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(out.done(STATUS_STALE))
        }
        Liveness::Running(inst) => {
            let k3s = inst
                .argv
                .first()
                .map(PathBuf::from)
                .filter(|p| paths::is_executable_file(p))
                .map(Ok)
                .unwrap_or_else(crate::k3s::locate_from_env);
            let k3s_name = k3s
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            let ready = match k3s {
                Err(e) => Err(Err(e)),
                Ok(k3s) => ready::check(&k3s, &state.kubeconfig).map_err(Ok),
            };
            out.line(
                "state",
                if ready.is_ok() {
                    "running, ready"
                } else {
                    "running, not ready"
                },
            );
            out.line("pid", format!("{} (process group {})", inst.pid, inst.pgid));
            out.line(
                "profile",
                inst.profile.as_ref().map_or("unknown", RecordedProfile::as_str),
            );
            out.line(
                "k3s",
                format!("{k3s_name} {}", inst.version.as_deref().unwrap_or("")),
            );
            if let Some(n) = &inst.node_name {
                out.line("node", n.clone());
            }
            out.line("kubeconfig", state.kubeconfig.display().to_string());
            out.line("log", state.log.display().to_string());
            if inst.known_profile() == Some(Profile::Agent) && !a.json {
                crate::commands::ipam::print_status(&dirs);
            }
            match ready {
                Ok(()) => {
                    out.line("readyz", "ok");
                    Ok(out.done(STATUS_READY))
                }
                Err(why) => {
                    out.line("readyz", not_ready_line(&why));
                    Ok(out.done(STATUS_NOT_READY))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::KubectlError;

    #[test]
    fn the_readyz_line_names_the_first_check_that_fails_in_status_words() {
        let no_k3s = Err(Failure::new("K3S_BIN=/x is not an executable file"));
        assert_eq!(
            not_ready_line(&no_k3s),
            "cannot ask k3s: K3S_BIN=/x is not an executable file"
        );
        let no_kubeconfig = Ok(NotReady::NoKubeconfig(PathBuf::from("/d/kubeconfig.yaml")));
        assert_eq!(
            not_ready_line(&no_kubeconfig),
            "/d/kubeconfig.yaml not written yet"
        );
        let api = Ok(NotReady::Api(KubectlError::NotOk("starting".into())));
        assert_eq!(not_ready_line(&api), "/readyz answered \"starting\"");
    }
}
