use super::*;
use crate::testing::FakeExec;
use cni_core::{Command, NetResult, Version};
use serde_json::json;
use std::path::Path;

/// Plugins in memory: ADD answers with prevResult plus one interface named after the plugin, or a
/// fresh result for the first plugin.
fn plugins() -> FakeExec {
    FakeExec::new(|call| match call.command() {
        Some(Command::Add) => {
            let conf = &call.conf;
            let mut r = conf.get("prevResult").cloned().unwrap_or_else(
                || json!({"cniVersion": conf["cniVersion"], "ips":[{"address":"10.0.0.2/24"}]}),
            );
            r["interfaces"] = json!([{"name": call.plugin}]);
            serde_json::to_vec(&r).unwrap()
        }
        Some(Command::Version) => br#"{"cniVersion":"1.1.0","supportedVersions":["0.3.1","1.0.0"]}"#.to_vec(),
        _ => vec![],
    })
}

fn list(version: &str) -> NetworkList {
    NetworkList::from_list_bytes(
        format!(
            r#"{{"cniVersion":"{version}","name":"net","plugins":[{{"type":"a"}},{{"type":"b","capabilities":{{"portMappings":true,"bandwidth":false}}}}]}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

fn rt() -> RuntimeConf {
    let mut caps = Map::new();
    caps.insert(
        "portMappings".into(),
        json!([{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]),
    );
    caps.insert("bandwidth".into(), json!({"ingressRate":1}));
    RuntimeConf {
        container_id: "c1".into(),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAME".into(), "p".into()),
            ("IgnoreUnknown".into(), "1".into()),
        ],
        capability_args: caps,
    }
}

fn runtime<'a>(fake: &'a FakeExec, dir: &Path) -> Runtime<'a> {
    Runtime {
        exec: fake,
        path: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        cache: Cache::new(dir),
        base_env: vec![
            ("HOME".into(), "/root".into()),
            ("CNI_COMMAND".into(), "stale".into()),
        ],
    }
}

#[test]
fn add_chains_results_and_caches_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins();
    let r = runtime(&fake, tmp.path());
    let l = list("1.0.0");
    let added = r.add(&l, &rt()).unwrap().unwrap();
    assert_eq!(added.result.interfaces[0].name, "b");
    assert_eq!(added.version, Version::V1_0_0);
    // The raw bytes are the plugin's own (here serde's sorted keys); the model lays them out in
    // the spec's order.
    let raw: Value = serde_json::from_slice(&added.raw).unwrap();
    assert_eq!(raw["interfaces"][0]["name"], "b");
    let result: Value = serde_json::from_slice(&added.to_json().unwrap()).unwrap();
    assert_eq!(fake.verbs(), ["ADD a", "ADD b"]);
    let calls = fake.calls();
    let (env, a) = (&calls[0].env, &calls[0].conf);
    assert_eq!(env["CNI_ARGS"], "K8S_POD_NAME=p;IgnoreUnknown=1");
    assert_eq!(env["CNI_PATH"], "/opt/cni/bin:/usr/lib/cni");
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["HOME"], "/root");
    assert_eq!(env.len(), 7);
    assert_eq!(a["name"], "net");
    assert_eq!(a["cniVersion"], "1.0.0");
    assert!(a.get("prevResult").is_none() && a.get("runtimeConfig").is_none());
    let b = &calls[1].conf;
    assert_eq!(b["prevResult"]["interfaces"][0]["name"], "a");
    // Only the capabilities the plugin declares as true.
    assert_eq!(
        b["runtimeConfig"],
        json!({"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]})
    );
    let e = r.cache.read("net", "c1", "eth0").unwrap().unwrap();
    assert_eq!(e.result.as_ref(), Some(&result));
    assert_eq!(e.config, l.bytes);
    assert_eq!(e.cni_args, rt().args);
    assert_eq!(e.netns, "/run/netns/x");
}

#[test]
fn a_failing_add_stops_and_caches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins().failing("a", Command::Add);
    let r = runtime(&fake, tmp.path());
    let e = r.add(&list("1.0.0"), &rt()).unwrap_err();
    assert_eq!(e.to_string(), "plugin type=\"a\" failed (add): no luck; really");
    assert_eq!(e.plugin_error().unwrap().code, 11);
    assert!(matches!(&e, Error::Plugin { command: Command::Add, plugin, .. } if plugin == "a"));
    assert_eq!(fake.verbs(), ["ADD a"]);
    assert_eq!(r.cache.read("net", "c1", "eth0").unwrap(), None);
    let bad = RuntimeConf {
        ifname: "a/b".into(),
        ..rt()
    };
    assert!(matches!(
        r.add(&list("1.0.0"), &bad),
        Err(Error::InvalidAttachment(_))
    ));
    let bad = RuntimeConf {
        container_id: "-x".into(),
        ..rt()
    };
    assert!(r.add(&list("1.0.0"), &bad).is_err());
    assert_eq!(fake.verbs().len(), 1);
}

