//! `status`: report the instance; the exit status says its state.

use std::path::PathBuf;

use clap::Args;

use super::{GlobalArgs, data_dir_flag, dirs, say};
use crate::error::Result;
use crate::process::{self, LiveProcesses, Liveness};
use crate::util;

/// Running and ready.
pub const STATUS_READY: u8 = 0;
/// No k3s recorded in the data dir.
pub const STATUS_STOPPED: u8 = 1;
/// Running, but the API server does not answer /readyz yet.
pub const STATUS_NOT_READY: u8 = 2;
/// A pid file whose process is gone, or an unreadable one.
pub const STATUS_STALE: u8 = 3;

/// `status` has no options of its own.
#[derive(Args, Debug)]
pub struct StatusArgs {}

pub fn run(g: &GlobalArgs, _a: &StatusArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    let live = if state.dir.is_dir() {
        process::liveness(&state, &LiveProcesses)
    } else {
        Liveness::Stopped
    };
    match live {
        Liveness::Stopped => {
            println!("state: stopped");
            println!("data dir: {}", state.dir.display());
            Ok(STATUS_STOPPED)
        }
        Liveness::Stale(inst) => {
            println!(
                "state: stale (pid file names pid {}, which is not running)",
                inst.pid
            );
            println!("data dir: {}", state.dir.display());
            println!("log: {}", state.log.display());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(STATUS_STALE)
        }
        Liveness::Corrupt(why) => {
            println!("state: stale ({why})");
            println!("data dir: {}", state.dir.display());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(STATUS_STALE)
        }
        Liveness::Running(inst) => {
            let k3s = inst
                .argv
                .first()
                .map(PathBuf::from)
                .filter(|p| util::is_executable_file(p))
                .map(Ok)
                .unwrap_or_else(crate::k3s::locate_from_env);
            let ready = match &k3s {
                Err(e) => Err(format!("cannot ask k3s: {e}")),
                Ok(_) if !state.kubeconfig.exists() => {
                    Err(format!("{} not written yet", state.kubeconfig.display()))
                }
                Ok(k3s) => crate::k3s::readyz(k3s, &state.kubeconfig),
            };
            let k3s_name = k3s
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            println!(
                "state: {}",
                if ready.is_ok() {
                    "running, ready"
                } else {
                    "running, not ready"
                }
            );
            println!("pid: {} (process group {})", inst.pid, inst.pgid);
            println!("profile: {}", inst.profile.as_deref().unwrap_or("unknown"));
            println!("k3s: {k3s_name} {}", inst.version.as_deref().unwrap_or(""));
            if let Some(n) = &inst.node_name {
                println!("node: {n}");
            }
            println!("kubeconfig: {}", state.kubeconfig.display());
            println!("log: {}", state.log.display());
            if inst.profile.as_deref() == Some("agent") {
                crate::ipam_cmd::print_status(&dirs);
            }
            match ready {
                Ok(()) => {
                    println!("readyz: ok");
                    Ok(STATUS_READY)
                }
                Err(e) => {
                    println!("readyz: {e}");
                    Ok(STATUS_NOT_READY)
                }
            }
        }
    }
}
