//! Black-box tests of the fake bridge: result shape per version (golden files), deterministic names,
//! requested MACs, field validation, IPAM delegation and rollback, DEL, CHECK, GC and STATUS. The IPAM
//! is this build's host-local (CNI_PATH = the build's binary directory) with a temporary dataDir.

use std::net::IpAddr;
use std::path::Path;

use crate::harness::{Cni, Out, VERSIONS, bin_dir, golden};
use serde_json::{Value, json};

const NET: &str = "bridgetest";

/// Shallow merge: keys of `extra` replace those of `base`; a null value removes the key.
fn merged(mut base: Value, extra: &Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(k);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
    base
}

/// Single stack, isGateway, an IPAM default route without "gw" (the reference's CHECK bug).
fn single(version: &str, data: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": NET,
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": true,
        "ipam": {
            "type": "host-local",
            "dataDir": data,
            "ranges": [[{"subnet": "10.1.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]
        }
    })
}

/// Dual stack with isDefaultGateway and a non-default IPAM route.
fn dual(version: &str, data: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": NET,
        "type": "bridge",
        "bridge": "br-dual",
        "isDefaultGateway": true,
        "ipam": {
            "type": "host-local",
            "dataDir": data,
            "ranges": [[{"subnet": "10.2.0.0/24"}], [{"subnet": "fd02::/64"}]],
            "routes": [{"dst": "10.99.0.0/16"}]
        }
    })
}

/// Layer 2 only: no IPAM.
fn l2(version: &str) -> Value {
    json!({"cniVersion": version, "name": NET, "type": "bridge", "ipam": {}})
}

/// Addresses reserved in host-local's store for network `NET`.
fn reserved(data: &Path) -> Vec<IpAddr> {
    crate::harness::reserved_addresses(&data.join(NET))
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn add(conf: &Value) -> Out {
    Cni::new("bridge", "ADD").run(conf)
}

/// The bridge passed the IPAM's error on: same code, message and details.
fn assert_same_error(ours: &Out, ipam: &Out) {
    let (a, b) = (ours.json(), ipam.json());
    for key in ["code", "msg", "details"] {
        assert_eq!(
            a.get(key),
            b.get(key),
            "IPAM error not passed on unchanged: {a} vs {b}"
        );
    }
}

/// Structural rules every bridge ADD result follows, whatever the version.
fn assert_shape(version: &str, r: &Value) {
    assert_eq!(r["cniVersion"], version);
    if version == "0.1.0" || version == "0.2.0" {
        assert!(r.get("interfaces").is_none() && r.get("ips").is_none(), "{r}");
        return;
    }
    let ifs = r["interfaces"].as_array().expect("interfaces");
    assert!(ifs.len() == 3, "three interfaces: {r}");
    assert!(
        ifs[0].get("sandbox").is_none() && ifs[1].get("sandbox").is_none(),
        "{r}"
    );
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], "/var/run/netns/test-1");
    let veth = ifs[1]["name"].as_str().expect("veth name");
    assert!(
        veth.len() == 12 && veth.starts_with("veth") && veth[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{veth}"
    );
    for i in ifs {
        let mac = i["mac"].as_str().expect("mac");
        let first = u8::from_str_radix(&mac[..2], 16).expect("hex");
        assert_eq!(first & 0x03, 0x02, "locally administered unicast: {mac}");
    }
    for ip in r["ips"].as_array().into_iter().flatten() {
        assert_eq!(ip["interface"], 2, "every IP on the container interface: {r}");
        let v6 = ip["address"].as_str().expect("address").contains(':');
        match version {
            "1.0.0" | "1.1.0" => assert!(ip.get("version").is_none(), "{r}"),
            _ => assert_eq!(ip["version"], if v6 { "6" } else { "4" }),
        }
    }
}

