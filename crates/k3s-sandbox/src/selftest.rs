//! A small CNI runtime run the way containerd does through go-cni and libcni (the rules themselves are
//! cni-runtime's): the loopback network (cniVersion 0.3.1, `lo`), then the network under test on `eth0`;
//! CHECK with the cached result; DEL in reverse order, twice; then DEL of the loopback network. On top,
//! go-cni's result rules on the raw JSON the last plugin printed. No kernel networking is involved, so
//! it runs anywhere, without privileges.

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cni_core::exec::{Exec, ExecOutput};
use cni_runtime::cache::Cache;
use cni_runtime::{NetworkList, Runtime, RuntimeConf};
use serde_json::{Map, Value, json};

use crate::error::{Failure, Result};
use crate::util;

/// Inputs of one self-test run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The network list to test.
    pub list: NetworkList,
    pub bin_dir: PathBuf,
    /// Throwaway host-local data dir; written into every `ipam.dataDir`.
    pub ipam_dir: PathBuf,
    /// Throwaway libcni result cache.
    pub cache_dir: PathBuf,
    pub container_id: String,
    pub netns: PathBuf,
}

/// What the self-test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Addresses (CIDR form) attached to eth0, the first IPv4 one first.
    pub pod_ips: Vec<String>,
}

impl Report {
    /// The pod IP containerd would pick (first IPv4, else first), no prefix.
    pub fn pod_ip(&self) -> Option<&str> {
        self.pod_ips.first().map(|a| a.split('/').next().unwrap_or(a))
    }
}

/// An [`Exec`] that reports every plugin run that succeeded, one line each.
struct Logged<'a> {
    inner: &'a dyn Exec,
    log: RefCell<&'a mut dyn FnMut(&str)>,
}

impl Exec for Logged<'_> {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let out = self.inner.exec(exe, env, stdin)?;
        if out.success {
            let var = |k: &str| {
                env.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            let conf: Value = serde_json::from_slice(stdin).unwrap_or_default();
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (self.log.borrow_mut())(&format!(
                "ok   {} {name} (network {}, {}, cniVersion {})",
                var("CNI_COMMAND"),
                conf["name"].as_str().unwrap_or_default(),
                var("CNI_IFNAME"),
                conf["cniVersion"].as_str().unwrap_or_default()
            ));
        }
        Ok(out)
    }

    fn find(&self, name: &str, path: &[PathBuf]) -> cni_core::CniResult<PathBuf> {
        self.inner.find(name, path)
    }
}

/// Capability arguments as containerd passes them for a pod with one
/// hostPort (go-cni's structs have no JSON tags, hence the capitals).
fn runtime_capability_args() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "portMappings".into(),
        json!([{ "HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": "" }]),
    );
    m.insert("io.kubernetes.cri.pod-annotations".into(), json!({}));
    m
}

/// The attachment as containerd describes a pod to the plugins.
fn attachment(plan: &Plan, ifname: &str) -> RuntimeConf {
    let id = &plan.container_id;
    let tail = &id[id.len().saturating_sub(12)..];
    let args = [
        ("IgnoreUnknown", "1".to_string()),
        ("K8S_POD_NAMESPACE", "k3s-sandbox".to_string()),
        ("K8S_POD_NAME", "selftest".to_string()),
        ("K8S_POD_INFRA_CONTAINER_ID", id.clone()),
        ("K8S_POD_UID", format!("00000000-0000-4000-8000-{tail}")),
    ];
    RuntimeConf {
        container_id: id.clone(),
        netns: plan.netns.to_string_lossy().into_owned(),
        ifname: ifname.to_string(),
        args: args.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        capability_args: runtime_capability_args(),
    }
}

fn failed(e: cni_runtime::Error, list: &NetworkList) -> Failure {
    Failure::new(format!(
        "network {} (cniVersion {}): {}",
        list.name, list.cni_version, e.message
    ))
}

/// ADD, with the result checked to be in the requested version (containerd reads it at that version).
fn add(r: &Runtime, list: &NetworkList, rt: &RuntimeConf) -> Result<Value> {
    let (_, raw) = r.add_raw(list, rt).map_err(|e| failed(e, list))?;
    let raw = raw.ok_or_else(|| Failure::new(format!("network {} gave no result", list.name)))?;
    let got = raw
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or(&list.cni_version);
    if got != list.cni_version {
        return Err(Failure::new(format!(
            "network {}: the result says cniVersion {got}, but the request was {}; libcni (containerd) \
             rejects results in another version",
            list.name, list.cni_version
        )));
    }
    Ok(raw)
}

/// Indexes of interfaces named `name`.
fn interface_index(result: &Value, name: &str) -> Option<usize> {
    result
        .get("interfaces")?
        .as_array()?
        .iter()
        .position(|i| i.get("name").and_then(Value::as_str) == Some(name))
}