#[test]
fn del_is_reversed_with_the_cached_result_from_0_4_0() {
    for (version, with_prev) in [("0.3.1", false), ("0.4.0", true), ("1.1.0", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let fake = plugins();
        let r = runtime(&fake, tmp.path());
        let l = list(version);
        r.add(&l, &rt()).unwrap();
        r.del(&l, &rt()).unwrap();
        assert_eq!(fake.verbs(), ["ADD a", "ADD b", "DEL b", "DEL a"], "{version}");
        for call in &fake.calls()[2..] {
            let conf = &call.conf;
            assert_eq!(conf.get("prevResult").is_some(), with_prev, "{version}");
            if with_prev {
                assert_eq!(conf["prevResult"]["cniVersion"], version);
            }
        }
        assert_eq!(r.cache.read("net", "c1", "eth0").unwrap(), None);
    }
}

#[test]
fn del_without_a_readable_cache_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins();
    let r = runtime(&fake, tmp.path());
    std::fs::create_dir_all(r.cache.results_dir()).unwrap();
    std::fs::write(r.cache.path("net", "c1", "eth0").unwrap(), "garbage").unwrap();
    r.del(&list("1.0.0"), &rt()).unwrap();
    assert!(
        fake.calls
            .borrow()
            .iter()
            .all(|c| c.conf.get("prevResult").is_none())
    );
    assert!(!r.cache.path("net", "c1", "eth0").unwrap().exists());
    // A failing DEL keeps the cache and stops.
    let fake = plugins().failing("b", Command::Del);
    let r = runtime(&fake, tmp.path());
    r.add(&list("1.0.0"), &rt()).unwrap();
    assert!(
        r.del(&list("1.0.0"), &rt())
            .unwrap_err()
            .to_string()
            .contains("failed (del)")
    );
    assert_eq!(fake.verbs(), ["ADD a", "ADD b", "DEL b"]);
    assert!(r.cache.path("net", "c1", "eth0").unwrap().exists());
}

#[test]
fn check_floors_and_disable_check() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins();
    let r = runtime(&fake, tmp.path());
    let e = r.check(&list("0.3.1"), &rt()).unwrap_err();
    assert!(
        e.to_string().contains("does not support the CHECK command"),
        "{e}"
    );
    assert!(matches!(
        e,
        Error::Unsupported {
            command: Command::Check,
            ..
        }
    ));
    // "1.0" is not older than 0.4.0 (the version ordering drift bug).
    let mut l = list("1.0.0");
    l.cni_version = "1.0".into();
    r.check(&l, &rt()).unwrap();
    let mut l = list("1.0.0");
    l.disable_check = true;
    r.check(&l, &rt()).unwrap();
    assert_eq!(fake.verbs(), ["CHECK a", "CHECK b"]);
}

#[test]
fn missing_version_is_passed_as_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins();
    let r = runtime(&fake, tmp.path());
    let l = NetworkList::from_list_bytes(br#"{"name":"net","plugins":[{"type":"a"}]}"#).unwrap();
    let _ = r.add(&l, &rt());
    assert_eq!(fake.calls()[0].conf["cniVersion"], "");
}

