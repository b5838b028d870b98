//! The process runner: an [`Exec`] that runs each plugin in its own process group with a deadline. When
//! the deadline passes (or the plugin exits leaving children behind that hold its pipes), the whole group
//! is killed, so a hung plugin cannot hang the runtime. The deadline is kept by a watchdog thread that
//! the plugin's exit dismisses at once: no polling, so a normal run costs no extra latency.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cni_core::exec::{Exec, ExecOutput};

/// Runs plugins as child processes with a timeout; stdout and stderr are captured.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    pub timeout: Duration,
    /// Copy the plugin's stderr to ours as well (libcni passes it through).
    pub pass_stderr: bool,
}

impl Default for ProcessRunner {
    fn default() -> Self {
        ProcessRunner {
            timeout: Duration::from_secs(60),
            pass_stderr: true,
        }
    }
}

/// Sends SIGKILL to process group `pgid`, ignoring "no such process".
pub fn kill_group(pgid: u32) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> Option<thread::JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

/// What a child produced before it exited or was killed.
#[derive(Debug)]
pub struct Captured {
    /// `None` when the deadline passed and the child's group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `cmd` (program, arguments and environment as the caller set them) in its own process group,
/// feeds it `stdin` and collects its output. When `timeout` passes, the whole group is killed; after
/// the child exits, whatever is left of its group is killed too, so no grandchild keeps the pipes open.
/// `ETXTBSY` (a binary still being written) is retried a few times, as libcni does.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> std::io::Result<Captured> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(50 * attempts));
            }
            other => break other?,
        }
    };
    let pid = child.id();
    // A watchdog, not polling: it kills the group when the deadline passes, and is dismissed (its
    // channel dropped) as soon as the child exits, so a normal run pays no wake-up latency.
    let (dismiss, dismissed) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let fired = matches!(
            dismissed.recv_timeout(timeout),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if fired {
            kill_group(pid);
        }
        fired
    });
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    // Written here, with the readers already draining: a child that never reads its input blocks this
    // only until the watchdog fires; one that exits without reading it is not an error here.
    if let Some(mut p) = child.stdin.take() {
        let _ = p.write_all(stdin);
    }
    let waited = child.wait();
    drop(dismiss);
    let timed_out = watchdog.join().unwrap_or(false);
    let status = waited?;
    // Stragglers in the child's group would hold the pipes open.
    kill_group(pid);
    Ok(Captured {
        status: (!timed_out).then_some(status),
        stdout: out.and_then(|h| h.join().ok()).unwrap_or_default(),
        stderr: err.and_then(|h| h.join().ok()).unwrap_or_default(),
    })
}

impl Exec for ProcessRunner {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let mut cmd = Command::new(exe);
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        let c = run(&mut cmd, stdin, self.timeout)?;
        if self.pass_stderr && !c.stderr.is_empty() {
            let _ = std::io::stderr().write_all(&c.stderr);
        }
        Ok(ExecOutput {
            success: c.status.is_some_and(|s| s.success()),
            status: match c.status {
                None => format!("timed out after {} s and was killed", self.timeout.as_secs_f32()),
                Some(s) => s.to_string(),
            },
            stdout: c.stdout,
            stderr: c.stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn environment_is_explicit() {
        let tmp = tempfile::tempdir().unwrap();
        let p = script(
            tmp.path(),
            "env",
            "cat >/dev/null; /usr/bin/env; echo oops >&2; exit 3",
        );
        let r = ProcessRunner {
            timeout: Duration::from_secs(20),
            pass_stderr: false,
        };
        let env = vec![(OsString::from("ONLY"), OsString::from("this"))];
        let out = r.exec(&p, &env, b"{}").unwrap();
        assert!(!out.success);
        assert!(out.status.contains('3'), "{}", out.status);
        let vars = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(vars.contains("ONLY=this") && !vars.contains("HOME="), "{vars}");
        assert_eq!(out.stderr, b"oops\n");
    }

    #[test]
    fn a_hung_plugin_and_its_children_are_killed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = script(tmp.path(), "hang", "sleep 30 & sleep 30");
        let r = ProcessRunner {
            timeout: Duration::from_millis(200),
            pass_stderr: false,
        };
        let out = r.exec(&p, &[], b"").unwrap();
        assert!(!out.success);
        assert!(out.status.contains("timed out"), "{}", out.status);
    }
}
