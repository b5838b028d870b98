//! Tests that drive the workspace's real plugin binaries (built next to the
//! k3s-sandbox executable by `cargo test --workspace`).

use std::fs;
use std::net::Ipv4Addr;

use crate::common::*;

#[test]
fn selftest_passes_with_the_built_plugins() {
    let plugins = built_plugins_dir();
    let sb = Sandbox::new();
    let out = Out::from(
        sb.cmd(&["selftest"])
            .env("CNI_BIN_DIR", &plugins)
            .output()
            .unwrap(),
    );
    out.ok()
        .stderr_has("ok   ADD loopback")
        .stderr_has("ok   CHECK bridge")
        .stderr_has("ok   DEL bridge")
        .stderr_has("self-test passed");
    let ip: Ipv4Addr = out
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("stdout is not an IPv4 address: {:?}", out.stdout));
    let o = ip.octets();
    assert_eq!((o[0], o[1], o[2]), (10, 42, 0), "{ip} is outside 10.42.0.0/24");
    assert!(o[3] != 0 && o[3] != 255, "{ip}");
}

#[test]
fn selftest_uses_the_conflist_containerd_would_pick() {
    let plugins = built_plugins_dir();
    let sb = Sandbox::new();
    fs::create_dir_all(&sb.conf).unwrap();
    let custom = repo_conflist().replace("10.42.0.0/24", "10.99.3.0/24");
    fs::write(sb.conf.join("10-sandbox-cni.conflist"), &custom).unwrap();
    let out = Out::from(
        sb.cmd(&["selftest"])
            .env("CNI_BIN_DIR", &plugins)
            .output()
            .unwrap(),
    );
    out.ok();
    assert!(out.stdout.trim().starts_with("10.99.3."), "{}", out.stdout);

    // A file sorting first that names a plugin we do not have wins, and fails.
    fs::write(
        sb.conf.join("05-other.conflist"),
        r#"{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let out = Out::from(
        sb.cmd(&["selftest"])
            .env("CNI_BIN_DIR", &plugins)
            .output()
            .unwrap(),
    );
    out.expect_code(1)
        .stderr_has("05-other.conflist")
        .stderr_has("failed to find plugin \"no-such-plugin\"");
}

#[test]
fn agent_up_installs_the_built_plugins_and_runs_the_selftest() {
    built_plugins_dir();
    let sb = Sandbox::new();
    // No --plugins-from: the plugins next to the executable are used.
    let up = sb.run(&["up", "--profile", "agent", "--timeout", "10"]);
    up.ok().stderr_has("self-test passed").stderr_has("installed");
    for p in PLUGINS {
        assert!(sb.bin.join(p).is_file(), "{p} not installed");
    }
    sb.run(&["doctor"])
        .stdout_has("ok    plugin bridge:")
        .stdout_has("ok    plugin host-local:");
    sb.run(&["down"]).ok();
}

#[test]
fn every_committed_conflist_passes_the_selftest() {
    let plugins = built_plugins_dir();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../cni-conf");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no conflists in {}", dir.display());
    let sb = Sandbox::new();
    for f in files {
        let out = Out::from(
            sb.cmd(&["selftest", "--conflist", &f.to_string_lossy()])
                .env("CNI_BIN_DIR", &plugins)
                .output()
                .unwrap(),
        );
        out.ok();
        let ip: Ipv4Addr =
            out.stdout.trim().parse().unwrap_or_else(|_| {
                panic!("{}: stdout is not an IPv4 address: {:?}", f.display(), out.stdout)
            });
        let text = fs::read_to_string(&f).unwrap();
        if text.contains("::/") {
            // Dual stack: the IPv6 address is reported after the IPv4 one.
            let all = out
                .stderr
                .lines()
                .find_map(|l| l.split("all eth0 addresses: ").nth(1))
                .unwrap_or_default()
                .trim_end_matches(')');
            let addrs: Vec<&str> = all.split(", ").collect();
            assert_eq!(addrs.len(), 2, "{}: {all}", f.display());
            assert!(addrs[0].starts_with(&format!("{ip}/")), "{}: {all}", f.display());
            assert!(
                addrs[1].contains(':'),
                "{}: no IPv6 address in {all}",
                f.display()
            );
        }
    }
}
