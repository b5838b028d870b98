//! The exec seam (the role of libcni's pkg/invoke): find a plugin on CNI_PATH, run it with an explicit
//! environment and stdin, and decode its error reply.
//!
//! Delegation ([`crate::delegate`]) and the runtime crate both go through [`Exec`], so tests can put a
//! fake in its place. Neither reads the process environment: a child gets exactly the list it is
//! given, which delegation builds from the request (the map the dispatcher was called with; only
//! [`crate::skel::run`] reads the process environment, once) and the runtime from its `base_env`.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::env::{CNI_ARGS, CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, CNI_PATH};
use crate::error::{CniError, CniResult, code};

/// One environment, complete: the child gets exactly these variables.
pub(crate) type EnvList = Vec<(OsString, OsString)>;

/// What a plugin process produced.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    pub success: bool,
    /// How it ended, for messages ("exit status: 1", "timed out and was killed").
    pub status: String,
    pub stdout: Vec<u8>,
    /// Empty when the implementation passes stderr through.
    pub stderr: Vec<u8>,
}

/// Runs plugin executables.
pub trait Exec {
    /// Runs `exe` with exactly `env` (nothing inherited) and `stdin`.
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput>;

    /// Finds plugin `name` on `path` (CNI_PATH); fakes may map names however they like.
    fn find(&self, name: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
        find_plugin(name, path)
    }
}

/// The six variables a plugin is run with, in the order libcni sets them.
const CNI_VARS: [&str; 6] = [
    CNI_COMMAND,
    CNI_CONTAINERID,
    CNI_NETNS,
    CNI_IFNAME,
    CNI_ARGS,
    CNI_PATH,
];

/// A plugin's whole environment: `base` without any of the six CNI_* variables, then the six with
/// these values (`path` joined with `:`). Delegation and the runtime both build theirs here.
pub fn plugin_env(
    base: EnvList,
    command: &str,
    container_id: &str,
    netns: &str,
    ifname: &str,
    args: &str,
    path: &[PathBuf],
) -> EnvList {
    let mut out: EnvList = base
        .into_iter()
        .filter(|(k, _)| !CNI_VARS.iter().any(|s| k == s))
        .collect();
    let path = path
        .iter()
        .map(|p| p.as_os_str().to_owned())
        .collect::<Vec<_>>()
        .join(std::ffi::OsStr::new(":"));
    let values = [
        OsString::from(command),
        container_id.into(),
        netns.into(),
        ifname.into(),
        args.into(),
        path,
    ];
    out.extend(CNI_VARS.iter().map(OsString::from).zip(values));
    out
}

/// Finds plugin `name` in the CNI_PATH directories: the first regular file (links followed), as libcni.
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

/// The error a failed plugin reported: its own error object from stdout when it printed one, else a
/// code-103 error quoting what it printed (stdout, then stderr).
pub fn decode_error(name: &str, verb: &str, out: &ExecOutput) -> CniError {
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
        Err(_) => {
            let text = if out.stdout.iter().all(u8::is_ascii_whitespace) {
                &out.stderr
            } else {
                &out.stdout
            };
            CniError::new(
                code::DELEGATE_FAILED,
                format!(
                    "plugin {name:?} failed {verb} ({}) without a CNI error reply",
                    out.status
                ),
            )
            .with_details(format!(
                "it printed: {}",
                String::from_utf8_lossy(&text[..text.len().min(512)]).trim()
            ))
        }
    }
}

/// The real thing: a child process, stderr passed through, retried briefly on "text file busy".
pub struct ProcessExec;

impl Exec for ProcessExec {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let mut attempts = 0;
        let mut child = loop {
            let spawned = Process::new(exe)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
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
        Ok(ExecOutput {
            success: status.success(),
            status: status.to_string(),
            stdout,
            stderr: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConf;
    use crate::delegate::delegate;
    use crate::env::{Command, Env, EnvMap};
    use crate::skel::Request;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Fake {
        seen: RefCell<Vec<(PathBuf, EnvList)>>,
        reply: ExecOutput,
    }

    impl Exec for Fake {
        fn exec(&self, exe: &Path, env: &[(OsString, OsString)], _: &[u8]) -> std::io::Result<ExecOutput> {
            self.seen.borrow_mut().push((exe.to_path_buf(), env.to_vec()));
            Ok(self.reply.clone())
        }
        fn find(&self, name: &str, _: &[PathBuf]) -> CniResult<PathBuf> {
            Ok(PathBuf::from("/fake").join(name))
        }
    }

    fn env() -> Env {
        Env {
            command: Command::Add,
            container_id: "c1".into(),
            netns: "/n".into(),
            ifname: "eth0".into(),
            args: "A=1".into(),
            path: vec![PathBuf::from("/a"), PathBuf::from("/b")],
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn delegation_passes_the_request_environment() {
        let fake = Fake {
            reply: ExecOutput {
                success: true,
                stdout: br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}"#.to_vec(),
                ..Default::default()
            },
            ..Default::default()
        };
        // The map the plugin was called with: its CNI_* values are replaced by the request's, every
        // other variable is passed on, and nothing comes from this process's environment.
        let called_with = vars(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "other"),
            ("CNI_NETNS", "/elsewhere"),
            ("PASSED_ON", "yes"),
        ]);
        let stdin = br#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#;
        let req = Request {
            env: env(),
            conf: NetConf::parse(stdin).unwrap(),
            stdin,
            vars: &called_with,
        };
        let r = delegate(&fake, "host-local", Command::Del, &req).unwrap();
        assert!(r.is_none());
        let seen = fake.seen.borrow();
        let (exe, vars) = &seen[0];
        assert_eq!(exe, Path::new("/fake/host-local"));
        let got: Vec<(&str, &str)> = vars
            .iter()
            .map(|(k, v)| (k.to_str().unwrap(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("PASSED_ON", "yes"),
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "A=1"),
                ("CNI_PATH", "/a:/b"),
            ]
        );
        drop(seen);
        let r = delegate(&fake, "host-local", Command::Add, &req).unwrap();
        assert_eq!(r.unwrap().ips.len(), 1);
    }

    #[test]
    fn error_replies_are_decoded_or_quoted() {
        let out = ExecOutput {
            success: false,
            status: "exit status: 1".into(),
            stdout: br#"{"code":11,"msg":"busy","details":"try later"}"#.to_vec(),
            stderr: vec![],
        };
        let e = decode_error("x", "ADD", &out);
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_deref()),
            (11, "busy", Some("try later"))
        );
        let out = ExecOutput {
            stdout: b"  ".to_vec(),
            stderr: b"panic: boom".to_vec(),
            ..out
        };
        let e = decode_error("x", "ADD", &out);
        assert_eq!(e.code, code::DELEGATE_FAILED);
        assert!(e.details.unwrap().contains("panic: boom"));
    }
}
