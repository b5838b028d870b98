//! host-local under stress: 16 processes at a time allocating over a thousand addresses (alone and
//! mixed with the reference plugin), and ADDs killed with SIGKILL at random moments.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Cni;
use serde_json::{Value, json};

const THREADS: usize = 16;

fn conf(data: &Path, subnet: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": "stress", "type": "host-local",
           "ipam": {"type": "host-local", "dataDir": data.to_str().unwrap(), "ranges": [[{"subnet": subnet}]]}})
}

/// Reservation files: address -> body, plus every other name in the network directory.
fn store(data: &Path) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
    let mut res = BTreeMap::new();
    let mut other = BTreeSet::new();
    for e in fs::read_dir(data.join("stress")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.parse::<std::net::IpAddr>().is_ok() {
            res.insert(name, fs::read(e.path()).unwrap());
        } else {
            other.insert(name);
        }
    }
    (res, other)
}

/// Runs `per_thread` ADDs on each of 16 threads; thread t uses the reference plugin when `reference(t)`.
fn parallel_adds(
    data: &Path,
    c: &Value,
    per_thread: usize,
    reference: fn(usize) -> bool,
) -> Vec<(String, String)> {
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            let _ = data;
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..per_thread {
                    let id = format!("t{t}-{i}");
                    let mut cmd = Cni::new("host-local", "ADD").var("CNI_CONTAINERID", &id);
                    if reference(t) {
                        cmd.exe = PathBuf::from("/usr/lib/cni/host-local");
                    }
                    let r = cmd.run(&c).assert_success();
                    got.push((id, r["ips"][0]["address"].as_str().unwrap().to_owned()));
                }
                got
            })
        })
        .collect();
    handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
}