#[test]
fn add_results_match_golden_files_for_every_version() {
    for version in VERSIONS {
        for (case, make) in [("single", single as fn(&str, &Path) -> Value), ("dual", dual)] {
            let dir = tmp();
            let out = add(&make(version, dir.path()));
            let r = out.assert_success();
            assert_shape(version, &r);
            golden(&format!("bridge/add-{case}-{version}.json"), &out.stdout);
        }
        let out = add(&l2(version));
        if version == "0.1.0" || version == "0.2.0" {
            // 0.1.0/0.2.0 results consist of addresses: an L2-only attachment cannot be expressed.
            out.assert_error(1);
        } else {
            let r = out.assert_success();
            assert_shape(version, &r);
            assert!(r.get("ips").is_none() && r.get("routes").is_none(), "{r}");
            golden(&format!("bridge/add-l2-{version}.json"), &out.stdout);
        }
    }
}

#[test]
fn gateways_and_default_routes() {
    let dir = tmp();
    let r = add(&dual("1.0.0", dir.path())).assert_success();
    let routes = r["routes"].as_array().expect("routes");
    // The IPAM route first, then one default route per family via that family's gateway.
    assert_eq!(routes[0], json!({"dst": "10.99.0.0/16"}));
    assert_eq!(routes[1], json!({"dst": "0.0.0.0/0", "gw": "10.2.0.1"}));
    assert_eq!(routes[2], json!({"dst": "::/0", "gw": "fd02::1"}));
    assert_eq!(routes.len(), 3);

    // An IPAM default route of a family is kept and not duplicated.
    let dir = tmp();
    let mut c = dual("1.0.0", dir.path());
    c["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    let r = add(&c).assert_success();
    assert_eq!(
        r["routes"],
        json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd02::1"}])
    );

    // Without isGateway the IPAM's gateway is passed on and no route is added.
    let dir = tmp();
    let c = merged(single("1.0.0", dir.path()), &json!({"isGateway": null}));
    let r = add(&c).assert_success();
    assert_eq!(r["ips"][0]["gateway"], "10.1.0.1");
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0"}]));
}

#[test]
fn names_and_macs_are_deterministic() {
    let (a, b) = (tmp(), tmp());
    let r1 = add(&single("1.0.0", a.path())).assert_success();
    let r2 = add(&single("1.0.0", b.path())).assert_success();
    assert_eq!(
        r1["interfaces"], r2["interfaces"],
        "same attachment, same names and MACs"
    );

    let c = tmp();
    let r3 = Cni::new("bridge", "ADD")
        .var("CNI_CONTAINERID", "ctr-2")
        .run(&single("1.0.0", c.path()))
        .assert_success();
    assert_eq!(r1["interfaces"][0], r3["interfaces"][0], "the bridge is shared");
    assert_ne!(r1["interfaces"][1]["name"], r3["interfaces"][1]["name"]);
    assert_ne!(r1["interfaces"][1]["mac"], r3["interfaces"][1]["mac"]);
    assert_ne!(r1["interfaces"][2]["mac"], r3["interfaces"][2]["mac"]);

    // Another ifname in the same container: another veth and MAC.
    let d = tmp();
    let r4 = Cni::new("bridge", "ADD")
        .var("CNI_IFNAME", "net1")
        .run(&single("1.0.0", d.path()))
        .assert_success();
    assert_eq!(r4["interfaces"][2]["name"], "net1");
    assert_ne!(r1["interfaces"][1]["name"], r4["interfaces"][1]["name"]);
    assert_ne!(r1["interfaces"][2]["mac"], r4["interfaces"][2]["mac"]);

    // Another bridge name: another bridge MAC.
    let e = tmp();
    let r5 = add(&merged(single("1.0.0", e.path()), &json!({"bridge": "cni9"}))).assert_success();
    assert_eq!(r5["interfaces"][0]["name"], "cni9");
    assert_ne!(r1["interfaces"][0]["mac"], r5["interfaces"][0]["mac"]);
    assert_eq!(
        r1["interfaces"][1], r5["interfaces"][1],
        "veth names do not depend on the bridge"
    );

    // The default bridge name is cni0.
    let f = tmp();
    let r6 = add(&merged(single("1.0.0", f.path()), &json!({"bridge": null}))).assert_success();
    assert_eq!(r6["interfaces"][0], r1["interfaces"][0]);
}

#[test]
fn requested_mac_is_honoured_with_runtime_config_winning() {
    let run = |args: &str, extra: Value| {
        let dir = tmp();
        let conf = merged(single("1.0.0", dir.path()), &extra);
        let out = Cni::new("bridge", "ADD").var("CNI_ARGS", args).run(&conf);
        out.assert_success()["interfaces"][2]["mac"].clone()
    };
    assert_eq!(
        run("IgnoreUnknown=1;MAC=0A:58:0A:2A:00:07", json!({})),
        "0a:58:0a:2a:00:07"
    );
    let args = json!({"args": {"cni": {"mac": "0a:58:0a:2a:00:08"}}});
    assert_eq!(
        run("IgnoreUnknown=1;MAC=0a:58:0a:2a:00:07", args.clone()),
        "0a:58:0a:2a:00:08"
    );
    let both = merged(args, &json!({"runtimeConfig": {"mac": "0a-58-0a-2a-00-09"}}));
    assert_eq!(
        run("MAC=0a:58:0a:2a:00:07;IgnoreUnknown=true", both),
        "0a:58:0a:2a:00:09"
    );
    // containerd's Capitalised capability key.
    assert_eq!(
        run("", json!({"runtimeConfig": {"Mac": "0a:58:0a:2a:00:10"}})),
        "0a:58:0a:2a:00:10"
    );
    // containerd's K8S_POD_* keys need IgnoreUnknown, which it always sends.
    let k8s = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=ctr-1";
    assert_ne!(run(k8s, json!({})), Value::Null);
}

#[test]
fn invalid_fields_are_refused_before_ipam_runs() {
    let cases: Vec<(Value, &str, u64)> = vec![
        (json!({"isGateway": "yes"}), "isGateway", 7),
        (json!({"isDefaultGateway": 1}), "isDefaultGateway", 7),
        (json!({"ipMasq": "true"}), "ipMasq", 7),
        (json!({"hairpinMode": null, "promiscMode": "x"}), "promiscMode", 7),
        (json!({"forceAddress": []}), "forceAddress", 7),
        (json!({"enabledad": 0}), "enabledad", 7),
        (json!({"macspoofchk": "no"}), "macspoofchk", 7),
        (json!({"portIsolation": {}}), "portIsolation", 7),
        (json!({"preserveDefaultVlan": "y"}), "preserveDefaultVlan", 7),
        (json!({"mtu": "1500"}), "mtu", 7),
        (json!({"mtu": 50}), "mtu", 7),
        (json!({"mtu": 70000}), "mtu", 7),
        (json!({"mtu": 1500.5}), "mtu", 7),
        (json!({"vlan": 4095}), "vlan", 7),
        (json!({"vlan": -1}), "vlan", 7),
        (json!({"vlan": 10, "vlanTrunk": [{"id": 5}]}), "vlanTrunk", 7),
        (json!({"vlanTrunk": [{"minID": 10}]}), "maxID", 7),
        (json!({"vlanTrunk": [{"minID": 10, "maxID": 5}]}), "minID", 7),
        (json!({"vlanTrunk": [{"id": 0}]}), "vlanTrunk[0].id", 7),
        (json!({"vlanTrunk": {"id": 3}}), "vlanTrunk", 7),
        (
            json!({"hairpinMode": true, "promiscMode": true}),
            "promiscuous",
            7,
        ),
        (json!({"bridge": ""}), "bridge", 7),
        (json!({"bridge": "a-too-long-bridge-name"}), "bridge", 7),
        (json!({"bridge": "br/0"}), "bridge", 7),
        (json!({"bridge": 0}), "bridge", 7),
        (json!({"ipMasqBackend": "pf"}), "ipMasqBackend", 7),
        (
            json!({"disableContainerInterface": true}),
            "disableContainerInterface",
            7,
        ),
        (
            json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
            "runtimeConfig.mac",
            7,
        ),
        (json!({"runtimeConfig": {"mac": "zz"}}), "runtimeConfig.mac", 7),
        (json!({"args": {"cni": {"mac": 5}}}), "args.cni.mac", 7),
        (json!({"dns": {"nameservers": "10.0.0.10"}}), "dns", 7),
        (json!({"ipam": {"ranges": []}}), "ipam.type", 7),
    ];
    for (extra, needle, code) in cases {
        let dir = tmp();
        let conf = merged(single("1.0.0", dir.path()), &extra);
        let err = add(&conf).assert_error(code);
        let msg = err["msg"].as_str().expect("msg");
        assert!(
            msg.contains(needle),
            "{extra}: message {msg:?} does not name {needle:?}"
        );
        assert!(reserved(dir.path()).is_empty(), "{extra}: IPAM must not have run");
        // CHECK validates the same way, before looking for prevResult.
        let err = Cni::new("bridge", "CHECK").run(&conf).assert_error(code);
        let msg = err["msg"].as_str().expect("msg");
        assert!(
            msg.contains(needle),
            "{extra}: CHECK message {msg:?} does not name {needle:?}"
        );
    }
    // A bad CNI_ARGS MAC, and an unknown CNI_ARGS key without IgnoreUnknown (code 4, as libcni).
    let dir = tmp();
    let out = Cni::new("bridge", "ADD")
        .var("CNI_ARGS", "IgnoreUnknown=1;MAC=nope")
        .run(&single("1.0.0", dir.path()));
    assert!(
        out.assert_error(7)["msg"]
            .as_str()
            .is_some_and(|m| m.contains("CNI_ARGS MAC"))
    );
    let out = Cni::new("bridge", "ADD")
        .var("CNI_ARGS", "K8S_POD_NAME=x")
        .run(&single("1.0.0", dir.path()));
    out.assert_error(4);
    assert!(reserved(dir.path()).is_empty());
}

#[test]
fn every_reference_field_and_unknown_keys_are_accepted() {
    let dir = tmp();
    let extra = json!({
        "bridge": "cni0",
        "isGateway": true,
        "isDefaultGateway": false,
        "forceAddress": true,
        "ipMasq": true,
        "ipMasqBackend": "nftables",
        "mtu": 1450,
        "hairpinMode": true,
        "promiscMode": false,
        "vlan": 0,
        "preserveDefaultVlan": false,
        "vlanTrunk": [{"id": 101}, {"minID": 200, "maxID": 210}],
        "enabledad": true,
        "macspoofchk": true,
        "disableContainerInterface": false,
        "portIsolation": true,
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]},
        "capabilities": {"mac": true, "portMappings": true},
        "runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"a": "b"}, "portMappings": []},
        "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}},
        "cni.dev/future-key": {"anything": [1, 2]},
        "someVendorExtra": "kept"
    });
    let r = add(&merged(single("1.1.0", dir.path()), &extra)).assert_success();
    assert_eq!(
        r["interfaces"][2]["mtu"], 1450,
        "mtu reported on the container interface at 1.1.0"
    );
    assert_eq!(
        r["dns"],
        json!({"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]})
    );
    assert_eq!(reserved(dir.path()).len(), 1);
    // mtu is a 1.1.0 field: not emitted at 1.0.0.
    let dir = tmp();
    let r = add(&merged(single("1.0.0", dir.path()), &json!({"mtu": 1450}))).assert_success();
    assert!(r["interfaces"][2].get("mtu").is_none(), "{r}");
    // A VLAN access port with a gateway adds the bridge's VLAN interface, reported last.
    let dir = tmp();
    let r = add(&merged(single("1.0.0", dir.path()), &json!({"vlan": 100}))).assert_success();
    assert_eq!(r["interfaces"][3]["name"], "cni0.100");
    assert_eq!(r["ips"][0]["interface"], 2);
}

#[test]
fn config_dns_is_merged_over_the_ipam_dns() {
    let dir = tmp();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 192.0.2.53\nsearch ipam.example\noptions ndots:2\n",
    )
    .expect("write");
    let mut c = single("1.0.0", dir.path());
    c["ipam"]["resolvConf"] = json!(resolv);
    let r = add(&c).assert_success();
    let ipam_dns = r["dns"].clone();
    assert_eq!(ipam_dns["nameservers"], json!(["192.0.2.53"]), "{r}");
    // The config's nameservers win; the IPAM's search and options stay.
    let dir2 = tmp();
    let mut c2 = merged(c, &json!({"dns": {"nameservers": ["10.96.0.10"]}}));
    c2["ipam"]["dataDir"] = json!(dir2.path());
    let r = add(&c2).assert_success();
    assert_eq!(r["dns"]["nameservers"], json!(["10.96.0.10"]));
    assert_eq!(r["dns"]["search"], ipam_dns["search"]);
    assert_eq!(r["dns"]["options"], ipam_dns["options"]);
}

