//! Phase 2 of `up`: start k3s in its own process group, its output going to the log, and record
//! it in the data dir.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use super::{Up, say};
use crate::error::{Failure, Result};
use crate::k3s::process::{self, Instance};

/// The k3s process `start` left running.
pub(super) struct Started {
    pub(super) child: Child,
    pub(super) pid: u32,
}

/// Phase 2: start k3s in its own process group, output to the log, and record it in the data dir.
pub(super) fn start(up: &Up) -> Result<Started> {
    let state = &up.state;
    if state.log.exists() {
        fs::rename(&state.log, &state.old_log).map_err(|e| Failure::io("rotate", &state.log, &e))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&state.log)
        .map_err(|e| Failure::io("open the log", &state.log, &e))?;
    let _ = fs::set_permissions(&state.log, fs::Permissions::from_mode(0o600));
    let log_err = log
        .try_clone()
        .map_err(|e| Failure::io("open the log", &state.log, &e))?;
    // A kubeconfig left from an earlier run must not count as "written".
    let _ = fs::remove_file(&state.kubeconfig);
    let mut child = Command::new(&up.k3s)
        .args(&up.cmd.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .current_dir(&state.dir)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Instance(format!("cannot start {}: {e}", up.k3s.display())))?;
    let pid = child.id();
    let inst = Instance {
        pid,
        pgid: pid,
        argv: up.argv.clone(),
        start_time: process::proc_stat(pid).map(|s| s.start_time),
        profile: Some(up.profile.into()),
        version: up
            .version
            .map(|v| v.to_string())
            .or(Some(up.version_line.clone())),
        node_name: up.cmd.node_name.clone(),
    };
    if let Err(e) = process::write_instance(state, &inst) {
        // Without its pid files nobody could find this k3s again.
        cni_runtime::runner::kill_group(pid, rustix::process::Signal::KILL);
        let _ = child.wait();
        let _ = process::remove_process_files(state);
        return Err(e);
    }
    say(&format!("started k3s (pid {pid}), log: {}", state.log.display()));
    Ok(Started { child, pid })
}
