//! Bad-input catalogue (issue 8), plugin by plugin. The generic part (stdin, environment, versions) is
//! the protocol catalogue in `protocol`; here are the cases that need a real process, and the keys only
//! some plugins read.
//!
//! As processes, bounded (`Cni::bounded`: a memory limit with `prlimit --as`, killed after 20 s, a fresh
//! empty working directory that must stay empty): for every binary, huge and deeply nested stdin for ADD
//! and VERSION, and invalid UTF-8 in the real process environment.
//!
//! In-process through the dispatcher (a bridge's IPAM too): bad prevResult addresses, wrong types and
//! values of plugin-specific keys, and IPAM range errors. Each must give the expected spec error code
//! with a message naming what is wrong, and leave the data directory byte-for-byte unchanged.
//!
//! Store attacks (symlinks and pipes planted in the host-local store, unwritable or traversing data
//! directories) and delegation failures (missing IPAM binary, long CNI_PATH) are in `bad_input_store`.

use serde_json::{Value, json};

use crate::harness::baseline::READ_PREV;
use crate::harness::bounded::snapshot;
use crate::harness::{Cni, PLUGINS, assert_none_failed, base_conf};
use crate::protocol::{INVALID_UTF8, big_config, deep_json};

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn with(mut conf: Value, key: &str, v: Value) -> Value {
    conf[key] = v;
    conf
}

/// Runs `call` with `stdin` in-process and checks code, message words and that `data` did not change.
/// Returns a description of what went wrong, if anything.
fn judge(
    plugin: &str,
    case: &str,
    call: &Cni,
    stdin: &[u8],
    code: u64,
    words: &[&str],
    data: &std::path::Path,
) -> Option<String> {
    let before = snapshot(data);
    let mut wrong = crate::protocol::judge(&call.dispatch_bytes(stdin), code, words, None).err();
    if wrong.is_none() && snapshot(data) != before {
        wrong = Some("the data directory changed".to_owned());
    }
    wrong.map(|e| format!("{plugin}: {case}: {e}"))
}

#[test]
fn every_binary_stays_bounded_on_huge_and_deep_input() {
    // 64 MiB (four times the stdin limit) and 100,000 levels of nesting, under the memory limit and the
    // deadline: refused for ADD, answered for VERSION (libcni probes with arbitrary configs).
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        Cni::bounded(plugin, "ADD")
            .run(&base_conf(plugin, dir.path()))
            .assert_success();
        for (stdin, word) in [
            (big_config(64 << 20), "larger than"),
            (deep_json(100_000), "JSON"),
        ] {
            let e = Cni::bounded(plugin, "ADD").run_bytes(&stdin).assert_error(6);
            assert!(e["msg"].as_str().unwrap().contains(word), "{plugin}: {e}");
        }
        for stdin in [
            big_config(64 << 20),
            deep_json(100_000),
            INVALID_UTF8.to_vec(),
            Vec::new(),
        ] {
            let v = Cni::bounded(plugin, "VERSION").run_bytes(&stdin).assert_success();
            assert!(
                v["supportedVersions"].as_array().is_some_and(|a| !a.is_empty()),
                "{plugin}: {v}"
            );
        }
    }
}

#[test]
fn invalid_utf8_in_the_process_environment_is_code_4() {
    // The binary reads its environment as raw bytes: a variable that is not UTF-8 is named, one that
    // does not concern CNI is ignored.
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        let conf = base_conf(plugin, dir.path());
        let e = Cni::bounded(plugin, "ADD")
            .var_bytes("CNI_CONTAINERID", INVALID_UTF8)
            .run(&conf)
            .assert_error(4);
        let msg = e["msg"].as_str().unwrap();
        assert!(
            msg.contains("CNI_CONTAINERID") && msg.contains("UTF-8"),
            "{plugin}: {e}"
        );
        Cni::bounded(plugin, "ADD")
            .var_bytes("LANG", INVALID_UTF8)
            .var_bytes("X_\u{1}", INVALID_UTF8)
            .run(&conf)
            .assert_success();
    }
}

