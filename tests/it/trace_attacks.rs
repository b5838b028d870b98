//! The trace under attack (issue 21): a trace directory or file someone else controls, rotation
//! under concurrent writers, a full file system, few descriptors. Whatever the trace directory
//! holds, a call's reply and exit status stay those of an untraced call.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::harness::Cni;
use serde_json::{Value, json};

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn lo() -> Value {
    json!({"cniVersion": "1.0.0", "name": "tracenet", "type": "loopback"})
}

fn traced(cmd: Cni, dir: &Path) -> Cni {
    cmd.var("SANDBOX_CNI_TRACE_DIR", dir.to_str().unwrap())
}

fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn or glued line ({e}): {l:?}")))
        .collect()
}

#[test]
fn a_directory_or_file_others_control_is_not_written() {
    let t = tempfile::tempdir().unwrap();
    let reference = Cni::new("loopback", "ADD").run(&lo()).assert_success();
    let victim = t.path().join("victim");
    fs::write(&victim, "root-only\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let real = t.path().join("real");
    fs::create_dir(&real).unwrap();
    type Plant = fn(&Path, &Path, &Path);
    let cases: Vec<(&str, Plant)> = vec![
        ("symlinked directory", |d, real, _| {
            std::os::unix::fs::symlink(real, d).unwrap()
        }),
        ("world-writable directory", |d, _, _| {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }),
        ("group-writable directory", |d, _, _| {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o770)).unwrap();
        }),
        ("hard link to another file", |d, _, victim| {
            fs::create_dir(d).unwrap();
            fs::hard_link(victim, d.join("trace.jsonl")).unwrap();
        }),
    ];
    for (i, (what, plant)) in cases.into_iter().enumerate() {
        let d = t.path().join(format!("case{i}"));
        plant(&d, &real, &victim);
        let before = fs::read(d.join("trace.jsonl")).ok();
        let r = traced(Cni::new("loopback", "ADD"), &d)
            .run(&lo())
            .assert_success();
        assert_eq!(r, reference, "{what}");
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0, "{what}: written through");
        assert_eq!(fs::read(d.join("trace.jsonl")).ok(), before, "{what}: written");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "root-only\n", "{what}");
    }
    if is_root() {
        // A directory another user owns.
        let d = t.path().join("foreign");
        fs::create_dir(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
        let r = traced(Cni::new("loopback", "ADD"), &d)
            .run(&lo())
            .assert_success();
        assert_eq!(r, reference);
        assert!(!d.join("trace.jsonl").exists());
    }
}

#[test]
fn records_are_private_even_in_a_directory_made_by_mkdir() {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let d = t.path().join("trace");
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    // An error message carrying a configuration value.
    let conf = json!({"cniVersion": "1.0.0", "name": "tracenet", "type": "host-local",
                      "ranges": [[{"subnet": "10.123.45.0/24-secret"}]]});
    let c = json!({"cniVersion": "1.0.0", "name": "tracenet", "type": "bridge", "ipam": conf});
    traced(Cni::new("bridge", "ADD"), &d).run(&c);
    let file = d.join("trace.jsonl");
    assert!(fs::read_to_string(&file).unwrap().contains("secret"));
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    if is_root() && Command::new("setpriv").arg("--version").output().is_ok() {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "nobody read the trace"
        );
    }
}

/// Concurrent writers across a rotation: every record of the round is in one of the two files.
#[test]
fn rotation_under_concurrent_writers_loses_no_record() {
    for round in 0..3 {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("trace");
        fs::create_dir(&d).unwrap();
        // Just under the limit: the round's first records take the file past it.
        let pad = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(1000));
        fs::write(d.join("trace.jsonl"), pad.repeat((4 << 20) / pad.len())).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|th| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        traced(
                            Cni::new("loopback", "ADD").var("CNI_CONTAINERID", &format!("r{round}-{th}-{i}")),
                            &d,
                        )
                        .run(&lo())
                        .assert_success();
                    }
                })
            })
            .collect();
        for h in threads {
            h.join().unwrap();
        }
        let mut all = lines(&d.join("trace.jsonl.1"));
        all.extend(lines(&d.join("trace.jsonl")));
        let ids: std::collections::BTreeSet<String> = all
            .iter()
            .filter_map(|r| r["containerID"].as_str().map(str::to_string))
            .collect();
        assert_eq!(ids.len(), 200, "round {round}: {} of 200 records kept", ids.len());
    }
}

