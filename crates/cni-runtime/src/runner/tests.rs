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
        stderr: None,
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
        stderr: None,
    };
    let out = r.exec(&p, &[], b"").unwrap();
    assert!(!out.success);
    assert!(out.status.contains("timed out"), "{}", out.status);
}

#[test]
fn big_input_and_output_cannot_dead_lock() {
    let tmp = tempfile::tempdir().unwrap();
    // Writes 1 MB before reading its 1 MB of input: both pipes fill up unless the runner serves both.
    let p = script(
        tmp.path(),
        "echo",
        "head -c 1048576 /dev/zero; wc -c; echo done >&2",
    );
    let input = vec![b'x'; 1 << 20];
    for use_pidfd in [true, false] {
        let mut cmd = Command::new(&p);
        let c = run_with(&mut cmd, &input, Duration::from_secs(20), use_pidfd).unwrap();
        assert!(c.status.unwrap().success());
        assert_eq!(c.stdout.len(), (1 << 20) + "1048576\n".len(), "pidfd {use_pidfd}");
        assert!(c.stdout.ends_with(b"1048576\n"));
        assert_eq!(c.stderr, b"done\n");
    }
}

#[test]
fn an_exit_is_seen_while_a_child_left_behind_holds_the_pipes() {
    let tmp = tempfile::tempdir().unwrap();
    let p = script(tmp.path(), "daemon", "cat >/dev/null; sleep 30 & echo ok; exit 4");
    for use_pidfd in [true, false] {
        let mut cmd = Command::new(&p);
        let c = run_with(&mut cmd, b"{}", Duration::from_secs(20), use_pidfd).unwrap();
        // Reaped with its own status, not killed at the deadline; the sleep was killed with the group.
        assert_eq!(c.status.and_then(|s| s.code()), Some(4), "pidfd {use_pidfd}");
        assert_eq!(c.stdout, b"ok\n");
    }
}

#[test]
fn captured_says_how_the_child_ended() {
    let sh = Path::new("/bin/sh");
    let c = run(
        Command::new(sh).args(["-c", "sleep 30"]),
        b"",
        Duration::from_millis(200),
    )
    .unwrap();
    assert!(!c.success());
    assert_eq!(c.describe_end(), "timed out and was killed");
    let c = run(
        Command::new(sh).args(["-c", "cat; echo err >&2; exit 3"]),
        b"in",
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(c.describe_end(), "exited with status 3");
    assert_eq!((c.stdout_text(), c.stderr_text()), ("in".into(), "err\n".into()));
}

#[test]
fn a_child_that_ignores_its_input_is_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = script(tmp.path(), "deaf", "exec 0<&-; echo hi");
    let mut cmd = Command::new(&p);
    let c = run(&mut cmd, &vec![b'x'; 1 << 20], Duration::from_secs(20)).unwrap();
    assert!(c.status.unwrap().success());
    assert_eq!(c.stdout, b"hi\n");
}