#[test]
fn gc_deletes_unlisted_attachments_then_sends_gc() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins();
    let r = runtime(&fake, tmp.path());
    let l = list("1.1.0");
    for id in ["keep", "drop"] {
        r.add(
            &l,
            &RuntimeConf {
                container_id: id.into(),
                ..rt()
            },
        )
        .unwrap();
    }
    fake.calls.borrow_mut().clear();
    let keep = Attachment {
        container_id: "keep".into(),
        ifname: "eth0".into(),
    };
    r.gc(&l, &[keep]).unwrap();
    assert_eq!(fake.verbs(), ["DEL b", "DEL a", "GC a", "GC b"]);
    let calls = fake.calls();
    assert_eq!(calls[0].var("CNI_CONTAINERID"), "drop");
    assert_eq!(calls[0].conf["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
    let gc = &calls[2].conf;
    assert_eq!(
        gc["cni.dev/valid-attachments"],
        json!([{"containerID":"keep","ifname":"eth0"}])
    );
    assert_eq!(gc["cni.dev/attachments"], gc["cni.dev/valid-attachments"]);
    assert_eq!(calls[2].var("CNI_CONTAINERID"), "");
    assert!(r.cache.read("net", "keep", "eth0").unwrap().is_some());
    assert!(r.cache.read("net", "drop", "eth0").unwrap().is_none());
    drop(calls);
    // Before 1.1.0 only the DELs happen; disableGC does nothing.
    fake.calls.borrow_mut().clear();
    r.gc(&list("1.0.0"), &[]).unwrap();
    assert_eq!(fake.verbs(), ["DEL b", "DEL a"]);
    let mut l = list("1.1.0");
    l.disable_gc = true;
    fake.calls.borrow_mut().clear();
    r.gc(&l, &[]).unwrap();
    assert!(fake.verbs().is_empty());
}

#[test]
fn status_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins().failing("a", Command::Status);
    let r = runtime(&fake, tmp.path());
    assert!(!r.status(&list("1.0.0")).unwrap());
    assert!(fake.verbs().is_empty());
    let e = r.status(&list("1.1.0")).unwrap_err();
    assert!(e.to_string().contains("failed (status)"), "{e}");
    assert_eq!(fake.verbs(), ["STATUS a"]);
    let v = r.version("a").unwrap();
    assert_eq!(supported_versions(&v), ["0.3.1", "1.0.0"]);
    assert_eq!(fake.calls()[1].conf["cniVersion"], "1.1.0");
}

/// Runs `f` on a thread and fails the test when it takes longer than 10 s (a hang).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("hung on a planted file")
}

fn mkfifo(p: &Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn planted_fifo_and_dev_zero_entries_neither_hang_nor_exhaust_memory() {
    for plant in ["fifo", "zero"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let c = Cache::new(&dir);
        std::fs::create_dir_all(c.results_dir()).unwrap();
        let p = c.path("net", "c1", "eth0").unwrap();
        if plant == "fifo" {
            mkfifo(&p);
        } else {
            std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        }
        let (check, del, gc) = within(move || {
            let fake = plugins();
            let r = runtime(&fake, &dir);
            let check = r.check(&list("1.0.0"), &rt());
            let del = r.del(&list("1.0.0"), &rt());
            let gc = r.gc(&list("1.1.0"), &[]);
            (
                check.map_err(|e| e.to_string()),
                del.map_err(|e| e.to_string()),
                gc.is_ok(),
            )
        });
        let e = check.unwrap_err();
        assert!(
            e.contains("cached result") && (e.contains("not a regular file") || e.contains("symbolic link")),
            "{plant}: {e}"
        );
        // DEL goes on without the unreadable entry, as documented, and drops it.
        del.unwrap();
        assert!(gc, "{plant}");
        assert!(std::fs::symlink_metadata(&p).is_err(), "{plant}: entry kept");
    }
}

#[test]
fn names_are_checked_before_a_cache_path_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("pub/d");
    std::fs::create_dir_all(tmp.path().join("pub")).unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("results")).unwrap();
    let fake = plugins();
    let r = runtime(&fake, &cache);
    // name `../../pub/d`: the file would be `results/../../pub/d-c1-eth0`.
    std::fs::write(tmp.path().join("pub/d-c1-eth0"), "keep").unwrap();
    let bad_name = NetworkList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","name":"../../pub/d","plugins":[{"type":"a"}]}"#,
    )
    .unwrap();
    let e = r.del(&bad_name, &rt()).unwrap_err();
    assert!(e.to_string().contains("invalid network name"), "{e}");
    assert!(tmp.path().join("pub/d-c1-eth0").exists());
    // CNI_IFNAME `x/../../../pub/d`: refused before the plugins run or a file is removed.
    std::fs::write(&victim, "keep").unwrap();
    let mut bad_if = rt();
    bad_if.ifname = "x/../../../pub/d".into();
    for res in [r.del(&list("1.0.0"), &bad_if), r.check(&list("1.0.0"), &bad_if)] {
        assert!(res.unwrap_err().to_string().contains("interface name"));
    }
    assert!(victim.exists());
    assert!(fake.verbs().is_empty(), "{:?}", fake.verbs());
}

