//! host-local as a black box: results per cniVersion (goldens), the ADD/CHECK/DEL lifecycle,
//! configuration errors, requested addresses, exhaustion, GC, STATUS and reboot reclaim.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::harness::{Cni, VERSIONS, golden};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host-local")
        .join(name)
}

/// A host-local config for network "testnet" with `ipam` plus type and dataDir.
fn conf(data: &Path, version: &str, mut ipam: Value) -> Value {
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data.to_str().unwrap());
    json!({"cniVersion": version, "name": "testnet", "type": "host-local", "ipam": ipam})
}

fn v4(subnet: &str) -> Value {
    json!({"ranges": [[{"subnet": subnet}]]})
}

fn hl(cmd: &str, id: &str) -> Cni {
    Cni::new("host-local", cmd).var("CNI_CONTAINERID", id)
}

/// Reservation files of "testnet": address -> body.
fn reservations(data: &Path) -> BTreeMap<String, String> {
    let Ok(dir) = fs::read_dir(data.join("testnet")) else {
        return BTreeMap::new();
    };
    dir.map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_str()
                .unwrap()
                .parse::<std::net::IpAddr>()
                .is_ok()
        })
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap().to_owned())
        .collect()
}

/// Two IPv4 ranges in one set (one with a gateway), an IPv6 set, routes and a resolv.conf.
pub(crate) fn dual_ipam() -> Value {
    json!({
        "ranges": [
            [{"subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.10"},
             {"subnet": "10.1.3.0/24", "rangeStart": "10.1.3.100", "rangeEnd": "10.1.3.100", "gateway": "10.1.3.254"}],
            [{"subnet": "fd00:10::/64"}]
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.1"}],
        "resolvConf": fixture("resolv.conf").to_str().unwrap(),
    })
}

#[test]
fn golden_add_results_for_every_version() {
    for v in VERSIONS {
        let t = tempfile::tempdir().unwrap();
        let single = conf(
            t.path(),
            v,
            json!({"ranges": [[{"subnet": "10.22.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}),
        );
        let out = hl("ADD", "ctr-a").run(&single);
        out.assert_success();
        golden(&format!("host-local/add-single-{v}.json"), &out.stdout);
        let out = hl("ADD", "ctr-a").run(&conf(t.path(), v, dual_ipam()));
        out.assert_success();
        golden(&format!("host-local/add-dual-{v}.json"), &out.stdout);
        // A repeated ADD answers the same bytes.
        let again = hl("ADD", "ctr-a").run(&conf(t.path(), v, dual_ipam()));
        assert_eq!(again.stdout, out.stdout, "repeated ADD at {v}");
    }
}

#[test]
fn lifecycle_add_check_del() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.0.0", v4("10.22.0.0/24"));
    let a = hl("ADD", "ctr-a").run(&c).assert_success();
    assert_eq!(addresses(&a), ["10.22.0.2/24"]);
    assert_eq!(a["ips"][0]["gateway"], "10.22.0.1");
    let b = hl("ADD", "ctr-b").run(&c).assert_success();
    assert_eq!(addresses(&b), ["10.22.0.3/24"]);
    assert_eq!(reservations(t.path())["10.22.0.2"], "ctr-a\r\neth0");
    // Same container, another interface: another address.
    let a1 = hl("ADD", "ctr-a")
        .var("CNI_IFNAME", "net1")
        .run(&c)
        .assert_success();
    assert_eq!(addresses(&a1), ["10.22.0.4/24"]);
    hl("CHECK", "ctr-a").run(&c).assert_empty_success();
    let mut with_prev = c.clone();
    with_prev["prevResult"] = a.clone();
    hl("CHECK", "ctr-a").run(&with_prev).assert_empty_success();
    // prevResult naming an address this attachment does not hold.
    let mut wrong = c.clone();
    wrong["prevResult"] = b.clone();
    let e = hl("CHECK", "ctr-a").run(&wrong).assert_error(102);
    assert!(e["msg"].as_str().unwrap().contains("10.22.0.3"), "{e}");
    // DEL without a netns, twice.
    hl("DEL", "ctr-a")
        .var("CNI_NETNS", "")
        .run(&c)
        .assert_empty_success();
    hl("DEL", "ctr-a")
        .unset("CNI_NETNS")
        .run(&c)
        .assert_empty_success();
    let e = hl("CHECK", "ctr-a").run(&c).assert_error(102);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("Failed to find address added by container ctr-a"),
        "{e}"
    );
    assert_eq!(
        reservations(t.path()).keys().collect::<Vec<_>>(),
        ["10.22.0.3", "10.22.0.4"]
    );
    // Round robin: .2 is not handed straight back.
    assert_eq!(
        addresses(&hl("ADD", "ctr-c").run(&c).assert_success()),
        ["10.22.0.5/24"]
    );
}

#[test]
fn del_of_nothing_succeeds_and_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("never-used");
    let c = conf(&data, "1.0.0", v4("10.22.0.0/24"));
    hl("DEL", "ghost")
        .var("CNI_NETNS", "")
        .run(&c)
        .assert_empty_success();
    assert!(!data.exists(), "DEL created the data directory");
    // DEL succeeds even when the ranges of the configuration are broken.
    let broken = conf(t.path(), "1.0.0", json!({"ranges": [[{"subnet": "bogus"}]]}));
    hl("DEL", "ghost").run(&broken).assert_empty_success();
}

#[test]
fn invalid_configurations_are_code_7_naming_the_field_and_write_nothing() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/33"}]]}),
            "ipam.ranges[0][0].subnet",
        ),
        (json!({"ranges": [[{"subnet": "10.0.0.5/24"}]]}), "host bits"),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "192.168.1.1"}]]}),
            "ipam.ranges[0][0].gateway",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.8"}]]}),
            "ipam.ranges[0][0].rangeStart",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.8"}]]}),
            "ipam.ranges[0][0].rangeEnd",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.255", "rangeEnd": "10.0.0.255"}]]}),
            "no address that can be handed out",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.0"}]]}),
            "no address that can be handed out",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/16"}]]}),
            "overlap",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}),
            "range set 0 (ipam.ranges[0]) overlaps with 1",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}),
            "mixed address families",
        ),
        (json!({"ranges": [[{"subnet": "10.0.0.0/31"}]]}), "too small"),
        (
            json!({"ranges": [[{"rangeStart": "10.0.0.2"}]]}),
            "ipam.ranges[0][0].subnet is missing",
        ),
        (
            json!({"ranges": [{"subnet": "10.0.0.0/24"}]}),
            "ipam.ranges[0] must be a list",
        ),
        (json!({"ranges": "10.0.0.0/24"}), "ipam.ranges must be a list"),
        (json!({}), "no IP ranges specified"),
        (
            json!({"subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}),
            "ipam.gateway",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "nope"}]}),
            "ipam.routes[0].dst",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]}),
            "ipam.routes[0].gw",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "resolvConf": "/nonexistent/resolv.conf"}),
            "ipam.resolvConf",
        ),
        (
            json!({"ranges": [[{"subnet": "10.0.0.0/24"}]], "reclaimAfterReboot": "yes"}),
            "ipam.reclaimAfterReboot",
        ),
    ];
    for (ipam, needle) in cases {
        let t = tempfile::tempdir().unwrap();
        let e = hl("ADD", "ctr-a")
            .run(&conf(t.path(), "1.0.0", ipam.clone()))
            .assert_error(7);
        let text = format!("{} {}", e["msg"], e["details"]);
        assert!(text.contains(needle), "{ipam}: {needle:?} not in {text}");
        assert!(
            reservations(t.path()).is_empty(),
            "{ipam}: something was reserved"
        );
    }
    // Missing ipam, and a dataDir with '..'.
    let t = tempfile::tempdir().unwrap();
    let e = hl("ADD", "x")
        .run(&json!({"cniVersion": "1.0.0", "name": "n", "type": "host-local"}))
        .assert_error(7);
    assert_eq!(e["msg"], "IPAM config missing 'ipam' key");
    let mut c = conf(t.path(), "1.0.0", v4("10.0.0.0/24"));
    c["ipam"]["dataDir"] = json!(format!("{}/a/../b", t.path().display()));
    let e = hl("ADD", "x").run(&c).assert_error(7);
    assert!(e["msg"].as_str().unwrap().contains("ipam.dataDir"), "{e}");
    // Versions before 0.3.0 carry one address per family.
    let two = conf(
        t.path(),
        "0.2.0",
        json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]}),
    );
    let e = hl("ADD", "x").run(&two).assert_error(7);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("does not support more than 1 address per family"),
        "{e}"
    );
}

