//! Version conversion rules (spec-checklist §4.5): every layout, lossy down-conversion, and reading
//! results of any version back into the model.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use cni_core::result::{NetResult, parse_cidr};
use cni_core::{Dns, Interface, IpConfig, Route, Version};
use proptest::prelude::*;
use serde_json::{Value, json};

fn dual_stack() -> NetResult {
    NetResult {
        interfaces: vec![
            Interface {
                name: "cni0".into(),
                mac: Some("0a:00:00:00:00:01".into()),
                ..Default::default()
            },
            Interface {
                name: "eth0".into(),
                mac: Some("0a:00:00:00:00:02".into()),
                mtu: Some(1450),
                sandbox: Some("/var/run/netns/x".into()),
                ..Default::default()
            },
        ],
        ips: vec![
            IpConfig {
                address: parse_cidr("10.42.0.7/24").unwrap(),
                gateway: Some("10.42.0.1".parse().unwrap()),
                interface: Some(1),
            },
            IpConfig {
                address: parse_cidr("10.42.0.8/24").unwrap(),
                gateway: None,
                interface: Some(1),
            },
            IpConfig {
                address: parse_cidr("fd42::7/64").unwrap(),
                gateway: Some("fd42::1".parse().unwrap()),
                interface: Some(1),
            },
        ],
        routes: vec![
            Route {
                mtu: Some(1400),
                ..Route::new(
                    parse_cidr("0.0.0.0/0").unwrap(),
                    Some("10.42.0.1".parse().unwrap()),
                )
            },
            Route::new(parse_cidr("::/0").unwrap(), None),
        ],
        dns: Dns {
            nameservers: vec!["10.43.0.10".into()],
            ..Default::default()
        },
    }
}

fn json_of(r: &NetResult, v: Version) -> Value {
    serde_json::from_slice(&r.to_json(v).unwrap()).unwrap()
}

#[test]
fn v1_1_keeps_everything_v1_0_drops_new_fields() {
    let r = dual_stack();
    let v11 = json_of(&r, Version::V1_1_0);
    assert_eq!(v11["interfaces"][1]["mtu"], 1450);
    assert_eq!(v11["routes"][0]["mtu"], 1400);
    let v10 = json_of(&r, Version::V1_0_0);
    assert_eq!(v10["cniVersion"], "1.0.0");
    assert!(v10["interfaces"][1].get("mtu").is_none());
    assert!(v10["routes"][0].get("mtu").is_none());
    assert!(v10["ips"][0].get("version").is_none());
    assert_eq!(v10["ips"][2]["interface"], 1);
}

#[test]
fn v04_family_adds_version_per_address() {
    for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
        let j = json_of(&dual_stack(), v);
        assert_eq!(j["cniVersion"], v.as_str());
        let fams: Vec<_> = j["ips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["version"].clone())
            .collect();
        assert_eq!(fams, vec![json!("4"), json!("4"), json!("6")]);
        assert!(j["interfaces"][1].get("mtu").is_none());
    }
}

#[test]
fn legacy_keeps_first_address_per_family_and_splits_routes() {
    for v in [Version::V0_1_0, Version::V0_2_0] {
        let j = json_of(&dual_stack(), v);
        assert_eq!(
            j,
            json!({
                "cniVersion": v.as_str(),
                "ip4": {"ip": "10.42.0.7/24", "gateway": "10.42.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.42.0.1"}]},
                "ip6": {"ip": "fd42::7/64", "gateway": "fd42::1", "routes": [{"dst": "::/0"}]},
                "dns": {"nameservers": ["10.43.0.10"]}
            })
        );
    }
}

#[test]
fn legacy_without_any_address_is_a_coded_error() {
    let r = NetResult {
        interfaces: dual_stack().interfaces,
        ..Default::default()
    };
    let e = r.to_json(Version::V0_2_0).unwrap_err();
    assert_eq!(e.code, 1);
    assert!(e.msg.contains("no IP address"));
    // The same result is fine in every later version.
    assert!(r.to_json(Version::V0_3_1).is_ok());
}

#[test]
fn invalid_interface_indexes_are_never_emitted() {
    let mut r = dual_stack();
    r.ips[0].interface = Some(2); // == len(interfaces): go-cni would index out of range
    let j = json_of(&r, Version::V1_0_0);
    assert!(j["ips"][0].get("interface").is_none());
}

#[test]
fn every_version_reads_back_into_the_model() {
    let r = dual_stack();
    for v in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0, Version::V1_0_0] {
        let back = NetResult::from_json(&json_of(&r, v), Version::V1_1_0, "x").unwrap();
        let mut want = r.clone();
        want.interfaces[1].mtu = None;
        want.routes[0].mtu = None;
        assert_eq!(back, want, "{v}");
    }
    assert_eq!(
        NetResult::from_json(&json_of(&r, Version::V1_1_0), Version::V1_1_0, "x").unwrap(),
        r
    );
    // Legacy comes back sparse: first address of each family, routes, dns; no interfaces.
    let back = NetResult::from_json(&json_of(&r, Version::V0_2_0), Version::V1_1_0, "x").unwrap();
    assert_eq!(back.ips.len(), 2);
    assert!(back.interfaces.is_empty());
    assert_eq!(back.routes.len(), 2);
    assert_eq!(back.dns, r.dns);
}