fn parallel_dels(c: &Value, ids: Vec<String>, reference: fn(usize) -> bool) {
    let chunks: Vec<Vec<String>> = (0..THREADS)
        .map(|t| ids.iter().skip(t).step_by(THREADS).cloned().collect())
        .collect();
    let handles: Vec<_> = chunks
        .into_iter()
        .enumerate()
        .map(|(t, ids)| {
            let c = c.clone();
            std::thread::spawn(move || {
                for id in ids {
                    let mut cmd = Cni::new("host-local", "DEL").var("CNI_CONTAINERID", &id);
                    if reference(t) {
                        cmd.exe = PathBuf::from("/usr/lib/cni/host-local");
                    }
                    cmd.run(&c).assert_empty_success();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn assert_unique_and_on_disk(data: &Path, got: &[(String, String)]) {
    let addrs: BTreeSet<&str> = got.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(addrs.len(), got.len(), "duplicate addresses handed out");
    let (res, _) = store(data);
    assert_eq!(res.len(), got.len(), "reservation files != successful ADDs");
    for (id, addr) in got {
        let ip = addr.split('/').next().unwrap();
        assert_eq!(res[ip], format!("{id}\r\neth0").into_bytes(), "{ip}");
    }
}

fn assert_no_reservations_left(data: &Path) {
    let (res, other) = store(data);
    assert!(
        res.is_empty(),
        "left behind: {:?}",
        res.keys().collect::<Vec<_>>()
    );
    let allowed: BTreeSet<String> = [".sandbox-cni", "lock", "last_reserved_ip.0"]
        .map(String::from)
        .into();
    assert!(other.is_subset(&allowed), "unexpected files: {other:?}");
}

#[test]
fn sixteen_processes_over_a_thousand_adds_then_dels() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "10.40.0.0/21");
    let got = parallel_adds(t.path(), &c, 70, |_| false);
    assert_eq!(got.len(), 1120);
    assert_unique_and_on_disk(t.path(), &got);
    // A repeated ADD of each of a sample returns its address (the index kept up under contention).
    for (id, addr) in got.iter().step_by(97) {
        let r = Cni::new("host-local", "ADD")
            .var("CNI_CONTAINERID", id)
            .run(&c)
            .assert_success();
        assert_eq!(r["ips"][0]["address"], addr.as_str());
    }
    parallel_dels(&c, got.into_iter().map(|(id, _)| id).collect(), |_| false);
    assert_no_reservations_left(t.path());
}

#[test]
fn mixed_with_the_reference_plugin_under_contention() {
    assert!(
        Path::new("/usr/lib/cni/host-local").is_file(),
        "install containernetworking-plugins"
    );
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "10.41.0.0/22");
    // Even threads run ours, odd threads the reference, all on one store at once.
    let got = parallel_adds(t.path(), &c, 20, |t| t % 2 == 1);
    assert_eq!(got.len(), 320);
    assert_unique_and_on_disk(t.path(), &got);
    // DELs swapped: what ours added, the reference frees, and the other way round.
    parallel_dels(&c, got.into_iter().map(|(id, _)| id).collect(), |t| t % 2 == 0);
    assert_no_reservations_left(t.path());
}

/// A tiny xorshift generator: the kill moments only need to vary.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn adds_killed_at_random_moments_leave_a_consistent_store() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "10.42.0.0/22");
    let exe = crate::harness::plugin("host-local");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let stdin = c.to_string();
    // Kill moments spread over the lifetime of 8 concurrent ADDs on this machine (each probe ADD
    // is timed alone; 8 at once on few cores take a few times longer).
    let mut probe: Vec<u128> = (0..3)
        .map(|i| {
            let start = Instant::now();
            Cni::new("host-local", "ADD")
                .var("CNI_CONTAINERID", &format!("probe{i}"))
                .run(&c)
                .assert_success();
            start.elapsed().as_micros()
        })
        .collect();
    probe.sort();
    let mut window = (probe[1] * 6).max(2000) as u64;
    for i in 0..3 {
        Cni::new("host-local", "DEL")
            .var("CNI_CONTAINERID", &format!("probe{i}"))
            .run(&c)
            .assert_empty_success();
    }
    let mut ids = Vec::new();
    let mut killed = 0;
    for round in 0..40 {
        let mut children = Vec::new();
        let mut killed_now = 0;
        for k in 0..8 {
            let id = format!("k{round}-{k}");
            let mut child = Command::new(&exe)
                .env_clear()
                .envs([
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", id.as_str()),
                    ("CNI_NETNS", "/var/run/netns/x"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_PATH", "/nonexistent"),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            children.push((child, Duration::from_micros(rng.next() % window)));
            ids.push(id);
        }
        let start = Instant::now();
        children.sort_by_key(|(_, at)| *at);
        for (mut child, at) in children {
            if let Some(left) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(left);
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed_now += 1;
            }
            child.wait().unwrap();
        }
        killed += killed_now;
        // Keep about half of each round killed, whatever the machine's speed and load.
        if killed_now < 2 {
            window = (window * 2 / 3).max(100);
        } else if killed_now > 6 {
            window = window * 3 / 2;
        }
    }
    assert!(killed > 0, "no ADD was killed before it finished (seed {seed})");
    // No empty or torn reservation file, and every one names an attachment we started.
    let (res, _) = store(t.path());
    eprintln!(
        "{killed} of {} ADDs killed (last window {window} us), {} reservations left (seed {seed})",
        ids.len(),
        res.len()
    );
    let started: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    for (ip, body) in &res {
        let text = std::str::from_utf8(body).unwrap();
        let (id, ifname) = text
            .split_once("\r\n")
            .unwrap_or_else(|| panic!("{ip}: torn body {text:?} (seed {seed})"));
        assert!(
            started.contains(id) && ifname == "eth0",
            "{ip}: {text:?} (seed {seed})"
        );
    }
    let holders: BTreeSet<&[u8]> = res.values().map(Vec::as_slice).collect();
    assert_eq!(
        holders.len(),
        res.len(),
        "an attachment holds two addresses (seed {seed})"
    );
    // The store stays consistent: each attachment's repeated ADD returns what it holds (or a fresh
    // address), and DEL of every attachment empties the store.
    for id in &ids {
        let r = Cni::new("host-local", "ADD")
            .var("CNI_CONTAINERID", id)
            .run(&c)
            .assert_success();
        let ip = r["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let body = format!("{id}\r\neth0").into_bytes();
        if let Some((held, _)) = res.iter().find(|(_, b)| **b == body) {
            assert_eq!(&ip, held, "{id} got a second address (seed {seed})");
        }
    }
    for id in &ids {
        Cni::new("host-local", "DEL")
            .var("CNI_CONTAINERID", id)
            .run(&c)
            .assert_empty_success();
    }
    assert_no_reservations_left(t.path());
}

/// The short form of the test above, cheap enough for slow runners (the aarch64 binaries under qemu
/// in tests/run.sh): 16 processes at a time, 96 ADDs into a pool of 126 addresses, then the DELs.
#[test]
fn sixteen_processes_in_parallel_get_unique_addresses() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "10.41.0.0/25");
    let got = parallel_adds(t.path(), &c, 6, |_| false);
    assert_eq!(got.len(), 96);
    assert_unique_and_on_disk(t.path(), &got);
    parallel_dels(&c, got.into_iter().map(|(id, _)| id).collect(), |_| false);
    assert_no_reservations_left(t.path());
}
