//! Fake loopback: golden results for every (command x cniVersion), prevResult pass-through and the
//! sandbox-friendly DEL rules.

use crate::harness::{Cni, VERSIONS, golden};
use serde_json::json;

fn conf(version: &str) -> serde_json::Value {
    json!({"cniVersion": version, "name": "cni-loopback", "type": "loopback"})
}

#[test]
fn golden_results_for_every_command_and_version() {
    for v in VERSIONS {
        for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] {
            let out = Cni::new("loopback", cmd).var("CNI_IFNAME", "lo").run(&conf(v));
            golden(&format!("loopback/{}-{v}.json", cmd.to_lowercase()), &out.stdout);
            let allowed = match cmd {
                "CHECK" => v >= "0.4.0",
                "GC" | "STATUS" => v == "1.1.0",
                _ => true,
            };
            assert_eq!(out.ok(), allowed, "{cmd} at {v}: {}", out.text());
            if !allowed {
                out.assert_error(1);
            }
        }
    }
}

#[test]
fn add_points_every_address_at_lo_for_every_layout() {
    for v in VERSIONS {
        let r = Cni::new("loopback", "ADD")
            .var("CNI_IFNAME", "lo")
            .run(&conf(v))
            .assert_success();
        assert_eq!(r["cniVersion"], v);
        if v < "0.3.0" {
            assert_eq!(r["ip4"]["ip"], "127.0.0.1/8");
            assert_eq!(r["ip6"]["ip"], "::1/128");
            assert!(r.get("interfaces").is_none());
            continue;
        }
        assert_eq!(
            r["interfaces"],
            json!([{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/test-1"}])
        );
        let ips = r["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 2);
        for ip in ips {
            assert_eq!(ip["interface"], 0, "{v}: {ip}");
            assert_eq!(ip.get("version").is_some(), v < "1.0.0", "{v}: {ip}");
        }
    }
}

#[test]
fn add_with_prev_result_passes_it_through_in_the_request_version() {
    let prev = json!({"cniVersion": "0.4.0", "interfaces": [{"name": "eth0"}],
        "ips": [{"version": "4", "address": "10.1.0.5/24", "interface": 0}], "dns": {}});
    let mut c = conf("1.0.0");
    c["prevResult"] = prev;
    let r = Cni::new("loopback", "ADD").run(&c).assert_success();
    assert_eq!(
        r,
        json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
            "ips": [{"interface": 0, "address": "10.1.0.5/24"}], "dns": {}})
    );
}

#[test]
fn del_succeeds_without_netns_and_when_repeated() {
    for netns in ["", "/var/run/netns/gone"] {
        for _ in 0..2 {
            Cni::new("loopback", "DEL")
                .var("CNI_NETNS", netns)
                .run(&conf("0.3.1"))
                .assert_empty_success();
        }
    }
    Cni::new("loopback", "DEL")
        .unset("CNI_NETNS")
        .run(&conf("1.0.0"))
        .assert_empty_success();
}

#[test]
fn result_is_deterministic() {
    let a = Cni::new("loopback", "ADD").run(&conf("1.1.0"));
    let b = Cni::new("loopback", "ADD").run(&conf("1.1.0"));
    assert_eq!(a.stdout, b.stdout);
}
