//! Bad-input catalogue (issue 8), black-box, for every plugin binary.
//!
//! Every case runs the real binary with a clean environment, a fresh empty working directory, a memory
//! limit (`prlimit --as`) and a deadline (killed after 20 s), and checks: the stdout contract (one JSON
//! document or nothing, an error object iff a non-zero exit), the expected spec error code with a message
//! naming what is wrong, no panic (no code 999, no panic text), and that nothing was written: the working
//! directory stays empty and the data directory is byte-for-byte unchanged.
//!
//! Store attacks (symlinks and pipes planted in the host-local store, unwritable or traversing data
//! directories) and delegation failures (missing IPAM binary, long CNI_PATH) are in tests/bad_input_store.rs.

use crate::harness::baseline::{READ_ARGS, READ_PREV};
use crate::harness::bounded::snapshot;
use crate::harness::{Cni, PLUGINS, base_conf};
use serde_json::{Value, json};

/// A generic case: how to break a valid request, and the code and message words that must follow.
struct Case {
    name: &'static str,
    code: u64,
    /// Words the message (or details) must contain, case-insensitively.
    words: &'static [&'static str],
    /// Builds the call and its stdin from the plugin's valid call and config.
    make: fn(Cni, Value) -> (Cni, Vec<u8>),
    /// The plugins the case concerns, when not all (a key only some of them read).
    only: &'static [&'static str],
}