#[test]
fn missing_cni_version_uses_the_default_and_unknown_is_refused() {
    let j = json!({"ips": [{"address": "10.0.0.2/24"}]});
    assert_eq!(
        NetResult::from_json(&j, Version::V0_4_0, "x").unwrap().ips.len(),
        1
    );
    let legacy = json!({"ip4": {"ip": "10.0.0.2/24"}});
    assert_eq!(
        NetResult::from_json(&legacy, Version::V0_2_0, "x")
            .unwrap()
            .ips
            .len(),
        1
    );
    let bad = json!({"cniVersion": "2.0.0", "ips": []});
    assert_eq!(
        NetResult::from_json(&bad, Version::V1_0_0, "prevResult")
            .unwrap_err()
            .code,
        1
    );
}

#[test]
fn malformed_results_are_decode_errors_naming_the_field() {
    let cases = [
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}),
            "ips[0].address",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": "0"}]}),
            "interface",
        ),
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 0}]}),
            "interface 0",
        ),
        (
            json!({"cniVersion": "0.4.0", "ips": [{"version": "6", "address": "10.0.0.2/24"}]}),
            "version",
        ),
        (
            json!({"cniVersion": "1.0.0", "routes": [{"gw": "10.0.0.1"}]}),
            "dst",
        ),
        (json!({"cniVersion": "1.0.0", "dns": []}), "dns"),
        (json!([1, 2]), "object"),
    ];
    for (j, needle) in cases {
        let e = NetResult::from_json(&j, Version::V1_0_0, "prevResult").unwrap_err();
        assert_eq!(e.code, 6, "{j}");
        assert!(e.msg.contains(needle), "{} should mention {needle}", e.msg);
    }
}

