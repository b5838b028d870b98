//! Black-box tests of the pass-through chained plugins (portmap, bandwidth, firewall, tuning): they
//! validate their configuration and capability arguments like the reference plugins, return prevResult
//! converted to the config's version, fail cleanly without prevResult, and let DEL/GC/STATUS succeed.

use crate::harness::{Cni, Out, golden};
use serde_json::{Value, json};

const PLUGINS: [&str; 4] = ["portmap", "bandwidth", "firewall", "tuning"];

/// A bridge-shaped 1.0.0 result (dual stack), as the first plugin of a chain returns it.
fn prev() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "3e:e5:56:7b:84:11"},
            {"name": "veth5449b053", "mac": "16:f7:e7:c7:03:07"},
            {"name": "eth0", "mac": "b6:3c:a7:bf:6f:cb", "sandbox": "/var/run/netns/test-1"}
        ],
        "ips": [
            {"interface": 2, "address": "10.42.0.2/24", "gateway": "10.42.0.1"},
            {"interface": 2, "address": "fd42::2/64", "gateway": "fd42::1"}
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd42::1"}],
        "dns": {"nameservers": ["10.43.0.10"], "search": ["svc.cluster.local"]}
    })
}

fn conf(plugin: &str, version: &str, extra: Value) -> Value {
    let mut c = json!({"cniVersion": version, "name": "chaintest", "type": plugin});
    if let (Some(o), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    c
}

fn with_prev(plugin: &str, version: &str, extra: Value) -> Value {
    let mut c = conf(plugin, version, extra);
    c["prevResult"] = prev();
    c
}

fn run(plugin: &str, command: &str, c: &Value) -> Out {
    Cni::new(plugin, command).run(c)
}

#[test]
fn add_returns_prev_result_in_the_config_version() {
    for version in ["0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let outs: Vec<Out> = PLUGINS
            .iter()
            .map(|p| run(p, "ADD", &with_prev(p, version, json!({}))))
            .collect();
        let first = outs[0].assert_success();
        assert_eq!(first["cniVersion"], version);
        for (p, o) in PLUGINS.iter().zip(&outs) {
            o.assert_success();
            assert_eq!(o.stdout, outs[0].stdout, "{p} at {version} differs from portmap");
        }
        golden(&format!("chain/passthrough-{version}.json"), &outs[0].stdout);
    }
    // At 1.0.0 the output is prevResult itself, byte for byte in content.
    let out = run("portmap", "ADD", &with_prev("portmap", "1.0.0", json!({}))).assert_success();
    assert_eq!(out, prev());
}

#[test]
fn prev_result_of_an_older_version_is_converted_up() {
    let old = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.42.0.5/24", "gateway": "10.42.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "dns": {}
    });
    for p in PLUGINS {
        let mut c = conf(p, "1.0.0", json!({}));
        c["prevResult"] = old.clone();
        let r = run(p, "ADD", &c).assert_success();
        assert_eq!(
            r,
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.42.0.5/24", "gateway": "10.42.0.1"}],
                   "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}),
            "{p}"
        );
    }
}

#[test]
fn add_and_check_without_prev_result_are_clear_errors() {
    for p in PLUGINS {
        for prev in [None, Some(json!({}))] {
            let mut c = conf(p, "1.0.0", json!({}));
            if let Some(v) = prev {
                c["prevResult"] = v;
            }
            for command in ["ADD", "CHECK"] {
                let e = run(p, command, &c).assert_error(7);
                let msg = e["msg"].as_str().expect("msg");
                assert!(
                    msg.contains(p)
                        && msg.contains("must be called as a chained plugin: prevResult is missing"),
                    "{p} {command}: {msg}"
                );
            }
        }
        // bandwidth with limits but no prevResult (the reference crashes on the no-limit variant).
        let c = conf(p, "1.0.0", json!({"runtimeConfig": {"bandwidth": {}}}));
        run(p, "ADD", &c).assert_error(7);
    }
}

