//! `trace` against a trace directory someone else controls (issue 21): the modes it creates,
//! ssh-style refusals, and a reader that neither waits on a FIFO nor reads without bound nor passes
//! control characters to the terminal.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Out, exe};

fn trace(dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new("timeout");
    c.arg("10")
        .arg(exe())
        .arg("trace")
        .args(args)
        .env("SANDBOX_CNI_TRACE_DIR", dir)
        .env("NO_COLOR", "1");
    Out::from(c.output().unwrap())
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn trace_on_makes_a_private_directory_whatever_the_umask() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("run/trace");
    let out = Command::new("bash")
        .args(["-c", "umask 000 && exec \"$0\" trace on"])
        .arg(exe())
        .env("SANDBOX_CNI_TRACE_DIR", &dir)
        .output()
        .unwrap();
    Out::from(out).ok();
    assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(t.path().join("run")).unwrap().mode() & 0o777, 0o755);
}

#[test]
fn loose_foreign_or_symlinked_directories_are_refused_like_ssh() {
    let t = tempfile::tempdir().unwrap();
    let loose = t.path().join("loose");
    fs::create_dir(&loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o777)).unwrap();
    trace(&loose, &["on"]).expect_code(1).stderr_has("bad modes for");
    trace(&loose, &["status"])
        .expect_code(1)
        .stdout_has("trace: refused")
        .stdout_has("lets other users write into it");

    // A hard link in place of the trace file: the plugins skip it, and status says why.
    let linked = t.path().join("linked");
    fs::create_dir(&linked).unwrap();
    fs::set_permissions(&linked, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(t.path().join("elsewhere"), "x").unwrap();
    fs::hard_link(t.path().join("elsewhere"), linked.join("trace.jsonl")).unwrap();
    trace(&linked, &["status"])
        .expect_code(1)
        .stdout_has("trace: refused")
        .stdout_has("with one name");

    let real = t.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = t.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    trace(&link, &["on"])
        .expect_code(1)
        .stderr_has("is a symbolic link");
    trace(&link, &["status"])
        .expect_code(1)
        .stdout_has("trace: refused");

    if is_root() {
        let foreign = t.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
        trace(&foreign, &["on"])
            .expect_code(1)
            .stderr_has("bad ownership");
        // A trace.off someone else owns is not moved back.
        let dir = t.path().join("mine");
        let off = t.path().join("mine.off");
        fs::create_dir(&off).unwrap();
        std::os::unix::fs::chown(&off, Some(65534), Some(65534)).unwrap();
        trace(&dir, &["on"]).expect_code(1).stderr_has("not moved back");
        assert!(!dir.exists() && off.exists());
    }
}

#[test]
fn the_reader_never_waits_reads_without_bound_or_prints_control_characters() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("trace");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.join("trace.jsonl"))
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink("/dev/zero", dir.join("trace.jsonl.1")).unwrap();
    let start = Instant::now();
    let out = trace(&dir, &[]);
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    out.ok().stderr_has("no calls recorded");
    fs::remove_file(dir.join("trace.jsonl")).unwrap();
    // A forged record with terminal escape sequences.
    let forged = r#"{"time":1764630000.5,"plugin":"bridge\u001b[2J","verb":"ADD","network":"n\u001b]0;pwned\u0007","containerID":"c","ifname":"eth0","reply":{"code":7,"msg":"x\u001b[31m"},"durationUs":1,"pid":2,"ppid":1}"#;
    fs::write(dir.join("trace.jsonl"), format!("{forged}\n")).unwrap();
    let out = trace(&dir, &[]);
    out.ok().stdout_has("bridge?[2J");
    assert!(
        !out.stdout.contains('\x1b') && !out.stdout.contains('\x07'),
        "{:?}",
        out.stdout
    );
    let out = trace(&dir, &["--json"]);
    out.ok();
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
}