#[test]
fn exhaustion_keeps_the_reference_text() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.0.0", v4("192.168.77.0/30"));
    assert_eq!(
        addresses(&hl("ADD", "t1").run(&c).assert_success()),
        ["192.168.77.2/30"]
    );
    let e = hl("ADD", "t2").run(&c).assert_error(100);
    assert_eq!(
        e["msg"],
        "failed to allocate for range 0: no IP addresses available in range set: 192.168.77.1-192.168.77.2"
    );
    // Dual stack: when the second set is exhausted, the first set's new address is rolled back.
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd77::/126"}]]}),
    );
    for id in ["a", "b"] {
        hl("ADD", id).run(&c).assert_success();
    }
    let e = hl("ADD", "c").run(&c).assert_error(100);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("range 1: no IP addresses available in range set: fd77::1-fd77::3"),
        "{e}"
    );
    assert_eq!(reservations(t.path()).len(), 4);
    // A holder still gets its addresses back.
    assert_eq!(
        addresses(&hl("ADD", "a").run(&c).assert_success()),
        ["10.5.0.2/24", "fd77::2/126"]
    );
}

#[test]
fn requested_addresses_from_every_source() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.0.0", v4("10.22.0.0/24"));
    let r = hl("ADD", "a")
        .var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.22.0.50")
        .run(&c)
        .assert_success();
    assert_eq!(addresses(&r), ["10.22.0.50/24"]);
    let mut rc = c.clone();
    rc["runtimeConfig"] = json!({"ips": ["10.22.0.77/24"]});
    assert_eq!(
        addresses(&hl("ADD", "b").run(&rc).assert_success()),
        ["10.22.0.77/24"]
    );
    let mut args = c.clone();
    args["args"] = json!({"cni": {"ips": ["10.22.0.88"]}});
    assert_eq!(
        addresses(&hl("ADD", "c").run(&args).assert_success()),
        ["10.22.0.88/24"]
    );
    // Taken: the error names the holder.
    let e = hl("ADD", "d")
        .var("CNI_ARGS", "IP=10.22.0.50")
        .run(&c)
        .assert_error(101);
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.contains("requested IP address 10.22.0.50 is not available in range set 10.22.0.1-10.22.0.254"),
        "{msg}"
    );
    assert!(msg.contains("container a (interface eth0)"), "{msg}");
    // The gateway, an address outside every range, two in one set.
    let e = hl("ADD", "d")
        .var("CNI_ARGS", "IP=10.22.0.1")
        .run(&c)
        .assert_error(101);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("requested ip 10.22.0.1 is subnet's gateway"),
        "{e}"
    );
    let e = hl("ADD", "d")
        .var("CNI_ARGS", "IP=10.99.0.5")
        .run(&c)
        .assert_error(101);
    assert_eq!(e["msg"], "failed to allocate all requested IPs: 10.99.0.5");
    let e = hl("ADD", "d")
        .var("CNI_ARGS", "IP=10.22.0.60,10.22.0.61")
        .run(&c)
        .assert_error(101);
    assert_eq!(e["msg"], "failed to allocate all requested IPs: 10.22.0.61");
    // Unknown CNI_ARGS keys need IgnoreUnknown; a malformed address is a config error.
    hl("ADD", "d")
        .var("CNI_ARGS", "K8S_POD_NAME=x")
        .run(&c)
        .assert_error(4);
    hl("ADD", "d")
        .var("CNI_ARGS", "IP=banana")
        .run(&c)
        .assert_error(7);
    assert_eq!(
        reservations(t.path()).len(),
        3,
        "failed requests reserved nothing"
    );
    // Dual stack with a comma list: one address per family.
    let t = tempfile::tempdir().unwrap();
    let c = conf(
        t.path(),
        "1.0.0",
        json!({"ranges": [[{"subnet": "10.5.0.0/24"}], [{"subnet": "fd00:5::/64"}]]}),
    );
    let r = hl("ADD", "a")
        .var("CNI_ARGS", "IP=fd00:5::9/64,10.5.0.9")
        .run(&c)
        .assert_success();
    assert_eq!(addresses(&r), ["10.5.0.9/24", "fd00:5::9/64"]);
}