#[test]
fn del_gc_status_succeed_and_check_with_prev_result_succeeds() {
    for p in PLUGINS {
        run(p, "DEL", &conf(p, "1.0.0", json!({}))).assert_empty_success();
        run(p, "DEL", &with_prev(p, "1.0.0", json!({}))).assert_empty_success();
        Cni::new(p, "DEL")
            .var("CNI_NETNS", "")
            .run(&conf(p, "0.3.1", json!({})))
            .assert_empty_success();
        run(p, "CHECK", &with_prev(p, "1.0.0", json!({}))).assert_empty_success();
        run(
            p,
            "GC",
            &conf(p, "1.1.0", json!({"cni.dev/valid-attachments": []})),
        )
        .assert_empty_success();
        run(p, "STATUS", &conf(p, "1.1.0", json!({}))).assert_empty_success();
        // DEL succeeds even with a configuration ADD would refuse (edited since ADD).
        run(p, "DEL", &conf(p, "1.0.0", json!({"backend": 42, "sysctl": 1}))).assert_empty_success();
    }
}

#[test]
fn portmap_accepts_camel_case_and_containerd_capitalised_keys_alike() {
    let camel = json!({"capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"hostPort": 9000, "containerPort": 9000, "protocol": "SCTP", "hostIP": "::1"}
    ]}});
    let capital = json!({"capabilities": {"portMappings": true}, "runtimeConfig": {"portMappings": [
        {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
        {"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "127.0.0.1"},
        {"HostPort": 9000, "ContainerPort": 9000, "Protocol": "sctp", "HostIP": "::1"}
    ]}});
    let a = run("portmap", "ADD", &with_prev("portmap", "1.0.0", camel.clone()));
    let b = run("portmap", "ADD", &with_prev("portmap", "1.0.0", capital.clone()));
    assert_eq!(a.assert_success(), prev());
    assert_eq!(a.stdout, b.stdout);
    run("portmap", "CHECK", &with_prev("portmap", "1.0.0", capital)).assert_empty_success();
    // Every reference key, valid values, unknown capability keys ignored.
    let all = json!({
        "snat": true, "masqAll": false, "markMasqBit": 13, "conditionsV4": ["-s", "1.2.3.4"],
        "conditionsV6": [], "backend": "nftables",
        "runtimeConfig": {"portMappings": [], "io.kubernetes.cri.pod-annotations": {"x": "y"}, "future": 1}
    });
    run("portmap", "ADD", &with_prev("portmap", "1.0.0", all)).assert_success();
}

#[test]
fn portmap_refuses_what_the_reference_refuses() {
    let mapping = |m: Value| json!({"runtimeConfig": {"portMappings": [m]}});
    let cases: Vec<(Value, &str)> = vec![
        (
            mapping(json!({"hostPort": 0, "containerPort": 80, "protocol": "tcp"})),
            "hostPort",
        ),
        (
            mapping(json!({"hostPort": 80, "containerPort": -1, "protocol": "tcp"})),
            "containerPort",
        ),
        (
            mapping(json!({"hostPort": 70000, "containerPort": 80})),
            "hostPort",
        ),
        (
            mapping(json!({"HostPort": "80", "ContainerPort": 80})),
            "HostPort",
        ),
        (
            mapping(json!({"containerPort": 80, "protocol": "tcp"})),
            "hostPort is missing",
        ),
        (
            mapping(json!({"hostPort": 80, "containerPort": 80, "protocol": "icmp"})),
            "icmp",
        ),
        (
            mapping(json!({"hostPort": 80, "containerPort": 80, "hostIP": "localhost"})),
            "hostIP",
        ),
        (
            json!({"runtimeConfig": {"portMappings": {"hostPort": 80}}}),
            "portMappings",
        ),
        (json!({"runtimeConfig": {"portMappings": [7]}}), "portMappings[0]"),
        (json!({"markMasqBit": 32}), "markMasqBit"),
        (
            json!({"markMasqBit": 13, "externalSetMarkChain": "KUBE-MARK-MASQ"}),
            "externalSetMarkChain",
        ),
        (json!({"snat": "yes"}), "snat"),
        (json!({"conditionsV4": "-s 1.2.3.4"}), "conditionsV4"),
        (json!({"backend": "ipfw"}), "backend"),
    ];
    for (extra, needle) in cases {
        for command in ["ADD", "CHECK"] {
            let e = run("portmap", command, &with_prev("portmap", "1.0.0", extra.clone())).assert_error(7);
            let msg = e["msg"].as_str().expect("msg");
            assert!(
                msg.contains(needle),
                "{extra} {command}: {msg:?} should mention {needle:?}"
            );
        }
    }
}

#[test]
fn bandwidth_accepts_limits_in_both_key_styles_and_refuses_bad_ones() {
    let ok = [
        json!({"capabilities": {"bandwidth": true}, "runtimeConfig": {"bandwidth":
            {"ingressRate": 1000000, "ingressBurst": 100000, "egressRate": 2000000, "egressBurst": 200000}}}),
        json!({"runtimeConfig": {"bandwidth":
            {"IngressRate": 1000000, "IngressBurst": 100000, "EgressRate": 0, "EgressBurst": 0}}}),
        json!({"ingressRate": 1000, "ingressBurst": 1000, "unshapedSubnets": ["10.0.0.0/8", "fd00::/8"]}),
        json!({"shapedSubnets": ["192.168.1.0/24"], "runtimeConfig": {"bandwidth": {}}}),
    ];
    for extra in ok {
        let r = run(
            "bandwidth",
            "ADD",
            &with_prev("bandwidth", "1.0.0", extra.clone()),
        );
        assert_eq!(r.assert_success(), prev(), "{extra}");
    }
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"runtimeConfig": {"bandwidth": {"ingressRate": 1000}}}),
            "ingressBurst",
        ),
        (
            json!({"runtimeConfig": {"bandwidth": {"EgressBurst": 1000}}}),
            "EgressBurst is set",
        ),
        (
            json!({"runtimeConfig": {"bandwidth": {"ingressRate": -5, "ingressBurst": 5}}}),
            "ingressRate",
        ),
        (
            json!({"runtimeConfig": {"bandwidth": {"ingressRate": "1M", "ingressBurst": 5}}}),
            "ingressRate",
        ),
        (json!({"egressRate": 10, "egressBurst": 34359738360_i64}), "4GB"),
        (
            json!({"unshapedSubnets": ["10.0.0.0/8"], "shapedSubnets": ["10.1.0.0/16"]}),
            "cannot both",
        ),
        (json!({"shapedSubnets": ["10.0.0.0"]}), "shapedSubnets[0]"),
        (json!({"runtimeConfig": {"bandwidth": 5}}), "bandwidth"),
    ];
    for (extra, needle) in cases {
        let e = run(
            "bandwidth",
            "ADD",
            &with_prev("bandwidth", "1.0.0", extra.clone()),
        )
        .assert_error(7);
        let msg = e["msg"].as_str().expect("msg");
        assert!(msg.contains(needle), "{extra}: {msg:?} should mention {needle:?}");
    }
    // Just under the burst limit is fine.
    let edge = json!({"egressRate": 10, "egressBurst": 34359738359_i64});
    run("bandwidth", "ADD", &with_prev("bandwidth", "1.0.0", edge)).assert_success();
}

