//! Every ready conflist in cni-conf/ run through its whole plugin chain the way libcni does: ADD plugin by
//! plugin (each result becomes the next prevResult), CHECK with the final result, DEL in reverse order,
//! at several cniVersions and with runtime capability arguments in both key styles. Each test works on
//! a copy whose host-local dataDir points at a temporary directory.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::Cni;
use serde_json::{Value, json};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf")
}

/// The conflist `file`, with every host-local dataDir rewritten to `data`.
fn load(file: &str, data: &Path) -> Value {
    let path = conf_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut list: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    for p in list["plugins"].as_array_mut().expect("plugins").iter_mut() {
        if p["ipam"].get("type").is_some() {
            p["ipam"]["dataDir"] = json!(data);
        }
    }
    list
}

/// Every *.conflist in cni-conf/, sorted like libcni sorts them.
fn all_conflists() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(conf_dir())
        .expect("cni-conf/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".conflist"))
        .collect();
    names.sort();
    names
}

/// One attachment: container ID, ifname, capability arguments.
struct Attachment<'a> {
    id: &'a str,
    ifname: &'a str,
    caps: Value,
}

/// The configuration libcni gives one plugin of the list: the plugin object plus the list's name and
/// version, runtimeConfig for each capability the plugin declares and the runtime supplies, prevResult.
fn plugin_conf(list: &Value, plugin: &Value, version: &str, at: &Attachment, prev: Option<&Value>) -> Value {
    let mut c = plugin.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = json!(version);
    let mut rc = serde_json::Map::new();
    if let Some(declared) = plugin["capabilities"].as_object() {
        for (cap, on) in declared {
            if on == &json!(true) && at.caps.get(cap).is_some() {
                rc.insert(cap.clone(), at.caps[cap].clone());
            }
        }
    }
    if !rc.is_empty() {
        c["runtimeConfig"] = Value::Object(rc);
    }
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    c
}

fn cni(plugin: &Value, command: &str, at: &Attachment) -> Cni {
    let ty = plugin["type"].as_str().expect("type");
    Cni::new(ty, command)
        .var("CNI_CONTAINERID", at.id)
        .var("CNI_IFNAME", at.ifname)
        .var("CNI_NETNS", &format!("/var/run/netns/{}", at.id))
        .var(
            "CNI_ARGS",
            &format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
                at.id, at.id
            ),
        )
}

fn plugins(list: &Value) -> &Vec<Value> {
    list["plugins"].as_array().expect("plugins")
}

/// ADD through the chain; returns each plugin's result.
fn add_chain(list: &Value, version: &str, at: &Attachment) -> Vec<Value> {
    let mut results: Vec<Value> = Vec::new();
    for p in plugins(list) {
        let c = plugin_conf(list, p, version, at, results.last());
        let out = cni(p, "ADD", at).run(&c);
        assert!(
            out.ok(),
            "{} ADD at {version}: {} {}",
            p["type"],
            out.text(),
            out.stderr
        );
        results.push(out.json());
    }
    results
}

fn check_chain(list: &Value, version: &str, at: &Attachment, result: &Value) {
    for p in plugins(list) {
        let c = plugin_conf(list, p, version, at, Some(result));
        cni(p, "CHECK", at).run(&c).assert_empty_success();
    }
}

/// DEL in reverse order; libcni sends prevResult only from 0.4.0 on.
fn del_chain(list: &Value, version: &str, at: &Attachment, result: Option<&Value>) {
    let prev = result.filter(|_| !matches!(version, "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1"));
    for p in plugins(list).iter().rev() {
        let c = plugin_conf(list, p, version, at, prev);
        cni(p, "DEL", at).run(&c).assert_empty_success();
    }
}

fn reserved(data: &Path, network: &str) -> Vec<IpAddr> {
    common::reserved_addresses(&data.join(network))
}

/// The addresses of a result of any version, without prefix.
fn addresses(r: &Value) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |s: &str| out.push(s.split('/').next().unwrap_or(s).parse().expect("address"));
    for ip in r["ips"].as_array().into_iter().flatten() {
        push(ip["address"].as_str().expect("address"));
    }
    for key in ["ip4", "ip6"] {
        if let Some(s) = r[key]["ip"].as_str() {
            push(s);
        }
    }
    out.sort();
    out
}

