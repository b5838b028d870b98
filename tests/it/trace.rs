//! The invocation trace, plugin side: records of every call (delegated ones included), whole lines
//! under 16-way concurrent ADDs, rotation, a trace that cannot be written, and the cost when off.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::harness::Cni;
use serde_json::{Value, json};

const THREADS: usize = 16;

fn conf(data: &Path, subnet: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": "tracenet", "type": "bridge", "bridge": "cni0",
           "ipam": {"type": "host-local", "dataDir": data.to_str().unwrap(), "ranges": [[{"subnet": subnet}]]}})
}

fn records(dir: &Path, name: &str) -> Vec<Value> {
    fs::read_to_string(dir.join(name))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn or invalid line ({e}): {l:?}")))
        .collect()
}

fn traced(cmd: Cni, dir: &Path) -> Cni {
    cmd.var("SANDBOX_CNI_TRACE_DIR", dir.to_str().unwrap())
}

#[test]
fn every_call_and_every_delegated_call_is_recorded() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("trace");
    fs::create_dir(&dir).unwrap();
    let c = conf(&t.path().join("data"), "10.91.0.0/24");
    let r = traced(Cni::new("bridge", "ADD"), &dir).run(&c).assert_success();
    traced(Cni::new("bridge", "DEL"), &dir)
        .run(&c)
        .assert_empty_success();
    traced(Cni::new("bridge", "ADD"), &dir)
        .var("CNI_IFNAME", "bad/name")
        .run(&c)
        .assert_error(4);
    let recs = records(&dir, "trace.jsonl");
    assert_eq!(recs.len(), 5, "{recs:?}");
    // The delegated host-local ADD finishes first; its ppid is the bridge's pid.
    let (hl, br) = (&recs[0], &recs[1]);
    assert_eq!(
        (hl["plugin"].as_str(), br["plugin"].as_str()),
        (Some("host-local"), Some("bridge"))
    );
    assert_eq!(hl["ppid"], br["pid"]);
    for rec in [hl, br] {
        assert_eq!(rec["verb"], "ADD");
        assert_eq!(rec["network"], "tracenet");
        assert_eq!(rec["cniVersion"], "1.0.0");
        assert_eq!(rec["containerID"], "ctr-1");
        assert_eq!(rec["ifname"], "eth0");
        assert_eq!(rec["netns"], "/var/run/netns/test-1");
        assert!(rec["time"].as_f64().unwrap() > 1.7e9);
        assert!(rec["durationUs"].as_u64().is_some());
    }
    // The bridge's record holds exactly the reply the runtime got.
    assert_eq!(br["reply"], r);
    assert_eq!(hl["reply"]["ips"][0]["address"], r["ips"][0]["address"]);
    assert_eq!(recs[2]["verb"], "DEL");
    assert_eq!(recs[3]["verb"], "DEL");
    assert_eq!(recs[3]["reply"], Value::Null);
    assert_eq!(recs[4]["reply"]["code"], 4);
    assert_eq!(recs[4]["ifname"], "bad/name");
}