#[test]
fn firewall_and_tuning_validate_their_keys() {
    let good = [
        (
            "firewall",
            json!({"backend": "iptables", "iptablesAdminChainName": "CNI-ADMIN", "ingressPolicy": "same-bridge"}),
        ),
        (
            "firewall",
            json!({"backend": "firewalld", "firewalldZone": "trusted", "ingressPolicy": "isolated"}),
        ),
        (
            "tuning",
            json!({"sysctl": {"net.core.somaxconn": "500", "net/ipv4/conf/eth0/forwarding": "1"},
            "mac": "0a:58:0a:2a:00:07", "promisc": true, "allmulti": false, "mtu": 9000, "txQLen": 2000,
            "args": {"cni": {"mtu": 1400, "sysctl": {"net.ipv4.ip_forward": "1"}}},
            "runtimeConfig": {"mac": "0a:58:0a:2a:00:08"}}),
        ),
    ];
    for (p, extra) in good {
        let r = run(p, "ADD", &with_prev(p, "1.0.0", extra.clone()));
        assert_eq!(r.assert_success(), prev(), "{p} {extra}");
    }
    let bad: Vec<(&str, Value, &str)> = vec![
        ("firewall", json!({"backend": "pf"}), "backend"),
        ("firewall", json!({"ingressPolicy": "closed"}), "ingressPolicy"),
        (
            "firewall",
            json!({"iptablesAdminChainName": "A-CHAIN-NAME-LONGER-THAN-28-CHARS"}),
            "iptablesAdminChainName",
        ),
        ("firewall", json!({"firewalldZone": 3}), "firewalldZone"),
        ("tuning", json!({"sysctl": {"kernel.panic": "1"}}), "kernel.panic"),
        (
            "tuning",
            json!({"sysctl": {"net.core.somaxconn": 500}}),
            "somaxconn",
        ),
        (
            "tuning",
            json!({"sysctl": {"net/../kernel/panic": "1"}}),
            "net/../kernel/panic",
        ),
        ("tuning", json!({"sysctl": ["net.core.somaxconn"]}), "sysctl"),
        ("tuning", json!({"mac": "not-a-mac"}), "mac"),
        (
            "tuning",
            json!({"runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
            "runtimeConfig.mac",
        ),
        ("tuning", json!({"mtu": 20}), "mtu"),
        ("tuning", json!({"txQLen": -1}), "txQLen"),
        ("tuning", json!({"promisc": "on"}), "promisc"),
        (
            "tuning",
            json!({"args": {"cni": {"sysctl": {"vm.swappiness": "1"}}}}),
            "vm.swappiness",
        ),
    ];
    for (p, extra, needle) in bad {
        let e = run(p, "ADD", &with_prev(p, "1.0.0", extra.clone())).assert_error(7);
        let msg = e["msg"].as_str().expect("msg");
        assert!(
            msg.contains(needle),
            "{p} {extra}: {msg:?} should mention {needle:?}"
        );
    }
    // tuning reads CNI_ARGS like the reference: MAC is understood, other keys need IgnoreUnknown.
    let c = with_prev("tuning", "1.0.0", json!({}));
    Cni::new("tuning", "ADD")
        .var("CNI_ARGS", "MAC=0a:58:0a:2a:00:09")
        .run(&c)
        .assert_success();
    Cni::new("tuning", "ADD")
        .var("CNI_ARGS", "K8S_POD_NAME=x")
        .run(&c)
        .assert_error(4);
    Cni::new("tuning", "ADD")
        .var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x")
        .run(&c)
        .assert_success();
}

mod robustness {
    //! Any value in any key a chained plugin reads: the previous result or a clean CNI error. In-process
    //! through the dispatcher, so a panic fails the test where it happens.

    use super::*;
    use crate::harness::strategy::any_json;
    use proptest::prelude::*;

    /// Keys the chained plugins read inside the values: objects in the random values use them.
    const INNER_KEYS: &[&str] = &[
        "hostPort",
        "HostPort",
        "containerPort",
        "protocol",
        "hostIP",
        "ingressRate",
        "IngressBurst",
        "egressRate",
        "egressBurst",
        "portMappings",
        "bandwidth",
        "mac",
        "sysctl",
        "net.core.somaxconn",
        "cni",
        "mtu",
        "x",
    ];

    const KEYS: [&str; 20] = [
        "runtimeConfig",
        "snat",
        "markMasqBit",
        "externalSetMarkChain",
        "conditionsV4",
        "backend",
        "ingressRate",
        "ingressBurst",
        "shapedSubnets",
        "unshapedSubnets",
        "ingressPolicy",
        "iptablesAdminChainName",
        "sysctl",
        "mac",
        "mtu",
        "txQLen",
        "args",
        "promisc",
        "dataDir",
        "prevResult",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_values_never_crash(
            plugin in prop::sample::select(PLUGINS.to_vec()),
            fields in prop::collection::vec((prop::sample::select(KEYS.to_vec()), any_json(INNER_KEYS, 3)), 1..4),
            command in prop::sample::select(vec!["ADD", "CHECK", "DEL"]),
        ) {
            let mut c = with_prev(plugin, "1.0.0", json!({}));
            for (k, v) in &fields {
                c[*k] = v.clone();
            }
            let out = Cni::new(plugin, command).dispatch(&c);
            if out.ok() {
                let prev_kept = fields.iter().all(|(k, _)| *k != "prevResult");
                if command == "ADD" && prev_kept {
                    prop_assert_eq!(out.json(), prev());
                } else if command == "ADD" {
                    prop_assert_eq!(&out.json()["cniVersion"], "1.0.0");
                }
            } else {
                let e = out.json();
                let code = e["code"].as_u64().unwrap_or(0);
                prop_assert!(code != 999 && code != 0, "bad error code: {}", e);
                prop_assert!(command != "DEL", "DEL must succeed: {}", e);
            }
        }
    }
}
