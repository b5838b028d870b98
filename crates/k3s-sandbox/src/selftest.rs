//! A small CNI runtime that drives the installed plugins the way containerd
//! does through go-cni and libcni: the loopback network (cniVersion 0.3.1,
//! `lo`), then the default conflist on `eth0` with prevResult chaining; CHECK
//! in list order with the final result; DEL in reverse order. No kernel
//! networking is involved, so it runs anywhere, without privileges.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::error::{Failure, Result};
use crate::util;

/// What running a plugin produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// "exited with status 1" and the like.
    pub end: String,
}

/// Executes a plugin by type. The real implementation runs
/// `<bin-dir>/<type>`; tests use an in-memory fake.
pub trait PluginRunner {
    fn run(
        &mut self,
        plugin_type: &str,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> std::result::Result<RunOutput, String>;
}

/// Runs plugin executables from one directory, like libcni with CNI_PATH.
pub struct ExecRunner {
    pub bin_dir: PathBuf,
    pub timeout: Duration,
}

impl PluginRunner for ExecRunner {
    fn run(
        &mut self,
        plugin_type: &str,
        env: &[(String, String)],
        stdin: &[u8],
    ) -> std::result::Result<RunOutput, String> {
        if plugin_type.contains('/') || plugin_type.is_empty() {
            return Err(format!("invalid plugin type {plugin_type:?}"));
        }
        let path = self.bin_dir.join(plugin_type);
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(format!(
                "failed to find plugin {plugin_type:?} in path [{}]; run ./install.sh or \
                 `k3s-sandbox up --plugins-from DIR`",
                self.bin_dir.display()
            ));
        }
        let out = util::run_with_timeout(&path, &[] as &[&str], env, stdin, self.timeout)
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        Ok(RunOutput {
            success: out.success(),
            end: out.describe_end(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// Inputs of one self-test run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The network list to test (already normalised to a conflist).
    pub list: Value,
    pub bin_dir: PathBuf,
    /// Throwaway host-local data dir; written into every `ipam.dataDir`.
    pub ipam_dir: PathBuf,
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

/// containerd's built-in loopback network.
pub fn loopback_list() -> Value {
    json!({
        "cniVersion": "0.3.1",
        "name": "cni-loopback",
        "plugins": [{ "type": "loopback" }]
    })
}

/// `a >= b` for dotted versions (missing parts count as 0).
pub fn version_at_least(a: &str, b: &str) -> bool {
    let parse = |s: &str| -> Vec<u32> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut x, mut y) = (parse(a), parse(b));
    let n = x.len().max(y.len()).max(3);
    x.resize(n, 0);
    y.resize(n, 0);
    x >= y
}

struct Driver<'a> {
    runner: &'a mut dyn PluginRunner,
    plan: &'a Plan,
    log: &'a mut dyn FnMut(&str),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verb {
    Add,
    Check,
    Del,
}

impl Verb {
    fn env(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Check => "CHECK",
            Verb::Del => "DEL",
        }
    }
}

fn list_version(list: &Value) -> String {
    list.get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.3.1")
        .to_string()
}

fn list_name(list: &Value) -> String {
    list.get("name").and_then(Value::as_str).unwrap_or("").to_string()
}

fn plugins(list: &Value) -> Vec<Value> {
    list.get("plugins")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

impl Driver<'_> {
    fn env(&self, verb: Verb, ifname: &str) -> Vec<(String, String)> {
        let id = &self.plan.container_id;
        vec![
            ("CNI_COMMAND".into(), verb.env().into()),
            ("CNI_CONTAINERID".into(), id.clone()),
            ("CNI_NETNS".into(), self.plan.netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME".into(), ifname.into()),
            (
                "CNI_ARGS".into(),
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=k3s-sandbox;K8S_POD_NAME=selftest;\
                     K8S_POD_INFRA_CONTAINER_ID={id};K8S_POD_UID=00000000-0000-4000-8000-{}",
                    &id[id.len().saturating_sub(12)..]
                ),
            ),
            (
                "CNI_PATH".into(),
                self.plan.bin_dir.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// The config one plugin receives: its object plus list name and
    /// version, runtimeConfig for the capabilities it declares, prevResult.
    fn plugin_config(&self, list: &Value, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        let Some(obj) = conf.as_object_mut() else {
            return conf;
        };
        obj.insert("name".into(), Value::String(list_name(list)));
        obj.insert("cniVersion".into(), Value::String(list_version(list)));
        // libcni adds runtimeConfig for ADD, CHECK and DEL alike.
        {
            let runtime = runtime_capability_args();
            let declared: Vec<String> = plugin
                .get("capabilities")
                .and_then(Value::as_object)
                .map(|caps| {
                    caps.iter()
                        .filter(|(_, v)| v.as_bool() == Some(true))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut rc = Map::new();
            for cap in declared {
                if let Some(v) = runtime.get(&cap) {
                    rc.insert(cap, v.clone());
                }
            }
            if !rc.is_empty() {
                obj.insert("runtimeConfig".into(), Value::Object(rc));
            }
        }
        if let Some(p) = prev {
            obj.insert("prevResult".into(), p.clone());
        }
        conf
    }

    fn exec(
        &mut self,
        list: &Value,
        plugin: &Value,
        verb: Verb,
        ifname: &str,
        prev: Option<&Value>,
    ) -> Result<Option<Value>> {
        let ptype = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let conf = self.plugin_config(list, plugin, prev);
        let stdin = serde_json::to_vec(&conf)
            .map_err(|e| Failure::new(format!("cannot encode the {ptype} config: {e}")))?;
        let env = self.env(verb, ifname);
        let what = format!(
            "{} {ptype} (network {}, {ifname}, cniVersion {})",
            verb.env(),
            list_name(list),
            list_version(list)
        );
        let out = self
            .runner
            .run(&ptype, &env, &stdin)
            .map_err(|e| Failure::new(format!("{what}: {e}")))?;
        if !out.success {
            return Err(Failure::new(format!("{what} failed: {}", plugin_error(&out))));
        }
        let result = if verb == Verb::Add {
            let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
                Failure::new(format!(
                    "{what}: the plugin exited 0 but its stdout is not one JSON result ({e}): {}",
                    String::from_utf8_lossy(&out.stdout).trim()
                ))
            })?;
            if !v.is_object() {
                return Err(Failure::new(format!(
                    "{what}: the result is not a JSON object: {v}"
                )));
            }
            let want = list_version(list);
            let got = v
                .get("cniVersion")
                .and_then(Value::as_str)
                .unwrap_or(&want)
                .to_string();
            if got != want {
                return Err(Failure::new(format!(
                    "{what}: the result says cniVersion {got}, but the request was {want}; \
                     libcni (containerd) rejects results in another version"
                )));
            }
            Some(v)
        } else {
            None
        };
        (self.log)(&format!("ok   {what}"));
        Ok(result)
    }

    /// ADD every plugin of the list in order, chaining results.
    fn add_list(&mut self, list: &Value, ifname: &str) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(list) {
            let r = self.exec(list, &plugin, Verb::Add, ifname, prev.as_ref())?;
            prev = r;
        }
        prev.ok_or_else(|| Failure::new(format!("network {} has no plugins", list_name(list))))
    }

    fn check_list(&mut self, list: &Value, ifname: &str, result: &Value) -> Result<bool> {
        if !version_at_least(&list_version(list), "0.4.0") {
            return Ok(false);
        }
        for plugin in plugins(list) {
            self.exec(list, &plugin, Verb::Check, ifname, Some(result))?;
        }
        Ok(true)
    }

    /// DEL in reverse order; prevResult only for 0.4.0 and later (libcni).
    fn del_list(&mut self, list: &Value, ifname: &str, result: Option<&Value>) -> Result<()> {
        let prev = result.filter(|_| version_at_least(&list_version(list), "0.4.0"));
        for plugin in plugins(list).iter().rev() {
            self.exec(list, plugin, Verb::Del, ifname, prev)?;
        }
        Ok(())
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

/// An error object from stdout, else stderr, else how the plugin ended.
fn plugin_error(out: &RunOutput) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
        && let Some(msg) = v.get("msg").and_then(Value::as_str)
    {
        let code = v.get("code").map(|c| c.to_string()).unwrap_or_else(|| "?".into());
        let details = v
            .get("details")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(|d| format!("; {d}"))
            .unwrap_or_default();
        return format!("code {code}: {msg}{details} ({})", out.end);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = if stdout.trim().is_empty() {
        stderr.trim()
    } else {
        stdout.trim()
    };
    if text.is_empty() {
        out.end.clone()
    } else {
        format!("{} ({})", text, out.end)
    }
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
        crate::conflist::parse_cidr(addr).map_err(|e| Failure::new(format!("ips[] address: {e}")))?;
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
fn allocation_files(plan: &Plan, list: &Value, addrs: &[String]) -> Vec<PathBuf> {
    let uses_host_local = plugins(list)
        .iter()
        .any(|p| p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str) == Some("host-local"));
    if !uses_host_local {
        return Vec::new();
    }
    let net_dir = plan.ipam_dir.join(list_name(list));
    addrs
        .iter()
        .map(|a| net_dir.join(a.split('/').next().unwrap_or(a)))
        .collect()
}

/// Run the whole sequence. `log` receives one line per completed step.
pub fn run(runner: &mut dyn PluginRunner, plan: &Plan, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut list = plan.list.clone();
    crate::conflist::set_ipam_data_dir(&mut list, &plan.ipam_dir);
    let lo = loopback_list();
    let mut d = Driver { runner, plan, log };

    let lo_result = d.add_list(&lo, "lo")?;
    if let Err(e) = validate_loopback(&lo_result) {
        let _ = d.del_list(&lo, "lo", None);
        return Err(e);
    }
    let result = match d.add_list(&list, "eth0") {
        Ok(r) => r,
        Err(e) => {
            // containerd tears a failed setup down again.
            let _ = d.del_list(&list, "eth0", None);
            let _ = d.del_list(&lo, "lo", None);
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
        // CHECK of the loopback network is skipped: libcni refuses CHECK
        // for configs older than 0.4.0 (and so would skip a 0.3.1 list).
        d.check_list(&list, "eth0", &result)?;
        Ok(addrs)
    })();
    let del = d.del_list(&list, "eth0", Some(&result));
    let del_again = del
        .as_ref()
        .ok()
        .map(|_| d.del_list(&list, "eth0", Some(&result)));
    let del_lo = d.del_list(&lo, "lo", None);
    let addrs = checked?;
    del?;
    if let Some(r) = del_again {
        r.map_err(|e| Failure::new(format!("a repeated DEL must succeed: {e}")))?;
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
pub fn plan_in(tmp_parent: &Path, list: Value, bin_dir: &Path) -> Result<(Plan, PathBuf)> {
    let work = util::create_unique_dir(tmp_parent, "k3s-sandbox-selftest-")
        .map_err(|e| Failure::io("create a temporary directory in", tmp_parent, &e))?;
    let netns = work.join("netns");
    std::fs::write(&netns, b"").map_err(|e| Failure::io("create", &netns, &e))?;
    Ok((
        Plan {
            list,
            bin_dir: bin_dir.to_path_buf(),
            ipam_dir: work.join("ipam"),
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
        calls: Vec<Call>,
        fail: Option<(String, String)>,
        loopback_without_index: bool,
        wrong_version: bool,
        forget_release: bool,
    }

    impl PluginRunner for FakeRunner {
        fn run(
            &mut self,
            t: &str,
            env: &[(String, String)],
            stdin: &[u8],
        ) -> std::result::Result<RunOutput, String> {
            let env: HashMap<String, String> = env.iter().cloned().collect();
            let conf: Value = serde_json::from_slice(stdin).unwrap();
            let cmd = env["CNI_COMMAND"].clone();
            self.calls.push((
                t.to_string(),
                cmd.clone(),
                env["CNI_IFNAME"].clone(),
                conf.clone(),
                env.clone(),
            ));
            let ok = |stdout: Vec<u8>| {
                Ok(RunOutput {
                    success: true,
                    stdout,
                    stderr: vec![],
                    end: "exited with status 0".into(),
                })
            };
            if self.fail.as_ref().is_some_and(|(ft, fc)| ft == t && *fc == cmd) {
                return Ok(RunOutput {
                    success: false,
                    stdout: br#"{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"really"}"#
                        .to_vec(),
                    stderr: vec![],
                    end: "exited with status 1".into(),
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
                        "1.1.0".to_string()
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
            list: serde_json::from_str(crate::conflist::TEMPLATE).unwrap(),
            bin_dir: dir.join("bin"),
            ipam_dir: dir.join("ipam"),
            container_id: throwaway_container_id(),
            netns: dir.join("netns"),
        }
    }

    fn summary(r: &FakeRunner) -> Vec<String> {
        r.calls
            .iter()
            .map(|(t, c, i, _, _)| format!("{c} {t} {i}"))
            .collect()
    }

    #[test]
    fn drives_the_chain_like_containerd() {
        let tmp = tempfile::tempdir().unwrap();
        let p = plan(tmp.path());
        let mut r = FakeRunner::default();
        let mut lines = Vec::new();
        let report = run(&mut r, &p, &mut |l| lines.push(l.to_string())).unwrap();
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
        assert_eq!(lines.len(), r.calls.len());
        let lo = &r.calls[0].3;
        assert_eq!(lo["cniVersion"], "0.3.1");
        assert_eq!(lo["name"], "cni-loopback");
        let bridge_add = &r.calls[1].3;
        assert!(bridge_add.get("prevResult").is_none());
        assert_eq!(bridge_add["name"], "sandbox-cni");
        assert_eq!(bridge_add["ipam"]["dataDir"], p.ipam_dir.to_str().unwrap());
        let portmap_add = &r.calls[2].3;
        assert_eq!(portmap_add["prevResult"]["ips"][0]["address"], "10.42.0.2/24");
        assert_eq!(portmap_add["runtimeConfig"]["portMappings"][0]["HostPort"], 18080);
        assert!(bridge_add.get("runtimeConfig").is_none());
        for (_, cmd, _, conf, _) in &r.calls[3..9] {
            assert_eq!(conf["prevResult"]["ips"][0]["address"], "10.42.0.2/24", "{cmd}");
        }
        // Loopback DEL gets no prevResult (0.3.1).
        assert!(r.calls[9].3.get("prevResult").is_none());
        let env = &r.calls[1].4;
        assert_eq!(env["CNI_CONTAINERID"], p.container_id);
        assert!(env["CNI_ARGS"].starts_with("IgnoreUnknown=1;K8S_POD_NAMESPACE="));
        assert_eq!(env["CNI_PATH"], p.bin_dir.to_str().unwrap());
    }

    #[test]
    fn a_failing_add_is_reported_with_the_plugin_error_and_torn_down() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = FakeRunner {
            fail: Some(("portmap".into(), "ADD".into())),
            ..Default::default()
        };
        let err = run(&mut r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message.contains("ADD portmap"), "{}", err.message);
        assert!(
            err.message.contains("code 11: no luck; really"),
            "{}",
            err.message
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
        let mut r = FakeRunner {
            loopback_without_index: true,
            ..Default::default()
        };
        let err = run(&mut r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message.contains("pod IP"), "{}", err.message);
    }

    #[test]
    fn result_version_must_match_the_request() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = FakeRunner {
            wrong_version: true,
            ..Default::default()
        };
        let err = run(&mut r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message.contains("cniVersion 1.1.0"), "{}", err.message);
    }

    #[test]
    fn unreleased_allocation_is_detected() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = FakeRunner {
            forget_release: true,
            ..Default::default()
        };
        let err = run(&mut r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message.contains("did not release"), "{}", err.message);
    }

    #[test]
    fn a_failing_del_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = FakeRunner {
            fail: Some(("bridge".into(), "DEL".into())),
            ..Default::default()
        };
        let err = run(&mut r, &plan(tmp.path()), &mut |_| {}).unwrap_err();
        assert!(err.message.contains("DEL bridge"), "{}", err.message);
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
                .message
                .contains("crash")
        );
        let elsewhere = json!({"interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/n"}], "ips":[{"address":"10.0.0.1/24","interface":0}]});
        assert!(
            pod_addresses(&elsewhere, "eth0")
                .unwrap_err()
                .message
                .contains("failed to find network info")
        );
        let no_sandbox =
            json!({"interfaces":[{"name":"eth0"}], "ips":[{"address":"10.0.0.2/24","interface":0}]});
        assert!(
            pod_addresses(&no_sandbox, "eth0")
                .unwrap_err()
                .message
                .contains("sandbox")
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("1.0.0", "0.4.0"));
        assert!(version_at_least("0.4.0", "0.4.0"));
        assert!(!version_at_least("0.3.1", "0.4.0"));
        assert!(version_at_least("0.10.0", "0.4.0"));
    }
}
