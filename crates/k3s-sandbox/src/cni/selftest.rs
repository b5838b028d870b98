//! A small CNI runtime run the way containerd does through go-cni and libcni (the rules themselves are
//! cni-runtime's): the loopback network (cniVersion 0.3.1, `lo`), then the network under test on `eth0`;
//! CHECK with the cached result; DEL in reverse order, twice; then DEL of the loopback network. On top,
//! go-cni's result rules on the raw JSON the last plugin printed. No kernel networking is involved, so
//! it runs anywhere, without privileges.

use std::cell::RefCell;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cni_core::Command;
use cni_core::exec::{Exec, ExecOutput};
use cni_runtime::cache::Cache;
use cni_runtime::{NetworkList, Runtime, RuntimeConf};
use serde_json::{Map, Value, json};

use crate::cni::plugins::sha256_hex;
use crate::error::{Failure, Result};

mod result_rules;

pub(crate) use result_rules::pod_addresses;
use result_rules::validate_loopback;

/// Inputs of one self-test run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The network list to test.
    pub(crate) list: NetworkList,
    pub(crate) bin_dir: PathBuf,
    /// Throwaway host-local data dir; written into every `ipam.dataDir`.
    pub(crate) ipam_dir: PathBuf,
    /// Throwaway libcni result cache.
    pub(crate) cache_dir: PathBuf,
    pub(crate) container_id: String,
    pub(crate) netns: PathBuf,
}

/// What the self-test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// Addresses (CIDR form) attached to eth0, the first IPv4 one first.
    pub(crate) pod_ips: Vec<String>,
}

impl Report {
    /// The pod IP containerd would pick (first IPv4, else first), no prefix.
    pub(crate) fn pod_ip(&self) -> Option<&str> {
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
        "network {} (cniVersion {}): {e}",
        list.name, list.cni_version
    ))
}

/// ADD, with the result checked to be in the requested version (containerd reads it at that version).
/// Returns the result as the last plugin printed it.
fn add(r: &Runtime, list: &NetworkList, rt: &RuntimeConf) -> Result<Value> {
    let added = r.add(list, rt).map_err(|e| failed(e, list))?;
    let added = added.ok_or_else(|| Failure::new(format!("network {} gave no result", list.name)))?;
    // The runtime read these bytes as JSON already.
    let raw: Value = serde_json::from_slice(&added.raw).unwrap_or_default();
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
pub(crate) fn run(exec: &dyn Exec, plan: &Plan, log: &mut dyn FnMut(&str)) -> Result<Report> {
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
        if cni_runtime::version::has(&list.cni_version, Command::Check).unwrap_or(false) {
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
        again.map_err(|e| Failure::new(format!("a repeated DEL must succeed: {e}")))?;
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
pub(crate) fn throwaway_container_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    sha256_hex(format!("k3s-sandbox-selftest-{}-{nanos}", std::process::id()).as_bytes())
}

/// Set up a throwaway plan in a fresh temp dir under `tmp_parent`.
pub(crate) fn plan_in(tmp_parent: &Path, list: NetworkList, bin_dir: &Path) -> Result<(Plan, PathBuf)> {
    let work = create_unique_dir(tmp_parent, "k3s-sandbox-selftest-")
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

/// A unique, freshly created directory under `parent`.
fn create_unique_dir(parent: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for attempt in 0..100u32 {
        let dir = parent.join(format!("{prefix}{}-{nanos:x}-{attempt}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("could not create a unique directory under {}", parent.display()),
    ))
}

#[cfg(test)]
mod tests;