#[test]
fn ipam_errors_are_passed_on_and_leave_nothing() {
    // A /30 has one allocatable address (.1 is the gateway).
    let dir = tmp();
    let mut c = single("1.0.0", dir.path());
    c["ipam"]["ranges"] = json!([[{"subnet": "10.3.0.0/30"}]]);
    add(&c).assert_success();
    let first = reserved(dir.path());
    assert_eq!(first.len(), 1);
    let second = Cni::new("bridge", "ADD").var("CNI_CONTAINERID", "ctr-2");
    let err = second.run(&c);
    assert!(!err.ok());
    // The same error as host-local's own answer to the same request.
    let direct = Cni::new("host-local", "ADD")
        .var("CNI_CONTAINERID", "ctr-2")
        .run(&c);
    assert!(!direct.ok());
    assert_same_error(&err, &direct);
    assert_eq!(reserved(dir.path()), first, "the first allocation is intact");

    // An IPAM plugin that is not on CNI_PATH: an error naming it.
    let dir = tmp();
    let mut c = single("1.0.0", dir.path());
    c["ipam"]["type"] = json!("no-such-ipam");
    let e = add(&c).assert_error(7);
    assert!(
        e["msg"].as_str().is_some_and(|m| m.contains("no-such-ipam")),
        "{e}"
    );
    assert!(reserved(dir.path()).is_empty());
}