fn port_mappings(capitalised: bool) -> Value {
    if capitalised {
        json!([{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
               {"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "127.0.0.1"}])
    } else {
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    }
}

/// The whole lifecycle of two attachments through `file` at `version`.
fn lifecycle(file: &str, version: &str, capitalised: bool) {
    let data = tempfile::tempdir().expect("temp dir");
    let list = load(file, data.path());
    let network = list["name"].as_str().expect("name").to_owned();
    let caps = json!({
        "portMappings": port_mappings(capitalised),
        "bandwidth": if capitalised {
            json!({"IngressRate": 1000000, "IngressBurst": 100000, "EgressRate": 1000000, "EgressBurst": 100000})
        } else {
            json!({"ingressRate": 1000000, "ingressBurst": 100000})
        },
    });
    let a = Attachment {
        id: "pod-a",
        ifname: "eth0",
        caps: caps.clone(),
    };
    let b = Attachment {
        id: "pod-b",
        ifname: "eth0",
        caps,
    };
    let what = format!("{file} at {version}");

    let ra = add_chain(&list, version, &a);
    let final_a = ra.last().expect("a result").clone();
    for r in &ra {
        assert_eq!(
            r, &ra[0],
            "{what}: chained plugins pass the bridge result through unchanged"
        );
    }
    assert_eq!(final_a["cniVersion"], version, "{what}");
    let ips_a = addresses(&final_a);
    assert!(!ips_a.is_empty(), "{what}: no address in {final_a}");
    assert_eq!(
        reserved(data.path(), &network),
        ips_a,
        "{what}: one reservation per address"
    );
    if let Some(ifs) = final_a["interfaces"].as_array() {
        // containerd takes the pod IP from the interface named CNI_IFNAME.
        let eth0 = ifs
            .iter()
            .position(|i| i["name"] == "eth0")
            .expect("eth0 interface");
        assert_eq!(ifs[eth0]["sandbox"], "/var/run/netns/pod-a");
        for ip in final_a["ips"].as_array().expect("ips") {
            assert_eq!(ip["interface"], json!(eth0), "{what}");
        }
    }

    let rb = add_chain(&list, version, &b);
    let final_b = rb.last().expect("b result").clone();
    let ips_b = addresses(&final_b);
    assert!(
        ips_a.iter().all(|ip| !ips_b.contains(ip)),
        "{what}: distinct addresses"
    );
    assert_eq!(reserved(data.path(), &network).len(), ips_a.len() + ips_b.len());

    let has_check = !matches!(version, "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1");
    if has_check {
        check_chain(&list, version, &a, &final_a);
        check_chain(&list, version, &b, &final_b);
        // A prevResult for the wrong attachment is caught by the bridge.
        let bridge = &plugins(&list)[0];
        let c = plugin_conf(&list, bridge, version, &a, Some(&final_b));
        cni(bridge, "CHECK", &a).run(&c).assert_error(102);
    }

    del_chain(&list, version, &a, Some(&final_a));
    assert_eq!(
        reserved(data.path(), &network),
        ips_b,
        "{what}: a's addresses released, b's kept"
    );
    del_chain(&list, version, &a, Some(&final_a));
    del_chain(&list, version, &b, Some(&final_b));
    assert!(
        reserved(data.path(), &network).is_empty(),
        "{what}: everything released"
    );
    if has_check {
        // CHECK after DEL fails: the IPAM no longer holds the address.
        let bridge = &plugins(&list)[0];
        let c = plugin_conf(&list, bridge, version, &a, Some(&final_a));
        assert!(
            !cni(bridge, "CHECK", &a).run(&c).ok(),
            "{what}: CHECK after DEL must fail"
        );
    }
}

#[test]
fn the_planned_conflists_exist_with_their_fixed_shape() {
    let found = all_conflists();
    let expected = [
        (
            "10-sandbox-cni.conflist",
            "sandbox-cni",
            vec!["bridge", "portmap"],
        ),
        (
            "containerd-default.conflist",
            "containerd-net",
            vec!["bridge", "portmap"],
        ),
        (
            "podman-chain.conflist",
            "podman",
            vec!["bridge", "portmap", "firewall", "tuning"],
        ),
        (
            "dual-stack.conflist",
            "sandbox-cni-dual",
            vec!["bridge", "portmap"],
        ),
    ];
    for (file, name, types) in &expected {
        assert!(found.iter().any(|f| f == file), "cni-conf/{file} is missing");
        let text = std::fs::read_to_string(conf_dir().join(file)).expect("read");
        let list: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(list["name"], *name, "{file}");
        // libcni 1.1.2 (containerd 1.6/1.7) cannot parse 1.1.0 results: ship 1.0.0, list 1.1.0 for newer.
        assert_eq!(list["cniVersion"], "1.0.0", "{file}");
        assert_eq!(list["cniVersions"], json!(["1.0.0", "1.1.0"]), "{file}");
        let got: Vec<&str> = plugins(&list).iter().filter_map(|p| p["type"].as_str()).collect();
        assert_eq!(&got, types, "{file}");
        let bridge = &plugins(&list)[0];
        assert_eq!(bridge["ipam"]["type"], "host-local", "{file}");
        assert!(
            bridge["ipam"].get("dataDir").is_none(),
            "{file}: shipped lists use the default dataDir"
        );
        assert_eq!(
            plugins(&list)[1]["capabilities"],
            json!({"portMappings": true}),
            "{file}"
        );
        for p in plugins(&list) {
            assert!(
                p.get("cniVersion").is_none() && p.get("name").is_none(),
                "{file}: set at list level only"
            );
        }
    }
    // The default network install.sh writes.
    let default = load("10-sandbox-cni.conflist", Path::new("/unused"));
    let bridge = &plugins(&default)[0];
    assert_eq!(bridge["bridge"], "cni0");
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipam"]["ranges"], json!([[{"subnet": "10.42.0.0/24"}]]));
    assert_eq!(bridge["ipam"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
    let containerd = load("containerd-default.conflist", Path::new("/unused"));
    assert_eq!(
        plugins(&containerd)[0]["ipam"]["ranges"],
        json!([[{"subnet": "10.88.0.0/16"}]])
    );
    let dual = load("dual-stack.conflist", Path::new("/unused"));
    let sets = plugins(&dual)[0]["ipam"]["ranges"]
        .as_array()
        .expect("ranges")
        .clone();
    let families: Vec<bool> = sets
        .iter()
        .map(|s| s[0]["subnet"].as_str().expect("subnet").contains(':'))
        .collect();
    assert_eq!(
        families,
        vec![false, true],
        "dual-stack: an IPv4 then an IPv6 range set"
    );
}

#[test]
fn every_conflist_runs_add_check_del_at_every_version() {
    for file in all_conflists() {
        for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            lifecycle(&file, version, false);
        }
    }
}

#[test]
fn containerd_capitalised_capability_args_work_through_every_chain() {
    for file in all_conflists() {
        lifecycle(&file, "1.0.0", true);
    }
}

#[test]
fn dual_stack_gets_one_address_and_default_route_per_family() {
    let data = tempfile::tempdir().expect("temp dir");
    let list = load("dual-stack.conflist", data.path());
    let at = Attachment {
        id: "pod-a",
        ifname: "eth0",
        caps: json!({}),
    };
    let r = add_chain(&list, "1.0.0", &at).pop().expect("result");
    let ips = addresses(&r);
    assert_eq!(ips.len(), 2);
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6(), "{r}");
    let defaults: Vec<&str> = r["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|rt| rt["dst"].as_str())
        .filter(|d| *d == "0.0.0.0/0" || *d == "::/0")
        .collect();
    assert_eq!(defaults, vec!["0.0.0.0/0", "::/0"]);
    del_chain(&list, "1.0.0", &at, Some(&r));
    assert!(reserved(data.path(), "sandbox-cni-dual").is_empty());
}

#[test]
fn a_k3s_shaped_chain_with_bandwidth_after_portmap_works() {
    // k3s chains portmap then bandwidth after the bridge: extend the default network the same way.
    let data = tempfile::tempdir().expect("temp dir");
    let mut list = load("10-sandbox-cni.conflist", data.path());
    list["plugins"]
        .as_array_mut()
        .expect("plugins")
        .push(json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}));
    let caps = json!({"portMappings": port_mappings(true),
                      "bandwidth": {"IngressRate": 1000, "IngressBurst": 1000}});
    let at = Attachment {
        id: "pod-k",
        ifname: "eth0",
        caps,
    };
    let r = add_chain(&list, "1.0.0", &at).pop().expect("result");
    check_chain(&list, "1.0.0", &at, &r);
    // An unpaired limit is refused by bandwidth, as the reference documents.
    let bad = Attachment {
        id: "pod-x",
        ifname: "eth0",
        caps: json!({"bandwidth": {"IngressRate": 1000}}),
    };
    let bw = plugins(&list).last().expect("bandwidth").clone();
    let c = plugin_conf(&list, &bw, "1.0.0", &bad, Some(&r));
    cni(&bw, "ADD", &bad).run(&c).assert_error(7);
    del_chain(&list, "1.0.0", &at, Some(&r));
    assert!(reserved(data.path(), "sandbox-cni").is_empty());
}
