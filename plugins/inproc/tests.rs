//! The bridge with host-local as its IPAM, entirely in-process: ADD, CHECK and DEL through
//! `skel::dispatch`, with the same configurations and environment as the black-box bridge tests, so
//! ADD must print exactly the golden files the binaries are held to (tests/golden/bridge/).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cni_core::output::Outcome;
use cni_core::version::SUPPORTED;
use serde_json::{Value, json};

use super::*;

const NET: &str = "bridgetest";

/// The black-box tests' environment: container ctr-1, eth0, netns /var/run/netns/test-1. CNI_PATH
/// names a directory that does not exist: nothing may be looked up on disk.
fn vars(command: &str) -> EnvMap {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/var/run/netns/test-1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent/sandbox-cni"),
    ]
    .into_iter()
    .map(|(k, v)| (OsString::from(k), OsString::from(v)))
    .collect()
}

fn call(plugin: &str, command: &str, conf: &Value) -> Outcome {
    InProcess
        .dispatch(plugin, &vars(command), conf.to_string().as_bytes())
        .unwrap_or_else(|| panic!("{plugin} is not an in-process plugin"))
}

fn json_of(out: &Outcome) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn assert_empty_success(out: &Outcome, what: &str) {
    assert!(
        out.exit == 0 && out.stdout.is_empty(),
        "{what}: exit {}, stdout {}",
        out.exit,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// tests/it/bridge.rs's `single`: one IPv4 range, isGateway, a default route without "gw".
fn single(version: &str, data: &Path) -> Value {
    json!({
        "cniVersion": version, "name": NET, "type": "bridge", "bridge": "cni0", "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": data, "ranges": [[{"subnet": "10.1.0.0/24"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}
    })
}

/// tests/it/bridge.rs's `dual`: dual stack, isDefaultGateway, a non-default IPAM route.
fn dual(version: &str, data: &Path) -> Value {
    json!({
        "cniVersion": version, "name": NET, "type": "bridge", "bridge": "br-dual", "isDefaultGateway": true,
        "ipam": {"type": "host-local", "dataDir": data,
                 "ranges": [[{"subnet": "10.2.0.0/24"}], [{"subnet": "fd02::/64"}]],
                 "routes": [{"dst": "10.99.0.0/16"}]}
    })
}

/// The golden file the bridge binary's ADD output is compared with (stdout plus one newline).
fn golden(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/bridge")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The addresses host-local holds for `NET` in `data` (one file per address).
fn reserved(data: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(data.join(NET))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn bridge_and_host_local_add_check_del_in_process_as_the_binaries_do() {
    type Make = fn(&str, &Path) -> Value;
    let cases: [(&str, Make, &[&str]); 2] = [
        ("single", single, &["10.1.0.2"]),
        ("dual", dual, &["10.2.0.2", "fd02::2"]),
    ];
    for version in SUPPORTED {
        for (case, make, addresses) in cases {
            let dir = tempfile::tempdir().unwrap();
            let conf = make(version, dir.path());
            let add = call("bridge", "ADD", &conf);
            assert_eq!(
                add.exit,
                0,
                "{case} {version}: {}",
                String::from_utf8_lossy(&add.stdout)
            );
            let mut printed = add.stdout.clone();
            printed.push(b'\n');
            let name = format!("add-{case}-{version}.json");
            assert!(
                printed == golden(&name),
                "in-process ADD differs from golden {name}: {}",
                String::from_utf8_lossy(&add.stdout)
            );
            assert_eq!(reserved(dir.path()), *addresses, "{case} {version}");

            if version != "0.1.0" && version != "0.2.0" && version != "0.3.0" && version != "0.3.1" {
                let mut checked = conf.clone();
                checked["prevResult"] = json_of(&add);
                assert_empty_success(&call("bridge", "CHECK", &checked), "CHECK");
                // The IPAM's CHECK ran too: without the reservation it fails, and its error comes back.
                call("host-local", "DEL", &conf);
                let e = json_of(&call("bridge", "CHECK", &checked));
                assert_eq!(e["code"], 102, "{e}");
                assert!(e["msg"].as_str().unwrap().starts_with("host-local: "), "{e}");
                call("bridge", "ADD", &conf);
            }
            assert_empty_success(&call("bridge", "DEL", &conf), "DEL");
            assert!(reserved(dir.path()).is_empty(), "DEL left reservations behind");
            assert_empty_success(&call("bridge", "DEL", &conf), "a second DEL");
        }
    }
}

#[test]
fn an_add_failing_after_the_allocation_releases_it_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut conf = single("1.0.0", dir.path());
    conf["ipam"]["routes"] = json!([{"dst": "10.9.0.0/16", "gw": "192.168.7.1"}]);
    let e = json_of(&call("bridge", "ADD", &conf));
    assert_eq!(e["code"], 7, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("192.168.7.1"), "{e}");
    assert!(
        dir.path().join(NET).is_dir(),
        "host-local ran and opened its store"
    );
    assert!(reserved(dir.path()).is_empty(), "the allocation was not released");
}

#[test]
fn ipam_lookup_and_status_go_through_the_exec() {
    let dir = tempfile::tempdir().unwrap();
    let conf = single("1.1.0", dir.path());
    assert_empty_success(&call("bridge", "STATUS", &conf), "STATUS");
    assert_empty_success(
        &call(
            "bridge",
            "GC",
            &json!({
                "cniVersion": "1.1.0", "name": NET, "type": "bridge",
                "ipam": conf["ipam"], "cni.dev/valid-attachments": []
            }),
        ),
        "GC",
    );

    // An IPAM type that is no plugin of ours: the real lookup's error, in ADD and in STATUS.
    let mut other = conf.clone();
    other["ipam"]["type"] = json!("dhcp");
    let e = json_of(&call("bridge", "ADD", &other));
    assert_eq!(e["code"], 7, "{e}");
    assert_eq!(
        e["msg"],
        "failed to find plugin \"dhcp\" in path [/nonexistent/sandbox-cni]"
    );
    let e = json_of(&call("bridge", "STATUS", &other));
    assert_eq!(e["code"], 50, "{e}");
}

#[test]
fn gc_without_a_list_releases_nothing_and_an_empty_list_everything() {
    let dir = tempfile::tempdir().unwrap();
    let conf = single("1.1.0", dir.path());
    assert_eq!(call("bridge", "ADD", &conf).exit, 0, "ADD");
    assert_eq!(reserved(dir.path()).len(), 1);
    // Neither cni.dev/valid-attachments nor cni.dev/attachments (libcni's GCNetworkList without
    // GCArgs): success, and the reservation stays.
    assert_empty_success(&call("bridge", "GC", &conf), "GC without a list");
    assert_eq!(reserved(dir.path()).len(), 1, "GC without a list released");
    let mut empty = conf.clone();
    empty["cni.dev/valid-attachments"] = json!([]);
    assert_empty_success(&call("bridge", "GC", &empty), "GC with an empty list");
    assert!(reserved(dir.path()).is_empty(), "GC with an empty list kept");
}

#[test]
fn every_plugin_runs_in_process_by_its_type() {
    let path = [PathBuf::from("/nonexistent")];
    let env: Vec<(OsString, OsString)> = vars("VERSION").into_iter().collect();
    for name in k3s_sandbox::cni::plugins::ALL {
        let exe = InProcess.find(name, &path).unwrap();
        let out = InProcess.exec(&exe, &env, b"{}").unwrap();
        assert!(out.success, "{name}: {}", out.status);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["supportedVersions"].as_array().map(Vec::len),
            Some(SUPPORTED.len())
        );
        let about = InProcess.with_plugin(name, |p| p.name()).unwrap();
        assert_eq!(about, name);
    }
    assert!(InProcess.with_plugin("dhcp", |p| p.name()).is_none());
    assert_eq!(
        InProcess
            .exec(Path::new("/opt/cni/bin/dhcp"), &env, b"{}")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // The real lookup's errors for what cannot be ours.
    assert_eq!(InProcess.find("../bridge", &path).unwrap_err().code, 7);
    assert_eq!(InProcess.find("bridge", &[]).unwrap_err().code, 4);
}

/// An `Exec` that notes the environment of every call, then runs it in-process.
#[derive(Default)]
struct Noting(std::cell::RefCell<Vec<Vec<(OsString, OsString)>>>);

impl Exec for Noting {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        self.0.borrow_mut().push(env.to_vec());
        InProcess.exec(exe, env, stdin)
    }
    fn find(&self, name: &str, path: &[PathBuf]) -> CniResult<PathBuf> {
        InProcess.find(name, path)
    }
}

#[test]
fn an_in_process_bridge_passes_on_the_environment_it_was_given_not_this_processes() {
    let dir = tempfile::tempdir().unwrap();
    let conf = single("1.0.0", dir.path()).to_string();
    let mut given = vars("ADD");
    given.insert("SANDBOX_CNI_GIVEN".into(), "in the dispatch map".into());
    // This test process's own variables (PATH and cargo's at least), none of which the map holds.
    let ours: Vec<OsString> = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| !given.contains_key(k))
        .collect();
    assert!(!ours.is_empty(), "the test process has no environment to leak");

    let noting = Noting::default();
    let bridge = Bridge::new(&noting);
    let add = dispatch(&bridge, &given, conf.as_bytes());
    assert_eq!(add.exit, 0, "{}", String::from_utf8_lossy(&add.stdout));
    given.insert("CNI_COMMAND".into(), "DEL".into());
    assert_empty_success(&dispatch(&bridge, &given, conf.as_bytes()), "DEL");

    let calls = noting.0.borrow();
    assert_eq!(calls.len(), 2, "host-local ADD and DEL");
    for (env, verb) in calls.iter().zip(["ADD", "DEL"]) {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        // The map's variable other than the six CNI_* ones is passed on, the six are the request's.
        assert_eq!(get("SANDBOX_CNI_GIVEN"), Some("in the dispatch map".into()));
        assert_eq!(get("CNI_COMMAND"), Some(verb.into()));
        assert_eq!(get("CNI_CONTAINERID"), Some("ctr-1".into()));
        assert_eq!(env.len(), 7, "the six CNI_* variables and the one given: {env:?}");
        for k in &ours {
            assert!(env.iter().all(|(n, _)| n != k), "{k:?} leaked into {verb}");
        }
    }
}