fn bytes(v: &Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn with(mut conf: Value, key: &str, v: Value) -> Value {
    conf[key] = v;
    conf
}

fn deep_json(depth: usize) -> Vec<u8> {
    let mut s = br#"{"cniVersion":"1.0.0","name":"net","type":"x","deep":"#.to_vec();
    s.extend(std::iter::repeat_n(b'[', depth));
    s.extend(std::iter::repeat_n(b']', depth));
    s.push(b'}');
    s
}

fn big_config(size: usize) -> Vec<u8> {
    let mut s = br#"{"cniVersion":"1.0.0","name":"net","type":"x","pad":""#.to_vec();
    s.resize(size, b'a');
    s.extend_from_slice(b"\"}");
    s
}

const INVALID_UTF8: &[u8] = &[b'c', 0xff, 0xfe, b'1'];

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "invalid JSON",
            code: 6,
            words: &["not valid JSON"],
            only: &[],
            make: |c, _| (c, br#"{"cniVersion": "1.0.0", "name": "#.to_vec()),
        },
        Case {
            name: "empty stdin",
            code: 6,
            words: &["empty"],
            only: &[],
            make: |c, _| (c, Vec::new()),
        },
        Case {
            name: "JSON that is not an object",
            code: 6,
            words: &["object"],
            only: &[],
            make: |c, _| (c, b"[1,2]".to_vec()),
        },
        Case {
            name: "name is a number",
            code: 7,
            words: &["name", "string"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "name", json!(5)))),
        },
        Case {
            name: "cniVersion is a number",
            code: 6,
            words: &["cniVersion", "string"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "cniVersion", json!(1.0)))),
        },
        Case {
            name: "type is a list",
            code: 7,
            words: &["type", "string"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "type", json!(["bridge"])))),
        },
        Case {
            name: "prevResult is a string",
            code: 6,
            words: &["prevResult"],
            only: READ_PREV,
            make: |c, conf| (c, bytes(&with(conf, "prevResult", json!("10.0.0.2/24")))),
        },
        Case {
            name: "64 MiB configuration",
            code: 6,
            words: &["larger than"],
            only: &[],
            make: |c, _| (c, big_config(64 << 20)),
        },
        Case {
            name: "JSON nested 100,000 deep",
            code: 6,
            words: &["JSON"],
            only: &[],
            make: |c, _| (c, deep_json(100_000)),
        },
        Case {
            name: "unknown cniVersion 9.9.9",
            code: 1,
            words: &["9.9.9"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "cniVersion", json!("9.9.9")))),
        },
        Case {
            name: "unknown cniVersion 1.0 (versions match exactly)",
            code: 1,
            words: &["1.0"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "cniVersion", json!("1.0")))),
        },
        Case {
            name: "path traversal in the network name",
            code: 7,
            words: &["network name", "../../etc"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "name", json!("../../etc")))),
        },
        Case {
            name: "slash in the network name",
            code: 7,
            words: &["network name"],
            only: &[],
            make: |c, conf| (c, bytes(&with(conf, "name", json!("a/b")))),
        },
        Case {
            name: "path traversal in the container ID",
            code: 4,
            words: &["containerID", "../../etc/passwd"],
            only: &[],
            make: |c, conf| (c.var("CNI_CONTAINERID", "../../etc/passwd"), bytes(&conf)),
        },
        Case {
            name: "path traversal in the interface name",
            code: 4,
            words: &["interface name"],
            only: &[],
            make: |c, conf| (c.var("CNI_IFNAME", "../eth0"), bytes(&conf)),
        },
        Case {
            name: "interface name longer than 15 bytes",
            code: 4,
            words: &["too long"],
            only: &[],
            make: |c, conf| (c.var("CNI_IFNAME", "eth0123456789abc"), bytes(&conf)),
        },
        Case {
            name: "unknown CNI_COMMAND",
            code: 4,
            words: &["CNI_COMMAND", "add"],
            only: &[],
            make: |c, conf| (c.var("CNI_COMMAND", "add"), bytes(&conf)),
        },
        Case {
            name: "missing CNI_CONTAINERID",
            code: 4,
            words: &["CNI_CONTAINERID"],
            only: &[],
            make: |c, conf| (c.unset("CNI_CONTAINERID"), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_COMMAND",
            code: 4,
            words: &["CNI_COMMAND", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_COMMAND", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_CONTAINERID",
            code: 4,
            words: &["CNI_CONTAINERID", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_CONTAINERID", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_NETNS",
            code: 4,
            words: &["CNI_NETNS", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_NETNS", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_IFNAME",
            code: 4,
            words: &["CNI_IFNAME", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_IFNAME", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_ARGS",
            code: 4,
            words: &["CNI_ARGS", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_ARGS", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "invalid UTF-8 in CNI_PATH",
            code: 4,
            words: &["CNI_PATH", "UTF-8"],
            only: &[],
            make: |c, conf| (c.var_bytes("CNI_PATH", INVALID_UTF8), bytes(&conf)),
        },
        Case {
            name: "malformed CNI_ARGS",
            code: 4,
            words: &["CNI_ARGS"],
            only: READ_ARGS,
            make: |c, conf| (c.var("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME"), bytes(&conf)),
        },
        Case {
            name: "CHECK below cniVersion 0.4.0",
            code: 1,
            words: &["CHECK"],
            only: &[],
            make: |c, conf| {
                (
                    c.var("CNI_COMMAND", "CHECK"),
                    bytes(&with(conf, "cniVersion", json!("0.3.1"))),
                )
            },
        },
        Case {
            name: "GC below cniVersion 1.1.0",
            code: 1,
            words: &["GC"],
            only: &[],
            make: |c, conf| {
                (
                    c.var("CNI_COMMAND", "GC"),
                    bytes(&with(conf, "cniVersion", json!("1.0.0"))),
                )
            },
        },
    ]
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// Runs `call` with `stdin` and checks code, message words and that `data` did not change.
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
    let out = call.run_bytes(stdin);
    let what = format!("{plugin}: {case}");
    if out.ok() {
        return Some(format!(
            "{what}: expected error {code}, got success: {}",
            out.text()
        ));
    }
    let v = out.json();
    if v["code"].as_u64() != Some(code) {
        return Some(format!("{what}: expected code {code}, got {v}"));
    }
    let text = format!(
        "{} {}",
        v["msg"].as_str().unwrap_or(""),
        v["details"].as_str().unwrap_or("")
    );
    if let Some(w) = words.iter().find(|w| !contains_ci(&text, w)) {
        return Some(format!("{what}: the message does not mention {w:?}: {v}"));
    }
    if snapshot(data) != before {
        return Some(format!("{what}: the data directory changed"));
    }
    None
}

#[test]
fn every_plugin_accepts_its_valid_baseline() {
    // The bad cases below start from these calls: they must succeed, so a refusal is the bad part's doing.
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        let conf = base_conf(plugin, dir.path());
        let out = Cni::bounded(plugin, "ADD").run(&conf);
        let v = out.assert_success();
        assert_eq!(v["cniVersion"], "1.0.0", "{plugin}: {v}");
    }
}

#[test]
fn generic_bad_input_gets_the_right_code_for_every_plugin() {
    let mut failures = Vec::new();
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        let conf = base_conf(plugin, dir.path());
        for case in cases()
            .into_iter()
            .filter(|c| c.only.is_empty() || c.only.contains(&plugin))
        {
            let (call, stdin) = (case.make)(Cni::bounded(plugin, "ADD"), conf.clone());
            if let Some(f) = judge(
                plugin,
                case.name,
                &call,
                &stdin,
                case.code,
                case.words,
                dir.path(),
            ) {
                failures.push(f);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn version_accepts_any_stdin_in_bounded_time() {
    // VERSION must answer whatever comes on stdin (libcni probes with arbitrary configs).
    for plugin in PLUGINS {
        for stdin in [
            big_config(64 << 20),
            deep_json(100_000),
            INVALID_UTF8.to_vec(),
            Vec::new(),
        ] {
            let out = Cni::bounded(plugin, "VERSION").run_bytes(&stdin);
            let v = out.assert_success();
            assert!(
                v["supportedVersions"].as_array().is_some_and(|a| !a.is_empty()),
                "{plugin}: {v}"
            );
        }
    }
}

#[test]
fn unrelated_variables_with_invalid_utf8_are_ignored() {
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        let conf = base_conf(plugin, dir.path());
        let out = Cni::bounded(plugin, "ADD")
            .var_bytes("LANG", INVALID_UTF8)
            .var_bytes("X_\u{1}", INVALID_UTF8)
            .run(&conf);
        out.assert_success();
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
                &Cni::bounded(plugin, "ADD"),
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
            &Cni::bounded(plugin, "ADD"),
            &stdin,
            6,
            &["interface"],
            dir.path(),
        ) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
            &Cni::bounded(plugin, "ADD"),
            &bytes(&conf),
            code,
            words,
            dir.path(),
        ) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
        let added = Cni::bounded(plugin, "ADD").run(&valid).assert_success();
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
                let call = Cni::bounded(plugin, command);
                if let Some(f) = judge(plugin, &case, &call, &bytes(&conf), 7, words, dir.path()) {
                    failures.push(f);
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
