//! The protocol contract every plugin shares (spec-checklist §8 "Invocation" and "Versioning"): run
//! against each plugin binary, since each has its own main and must get these right.

use crate::harness::{Cni, PLUGINS, VERSIONS, plugin, run};
use serde_json::json;

fn conf(version: &str, ty: &str) -> serde_json::Value {
    json!({"cniVersion": version, "name": "testnet", "type": ty,
           "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "dataDir": "/nonexistent/never-written"}})
}

#[test]
fn run_by_hand_prints_about_text_and_exits_zero() {
    for p in &PLUGINS {
        let out = run(&plugin(p), &[], b"");
        assert!(out.ok() && out.stdout.is_empty(), "{p}");
        assert!(
            out.stderr.contains(p) && out.stderr.contains("0.1.0, 0.2.0"),
            "{p}: {}",
            out.stderr
        );
    }
}

#[test]
fn version_answers_with_empty_or_garbage_stdin() {
    for p in &PLUGINS {
        for stdin in [
            &b""[..],
            b"garbage",
            b"{\"cniVersion\":\"0.3.1\"}",
            b"{\"cniVersion\":\"7.7.7\"}",
        ] {
            // libcni's probe environment: dummy values and empty ones.
            let out = run(
                &plugin(p),
                &[
                    ("CNI_COMMAND", "VERSION"),
                    ("CNI_NETNS", "dummy"),
                    ("CNI_IFNAME", "dummy"),
                    ("CNI_PATH", "dummy"),
                    ("CNI_CONTAINERID", ""),
                    ("CNI_ARGS", ""),
                ],
                stdin,
            );
            let v = out.assert_success();
            assert_eq!(v["supportedVersions"], json!(VERSIONS), "{p}");
            let want = if stdin.starts_with(b"{\"cniVersion\":\"0.3.1") {
                "0.3.1"
            } else {
                "1.1.0"
            };
            assert_eq!(v["cniVersion"], want, "{p}");
        }
    }
}

#[test]
fn unknown_command_is_code_4() {
    for p in &PLUGINS {
        let e = Cni::new(p, "BOGUS").run(&conf("1.0.0", p)).assert_error(4);
        assert!(e["msg"].as_str().unwrap().contains("BOGUS"));
    }
}

#[test]
fn add_with_only_cni_command_names_every_missing_variable() {
    for p in &PLUGINS {
        let out = run(
            &plugin(p),
            &[("CNI_COMMAND", "ADD")],
            conf("1.0.0", p).to_string().as_bytes(),
        );
        let e = out.assert_error(4);
        let msg = e["msg"].as_str().unwrap();
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            assert!(msg.contains(var), "{p}: {msg}");
        }
    }
}

#[test]
fn environment_errors_carry_the_requested_version() {
    for p in &PLUGINS {
        for v in ["0.3.1", "1.0.0"] {
            let e = Cni::new(p, "ADD")
                .var("CNI_IFNAME", "a/b")
                .run(&conf(v, p))
                .assert_error(4);
            assert_eq!(e["cniVersion"], v, "{p}");
        }
        // Unreadable or unsupported: the newest version we speak.
        let e = Cni::new(p, "ADD")
            .var("CNI_IFNAME", "a/b")
            .run_bytes(b"garbage")
            .assert_error(4);
        assert_eq!(e["cniVersion"], "1.1.0", "{p}");
    }
}

#[test]
fn invalid_ifnames_and_container_ids_are_code_4() {
    for p in &PLUGINS {
        for bad in ["0123456789abcdef", ".", "..", "a/b", "a:b", "a b"] {
            Cni::new(p, "ADD")
                .var("CNI_IFNAME", bad)
                .run(&conf("1.0.0", p))
                .assert_error(4);
        }
        for bad in ["-x", "a b", "a/b", ".hidden"] {
            Cni::new(p, "ADD")
                .var("CNI_CONTAINERID", bad)
                .run(&conf("1.0.0", p))
                .assert_error(4);
        }
    }
}

#[test]
fn undecodable_stdin_is_code_6() {
    for p in &PLUGINS {
        for stdin in [
            &b""[..],
            b"not json",
            b"[1,2]",
            b"{\"name\":",
            b"{\"cniVersion\":1,\"name\":\"n\"}",
        ] {
            Cni::new(p, "ADD").run_bytes(stdin).assert_error(6);
        }
    }
}

#[test]
fn oversized_stdin_is_refused_with_code_6() {
    let big = format!(
        "{{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"pad\":\"{}\"}}",
        "x".repeat(64 << 20)
    );
    for p in &PLUGINS {
        let e = Cni::new(p, "ADD").run_bytes(big.as_bytes()).assert_error(6);
        assert!(e["msg"].as_str().unwrap().contains("larger than"), "{e}");
    }
}

#[test]
fn missing_or_invalid_network_name_is_code_7() {
    for p in &PLUGINS {
        for name in [json!(null), json!("a/b"), json!(""), json!("-a"), json!(5)] {
            let mut c = conf("1.0.0", p);
            c["name"] = name;
            Cni::new(p, "ADD").run(&c).assert_error(7);
        }
        let mut c = conf("1.0.0", p);
        c.as_object_mut().unwrap().remove("name");
        let e = Cni::new(p, "ADD").run(&c).assert_error(7);
        assert_eq!(e["msg"], "missing network name");
    }
}

#[test]
fn unsupported_versions_are_code_1_with_details() {
    for p in &PLUGINS {
        for v in ["9.9.9", "1.0", "1.0.0-dev", "0.5.0"] {
            let e = Cni::new(p, "ADD").run(&conf(v, p)).assert_error(1);
            let details = e["details"].as_str().unwrap();
            assert!(details.contains(v) && details.contains("1.1.0"), "{details}");
        }
    }
}

#[test]
fn verb_version_floors_are_code_1() {
    for p in &PLUGINS {
        for v in ["0.1.0", "0.2.0", "0.3.0", "0.3.1"] {
            Cni::new(p, "CHECK").run(&conf(v, p)).assert_error(1);
        }
        for v in ["0.1.0", "0.3.1", "0.4.0", "1.0.0"] {
            Cni::new(p, "GC").run(&conf(v, p)).assert_error(1);
            Cni::new(p, "STATUS").run(&conf(v, p)).assert_error(1);
        }
    }
}

#[test]
fn invalid_utf8_in_environment_is_code_4() {
    use std::os::unix::ffi::OsStrExt;
    for p in &PLUGINS {
        let out = std::process::Command::new(plugin(p))
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", std::ffi::OsStr::from_bytes(b"c\xff"))
            .env("CNI_NETNS", "/n")
            .env("CNI_IFNAME", "eth0")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["code"], 4, "{v}");
    }
}
