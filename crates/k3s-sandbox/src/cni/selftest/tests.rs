use super::*;
use cni_core::Command;
use cni_runtime::testing::FakeExec;

/// What the in-memory plugins get wrong on purpose.
#[derive(Default, Clone, Copy)]
struct Quirks {
    loopback_without_index: bool,
    wrong_version: bool,
    forget_release: bool,
}

/// An in-memory plugin set: loopback, a bridge that "allocates" through a host-local-style file,
/// and pass-through chained plugins.
fn plugins(q: Quirks) -> FakeExec {
    FakeExec::new(move |call| {
        let conf = &call.conf;
        let version = conf["cniVersion"].as_str().unwrap().to_string();
        let alloc = || {
            let dir =
                PathBuf::from(conf["ipam"]["dataDir"].as_str().unwrap()).join(conf["name"].as_str().unwrap());
            (dir.clone(), dir.join("10.42.0.2"))
        };
        match (call.plugin.as_str(), call.command()) {
            ("loopback", Some(Command::Add)) => {
                let ip = if q.loopback_without_index {
                    json!({"address":"127.0.0.1/8"})
                } else {
                    json!({"address":"127.0.0.1/8","interface":0})
                };
                serde_json::to_vec(&json!({"cniVersion": version, "interfaces":[{"name":"lo","sandbox": call.var("CNI_NETNS")}], "ips":[ip]})).unwrap()
            }
            ("bridge", Some(Command::Add)) => {
                let (dir, file) = alloc();
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&file, call.var("CNI_CONTAINERID")).unwrap();
                let v = if q.wrong_version {
                    "0.4.0".to_string()
                } else {
                    version
                };
                serde_json::to_vec(&json!({
                    "cniVersion": v,
                    "interfaces":[{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":call.var("CNI_NETNS")}],
                    "ips":[{"address":"10.42.0.2/24","gateway":"10.42.0.1","interface":2}]
                }))
                .unwrap()
            }
            ("bridge", Some(Command::Del)) => {
                if !q.forget_release {
                    let _ = std::fs::remove_file(alloc().1);
                }
                vec![]
            }
            (_, Some(Command::Add)) => serde_json::to_vec(&conf["prevResult"]).unwrap(),
            _ => vec![],
        }
    })
}

fn plan(dir: &Path) -> Plan {
    Plan {
        list: NetworkList::from_list_bytes(crate::cni::conflist::TEMPLATE.as_bytes()).unwrap(),
        bin_dir: dir.join("bin"),
        ipam_dir: dir.join("ipam"),
        cache_dir: dir.join("cache"),
        container_id: throwaway_container_id(),
        netns: dir.join("netns"),
    }
}

fn summary(r: &FakeExec) -> Vec<String> {
    r.calls()
        .iter()
        .map(|c| format!("{} {} {}", c.var("CNI_COMMAND"), c.plugin, c.var("CNI_IFNAME")))
        .collect()
}

#[test]
fn drives_the_chain_like_containerd() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plan(tmp.path());
    let r = plugins(Quirks::default());
    let mut lines = Vec::new();
    let report = run(&r, &p, &mut |l| lines.push(l.to_string())).unwrap();
    assert_eq!(report.pod_ip(), Some("10.42.0.2"));
    assert_eq!(
        summary(&r),
        vec![
            "ADD loopback lo",
            "ADD bridge eth0",
            "ADD portmap eth0",
            "CHECK bridge eth0",
            "CHECK portmap eth0",
            "DEL portmap eth0",
            "DEL bridge eth0",
            "DEL portmap eth0",
            "DEL bridge eth0",
            "DEL loopback lo",
        ]
    );
    let calls = r.calls();
    assert_eq!(lines.len(), calls.len());
    assert!(
        lines[1].starts_with("ok   ADD bridge (network sandbox-cni, eth0, cniVersion 1.1.0)"),
        "{}",
        lines[1]
    );
    let lo = &calls[0].conf;
    assert_eq!(lo["cniVersion"], "0.3.1");
    assert_eq!(lo["name"], "cni-loopback");
    let bridge_add = &calls[1].conf;
    assert!(bridge_add.get("prevResult").is_none());
    assert_eq!(bridge_add["name"], "sandbox-cni");
    assert_eq!(bridge_add["ipam"]["dataDir"], p.ipam_dir.to_str().unwrap());
    let portmap_add = &calls[2].conf;
    assert_eq!(portmap_add["prevResult"]["ips"][0]["address"], "10.42.0.2/24");
    assert_eq!(portmap_add["runtimeConfig"]["portMappings"][0]["HostPort"], 18080);
    assert!(bridge_add.get("runtimeConfig").is_none());
    // CHECK and the first DEL get the cached result; the repeated DEL finds no cache entry.
    for c in &calls[3..7] {
        assert_eq!(
            c.conf["prevResult"]["ips"][0]["address"],
            "10.42.0.2/24",
            "{:?}",
            c.command()
        );
    }
    for c in &calls[7..] {
        assert!(c.conf.get("prevResult").is_none());
    }
    let env = &calls[1].env;
    assert_eq!(env["CNI_CONTAINERID"], p.container_id);
    assert!(env["CNI_ARGS"].starts_with("IgnoreUnknown=1;K8S_POD_NAMESPACE="));
    assert_eq!(env["CNI_PATH"], p.bin_dir.to_str().unwrap());
}