#[test]
fn ip_ranges_capability_and_legacy_form_come_first() {
    let t = tempfile::tempdir().unwrap();
    let mut c = conf(
        t.path(),
        "1.0.0",
        json!({"subnet": "10.5.0.0/16", "rangeStart": "10.5.1.10", "ranges": [[{"subnet": "10.22.0.0/24"}]]}),
    );
    // containerd sends capability payloads with capitalised keys.
    c["runtimeConfig"] = json!({"ipRanges": [[{"Subnet": "10.8.0.0/24", "RangeStart": "10.8.0.200"}]]});
    let r = hl("ADD", "a").run(&c).assert_success();
    assert_eq!(addresses(&r), ["10.8.0.200/24", "10.5.1.10/16", "10.22.0.2/24"]);
    assert_eq!(r["ips"][1]["gateway"], "10.5.0.1");
    for (i, ip) in ["10.8.0.200", "10.5.1.10", "10.22.0.2"].iter().enumerate() {
        assert_eq!(
            fs::read_to_string(t.path().join(format!("testnet/last_reserved_ip.{i}"))).unwrap(),
            *ip
        );
    }
}

#[test]
fn gc_releases_attachments_not_listed() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.1.0", v4("10.22.0.0/24"));
    for id in ["a", "b", "c"] {
        hl("ADD", id).run(&c).assert_success();
    }
    hl("ADD", "b").var("CNI_IFNAME", "net1").run(&c).assert_success();
    let gc = |extra: Value| {
        let mut g = c.clone();
        for (k, v) in extra.as_object().unwrap() {
            g[k] = v.clone();
        }
        Cni::new("host-local", "GC")
            .var("CNI_CONTAINERID", "")
            .var("CNI_IFNAME", "")
            .var("CNI_NETNS", "")
            .run(&g)
    };
    // Neither key (libcni's GCNetworkList without GCArgs, cnitool 1.3's `gc`): success, nothing
    // released, not even by a GC at another interface name.
    let before = reservations(t.path());
    assert_eq!(before.len(), 4);
    gc(json!({})).assert_empty_success();
    assert_eq!(reservations(t.path()), before);
    // A bad store setting is still refused without the key.
    let mut bad = c.clone();
    bad["ipam"]["dataDir"] = json!(format!("{}/../x", t.path().display()));
    Cni::new("host-local", "GC")
        .var("CNI_CONTAINERID", "")
        .var("CNI_IFNAME", "")
        .var("CNI_NETNS", "")
        .run(&bad)
        .assert_error(7);
    assert_eq!(reservations(t.path()), before);
    gc(json!({"cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}, {"containerID": "c", "ifname": "eth0"}]}))
        .assert_empty_success();
    let left: Vec<String> = reservations(t.path()).values().cloned().collect();
    assert_eq!(left, ["b\r\neth0", "c\r\neth0"]);
    // The older key, then null meaning "no live attachment".
    gc(json!({"cni.dev/attachments": [{"containerID": "c", "ifname": "eth0"}]})).assert_empty_success();
    assert_eq!(reservations(t.path()).len(), 1);
    gc(json!({"cni.dev/valid-attachments": null})).assert_empty_success();
    assert!(reservations(t.path()).is_empty());
    // DEL and CHECK after GC behave as after DEL.
    hl("DEL", "c").run(&c).assert_empty_success();
    hl("CHECK", "c").run(&c).assert_error(102);
    // GC at 1.0.0 is refused by the dispatcher.
    let mut old = c.clone();
    old["cniVersion"] = json!("1.0.0");
    Cni::new("host-local", "GC").run(&old).assert_error(1);
}

#[test]
fn status_reports_exhaustion_and_unusable_stores() {
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.1.0", v4("192.168.77.0/30"));
    let status = |c: &Value| {
        Cni::new("host-local", "STATUS")
            .var("CNI_CONTAINERID", "")
            .var("CNI_IFNAME", "")
            .run(c)
    };
    status(&c).assert_empty_success();
    hl("ADD", "a").run(&c).assert_success();
    let e = status(&c).assert_error(50);
    assert!(
        e["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available in range set 0"),
        "{e}"
    );
    hl("DEL", "a").run(&c).assert_empty_success();
    status(&c).assert_empty_success();
    // dataDir is a file: the store cannot be used.
    let file = t.path().join("a-file");
    fs::write(&file, "x").unwrap();
    let bad = conf(&file, "1.1.0", v4("10.0.0.0/24"));
    let e = status(&bad).assert_error(50);
    assert!(e["msg"].as_str().unwrap().contains("a-file"), "{e}");
}

#[test]
fn reclaim_after_reboot_frees_earlier_boots_only_when_enabled() {
    let t = tempfile::tempdir().unwrap();
    let off = conf(t.path(), "1.0.0", v4("10.22.0.0/24"));
    let mut on = off.clone();
    on["ipam"]["reclaimAfterReboot"] = json!(true);
    hl("ADD", "a").run(&off).assert_success();
    hl("ADD", "b").run(&on).assert_success();
    assert_eq!(reservations(t.path()).len(), 2, "same boot: nothing reclaimed");
    // Pretend the store was last used during another boot.
    let marker = t.path().join("testnet/.sandbox-cni/boot_id");
    assert!(fs::read_to_string(&marker).unwrap().starts_with("boot_id "));
    fs::write(&marker, "boot_id 00000000-0000-0000-0000-000000000000\n").unwrap();
    hl("ADD", "c").run(&off).assert_success();
    assert_eq!(reservations(t.path()).len(), 3, "not enabled: nothing reclaimed");
    fs::write(&marker, "boot_id 00000000-0000-0000-0000-000000000000\n").unwrap();
    let r = hl("ADD", "d").run(&on).assert_success();
    let left = reservations(t.path());
    assert_eq!(left.values().collect::<Vec<_>>(), ["d\r\neth0"], "{r}");
}

#[test]
fn repeated_add_after_the_reference_style_files_changed_behind_our_back() {
    // Someone deletes a reservation by hand: the next ADD of its holder allocates afresh, and the
    // index never reports an address whose file is gone.
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.0.0", v4("10.22.0.0/24"));
    hl("ADD", "a").run(&c).assert_success();
    fs::remove_file(t.path().join("testnet/10.22.0.2")).unwrap();
    hl("CHECK", "a").run(&c).assert_error(102);
    assert_eq!(
        addresses(&hl("ADD", "a").run(&c).assert_success()),
        ["10.22.0.3/24"]
    );
}

#[test]
fn add_waits_for_a_lock_held_by_another_process() {
    // The reference plugin (or a script) holding the store's flock: ADD waits for it, then succeeds.
    let t = tempfile::tempdir().unwrap();
    let c = conf(t.path(), "1.0.0", v4("10.22.0.0/24"));
    hl("ADD", "a").run(&c).assert_success();
    let lock = fs::File::open(t.path().join("testnet/lock")).unwrap();
    lock.lock().unwrap();
    let waiter = std::thread::spawn(move || hl("ADD", "b").run(&c));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!waiter.is_finished(), "ADD went ahead while the lock was held");
    lock.unlock().unwrap();
    let r = waiter.join().unwrap().assert_success();
    assert_eq!(addresses(&r), ["10.22.0.3/24"]);
}
