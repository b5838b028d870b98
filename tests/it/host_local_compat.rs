//! host-local against the reference plugin (Debian's containernetworking-plugins, /usr/lib/cni):
//! the same results and the same files on disk, and one store shared both ways without losing or
//! duplicating an allocation.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Cni, Out};
use serde_json::{Value, json};

/// The reference host-local; the package is in tests/apt-packages.txt, so its absence is a failure.
fn reference() -> PathBuf {
    let p = PathBuf::from("/usr/lib/cni/host-local");
    assert!(
        p.is_file(),
        "{} is missing: install Debian's containernetworking-plugins package (apt-get install containernetworking-plugins)",
        p.display()
    );
    p
}

/// The reference's supported versions (v1.1.1 stops at 1.0.0).
const REF_VERSIONS: [&str; 6] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

fn conf(data: &Path, version: &str, mut ipam: Value) -> Value {
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data.to_str().unwrap());
    json!({"cniVersion": version, "name": "compat", "type": "host-local", "ipam": ipam})
}

fn ours(cmd: &str, id: &str) -> Cni {
    Cni::new("host-local", cmd).var("CNI_CONTAINERID", id)
}

fn theirs(cmd: &str, id: &str) -> Cni {
    let mut c = ours(cmd, id);
    c.exe = reference();
    c
}

/// Everything in the network directory except our `.sandbox-cni`: name -> content.
fn files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(data.join("compat"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != ".sandbox-cni")
        .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
        .collect()
}

fn reservations(data: &Path) -> BTreeMap<String, String> {
    files(data)
        .into_iter()
        .filter(|(k, _)| k.parse::<std::net::IpAddr>().is_ok())
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect()
}

fn address(out: &Out) -> String {
    out.assert_success()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn same_results_and_same_files_as_the_reference() {
    let configs = [
        json!({"ranges": [[{"subnet": "10.22.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}),
        crate::host_local::dual_ipam(),
        json!({"subnet": "10.5.0.0/16", "rangeStart": "10.5.1.10", "rangeEnd": "10.5.1.20", "gateway": "10.5.0.1"}),
        json!({"ranges": [[{"subnet": "fd77::/126"}]]}),
    ];
    for v in REF_VERSIONS {
        for (n, ipam) in configs.iter().enumerate() {
            let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            // Three ADDs (the third may exhaust a small range), one DEL, one more ADD.
            let steps = [
                ("ADD", "c1"),
                ("ADD", "c2"),
                ("ADD", "c3"),
                ("DEL", "c1"),
                ("ADD", "c4"),
            ];
            for (cmd, id) in steps {
                let r = theirs(cmd, id).run(&conf(a.path(), v, ipam.clone()));
                let o = ours(cmd, id).run(&conf(b.path(), v, ipam.clone()));
                assert_eq!(
                    r.ok(),
                    o.ok(),
                    "{v} config {n} {cmd} {id}: {} vs {}",
                    r.text(),
                    o.text()
                );
                if r.ok() && !r.stdout.is_empty() {
                    assert_eq!(r.json(), o.json(), "{v} config {n} {cmd} {id}");
                } else if !r.ok() {
                    assert_eq!(r.json()["msg"], o.json()["msg"], "{v} config {n} {cmd} {id}");
                }
                let (fa, fb) = (files(a.path()), files(b.path()));
                let names = |f: &BTreeMap<String, Vec<u8>>| f.keys().cloned().collect::<Vec<_>>();
                assert_eq!(names(&fa), names(&fb), "{v} config {n} after {cmd} {id}");
                for (k, va) in &fa {
                    if k != "lock" {
                        assert_eq!(va, &fb[k], "{v} config {n}: content of {k}");
                    }
                }
            }
        }
    }
}

#[test]
fn ours_adds_theirs_deletes_and_checks() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.22.0.0/24"}]]}),
    );
    assert_eq!(address(&ours("ADD", "a").run(&c)), "10.22.0.2/24");
    assert_eq!(address(&ours("ADD", "b").run(&c)), "10.22.0.3/24");
    // The reference sees our reservation (its duplicate check), and CHECKs it.
    let e = theirs("ADD", "a").run(&c);
    assert!(
        e.text().contains("duplicate allocation is not allowed"),
        "{}",
        e.text()
    );
    theirs("CHECK", "a").run(&c).assert_empty_success();
    // ...and releases it; our index notices.
    theirs("DEL", "a").run(&c).assert_empty_success();
    assert_eq!(reservations(t.path()).keys().collect::<Vec<_>>(), ["10.22.0.3"]);
    ours("CHECK", "a").run(&c).assert_error(102);
    ours("CHECK", "b").run(&c).assert_empty_success();
    // The reference continues our cursor.
    assert_eq!(address(&theirs("ADD", "c").run(&c)), "10.22.0.4/24");
    // Our .sandbox-cni files never confuse the reference's walk: DEL of everyone empties the store.
    for id in ["b", "c"] {
        theirs("DEL", id).run(&c).assert_empty_success();
    }
    assert!(reservations(t.path()).is_empty());
    assert_eq!(address(&ours("ADD", "d").run(&c)), "10.22.0.5/24");
}

#[test]
fn theirs_adds_ours_deletes_checks_and_readds() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]]}),
    );
    let r = theirs("ADD", "a").run(&c).assert_success();
    theirs("ADD", "b").run(&c).assert_success();
    // Ours: a different address, continuing the reference's cursor.
    let o = ours("ADD", "x").run(&c).assert_success();
    assert_eq!(o["ips"][0]["address"], "10.22.0.4/24");
    assert_eq!(o["ips"][1]["address"], "fd00:22::4/64");
    // A repeated ADD of the reference's attachment returns what the reference gave it.
    assert_eq!(ours("ADD", "a").run(&c).assert_success(), r);
    ours("CHECK", "a").run(&c).assert_empty_success();
    ours("DEL", "a").run(&c).assert_empty_success();
    ours("CHECK", "a").run(&c).assert_error(102);
    let left: Vec<_> = reservations(t.path()).into_values().collect();
    assert_eq!(left.iter().filter(|b| *b == "a\r\neth0").count(), 0);
    assert_eq!(left.len(), 4);
    // The reference adds more behind our index; ours still finds and frees them.
    theirs("ADD", "c").run(&c).assert_success();
    ours("DEL", "c").run(&c).assert_empty_success();
    ours("DEL", "b").run(&c).assert_empty_success();
    ours("DEL", "x").run(&c).assert_empty_success();
    assert!(reservations(t.path()).is_empty());
}

