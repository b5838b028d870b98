//! The bridge's DEL, CHECK, GC and STATUS: DEL releases and always succeeds, CHECK accepts the ADD
//! result and catches tampering, GC and STATUS are delegated to the IPAM.

use super::*;

#[test]
fn del_releases_and_always_succeeds() {
    let dir = tmp();
    let c = single("1.0.0", dir.path());
    let r = add(&c).assert_success();
    assert_eq!(reserved(dir.path()).len(), 1);
    let with_prev = merged(c.clone(), &json!({"prevResult": r}));
    Cni::new("bridge", "DEL").run(&with_prev).assert_empty_success();
    assert!(reserved(dir.path()).is_empty());
    // Repeated, never added, no prevResult, empty prevResult, empty netns.
    Cni::new("bridge", "DEL").run(&with_prev).assert_empty_success();
    Cni::new("bridge", "DEL")
        .var("CNI_CONTAINERID", "never")
        .run(&c)
        .assert_empty_success();
    let empty_prev = merged(c.clone(), &json!({"prevResult": {}}));
    Cni::new("bridge", "DEL").run(&empty_prev).assert_empty_success();

    // DEL with an empty CNI_NETNS still releases the address (nerdctl/ctr do this).
    add(&c).assert_success();
    assert_eq!(reserved(dir.path()).len(), 1);
    Cni::new("bridge", "DEL")
        .var("CNI_NETNS", "")
        .run(&c)
        .assert_empty_success();
    assert!(reserved(dir.path()).is_empty());

    // A bridge key edited since ADD does not block teardown.
    add(&c).assert_success();
    let edited = merged(c.clone(), &json!({"mtu": "bad", "vlan": 99999}));
    Cni::new("bridge", "DEL").run(&edited).assert_empty_success();
    assert!(reserved(dir.path()).is_empty());

    // Layer 2 only: nothing to release.
    Cni::new("bridge", "DEL").run(&l2("1.0.0")).assert_empty_success();
    // An older config version (libcni sends no prevResult before 0.4.0).
    let old = single("0.3.1", dir.path());
    add(&old).assert_success();
    Cni::new("bridge", "DEL").run(&old).assert_empty_success();
    assert!(reserved(dir.path()).is_empty());
}

#[test]
fn check_accepts_the_add_result_and_catches_tampering() {
    for (version, make) in [
        ("0.4.0", single as fn(&str, &Path) -> Value),
        ("1.0.0", single),
        ("1.0.0", dual),
        ("1.1.0", dual),
    ] {
        let dir = tmp();
        let c = make(version, dir.path());
        let r = add(&c).assert_success();
        let check =
            |prev: &Value| Cni::new("bridge", "CHECK").run(&merged(c.clone(), &json!({"prevResult": prev})));
        check(&r).assert_empty_success();

        type Tamper = fn(&mut Value);
        let tampers: [(Tamper, &str); 10] = [
            // Another address of the same subnet: caught by host-local's CHECK (passed on).
            (
                |r| {
                    let a = r["ips"][0]["address"]
                        .as_str()
                        .unwrap_or_default()
                        .replace(".2/", ".77/");
                    r["ips"][0]["address"] = json!(a);
                },
                ".77",
            ),
            (|r| r["interfaces"][2]["mac"] = json!("0a:00:00:00:00:01"), "MAC"),
            (
                |r| r["interfaces"][2]["sandbox"] = json!("/var/run/netns/other"),
                "sandbox",
            ),
            (|r| r["interfaces"][2]["name"] = json!("eth9"), "eth0"),
            (
                |r| r["interfaces"][1]["name"] = json!("veth00000000"),
                "host veth",
            ),
            (
                |r| r["interfaces"][1]["mac"] = json!("0a:00:00:00:00:02"),
                "host veth",
            ),
            (
                |r| r["interfaces"][1]["sandbox"] = json!("/var/run/netns/test-1"),
                "sandbox",
            ),
            (
                |r| r["interfaces"][0]["mac"] = json!("0a:00:00:00:00:03"),
                "bridge",
            ),
            (|r| r["ips"][0]["interface"] = json!(0), "eth0"),
            (
                |r| {
                    if let Some(o) = r["ips"][0].as_object_mut() {
                        o.remove("gateway");
                    }
                },
                "gateway",
            ),
        ];
        for (tamper, needle) in tampers {
            let mut t = r.clone();
            tamper(&mut t);
            let out = check(&t);
            assert!(
                !out.ok(),
                "{version}: CHECK accepted a prevResult tampered for {needle:?}: {t}"
            );
            let e = out.assert_error(102);
            let msg = e["msg"].as_str().expect("msg");
            assert!(
                msg.contains(needle),
                "{version}: {msg:?} should mention {needle:?}"
            );
        }
        // Without prevResult: code 7.
        Cni::new("bridge", "CHECK").run(&c).assert_error(7);
        // After DEL, the stale prevResult fails in IPAM CHECK (its error passed on).
        Cni::new("bridge", "DEL").run(&c).assert_empty_success();
        let stale = check(&r);
        assert!(!stale.ok(), "CHECK after DEL must fail");
        let direct = Cni::new("host-local", "CHECK").run(&merged(c.clone(), &json!({"prevResult": r})));
        assert_same_error(&stale, &direct);
    }
    // Layer 2 only: CHECK compares interfaces and refuses addresses.
    let c = l2("1.0.0");
    let r = add(&c).assert_success();
    let with = |prev: Value| merged(c.clone(), &json!({"prevResult": prev}));
    Cni::new("bridge", "CHECK")
        .run(&with(r.clone()))
        .assert_empty_success();
    let mut t = r.clone();
    t["ips"] = json!([{"interface": 2, "address": "10.9.0.2/24"}]);
    Cni::new("bridge", "CHECK").run(&with(t)).assert_error(102);
}