/// A write torn by a full file system is cut back: the next record starts its own line.
#[test]
fn a_full_file_system_never_tears_or_glues_records() {
    if !is_root() || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("needs root and unshare (a private mount namespace for a small tmpfs): skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("trace");
    fs::create_dir(&d).unwrap();
    let conf = t.path().join("conf.json");
    fs::write(&conf, lo().to_string()).unwrap();
    let out = t.path().join("out.jsonl");
    // Two pages of tmpfs: the trace file's first page holds all but 100 bytes, a filler takes the
    // other page, so the next record is torn after 100 bytes; then the filler goes and a record fits.
    let script = r#"set -e
mount -t tmpfs -o size=8k,mode=0700 tmpfs "$D"
pad='{"pad":"'$(head -c 4000 /dev/zero | tr '\0' x)'"}'
printf '%s\n' "${pad:0:3995}\"}" > "$D/trace.jsonl"
head -c 4096 /dev/zero > "$D/filler" || true
for id in torn1 torn2; do CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/x CNI_IFNAME=lo SANDBOX_CNI_TRACE_DIR="$D" "$P" < "$C" > /dev/null; done
rm "$D/filler"
CNI_COMMAND=ADD CNI_CONTAINERID=whole CNI_NETNS=/x CNI_IFNAME=lo SANDBOX_CNI_TRACE_DIR="$D" "$P" < "$C" > /dev/null
cp "$D/trace.jsonl" "$O"
"#;
    let st = Command::new("unshare")
        .args(["-m", "bash", "-c", script])
        .env("D", &d)
        .env("P", crate::harness::plugin("loopback"))
        .env("C", &conf)
        .env("O", &out)
        .status()
        .unwrap();
    assert!(st.success());
    let recs = lines(&out);
    let ids: Vec<&str> = recs.iter().filter_map(|r| r["containerID"].as_str()).collect();
    assert_eq!(ids, ["whole"], "{recs:?}");
}

/// Tracing adds no descriptor to the call: a first ADD into a new store under `ulimit -n 8`
/// succeeds with the trace on as it does with it off.
#[test]
fn tracing_holds_no_descriptor_during_the_call() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("trace");
    fs::create_dir(&d).unwrap();
    for (i, trace) in [false, true].into_iter().enumerate() {
        let data = t.path().join(format!("data{i}"));
        let c = json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": {"type": "host-local",
                       "ranges": [[{"subnet": "10.124.0.0/24"}]], "dataDir": data}});
        let mut cmd = Command::new("bash");
        cmd.args(["-c", "ulimit -n 8 && exec \"$0\""])
            .arg(crate::harness::plugin("host-local"))
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "c1")
            .env("CNI_NETNS", "/x")
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/nonexistent")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        if trace {
            cmd.env("SANDBOX_CNI_TRACE_DIR", &d);
        }
        let mut child = cmd.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), c.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "trace {trace}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(lines(&d.join("trace.jsonl")).len(), 1);
}

/// An older trace file of the caller's that others could read is made private by the next call.
#[test]
fn an_older_readable_file_is_made_private() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("trace");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("trace.jsonl"), "").unwrap();
    fs::set_permissions(d.join("trace.jsonl"), fs::Permissions::from_mode(0o644)).unwrap();
    traced(Cni::new("loopback", "ADD"), &d)
        .run(&lo())
        .assert_success();
    assert_eq!(fs::metadata(d.join("trace.jsonl")).unwrap().mode() & 0o777, 0o600);
    assert_eq!(lines(&d.join("trace.jsonl")).len(), 1);
}

/// A caller that is not root traces into a directory of its own (its effective user found
/// through `/proc/self`), and not into root's.
#[test]
fn an_unprivileged_caller_traces_into_its_own_directory_only() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("needs root and setpriv: skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let own = t.path().join("own");
    fs::create_dir(&own).unwrap();
    std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
    let roots = t.path().join("roots");
    fs::create_dir(&roots).unwrap();
    for d in [&own, &roots] {
        traced(Cni::new("loopback", "ADD").unprivileged(), d)
            .run(&lo())
            .assert_success();
    }
    assert_eq!(lines(&own.join("trace.jsonl")).len(), 1);
    assert_eq!(fs::metadata(own.join("trace.jsonl")).unwrap().uid(), 65534);
    assert!(!roots.join("trace.jsonl").exists());
}