/// Apply go-cni's rules to the loopback result: an address without an
/// interface index is attributed to eth0 and would become the pod IP.
fn validate_loopback(result: &Value) -> Result<()> {
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let addr = ip.get("address").and_then(Value::as_str).unwrap_or("?");
        match ip.get("interface").and_then(Value::as_u64) {
            None => {
                return Err(Failure::new(format!(
                    "the loopback result lists {addr} without an interface index; containerd would \
                     take it as the pod IP"
                )));
            }
            Some(i) if i as usize >= ifaces => {
                return Err(Failure::new(format!(
                    "the loopback result gives {addr} interface index {i}, but has only {ifaces} \
                     interfaces"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The eth0 addresses of the final result, checked the way go-cni and
/// containerd use them.
pub fn pod_addresses(result: &Value, ifname: &str) -> Result<Vec<String>> {
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let idx = interface_index(result, ifname);
    if let Some(i) = idx {
        let iface = &result["interfaces"][i];
        if iface
            .get("sandbox")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(Failure::new(format!(
                "interface {ifname} in the result has no `sandbox` (the netns path)"
            )));
        }
    }
    let mut v4 = Vec::new();
    let mut other = Vec::new();
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let addr = ip
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::new(format!("an ips[] entry has no address: {ip}")))?;
        cni_runtime::parse_cidr(addr).map_err(|e| Failure::new(format!("ips[] address: {e}")))?;
        let on_pod_iface = match ip.get("interface") {
            None | Some(Value::Null) => true, // go-cni attributes it to eth0
            Some(i) => {
                let i = i.as_u64().ok_or_else(|| {
                    Failure::new(format!("ips[] entry {addr} has an invalid interface index {i}"))
                })? as usize;
                if i >= ifaces {
                    return Err(Failure::new(format!(
                        "ips[] entry {addr} points at interface {i}, but the result has only \
                         {ifaces} interfaces (go-cni would crash)"
                    )));
                }
                Some(i) == idx
            }
        };
        if on_pod_iface {
            if addr.contains(':') {
                other.push(addr.to_string())
            } else {
                v4.push(addr.to_string())
            }
        }
    }
    v4.extend(other);
    if v4.is_empty() {
        return Err(Failure::new(format!(
            "the result has no IP address on {ifname}; containerd would fail with \
             \"failed to find network info for sandbox\": {result}"
        )));
    }
    Ok(v4)
}

/// host-local allocation files (`<dataDir>/<network>/<ip>`) for `addrs`.
fn allocation_files(plan: &Plan, list: &NetworkList, addrs: &[String]) -> Vec<PathBuf> {
    if !list.plugin_types().iter().any(|t| t == "host-local") {
        return Vec::new();
    }
    let net_dir = plan.ipam_dir.join(&list.name);
    addrs
        .iter()
        .map(|a| net_dir.join(a.split('/').next().unwrap_or(a)))
        .collect()
}

/// Run the whole sequence. `log` receives one line per completed plugin run.
pub fn run(exec: &dyn Exec, plan: &Plan, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut list = plan.list.clone();
    list.set_ipam_data_dir(&plan.ipam_dir);
    let lo = NetworkList::loopback();
    let logged = Logged {
        inner: exec,
        log: RefCell::new(log),
    };
    let r = Runtime {
        exec: &logged,
        path: vec![plan.bin_dir.clone()],
        cache: Cache::new(&plan.cache_dir),
        base_env: Vec::new(),
    };
    let (lo_rt, eth0) = (attachment(plan, "lo"), attachment(plan, "eth0"));

    let lo_result = add(&r, &lo, &lo_rt)?;
    if let Err(e) = validate_loopback(&lo_result) {
        let _ = r.del(&lo, &lo_rt);
        return Err(e);
    }
    let result = match add(&r, &list, &eth0) {
        Ok(v) => v,
        Err(e) => {
            // containerd tears a failed setup down again.
            let _ = r.del(&list, &eth0);
            let _ = r.del(&lo, &lo_rt);
            return Err(e);
        }
    };
    let checked = (|| -> Result<Vec<String>> {
        let addrs = pod_addresses(&result, "eth0")?;
        for f in allocation_files(plan, &list, &addrs) {
            if !f.exists() {
                return Err(Failure::new(format!(
                    "host-local reported {} but did not record it at {}",
                    f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                    f.display()
                )));
            }
        }
        // CHECK of the loopback network is skipped: libcni refuses CHECK before 0.4.0.
        if cni_runtime::version::at_least(&list.cni_version, "0.4.0").unwrap_or(false) {
            r.check(&list, &eth0).map_err(|e| failed(e, &list))?;
        }
        Ok(addrs)
    })();
    let del = r.del(&list, &eth0).map_err(|e| failed(e, &list));
    // The cache entry is gone after the first DEL; the repeat runs without prevResult, as containerd's
    // retried teardown does.
    let del_again = del.as_ref().ok().map(|_| r.del(&list, &eth0));
    let del_lo = r.del(&lo, &lo_rt).map_err(|e| failed(e, &lo));
    let addrs = checked?;
    del?;
    if let Some(again) = del_again {
        again.map_err(|e| Failure::new(format!("a repeated DEL must succeed: {}", e.message)))?;
    }
    del_lo?;
    for f in allocation_files(plan, &list, &addrs) {
        if f.exists() {
            return Err(Failure::new(format!(
                "DEL did not release the host-local allocation {}",
                f.display()
            )));
        }
    }
    Ok(Report { pod_ips: addrs })
}

/// A container ID in the shape containerd uses (64 hex digits).
pub fn throwaway_container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    util::sha256_hex(format!("k3s-sandbox-selftest-{}-{nanos}", std::process::id()).as_bytes())
}

/// Set up a throwaway plan in a fresh temp dir under `tmp_parent`.
pub fn plan_in(tmp_parent: &Path, list: NetworkList, bin_dir: &Path) -> Result<(Plan, PathBuf)> {
    let work = util::create_unique_dir(tmp_parent, "k3s-sandbox-selftest-")
        .map_err(|e| Failure::io("create a temporary directory in", tmp_parent, &e))?;
    let netns = work.join("netns");
    std::fs::write(&netns, b"").map_err(|e| Failure::io("create", &netns, &e))?;
    Ok((
        Plan {
            list,
            bin_dir: bin_dir.to_path_buf(),
            ipam_dir: work.join("ipam"),
            cache_dir: work.join("cache"),
            container_id: throwaway_container_id(),
            netns,
        },
        work,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An in-memory plugin set: loopback, a bridge that "allocates" through
    /// a host-local-style file, and pass-through chained plugins.
    /// (plugin type, CNI_COMMAND, CNI_IFNAME, stdin config, environment)
    type Call = (String, String, String, Value, HashMap<String, String>);

    #[derive(Default)]
    struct FakeRunner {
        calls: RefCell<Vec<Call>>,
        fail: Option<(String, String)>,
        loopback_without_index: bool,
        wrong_version: bool,
        forget_release: bool,
    }

    impl Exec for FakeRunner {
        fn find(&self, name: &str, _: &[PathBuf]) -> cni_core::CniResult<PathBuf> {
            Ok(PathBuf::from(name))
        }

        fn exec(
            &self,
            exe: &Path,
            env: &[(OsString, OsString)],
            stdin: &[u8],
        ) -> std::io::Result<ExecOutput> {
            let t = exe.to_str().unwrap();
            let env: HashMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
                .collect();
            let conf: Value = serde_json::from_slice(stdin).unwrap();
            let cmd = env["CNI_COMMAND"].clone();
            self.calls.borrow_mut().push((
                t.to_string(),
                cmd.clone(),
                env["CNI_IFNAME"].clone(),
                conf.clone(),
                env.clone(),
            ));
            let ok = |stdout: Vec<u8>| {
                Ok(ExecOutput {
                    success: true,
                    stdout,
                    stderr: vec![],
                    status: "exit status: 0".into(),
                })
            };
            if self.fail.as_ref().is_some_and(|(ft, fc)| ft == t && *fc == cmd) {
                return Ok(ExecOutput {
                    success: false,
                    stdout: br#"{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"really"}"#
                        .to_vec(),
                    stderr: vec![],
                    status: "exit status: 1".into(),
                });
            }
            let version = conf["cniVersion"].as_str().unwrap().to_string();
            let alloc = || {
                let dir = PathBuf::from(conf["ipam"]["dataDir"].as_str().unwrap())
                    .join(conf["name"].as_str().unwrap());
                (dir.clone(), dir.join("10.42.0.2"))
            };
            match (t, cmd.as_str()) {
                ("loopback", "ADD") => {
                    let ip = if self.loopback_without_index {
                        json!({"address":"127.0.0.1/8"})
                    } else {
                        json!({"address":"127.0.0.1/8","interface":0})
                    };
                    ok(serde_json::to_vec(&json!({"cniVersion": version, "interfaces":[{"name":"lo","sandbox": env["CNI_NETNS"]}], "ips":[ip]})).unwrap())
                }
                ("bridge", "ADD") => {
                    let (dir, file) = alloc();
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&file, &env["CNI_CONTAINERID"]).unwrap();
                    let v = if self.wrong_version {
                        "0.4.0".to_string()
                    } else {
                        version
                    };
                    ok(serde_json::to_vec(&json!({
                        "cniVersion": v,
                        "interfaces":[{"name":"cni0"},{"name":"veth1"},{"name":"eth0","sandbox":env["CNI_NETNS"]}],
                        "ips":[{"address":"10.42.0.2/24","gateway":"10.42.0.1","interface":2}]
                    })).unwrap())
                }
                ("bridge", "DEL") => {
                    if !self.forget_release {
                        let _ = std::fs::remove_file(alloc().1);
                    }
                    ok(vec![])
                }
                (_, "ADD") => ok(serde_json::to_vec(&conf["prevResult"]).unwrap()),
                _ => ok(vec![]),
            }
        }
    }

    fn plan(dir: &Path) -> Plan {
        Plan {
            list: NetworkList::from_list_bytes(crate::conflist::TEMPLATE.as_bytes()).unwrap(),
            bin_dir: dir.join("bin"),
            ipam_dir: dir.join("ipam"),
            cache_dir: dir.join("cache"),
            container_id: throwaway_container_id(),
            netns: dir.join("netns"),
        }
    }

    fn summary(r: &FakeRunner) -> Vec<String> {
        r.calls
            .borrow()
            .iter()
            .map(|(t, c, i, _, _)| format!("{c} {t} {i}"))
            .collect()
    }

    #[test]
    fn drives_the_chain_like_containerd() {
        let tmp = tempfile::tempdir().unwrap();
        let p = plan(tmp.path());
        let r = FakeRunner::default();
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
        let calls = r.calls.borrow();
        assert_eq!(lines.len(), calls.len());
        assert!(
            lines[1].starts_with("ok   ADD bridge (network sandbox-cni, eth0, cniVersion 1.1.0)"),
            "{}",
            lines[1]
        );
        let lo = &calls[0].3;
        assert_eq!(lo["cniVersion"], "0.3.1");
        assert_eq!(lo["name"], "cni-loopback");
        let bridge_add = &calls[1].3;
        assert!(bridge_add.get("prevResult").is_none());
        assert_eq!(bridge_add["name"], "sandbox-cni");
        assert_eq!(bridge_add["ipam"]["dataDir"], p.ipam_dir.to_str().unwrap());
        let portmap_add = &calls[2].3;
        assert_eq!(portmap_add["prevResult"]["ips"][0]["address"], "10.42.0.2/24");
        assert_eq!(portmap_add["runtimeConfig"]["portMappings"][0]["HostPort"], 18080);
        assert!(bridge_add.get("runtimeConfig").is_none());
        // CHECK and the first DEL get the cached result; the repeated DEL finds no cache entry.
        for (_, cmd, _, conf, _) in &calls[3..7] {
            assert_eq!(conf["prevResult"]["ips"][0]["address"], "10.42.0.2/24", "{cmd}");
        }
        for (_, _, _, conf, _) in &calls[7..] {
            assert!(conf.get("prevResult").is_none());
        }
        let env = &calls[1].4;
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
        let r = FakeRunner::default();
        let _ = run(&r, &p, &mut |_| {});
        let calls = r.calls.borrow();
        assert_eq!(calls[1].0, "bridge");
        assert_eq!(calls[1].3["cniVersion"], "");
    }

    #[test]
    fn a_failing_add_is_reported_with_the_plugin_error_and_torn_down() {
        let tmp = tempfile::tempdir().unwrap();
        let r = FakeRunner {
            fail: Some(("portmap".into(), "ADD".into())),
            ..Default::default()
        };
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
        let r = FakeRunner {
            loopback_without_index: true,
            ..Default::default()
        };
        let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message().contains("pod IP"), "{}", err.message());
    }

    #[test]
    fn result_version_must_match_the_request() {
        let tmp = tempfile::tempdir().unwrap();
        let r = FakeRunner {
            wrong_version: true,
            ..Default::default()
        };
        let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message().contains("cniVersion 0.4.0"), "{}", err.message());
    }

    #[test]
    fn unreleased_allocation_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let r = FakeRunner {
            forget_release: true,
            ..Default::default()
        };
        let err = run(&r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message().contains("did not release"), "{}", err.message());
    }

    #[test]
    fn a_failing_del_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let r = FakeRunner {
            fail: Some(("bridge".into(), "DEL".into())),
            ..Default::default()
        };
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
        let no_sandbox =
            json!({"interfaces":[{"name":"eth0"}], "ips":[{"address":"10.0.0.2/24","interface":0}]});
        assert!(
            pod_addresses(&no_sandbox, "eth0")
                .unwrap_err()
                .message()
                .contains("sandbox")
        );
    }
}