#[test]
fn prev_result_with_bad_addresses_is_a_decode_error() {
    let mut failures = Vec::new();
    for plugin in READ_PREV.iter().copied() {
        let dir = tempfile::tempdir().unwrap();
        let conf = base_conf(plugin, dir.path());
        for (addr, word) in [
            ("10.0.0.300/24", "10.0.0.300"),
            ("10.0.0.2/33", "prefix"),
            ("10.0.0.2", "CIDR"),
            ("fd00::1/129", "prefix"),
        ] {
            let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": addr}]});
            let stdin = bytes(&with(conf.clone(), "prevResult", prev));
            let case = format!("prevResult address {addr}");
            if let Some(f) = judge(
                plugin,
                &case,
                &Cni::new(plugin, "ADD"),
                &stdin,
                6,
                &["prevResult", word],
                dir.path(),
            ) {
                failures.push(f);
            }
        }
        // An interface index that names no interface.
        let prev = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": [{"address": "10.0.0.2/24", "interface": 3}]});
        let stdin = bytes(&with(conf.clone(), "prevResult", prev));
        if let Some(f) = judge(
            plugin,
            "prevResult interface index",
            &Cni::new(plugin, "ADD"),
            &stdin,
            6,
            &["interface"],
            dir.path(),
        ) {
            failures.push(f);
        }
    }
    assert_none_failed(&failures);
}

/// (plugin, key path to replace, value, code, words the message must contain)
type KeyCase = (
    &'static str,
    &'static [&'static str],
    Value,
    u64,
    &'static [&'static str],
);

#[test]
fn plugin_specific_wrong_types_and_values_are_refused() {
    let cases: Vec<KeyCase> = vec![
        (
            "host-local",
            &["ipam"],
            json!("host-local"),
            7,
            &["ipam", "object"],
        ),
        (
            "host-local",
            &["ipam", "ranges"],
            json!({"subnet": "10.1.0.0/24"}),
            7,
            &["ranges", "list"],
        ),
        (
            "host-local",
            &["ipam", "ranges"],
            json!([{"subnet": "10.1.0.0/24"}]),
            7,
            &["ranges[0]"],
        ),
        (
            "host-local",
            &["ipam", "ranges"],
            json!([[{"subnet": 24}]]),
            7,
            &["subnet"],
        ),
        ("host-local", &["ipam", "dataDir"], json!(5), 7, &["dataDir"]),
        (
            "host-local",
            &["ipam", "routes"],
            json!("0.0.0.0/0"),
            7,
            &["routes"],
        ),
        (
            "host-local",
            &["ipam", "routes"],
            json!([{"dst": "0.0.0.0/40"}]),
            7,
            &["dst"],
        ),
        ("bridge", &["isGateway"], json!("yes"), 7, &["isGateway"]),
        ("bridge", &["mtu"], json!("1500"), 7, &["mtu"]),
        ("bridge", &["mtu"], json!(-1), 7, &["mtu"]),
        ("bridge", &["vlan"], json!(5000), 7, &["vlan"]),
        ("bridge", &["bridge"], json!("a/b"), 7, &["bridge"]),
        (
            "bridge",
            &["ipam", "ranges"],
            json!([[{"subnet": "10.1.0.0/33"}]]),
            7,
            &["subnet"],
        ),
        (
            "portmap",
            &["runtimeConfig", "portMappings"],
            json!("8080:80"),
            7,
            &["portMappings"],
        ),
        (
            "portmap",
            &["runtimeConfig", "portMappings"],
            json!([{"hostPort": 0, "containerPort": 80}]),
            7,
            &["hostPort"],
        ),
        (
            "portmap",
            &["runtimeConfig", "portMappings"],
            json!([{"hostPort": 70000, "containerPort": 80}]),
            7,
            &["hostPort"],
        ),
        (
            "bandwidth",
            &["runtimeConfig", "bandwidth"],
            json!([1, 2]),
            7,
            &["bandwidth"],
        ),
        (
            "bandwidth",
            &["runtimeConfig", "bandwidth"],
            json!({"ingressRate": 1000}),
            7,
            &["ingressBurst"],
        ),
        ("firewall", &["backend"], json!(5), 7, &["backend"]),
        (
            "tuning",
            &["sysctl"],
            json!(["net.core.somaxconn"]),
            7,
            &["sysctl"],
        ),
        (
            "tuning",
            &["sysctl"],
            json!({"net/../../../etc/passwd": "x"}),
            7,
            &["sysctl"],
        ),
        (
            "tuning",
            &["sysctl"],
            json!({"kernel.panic": "1"}),
            7,
            &["sysctl"],
        ),
    ];
    let mut failures = Vec::new();
    for (plugin, path, value, code, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = base_conf(plugin, dir.path());
        let mut slot = &mut conf;
        for key in path {
            slot = &mut slot[*key];
        }
        *slot = value.clone();
        let case = format!("{} = {value}", path.join("."));
        if let Some(f) = judge(
            plugin,
            &case,
            &Cni::new(plugin, "ADD"),
            &bytes(&conf),
            code,
            words,
            dir.path(),
        ) {
            failures.push(f);
        }
    }
    assert_none_failed(&failures);
}