#[test]
fn errors_keep_their_kind_and_the_plugin_error() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = plugins().failing("b", Command::Del);
    let r = runtime(&fake, tmp.path());
    let l = list("1.1.0");
    r.add(&l, &rt()).unwrap();
    let errs = r.gc(&l, &[]).unwrap_err();
    assert_eq!(errs.len(), 1);
    let e = &errs[0];
    assert!(
        e.to_string().starts_with(
            "failed to delete stale attachment c1 eth0: plugin type=\"b\" failed (del): no luck"
        ),
        "{e}"
    );
    assert_eq!(e.plugin_error().map(|p| p.code), Some(11));
    assert!(matches!(
        e.cause(),
        Error::Plugin {
            command: Command::Del,
            ..
        }
    ));
    // A reply that is not a result.
    let junk = FakeExec::new(|_| b"{\"cniVersion\":\"9.9.9\"}".to_vec());
    let r = runtime(&junk, tmp.path());
    let e = r.add(&list("1.0.0"), &rt()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::BadReply {
                command: Command::Add,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("unsupported cniVersion \"9.9.9\""), "{e}");
    let e = r.version("a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "plugin \"a\" answered VERSION without a supportedVersions list: {\"cniVersion\":\"9.9.9\"}"
    );
}

/// ADD's result is normalised once: laying the model out again (what `cni add` did a second time
/// before it printed) changes no byte, in any version.
#[test]
fn one_normalisation_is_enough() {
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let tmp = tempfile::tempdir().unwrap();
        let fake = FakeExec::new(|call| {
            let v = call.conf["cniVersion"].as_str().unwrap().to_string();
            let r = if v.starts_with("0.1") || v.starts_with("0.2") {
                json!({"dns":{"nameservers":["10.0.0.1"]},"ip4":{"routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.0.0.1","ip":"10.0.0.2/24"},"cniVersion":v})
            } else {
                json!({"routes":[{"gw":"10.0.0.1","dst":"0.0.0.0/0"}],"ips":[{"gateway":"10.0.0.1","address":"10.0.0.2/24","interface":0,"version":"4"}],"interfaces":[{"sandbox":"/n","mac":"0a:58:0a:00:00:02","name":"eth0"}],"dns":{},"cniVersion":v})
            };
            serde_json::to_vec(&r).unwrap()
        });
        let r = runtime(&fake, tmp.path());
        let l = NetworkList::from_list_bytes(
            format!(r#"{{"cniVersion":"{version}","name":"net","plugins":[{{"type":"a"}}]}}"#).as_bytes(),
        )
        .unwrap();
        let added = r.add(&l, &rt()).unwrap().unwrap();
        let once = added.to_json().unwrap();
        let ver = Version::parse(version).unwrap();
        let v: Value = serde_json::from_slice(&once).unwrap();
        let twice = NetResult::from_json(&v, ver, "the result")
            .unwrap()
            .to_json(ver)
            .unwrap();
        assert_eq!(
            String::from_utf8(once).unwrap(),
            String::from_utf8(twice).unwrap(),
            "{version}"
        );
        // The cache holds the same result.
        let cached = r
            .cache
            .read("net", "c1", "eth0")
            .unwrap()
            .unwrap()
            .result
            .unwrap();
        assert_eq!(cached, v, "{version}");
    }
}
