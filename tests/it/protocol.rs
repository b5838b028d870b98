//! The protocol catalogue every plugin shares (spec-checklist §8 "Invocation" and "Versioning"; the
//! generic part of the bad-input catalogue): the error matrix, the verb floors, the environment rules,
//! bad stdin and the VERSION answer, for every plugin at every spec version.
//!
//! It runs in this process through the dispatcher (`Cni::dispatch`), which is what each binary's
//! `main` runs with the process's environment and stdin: thousands of calls in about a second. Each
//! binary is still started for real by [`each_binary_answers_as_the_dispatcher_does`], and the cases
//! that need a process (memory limit, deadline, the process environment) are in `bad_input`.

use std::path::Path;

use cni_core::skel::MAX_STDIN;
use cni_core::version::SUPPORTED;
use serde_json::{Value, json};

use crate::harness::baseline::{READ_ARGS, READ_PREV};
use crate::harness::bounded::snapshot;
use crate::harness::{Cni, Out, PLUGINS, VERSIONS, assert_none_failed, base_conf};

/// The newest version: what an error says when the request names no supported one.
const NEWEST: &str = SUPPORTED[SUPPORTED.len() - 1];

/// `plugin`'s valid baseline at `version`, keeping any store under `data`.
pub(crate) fn conf_at(plugin: &str, version: &str, data: &Path) -> Value {
    let mut c = base_conf(plugin, data);
    c["cniVersion"] = json!(version);
    c
}

fn with(mut conf: Value, key: &str, v: Value) -> Value {
    conf[key] = v;
    conf
}

fn without(mut conf: Value, key: &str) -> Value {
    conf.as_object_mut().expect("an object").remove(key);
    conf
}

/// A configuration nested `depth` arrays deep.
pub(crate) fn deep_json(depth: usize) -> Vec<u8> {
    let mut s = br#"{"cniVersion":"1.0.0","name":"net","type":"x","deep":"#.to_vec();
    s.extend(std::iter::repeat_n(b'[', depth));
    s.extend(std::iter::repeat_n(b']', depth));
    s.push(b'}');
    s
}

/// A valid configuration of about `size` bytes.
pub(crate) fn big_config(size: usize) -> Vec<u8> {
    let head = br#"{"cniVersion":"1.0.0","name":"net","type":"x","pad":""#;
    // Filled in one go (a byte-by-byte resize takes a second per copy in a debug build).
    let mut s = vec![b'a'; size.max(head.len())];
    s[..head.len()].copy_from_slice(head);
    s.extend_from_slice(b"\"}");
    s
}

pub(crate) const INVALID_UTF8: &[u8] = &[b'c', 0xff, 0xfe, b'1'];

/// Which version an error object names.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    /// The request's own (the configuration was readable and its version supported).
    Requested,
    /// The newest we speak (the request could not be read, or names no supported version).
    Newest,
}

type Make = Box<dyn Fn(Cni, Value) -> (Cni, Vec<u8>)>;

/// One way to break a plugin's valid request, and the answer that must follow.
struct Case {
    name: String,
    code: u64,
    /// Words the message or details must contain, case-insensitively.
    words: &'static [&'static str],
    label: Label,
    /// The plugins the case concerns, when not all (a key only some of them read).
    only: &'static [&'static str],
    /// At every version, or (for stdin that is never read as a configuration) once per plugin.
    every_version: bool,
    make: Make,
}

fn case(
    name: impl Into<String>,
    code: u64,
    words: &'static [&'static str],
    label: Label,
    make: Make,
) -> Case {
    Case {
        name: name.into(),
        code,
        words,
        label,
        only: &[],
        every_version: true,
        make,
    }
}

/// A case breaking stdin.
fn stdin_case(
    name: &str,
    code: u64,
    words: &'static [&'static str],
    label: Label,
    f: fn(Value) -> Vec<u8>,
) -> Case {
    case(name, code, words, label, Box::new(move |c, conf| (c, f(conf))))
}