#[test]
fn ipam_range_errors_are_config_errors_for_host_local_and_bridge() {
    let range_cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "prefix longer than 32",
            json!([[{"subnet": "10.0.0.0/33"}]]),
            &["subnet"],
        ),
        (
            "truncated address",
            json!([[{"subnet": "10.0.0/24"}]]),
            &["subnet"],
        ),
        ("not an address", json!([[{"subnet": "banana"}]]), &["subnet"]),
        ("no prefix", json!([[{"subnet": "10.0.0.0"}]]), &["subnet"]),
        (
            "IPv6 prefix longer than 128",
            json!([[{"subnet": "fd00::/129"}]]),
            &["subnet"],
        ),
        (
            "negative prefix",
            json!([[{"subnet": "10.0.0.0/-1"}]]),
            &["subnet"],
        ),
        (
            "host bits set",
            json!([[{"subnet": "10.0.0.1/24"}]]),
            &["host bits"],
        ),
        (
            "too small to allocate from",
            json!([[{"subnet": "10.0.0.0/31"}]]),
            &["too small"],
        ),
        (
            "gateway outside the subnet",
            json!([[{"subnet": "10.0.0.0/24", "gateway": "192.168.1.1"}]]),
            &["gateway", "192.168.1.1"],
        ),
        (
            "gateway of the other family",
            json!([[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]),
            &["gateway"],
        ),
        (
            "rangeStart after rangeEnd",
            json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.200", "rangeEnd": "10.0.0.100"}]]),
            &["rangeStart", "rangeEnd"],
        ),
        (
            "rangeStart outside the subnet",
            json!([[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]]),
            &["rangeStart"],
        ),
        (
            "rangeEnd not an address",
            json!([[{"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.x"}]]),
            &["rangeEnd"],
        ),
        (
            "overlapping ranges in one set",
            json!([[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]),
            &["overlap"],
        ),
        (
            "overlapping range sets",
            json!([[{"subnet": "10.0.0.0/16"}], [{"subnet": "10.0.5.0/24"}]]),
            &["overlap"],
        ),
        (
            "mixed families in one set",
            json!([[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]),
            &["famil"],
        ),
        ("no ranges at all", json!([]), &["no IP ranges"]),
        (
            "a range without a subnet",
            json!([[{"rangeStart": "10.0.0.5"}]]),
            &["subnet"],
        ),
    ];
    let mut failures = Vec::new();
    for plugin in ["host-local", "bridge"] {
        // One real attachment first: CHECK compares against its result (bridge checks prevResult before
        // asking the IPAM), and every refused call below must leave this store exactly as it is.
        let dir = tempfile::tempdir().unwrap();
        let valid = base_conf(plugin, dir.path());
        let added = Cni::new(plugin, "ADD").dispatch(&valid).assert_success();
        for (name, ranges, words) in &range_cases {
            let mut conf = valid.clone();
            conf["ipam"]["ranges"] = ranges.clone();
            for command in ["ADD", "CHECK", "STATUS"] {
                let mut conf = conf.clone();
                if command == "STATUS" {
                    conf["cniVersion"] = json!("1.1.0");
                }
                if command == "CHECK" {
                    conf["prevResult"] = added.clone();
                }
                let case = format!("{command} with {name}");
                let call = Cni::new(plugin, command);
                if let Some(f) = judge(plugin, &case, &call, &bytes(&conf), 7, words, dir.path()) {
                    failures.push(f);
                }
            }
        }
    }
    assert_none_failed(&failures);
}