#[test]
fn alternating_plugins_share_one_round_robin_without_duplicates() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.30.0.0/28"}]]}),
    );
    let mut seen = Vec::new();
    for i in 0..13 {
        let id = format!("c{i}");
        let out = if i % 2 == 0 {
            ours("ADD", &id).run(&c)
        } else {
            theirs("ADD", &id).run(&c)
        };
        seen.push(address(&out));
    }
    let want: Vec<String> = (2..=14).map(|n| format!("10.30.0.{n}/28")).collect();
    assert_eq!(seen, want);
    // Full: both refuse with the same text.
    let a = ours("ADD", "z").run(&c);
    let b = theirs("ADD", "z").run(&c);
    assert_eq!(a.json()["msg"], b.json()["msg"]);
    a.assert_error(100);
    // Free two (one by each), then the next ones come after the cursor, wrapping round.
    ours("DEL", "c3").run(&c).assert_empty_success();
    theirs("DEL", "c6").run(&c).assert_empty_success();
    assert_eq!(address(&ours("ADD", "n1").run(&c)), "10.30.0.5/28");
    assert_eq!(address(&theirs("ADD", "n2").run(&c)), "10.30.0.8/28");
    let bodies: Vec<String> = reservations(t.path()).into_values().collect();
    let mut dedup = bodies.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), bodies.len());
    assert_eq!(bodies.len(), 13);
}

#[test]
fn legacy_id_only_reservations_are_found_and_released() {
    // Reservation files written before the reference's v0.8.0 hold only the container ID.
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.22.0.0/24"}]]}),
    );
    theirs("ADD", "seed").run(&c).assert_success();
    fs::write(t.path().join("compat/10.22.0.77"), "old-ctr").unwrap();
    ours("CHECK", "old-ctr").run(&c).assert_empty_success();
    ours("DEL", "old-ctr").run(&c).assert_empty_success();
    assert!(!t.path().join("compat/10.22.0.77").exists());
    // The reference agrees nothing is left for it.
    let e = theirs("CHECK", "old-ctr").run(&c);
    assert!(!e.ok());
}