/// Malformed results are decode errors (code 6) whose messages name the field, the expected type and
/// the JSON type found; the exact texts are user-visible (a runtime shows them) and stay stable.
/// One case a line: the result (read as 0.2.0 unless it says otherwise) `=>` the message.
const MALFORMED: &str = r#"
{"cniVersion":"1.0.0","interfaces":{}} => prevResult.interfaces must be an array, got an object
{"cniVersion":"1.0.0","interfaces":[1]} => prevResult.interfaces[0] must be an object, got a number
{"cniVersion":"1.0.0","interfaces":[{"name":1}]} => prevResult.interfaces[0].name must be a string, got a number
{"cniVersion":"1.0.0","interfaces":[{"mtu":-1}]} => prevResult.interfaces[0].mtu must be a whole number from 0 to 4294967295, got -1
{"cniVersion":"1.0.0","interfaces":[{"mtu":"x"}]} => prevResult.interfaces[0].mtu must be a number, got a string
{"cniVersion":"1.0.0","interfaces":[{"mtu":1.5}]} => prevResult.interfaces[0].mtu must be a whole number from 0 to 4294967295, got 1.5
{"cniVersion":"1.0.0","interfaces":[{"name":1},5]} => prevResult.interfaces[0].name must be a string, got a number
{"cniVersion":"1.0.0","ips":{}} => prevResult.ips must be an array, got an object
{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2"}]} => prevResult.ips[0].address: "10.0.0.2" is not in CIDR notation (address/prefix)
{"cniVersion":"1.0.0","ips":[{}]} => prevResult.ips[0].address is missing
{"cniVersion":"1.0.0","ips":[{"address":5}]} => prevResult.ips[0].address must be a string, got a number
{"cniVersion":"0.4.0","ips":[{"address":"10.0.0.2/24","version":"6"}]} => prevResult.ips[0].version is "6" but address 10.0.0.2/24 is IPv4
{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":"0"}]} => prevResult.ips[0].interface must be a number, got a string
{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":3}]} => prevResult.ips[0].interface 3 does not name one of the 0 interfaces
{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":"x"}]} => prevResult.ips[0].gateway: "x" is not an IP address
{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","gateway":5}]} => prevResult.ips[0].gateway must be a string, got a number
{"cniVersion":"1.0.0","routes":{}} => prevResult.routes must be an array, got an object
{"cniVersion":"1.0.0","routes":[1]} => prevResult.routes[0] must be an object, got a number
{"cniVersion":"1.0.0","routes":[{"gw":"10.0.0.1"}]} => prevResult.routes[0].dst is missing
{"cniVersion":"1.0.0","routes":[{"dst":"10.0.0.0/8","mtu":"a"}]} => prevResult.routes[0].mtu must be a number, got a string
{"cniVersion":"1.0.0","routes":[{"dst":"10.0.0.0/8","table":5000000000}]} => prevResult.routes[0].table must be a whole number from 0 to 4294967295, got 5000000000
{"cniVersion":"1.0.0","dns":[]} => prevResult.dns must be an object, got an array
{"cniVersion":"1.0.0","dns":{"nameservers":"a"}} => prevResult.dns.nameservers must be an array of strings, got a string
{"cniVersion":"1.0.0","dns":{"nameservers":[1]}} => prevResult.dns.nameservers must hold strings, got a number
{"cniVersion":"1.0.0","dns":{"domain":5}} => prevResult.dns.domain must be a string, got a number
{"cniVersion":5} => prevResult.cniVersion must be a string, got a number
{"ip4":5} => prevResult.ip4 must be an object, got a number
{"ip4":{}} => prevResult.ip4.ip is missing
{"ip4":{"ip":"fd00::1/64"}} => prevResult.ip4.ip fd00::1/64 is not an IPv4 address
{"ip6":{"ip":"10.0.0.1/8"}} => prevResult.ip6.ip 10.0.0.1/8 is not an IPv6 address
{"ip4":{"ip":"10.0.0.1/8","routes":[{"dst":1}]}} => prevResult.ip4.routes[0].dst must be a string, got a number
{"ip4":{"ip":"10.0.0.1/8","routes":5}} => prevResult.ip4.routes must be an array, got a number
{"ip4":{"gateway":"zz","ip":"10.0.0.1/8"}} => prevResult.ip4.gateway: "zz" is not an IP address
[1,2] => prevResult must be a JSON object, got an array
"#;

#[test]
fn malformed_result_messages_are_exact() {
    let cases: Vec<_> = MALFORMED.lines().filter_map(|l| l.split_once(" => ")).collect();
    assert_eq!(cases.len(), 34);
    for (j, want) in cases {
        let v: Value = serde_json::from_str(j).unwrap();
        let e = NetResult::from_json(&v, Version::V0_2_0, "prevResult").unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (6, want), "{j}");
    }
    // The config's own `dns` is read the same way, as a configuration error (code 7).
    let conf = br#"{"cniVersion":"1.0.0","name":"n","dns":{"nameservers":[1]}}"#;
    let e = cni_core::NetConf::parse(conf).unwrap().dns().unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (7, "dns.nameservers must hold strings, got a number")
    );
}

#[test]
fn cidr_parsing_keeps_host_bits_and_wants_a_prefix() {
    assert_eq!(parse_cidr("10.1.0.5/16").unwrap().to_string(), "10.1.0.5/16");
    assert_eq!(parse_cidr("fd00::5/64").unwrap().to_string(), "fd00::5/64");
    for bad in [
        "10.1.0.5",
        "10.1.0.5/33",
        "10.1.0.5/-1",
        "10.1.0.5/+8",
        "x/8",
        "::1/129",
        "10.1.0.5/ 8",
    ] {
        assert!(parse_cidr(bad).is_err(), "{bad}");
    }
    let msg = |s: &str| parse_cidr(s).unwrap_err().to_string();
    assert_eq!(
        msg("10.1.0.5"),
        r#""10.1.0.5" is not in CIDR notation (address/prefix)"#
    );
    assert_eq!(msg("x/8"), r#""x/8": "x" is not an IP address"#);
    assert_eq!(msg("::1/129"), r#""::1/129": "129" is not a valid prefix length"#);
}

fn arb_result() -> impl Strategy<Value = NetResult> {
    let ip = prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32).prop_map(|(o, p)| format!("{}/{p}", std::net::Ipv4Addr::from(o))),
        (any::<[u16; 8]>(), 0u8..=128).prop_map(|(o, p)| format!("{}/{p}", std::net::Ipv6Addr::from(o))),
    ];
    (prop::collection::vec((ip, any::<bool>()), 0..5), 0usize..4).prop_map(|(ips, n_if)| NetResult {
        interfaces: (0..n_if)
            .map(|i| Interface {
                name: format!("if{i}"),
                ..Default::default()
            })
            .collect(),
        ips: ips
            .into_iter()
            .enumerate()
            .map(|(i, (a, with_if))| IpConfig {
                address: parse_cidr(&a).unwrap(),
                gateway: None,
                interface: (with_if && n_if > 0).then_some(i % n_if.max(1)),
            })
            .collect(),
        ..Default::default()
    })
}

proptest! {
    /// Any model encodes in every version to JSON that reads back, without panicking; for 1.x it is lossless.
    #[test]
    fn encode_decode_round_trip(r in arb_result()) {
        for v in Version::ALL {
            match r.to_json(v) {
                Ok(bytes) => {
                    let j: Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert_eq!(j["cniVersion"].as_str(), Some(v.as_str()));
                    let back = NetResult::from_json(&j, v, "x").unwrap();
                    if v >= Version::V0_3_0 {
                        prop_assert_eq!(&back, &r);
                    }
                }
                Err(e) => {
                    prop_assert!(v < Version::V0_3_0 && r.ips.is_empty(), "unexpected error {e:?}");
                }
            }
        }
    }
}