#[test]
fn a_list_without_cni_version_runs_as_libcni_runs_it() {
    // Drift bug: such a list ran at 0.3.1; libcni passes "" (which plugins read as 0.1.0).
    let tmp = tempfile::tempdir().unwrap();
    let mut p = plan(tmp.path());
    p.list = NetworkList::from_list_bytes(
        br#"{"name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local"}}]}"#,
    )
    .unwrap();
    let r = plugins(Quirks::default());
    let _ = run(&r, &p, &mut |_| {});
    let calls = r.calls();
    assert_eq!(calls[1].plugin, "bridge");
    assert_eq!(calls[1].conf["cniVersion"], "");
}

#[test]
fn a_failing_add_is_reported_with_the_plugin_error_and_torn_down() {
    let tmp = tempfile::tempdir().unwrap();
    let r = plugins(Quirks::default()).failing("portmap", Command::Add);
    let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(
        err.message()
            .contains("plugin type=\"portmap\" failed (add): no luck; really"),
        "{}",
        err.message()
    );
    let s = summary(&r);
    assert_eq!(
        &s[s.len() - 3..],
        ["DEL portmap eth0", "DEL bridge eth0", "DEL loopback lo"]
    );
}

#[test]
fn loopback_address_without_index_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let r = plugins(Quirks {
        loopback_without_index: true,
        ..Default::default()
    });
    let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(err.message().contains("pod IP"), "{}", err.message());
}

#[test]
fn result_version_must_match_the_request() {
    let tmp = tempfile::tempdir().unwrap();
    let r = plugins(Quirks {
        wrong_version: true,
        ..Default::default()
    });
    let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(err.message().contains("cniVersion 0.4.0"), "{}", err.message());
}

#[test]
fn unreleased_allocation_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let r = plugins(Quirks {
        forget_release: true,
        ..Default::default()
    });
    let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(err.message().contains("did not release"), "{}", err.message());
}

#[test]
fn a_failing_del_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let r = plugins(Quirks::default()).failing("bridge", Command::Del);
    let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
    assert!(
        err.message().contains("plugin type=\"bridge\" failed (del)"),
        "{}",
        err.message()
    );
}

#[test]
fn pod_address_rules_follow_go_cni() {
    let ok = json!({"interfaces":[{"name":"lo"},{"name":"eth0","sandbox":"/n"}],
        "ips":[{"address":"fd00::2/64","interface":1},{"address":"10.0.0.2/24","interface":1},{"address":"127.0.0.1/8","interface":0}]});
    assert_eq!(
        pod_addresses(&ok, "eth0").unwrap(),
        vec!["10.0.0.2/24", "fd00::2/64"]
    );
    let no_index = json!({"interfaces":[], "ips":[{"address":"10.0.0.2/24"}]});
    assert_eq!(pod_addresses(&no_index, "eth0").unwrap(), vec!["10.0.0.2/24"]);
    let out_of_range = json!({"interfaces":[{"name":"eth0","sandbox":"/n"}], "ips":[{"address":"10.0.0.2/24","interface":1}]});
    assert!(
        pod_addresses(&out_of_range, "eth0")
            .unwrap_err()
            .message()
            .contains("crash")
    );
    let elsewhere = json!({"interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/n"}], "ips":[{"address":"10.0.0.1/24","interface":0}]});
    assert!(
        pod_addresses(&elsewhere, "eth0")
            .unwrap_err()
            .message()
            .contains("failed to find network info")
    );
    let no_sandbox = json!({"interfaces":[{"name":"eth0"}], "ips":[{"address":"10.0.0.2/24","interface":0}]});
    assert!(
        pod_addresses(&no_sandbox, "eth0")
            .unwrap_err()
            .message()
            .contains("sandbox")
    );
}