#[test]
fn a_failure_after_ipam_add_releases_the_allocation() {
    // host-local accepts a route via a gateway outside the subnet; the kernel would refuse to install
    // it, so the bridge fails after IPAM ADD and must release the address.
    let dir = tmp();
    let mut c = dual("1.0.0", dir.path());
    c["ipam"]["routes"] = json!([{"dst": "192.168.50.0/24", "gw": "192.168.9.1"}]);
    let e = add(&c).assert_error(7);
    let msg = e["msg"].as_str().expect("msg");
    assert!(msg.contains("192.168.9.1") && msg.contains("eth0"), "{msg}");
    assert!(
        reserved(dir.path()).is_empty(),
        "rolled back: {:?}",
        reserved(dir.path())
    );
    // A v6 link-local gateway is on-link and fine.
    let dir = tmp();
    let mut c = dual("1.0.0", dir.path());
    c["ipam"]["routes"] = json!([{"dst": "fd99::/64", "gw": "fe80::1"}]);
    add(&c).assert_success();
    assert_eq!(reserved(dir.path()).len(), 2);
}

#[cfg(unix)]
fn script_ipam(dir: &Path, add_reply: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("calls.log");
    let script = format!(
        "#!/bin/sh\necho \"$CNI_COMMAND\" >> '{}'\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{add_reply}'; fi\n",
        log.display()
    );
    let path = dir.join("script-ipam");
    std::fs::write(&path, script).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    log
}

#[cfg(unix)]
#[test]
fn unusable_ipam_results_are_rolled_back_with_ipam_del() {
    for (reply, needle) in [
        (r#"{"cniVersion":"1.0.0","ips":[],"dns":{}}"#, "no IP address"),
        // isGateway would give the bridge the container's own address.
        (
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.7.0.1/24"}]}"#,
            "10.7.0.1",
        ),
    ] {
        let dir = tmp();
        let log = script_ipam(dir.path(), reply);
        let mut c = single("1.0.0", dir.path());
        c["ipam"] = json!({"type": "script-ipam"});
        let path = format!("{}:{}", dir.path().display(), bin_dir().display());
        let e = Cni::new("bridge", "ADD")
            .var("CNI_PATH", &path)
            .run(&c)
            .assert_error(7);
        assert!(e["msg"].as_str().is_some_and(|m| m.contains(needle)), "{e}");
        let calls = std::fs::read_to_string(&log).expect("log");
        assert_eq!(calls, "ADD\nDEL\n", "IPAM DEL must follow the failed ADD");
    }
}

mod robustness;
mod verbs;