/// A case breaking one environment variable (`None`: unset it).
fn env_case(
    name: impl Into<String>,
    code: u64,
    words: &'static [&'static str],
    label: Label,
    key: &'static str,
    value: Option<Vec<u8>>,
) -> Case {
    case(
        name,
        code,
        words,
        label,
        Box::new(move |c, conf| {
            let c = match &value {
                Some(v) => c.var_bytes(key, v),
                None => c.unset(key),
            };
            (c, conf.to_string().into_bytes())
        }),
    )
}

fn bytes(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    use Label::{Newest, Requested};
    let mut all = vec![
        stdin_case("empty stdin", 6, &["empty"], Newest, |_| Vec::new()),
        stdin_case("invalid JSON", 6, &["not valid JSON"], Newest, |_| {
            br#"{"cniVersion": "1.0.0", "name": "#.to_vec()
        }),
        stdin_case("not JSON at all", 6, &["JSON"], Newest, |_| b"not json".to_vec()),
        stdin_case("truncated JSON", 6, &["JSON"], Newest, |_| b"{\"name\":".to_vec()),
        stdin_case("JSON that is not an object", 6, &["object"], Newest, |_| {
            b"[1,2]".to_vec()
        }),
        Case {
            every_version: false,
            ..stdin_case(
                "configuration over the stdin limit",
                6,
                &["larger than"],
                Newest,
                |_| big_config(MAX_STDIN as usize + 1),
            )
        },
        Case {
            every_version: false,
            ..stdin_case("JSON nested 100,000 deep", 6, &["JSON"], Newest, |_| {
                deep_json(100_000)
            })
        },
        stdin_case(
            "cniVersion is a number",
            6,
            &["cniVersion", "string"],
            Newest,
            |c| bytes(with(c, "cniVersion", json!(1.0))),
        ),
        stdin_case("name is a number", 7, &["name", "string"], Newest, |c| {
            bytes(with(c, "name", json!(5)))
        }),
        stdin_case("name is null", 7, &["name"], Newest, |c| {
            bytes(with(c, "name", json!(null)))
        }),
        stdin_case("name is empty", 7, &["name"], Newest, |c| {
            bytes(with(c, "name", json!("")))
        }),
        stdin_case("name starts with a dash", 7, &["network name"], Newest, |c| {
            bytes(with(c, "name", json!("-a")))
        }),
        stdin_case("slash in the network name", 7, &["network name"], Newest, |c| {
            bytes(with(c, "name", json!("a/b")))
        }),
        stdin_case(
            "path traversal in the network name",
            7,
            &["network name", "../../etc"],
            Newest,
            |c| bytes(with(c, "name", json!("../../etc"))),
        ),
        stdin_case("no network name", 7, &["missing network name"], Newest, |c| {
            bytes(without(c, "name"))
        }),
        stdin_case("type is a list", 7, &["type", "string"], Newest, |c| {
            bytes(with(c, "type", json!(["bridge"])))
        }),
        Case {
            only: READ_PREV,
            ..stdin_case("prevResult is a string", 6, &["prevResult"], Requested, |c| {
                bytes(with(c, "prevResult", json!("10.0.0.2/24")))
            })
        },
        env_case(
            "unknown CNI_COMMAND",
            4,
            &["CNI_COMMAND", "BOGUS"],
            Newest,
            "CNI_COMMAND",
            Some(b"BOGUS".to_vec()),
        ),
        env_case(
            "lower-case CNI_COMMAND",
            4,
            &["CNI_COMMAND", "add"],
            Newest,
            "CNI_COMMAND",
            Some(b"add".to_vec()),
        ),
        env_case(
            "missing CNI_CONTAINERID",
            4,
            &["CNI_CONTAINERID"],
            Requested,
            "CNI_CONTAINERID",
            None,
        ),
        env_case(
            "missing CNI_NETNS",
            4,
            &["CNI_NETNS"],
            Requested,
            "CNI_NETNS",
            None,
        ),
        env_case(
            "missing CNI_IFNAME",
            4,
            &["CNI_IFNAME"],
            Requested,
            "CNI_IFNAME",
            None,
        ),
        env_case(
            "path traversal in the container ID",
            4,
            &["containerID", "../../etc/passwd"],
            Requested,
            "CNI_CONTAINERID",
            Some(b"../../etc/passwd".to_vec()),
        ),
        env_case(
            "path traversal in the interface name",
            4,
            &["interface name"],
            Requested,
            "CNI_IFNAME",
            Some(b"../eth0".to_vec()),
        ),
        env_case(
            "interface name longer than 15 bytes",
            4,
            &["too long"],
            Requested,
            "CNI_IFNAME",
            Some(b"eth0123456789abc".to_vec()),
        ),
        Case {
            only: READ_ARGS,
            ..env_case(
                "malformed CNI_ARGS",
                4,
                &["CNI_ARGS"],
                Requested,
                "CNI_ARGS",
                Some(b"IgnoreUnknown=1;K8S_POD_NAME".to_vec()),
            )
        },
    ];
    // A bad environment with an unreadable configuration: the newest version labels the error.
    all.push(case(
        "invalid interface name and garbage on stdin",
        4,
        &["interface name"],
        Newest,
        Box::new(|c, _| (c.var("CNI_IFNAME", "a/b"), b"garbage".to_vec())),
    ));
    for bad in ["0123456789abcdef", ".", "..", "a/b", "a:b", "a b"] {
        let name = format!("interface name {bad:?}");
        all.push(env_case(
            name,
            4,
            &["interface name"],
            Requested,
            "CNI_IFNAME",
            Some(bad.into()),
        ));
    }
    for bad in ["-x", "a b", "a/b", ".hidden"] {
        let name = format!("container ID {bad:?}");
        all.push(env_case(
            name,
            4,
            &["containerID"],
            Requested,
            "CNI_CONTAINERID",
            Some(bad.into()),
        ));
    }
    let utf8: [(&'static str, &'static [&'static str]); 6] = [
        ("CNI_COMMAND", &["CNI_COMMAND", "UTF-8"]),
        ("CNI_CONTAINERID", &["CNI_CONTAINERID", "UTF-8"]),
        ("CNI_NETNS", &["CNI_NETNS", "UTF-8"]),
        ("CNI_IFNAME", &["CNI_IFNAME", "UTF-8"]),
        ("CNI_ARGS", &["CNI_ARGS", "UTF-8"]),
        ("CNI_PATH", &["CNI_PATH", "UTF-8"]),
    ];
    for (key, words) in utf8 {
        // An unreadable CNI_COMMAND is refused before the configuration is read.
        let label = if key == "CNI_COMMAND" { Newest } else { Requested };
        let name = format!("invalid UTF-8 in {key}");
        all.push(env_case(name, 4, words, label, key, Some(INVALID_UTF8.to_vec())));
    }
    let unsupported: [(&'static str, &'static [&'static str]); 4] = [
        ("9.9.9", &["9.9.9", NEWEST]),
        ("1.0", &["1.0", NEWEST]),
        ("1.0.0-dev", &["1.0.0-dev", NEWEST]),
        ("0.5.0", &["0.5.0", NEWEST]),
    ];
    for (v, words) in unsupported {
        let name = format!("unsupported cniVersion {v}");
        let make: Make = Box::new(move |c, conf| (c, bytes(with(conf, "cniVersion", json!(v)))));
        all.push(case(name, 1, words, Newest, make));
    }
    all
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}

/// What is wrong with `out` as a refusal with `code`, a message (or details) naming `words`, and, when
/// given, an error object labelled with version `label`.
pub(crate) fn judge(out: &Out, code: u64, words: &[&str], label: Option<&str>) -> Result<(), String> {
    if out.ok() {
        return Err(format!("expected error {code}, got success: {}", out.text()));
    }
    let v = out.json();
    if v["code"].as_u64() != Some(code) {
        return Err(format!("expected code {code}, got {v}"));
    }
    let text = format!(
        "{} {}",
        v["msg"].as_str().unwrap_or(""),
        v["details"].as_str().unwrap_or("")
    );
    if let Some(w) = words.iter().find(|w| !contains_ci(&text, w)) {
        return Err(format!("the message does not mention {w:?}: {v}"));
    }
    if let Some(label) = label.filter(|l| v["cniVersion"] != *l) {
        return Err(format!("the error should name version {label}: {v}"));
    }
    Ok(())
}

/// Collects the failures of `f` over every plugin and version, and fails once with all of them.
fn every_plugin_and_version(f: impl Fn(&str, &str, &Path, &mut Vec<String>)) {
    let mut failures = Vec::new();
    for plugin in PLUGINS {
        for version in VERSIONS {
            let dir = tempfile::tempdir().unwrap();
            f(plugin, version, dir.path(), &mut failures);
        }
    }
    assert_none_failed(&failures);
}

#[test]
fn every_plugin_accepts_its_baseline_at_every_version() {
    // The cases below start from these calls: they must succeed, so a refusal is the bad part's doing.
    every_plugin_and_version(|plugin, version, data, failures| {
        let out = Cni::new(plugin, "ADD").dispatch(&conf_at(plugin, version, data));
        if !out.ok() || out.json()["cniVersion"] != version {
            failures.push(format!("{plugin} {version}: {}", out.text()));
        }
    });
}

#[test]
fn the_error_matrix_for_every_plugin_at_every_version() {
    let cases = cases();
    every_plugin_and_version(|plugin, version, data, failures| {
        let conf = conf_at(plugin, version, data);
        for case in cases
            .iter()
            .filter(|c| c.only.is_empty() || c.only.contains(&plugin))
            .filter(|c| c.every_version || version == VERSIONS[0])
        {
            let (call, stdin) = (case.make)(Cni::new(plugin, "ADD"), conf.clone());
            let before = snapshot(data);
            let label = match case.label {
                Label::Requested => version,
                Label::Newest => NEWEST,
            };
            if let Err(e) = judge(&call.dispatch_bytes(&stdin), case.code, case.words, Some(label)) {
                failures.push(format!("{plugin} {version}, {}: {e}", case.name));
            }
            if snapshot(data) != before {
                failures.push(format!(
                    "{plugin} {version}, {}: the data directory changed",
                    case.name
                ));
            }
        }
    });
}

#[test]
fn add_with_only_cni_command_names_every_missing_variable() {
    every_plugin_and_version(|plugin, version, data, failures| {
        let mut call = Cni::new(plugin, "ADD");
        call.env.retain(|k, _| k == "CNI_COMMAND");
        let out = call.dispatch(&conf_at(plugin, version, data));
        let words = ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"];
        if let Err(e) = judge(&out, 4, &words, Some(version)) {
            failures.push(format!("{plugin} {version}: {e}"));
        }
    });
}

#[test]
fn a_missing_network_name_is_said_so() {
    every_plugin_and_version(|plugin, version, data, failures| {
        let out = Cni::new(plugin, "ADD").dispatch(&without(conf_at(plugin, version, data), "name"));
        if out.ok() || out.json()["msg"] != "missing network name" {
            failures.push(format!("{plugin} {version}: {}", out.text()));
        }
    });
}

#[test]
fn verb_version_floors() {
    // CHECK needs 0.4.0, GC and STATUS 1.1.0: below, code 1 naming the verb; from there on, never that.
    let floors = [("CHECK", "0.4.0"), ("GC", "1.1.0"), ("STATUS", "1.1.0")];
    every_plugin_and_version(|plugin, version, data, failures| {
        for (verb, floor) in floors {
            let conf = conf_at(plugin, version, data);
            let out = Cni::new(plugin, verb).dispatch(&conf);
            let below = cni_runtime::version::compare(version, floor).unwrap().is_lt();
            if below {
                if let Err(e) = judge(&out, 1, &[verb, floor, version], Some(version)) {
                    failures.push(format!("{plugin} {verb} at {version}: {e}"));
                }
            } else if out.text().contains("does not allow") {
                failures.push(format!("{plugin} {verb} at {version} refused: {}", out.text()));
            }
        }
    });
}

#[test]
fn unsupported_versions_are_code_1_with_the_supported_ones_in_details() {
    for plugin in PLUGINS {
        let dir = tempfile::tempdir().unwrap();
        for v in ["9.9.9", "1.0", "1.0.0-dev", "0.5.0", "7.7.7", "0.3"] {
            let e = Cni::new(plugin, "ADD")
                .dispatch(&conf_at(plugin, v, dir.path()))
                .assert_error(1);
            let details = e["details"].as_str().unwrap();
            assert!(
                SUPPORTED.iter().all(|s| details.contains(s)) && details.contains(v),
                "{plugin}: {details}"
            );
        }
    }
}

/// libcni's VERSION probe environment: dummy values and empty ones.
fn version_probe(plugin: &str) -> Cni {
    Cni::new(plugin, "VERSION")
        .var("CNI_NETNS", "dummy")
        .var("CNI_IFNAME", "dummy")
        .var("CNI_PATH", "dummy")
        .var("CNI_CONTAINERID", "")
        .var("CNI_ARGS", "")
}

#[test]
fn version_answers_whatever_comes_on_stdin() {
    let mut inputs: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), NEWEST),
        (b"garbage".to_vec(), NEWEST),
        (INVALID_UTF8.to_vec(), NEWEST),
        (br#"{"cniVersion":"7.7.7"}"#.to_vec(), NEWEST),
        (big_config(MAX_STDIN as usize + 1), NEWEST),
        (deep_json(100_000), NEWEST),
    ];
    // A supported request version is echoed.
    for v in VERSIONS {
        inputs.push((format!(r#"{{"cniVersion":"{v}"}}"#).into_bytes(), v));
    }
    for plugin in PLUGINS {
        for (stdin, want) in &inputs {
            let v = version_probe(plugin).dispatch_bytes(stdin).assert_success();
            assert_eq!(v["supportedVersions"], json!(VERSIONS), "{plugin}");
            assert_eq!(v["cniVersion"], *want, "{plugin}");
        }
    }
}

#[test]
fn without_cni_command_a_plugin_says_what_it_is() {
    for plugin in PLUGINS {
        let out = Cni::by_hand(plugin).dispatch_bytes(b"");
        assert!(out.ok() && out.stdout.is_empty(), "{plugin}");
        assert!(
            out.stderr.contains(plugin) && out.stderr.contains(&SUPPORTED.join(", ")),
            "{plugin}: {}",
            out.stderr
        );
    }
}

#[test]
fn unrelated_variables_with_invalid_utf8_are_ignored() {
    every_plugin_and_version(|plugin, version, data, failures| {
        let out = Cni::new(plugin, "ADD")
            .var_bytes("LANG", INVALID_UTF8)
            .var_bytes("X_\u{1}", INVALID_UTF8)
            .dispatch(&conf_at(plugin, version, data));
        if !out.ok() {
            failures.push(format!("{plugin} {version}: {}", out.text()));
        }
    });
}

/// The calls each binary answers in [`each_binary_answers_as_the_dispatcher_does`].
fn smoke_calls(plugin: &str, data: &Path) -> Vec<(Cni, Vec<u8>)> {
    let conf = conf_at(plugin, "1.1.0", data).to_string().into_bytes();
    vec![
        (Cni::by_hand(plugin), Vec::new()),
        (version_probe(plugin), br#"{"cniVersion":"0.4.0"}"#.to_vec()),
        (Cni::new(plugin, "ADD"), conf.clone()),
        (Cni::new(plugin, "DEL"), conf.clone()),
        (Cni::new(plugin, "ADD").var("CNI_IFNAME", "a/b"), conf),
    ]
}

#[test]
fn each_binary_answers_as_the_dispatcher_does() {
    // The real binary and the in-process dispatch, same calls and separate stores: byte-identical
    // stdout, the same exit status, and the same stderr (the about text).
    for plugin in PLUGINS {
        let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for ((process, stdin), (inproc, _)) in smoke_calls(plugin, ours.path())
            .into_iter()
            .zip(smoke_calls(plugin, theirs.path()))
        {
            let p = process.run_bytes(&stdin);
            let d = inproc.dispatch_bytes(&stdin);
            let what = format!(
                "{plugin} {:?}",
                process.env.get(std::ffi::OsStr::new("CNI_COMMAND"))
            );
            assert_eq!(p.text(), d.text(), "{what}: stdout");
            assert_eq!(p.status, d.status, "{what}: exit status");
            assert_eq!(p.stderr, d.stderr, "{what}: stderr");
        }
        assert_eq!(
            crate::harness::reserved_addresses(&ours.path().join("bad-input")),
            crate::harness::reserved_addresses(&theirs.path().join("bad-input")),
            "{plugin}: the store after ADD and DEL"
        );
    }
}
