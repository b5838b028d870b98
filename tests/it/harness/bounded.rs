//! The bounded process run behind [`Cni::bounded`](super::Cni::bounded): a memory limit (`prlimit --as`),
//! a deadline, an empty working directory, optionally an unprivileged user (`setpriv`), and checks that
//! nothing panicked and nothing was left in the working directory. Also the helpers of the cases that
//! attack the store: a snapshot of a directory, chmod, and whether we run as root.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Cni, Out, assert_stdout_contract};

/// A call is killed and the test fails after this long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);
/// Address-space limit of every call (prlimit --as): far above what a plugin needs, far below a leak.
pub(crate) const MEMORY_LIMIT: u64 = 512 << 20;

/// The uid/gid the unprivileged cases run as (nobody).
pub(crate) const NOBODY: u32 = 65534;

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (from /proc, without unsafe code).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs `call` bounded; panics (fails the test) past the deadline, on a broken stdout contract, a
/// panic, or anything left in the working directory.
pub(super) fn run(call: &Cni, stdin: &[u8]) -> Out {
    let cwd = tempfile::tempdir().expect("temp cwd");
    let mut argv: Vec<OsString> = Vec::new();
    if let Some(prlimit) = find_tool("prlimit") {
        argv.push(prlimit.into());
        argv.push(format!("--as={MEMORY_LIMIT}").into());
        argv.push("--".into());
    }
    if call.unprivileged {
        let setpriv =
            find_tool("setpriv").expect("setpriv (util-linux) is needed for the unprivileged cases");
        argv.extend([
            setpriv.into_os_string(),
            format!("--reuid={NOBODY}").into(),
            format!("--regid={NOBODY}").into(),
            "--clear-groups".into(),
            "--".into(),
        ]);
        // nobody must be able to enter the working directory (it stays empty either way).
        set_mode(cwd.path(), 0o777);
    }
    argv.push(call.exe.clone().into_os_string());
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(&call.env)
        .current_dir(cwd.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", call.exe.display()));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        // The plugin may stop reading early (oversized input): a broken pipe is expected then.
        let _ = input.write_all(&data);
    });
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out_pipe.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err_pipe.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {:?} did not finish within {} s (killed)",
                call.exe.display(),
                call.env.get(&OsString::from("CNI_COMMAND")),
                DEADLINE.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = writer.join();
    let out = Out {
        stdout: reader.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
        status: status.code(),
    };
    assert!(
        status.code().is_some(),
        "{} was killed by a signal ({status}); stderr: {}",
        call.exe.display(),
        out.stderr
    );
    assert_stdout_contract(&out);
    out.assert_no_panic();
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("cwd")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "{} wrote into its working directory: {left:?}",
        call.exe.display()
    );
    out
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Everything under `dir`: relative path -> type, mode, and content for regular files (symlinks as
/// their target, never followed). Two equal snapshots mean nothing was written.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let desc = if ft.is_symlink() {
                format!(
                    "link -> {}",
                    std::fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                )
            } else if ft.is_dir() {
                walk(root, &p, out);
                format!("dir {:o}", md.mode())
            } else if ft.is_file() {
                let content = if md.len() <= 1 << 20 {
                    std::fs::read(&p).unwrap_or_default()
                } else {
                    Vec::new()
                };
                format!(
                    "file {:o} {} {:?}",
                    md.mode(),
                    md.len(),
                    String::from_utf8_lossy(&content)
                )
            } else {
                format!("other {:o}", md.mode())
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
