//! The process runner: an [`Exec`] that runs each plugin in its own process group with a deadline. When
//! the deadline passes (or the plugin exits leaving children behind that hold its pipes), the whole group
//! is killed, so a hung plugin cannot hang the runtime.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

impl Exec for ProcessRunner {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let mut attempts = 0;
        let mut child = loop {
            let spawned = Command::new(exe)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn();
            match spawned {
                // libcni retries "text file busy" (a binary still being written) a few times.
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                    attempts += 1;
                    thread::sleep(Duration::from_millis(50 * attempts));
                }
                other => break other?,
            }
        };
        let pid = child.id();
        let input = stdin.to_vec();
        let mut pipe = child.stdin.take();
        let writer = thread::spawn(move || {
            if let Some(p) = pipe.as_mut() {
                // A plugin that exits without reading its input is not an error here.
                let _ = p.write_all(&input);
            }
        });
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if Instant::now() >= deadline {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        // Stragglers in the plugin's group would hold the pipes open.
        kill_group(pid);
        let _ = writer.join();
        let stdout = out.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = err.and_then(|h| h.join().ok()).unwrap_or_default();
        if self.pass_stderr && !stderr.is_empty() {
            let _ = std::io::stderr().write_all(&stderr);
        }
        Ok(ExecOutput {
            success: status.is_some_and(|s| s.success()),
            status: match status {
                None => format!("timed out after {} s and was killed", self.timeout.as_secs_f32()),
                Some(s) => s.to_string(),
            },
            stdout,
            stderr,
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