#[test]
fn gc_and_status_are_delegated_to_ipam() {
    let dir = tmp();
    let c = single("1.1.0", dir.path());
    for (id, ifname) in [("A", "eth0"), ("B", "eth0"), ("A", "eth1")] {
        Cni::new("bridge", "ADD")
            .var("CNI_CONTAINERID", id)
            .var("CNI_IFNAME", ifname)
            .run(&c)
            .assert_success();
    }
    assert_eq!(reserved(dir.path()).len(), 3);
    // No list at all (libcni's GCNetworkList without GCArgs): success, nothing released.
    Cni::new("bridge", "GC").run(&c).assert_empty_success();
    assert_eq!(reserved(dir.path()).len(), 3, "GC without a list released");
    let gc = merged(
        c.clone(),
        &json!({"cni.dev/valid-attachments": [{"containerID": "A", "ifname": "eth0"}]}),
    );
    Cni::new("bridge", "GC").run(&gc).assert_empty_success();
    assert_eq!(reserved(dir.path()).len(), 1, "only A/eth0 survives GC");

    Cni::new("bridge", "STATUS").run(&c).assert_empty_success();
    Cni::new("bridge", "STATUS")
        .run(&l2("1.1.0"))
        .assert_empty_success();
    Cni::new("bridge", "GC").run(&l2("1.1.0")).assert_empty_success();
    let mut missing = c.clone();
    missing["ipam"]["type"] = json!("no-such-ipam");
    let e = Cni::new("bridge", "STATUS").run(&missing).assert_error(50);
    assert!(
        e["msg"].as_str().is_some_and(|m| m.contains("no-such-ipam")),
        "{e}"
    );
    // STATUS with a full pool: host-local's code 50 comes back unchanged.
    let full_dir = tmp();
    let mut full = single("1.1.0", full_dir.path());
    full["ipam"]["ranges"] = json!([[{"subnet": "10.3.0.0/30"}]]);
    Cni::new("bridge", "ADD").run(&full).assert_success();
    let ours = Cni::new("bridge", "STATUS").run(&full);
    let theirs = Cni::new("host-local", "STATUS").run(&full);
    assert_eq!(ours.status, theirs.status);
    assert_eq!(ours.stdout, theirs.stdout, "STATUS answer passed on unchanged");
}