#[test]
fn sixteen_processes_append_whole_lines() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("trace");
    fs::create_dir(&dir).unwrap();
    let c = conf(&t.path().join("data"), "10.92.0.0/22");
    let per_thread = 20;
    let handles: Vec<_> = (0..THREADS)
        .map(|th| {
            let (c, dir) = (c.clone(), dir.clone());
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let id = format!("t{th}-{i}");
                    traced(Cni::new("host-local", "ADD").var("CNI_CONTAINERID", &id), &dir)
                        .run(&c)
                        .assert_success();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Every line parses (none torn or interleaved), and each ADD is there exactly once.
    let recs = records(&dir, "trace.jsonl");
    assert_eq!(recs.len(), THREADS * per_thread);
    let ids: BTreeSet<&str> = recs.iter().map(|r| r["containerID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), THREADS * per_thread);
    let addrs: BTreeSet<&str> = recs
        .iter()
        .map(|r| r["reply"]["ips"][0]["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs.len(),
        THREADS * per_thread,
        "duplicate addresses in the trace"
    );
}

#[test]
fn the_file_rotates_past_four_mib() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("trace");
    fs::create_dir(&dir).unwrap();
    // An old file just over the limit: the next call appends, notices and rotates it.
    let old = "{\"old\":true}\n".repeat((4 << 20) / 13 + 1);
    fs::write(dir.join("trace.jsonl"), &old).unwrap();
    let c = conf(&t.path().join("data"), "10.93.0.0/24");
    traced(Cni::new("host-local", "ADD"), &dir)
        .run(&c)
        .assert_success();
    let rotated = records(&dir, "trace.jsonl.1");
    assert_eq!(rotated.len(), old.lines().count() + 1);
    assert_eq!(rotated.last().unwrap()["verb"], "ADD");
    assert!(!dir.join("trace.jsonl").exists());
    // The next call starts a new file.
    traced(Cni::new("host-local", "DEL"), &dir)
        .run(&c)
        .assert_empty_success();
    let current = records(&dir, "trace.jsonl");
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["verb"], "DEL");
    // A second rotation replaces the first rotated file: two files at most.
    fs::write(dir.join("trace.jsonl"), &old).unwrap();
    traced(Cni::new("host-local", "DEL"), &dir)
        .run(&c)
        .assert_empty_success();
    assert_eq!(records(&dir, "trace.jsonl.1").len(), old.lines().count() + 1);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn a_trace_that_cannot_be_written_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(&t.path().join("data"), "10.94.0.0/24");
    let reference = Cni::new("bridge", "ADD")
        .var("CNI_CONTAINERID", "ref")
        .run(&c)
        .assert_success();

    // The trace file is a directory, a FIFO nobody reads (opening it must not wait), or a symlink
    // (never followed); the trace directory is a regular file; the directory is missing.
    let cases = t.path().join("cases");
    fs::create_dir(&cases).unwrap();
    let isdir = cases.join("isdir");
    fs::create_dir_all(isdir.join("trace.jsonl")).unwrap();
    let fifo = cases.join("fifo");
    fs::create_dir(&fifo).unwrap();
    let made = Command::new("mkfifo")
        .arg(fifo.join("trace.jsonl"))
        .status()
        .unwrap();
    assert!(made.success());
    let link = cases.join("link");
    fs::create_dir(&link).unwrap();
    let target = cases.join("target");
    fs::write(&target, b"").unwrap();
    std::os::unix::fs::symlink(&target, link.join("trace.jsonl")).unwrap();
    let file = cases.join("file");
    fs::write(&file, b"not a directory").unwrap();
    let missing = cases.join("missing");
    for (i, dir) in [&isdir, &fifo, &link, &file, &missing].into_iter().enumerate() {
        let id = format!("ctr-{i}");
        let r = traced(Cni::new("bridge", "ADD").var("CNI_CONTAINERID", &id), dir)
            .run(&c)
            .assert_success();
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&r), keys(&reference));
        assert!(r["ips"][0]["address"].as_str().unwrap().starts_with("10.94.0."));
        traced(Cni::new("bridge", "DEL").var("CNI_CONTAINERID", &id), dir)
            .run(&c)
            .assert_empty_success();
    }
    assert_eq!(fs::read(&target).unwrap(), b"", "wrote through a symlink");
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
    assert!(!missing.exists());
}

/// With tracing off, a call's only trace work is one failed open (counted with strace, when present).
#[test]
fn off_costs_one_failed_open() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("strace is not installed: skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("no-trace-here");
    let log = t.path().join("strace.log");
    let c = conf(&t.path().join("data"), "10.95.0.0/24");
    let exe = crate::harness::plugin("host-local");
    let mut cmd = Command::new("strace");
    cmd.arg("-f")
        .arg("-o")
        .arg(&log)
        .arg(&exe)
        .env_clear()
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", "ctr-1")
        .env("CNI_NETNS", "/var/run/netns/x")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", crate::harness::bin_dir())
        .env("SANDBOX_CNI_TRACE_DIR", &dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), c.to_string().as_bytes()).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let text = fs::read_to_string(&log).unwrap();
    let touching: Vec<&str> = text.lines().filter(|l| l.contains("no-trace-here")).collect();
    assert_eq!(touching.len(), 1, "{touching:?}");
    assert!(touching[0].contains("ENOENT"), "{}", touching[0]);
}
