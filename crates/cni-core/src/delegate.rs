//! Running another plugin (the IPAM) the way SPEC.md "Delegated plugins" describes: found by type on
//! CNI_PATH, run with the same environment (the process's own, inherited, with only CNI_COMMAND set to
//! the verb) and the same stdin bytes; its stderr flows to ours; its error reply is passed on unchanged.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::env::{CNI_COMMAND, Command, Env};
use crate::error::{CniError, CniResult, code};
use crate::result::NetResult;
use crate::version::Version;

/// Finds plugin `name` in the CNI_PATH directories: the first regular file (links followed).
pub fn find_plugin(name: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
    if name.is_empty() || name.contains('/') || name.contains('\\') || name == "." || name == ".." {
        return Err(CniError::invalid_config(format!(
            "invalid plugin type {name:?}: it must be a bare file name"
        )));
    }
    if path.is_empty() {
        return Err(CniError::invalid_env(format!(
            "CNI_PATH is empty, so plugin {name:?} cannot be found: set CNI_PATH to the plugin directories"
        )));
    }
    path.iter()
        .map(|dir| dir.join(name))
        .find(|p| p.metadata().map(|m| m.is_file()).unwrap_or(false))
        .ok_or_else(|| {
            CniError::invalid_config(format!(
                "failed to find plugin {name:?} in path [{}]",
                path.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
        })
}

/// Runs `name` for `command` and, for ADD, returns its result read into the model.
///
/// A reply without `cniVersion` is read as `version`. A failing plugin's error object comes back as it
/// was (its code, message and details), so callers can pass it on.
pub fn delegate(
    name: &str,
    command: Command,
    env: &Env,
    stdin: &[u8],
    version: Version,
) -> CniResult<Option<NetResult>> {
    let exe = find_plugin(name, &env.path)?;
    let out = exec(&exe, command, stdin).map_err(|e| {
        CniError::new(
            code::DELEGATE_FAILED,
            format!("cannot run plugin {name:?} ({}): {e}", exe.display()),
        )
    })?;
    if !out.success {
        return Err(error_reply(name, command, &out));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        CniError::new(
            code::DELEGATE_FAILED,
            format!("plugin {name:?} answered ADD with something that is not JSON: {e}"),
        )
    })?;
    NetResult::from_json(&value, version, &format!("the {name} result")).map(Some)
}

fn error_reply(name: &str, command: Command, out: &Output) -> CniError {
    #[derive(serde::Deserialize)]
    struct Reply {
        code: u32,
        msg: String,
        details: Option<String>,
    }
    match serde_json::from_slice::<Reply>(&out.stdout) {
        Ok(r) => CniError {
            code: r.code,
            msg: r.msg,
            details: r.details.filter(|d| !d.is_empty()),
        },
        Err(_) => CniError::new(
            code::DELEGATE_FAILED,
            format!(
                "plugin {name:?} failed {} ({}) without a CNI error reply",
                command.as_str(),
                out.status
            ),
        )
        .with_details(format!(
            "its stdout was: {}",
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(512)])
        )),
    }
}

struct Output {
    success: bool,
    status: String,
    stdout: Vec<u8>,
}

fn exec(exe: &Path, command: Command, stdin: &[u8]) -> std::io::Result<Output> {
    let mut attempts = 0;
    let mut child = loop {
        let spawned = Process::new(exe)
            // The process environment as we received it, with only the verb changed.
            .env(CNI_COMMAND, command.as_str())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            // Another process may still be writing the binary (install in progress): retry briefly.
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50 * attempts));
            }
            other => break other?,
        }
    };
    // Write the whole configuration, then read the reply. CNI plugins read all of stdin before they
    // answer (libcni's skel does, and so does ours), so this cannot deadlock on a conforming plugin,
    // and it needs no second thread. A plugin that exits without reading is not an error here: its
    // exit status and reply say what happened.
    if let Some(mut w) = child.stdin.take() {
        match w.write_all(stdin) {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
    }
    let mut stdout = Vec::new();
    if let Some(mut r) = child.stdout.take() {
        r.read_to_end(&mut stdout)?;
    }
    let status = child.wait()?;
    Ok(Output {
        success: status.success(),
        status: status.to_string(),
        stdout,
    })
}
