//! Every ready conflist in cni-conf/ run through its whole plugin chain by cni-runtime, the way libcni
//! does: ADD plugin by plugin (each result becomes the next prevResult), CHECK with the cached result,
//! DEL in reverse order, at several cniVersions and with runtime capability arguments in both key
//! styles. Each test works on a copy whose host-local dataDir points at a temporary directory.

use std::cell::RefCell;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::Cni;
use cni_core::exec::{Exec, ExecOutput};
use cni_runtime::cache::Cache;
use cni_runtime::runner::ProcessRunner;
use cni_runtime::runtime::plugin_config;
use cni_runtime::{NetworkList, Runtime, RuntimeConf};
use serde_json::{Value, json};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf")
}

/// The conflist `file` as cni-runtime reads it, with every IPAM dataDir rewritten to `data`.
fn load(file: &str, data: &Path) -> NetworkList {
    let mut list = NetworkList::load_file(&conf_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
    list.set_ipam_data_dir(data);
    list
}

/// Every *.conflist in cni-conf/, sorted like libcni sorts them.
fn all_conflists() -> Vec<String> {
    cni_runtime::conf::files_with(&conf_dir(), &["conflist"])
        .expect("cni-conf/")
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
        .collect()
}

/// One attachment: container ID, ifname, capability arguments.
struct Attachment<'a> {
    id: &'a str,
    ifname: &'a str,
    caps: Value,
}

impl Attachment<'_> {
    fn runtime_conf(&self) -> RuntimeConf {
        RuntimeConf {
            container_id: self.id.into(),
            netns: format!("/var/run/netns/{}", self.id),
            ifname: self.ifname.into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), "default".into()),
                ("K8S_POD_NAME".into(), self.id.into()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), self.id.into()),
            ],
            capability_args: self.caps.as_object().cloned().unwrap_or_default(),
        }
    }
}

/// Runs the plugins of this build and keeps every ADD reply, so the tests see each link of a chain.
struct Recorder {
    inner: ProcessRunner,
    adds: RefCell<Vec<Value>>,
}

impl Exec for Recorder {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let out = self.inner.exec(exe, env, stdin)?;
        if env.iter().any(|(k, v)| k == "CNI_COMMAND" && v == "ADD") && out.success {
            self.adds
                .borrow_mut()
                .push(serde_json::from_slice(&out.stdout).expect("ADD result"));
        }
        Ok(out)
    }
}

/// A network list run by cni-runtime (libcni's rules), with its result cache in `cache`.
struct Chain {
    list: NetworkList,
    exec: Recorder,
    cache: tempfile::TempDir,
}

impl Chain {
    fn new(mut list: NetworkList, version: &str) -> Chain {
        list.cni_version = version.into();
        Chain {
            list,
            exec: Recorder {
                inner: ProcessRunner {
                    timeout: Duration::from_secs(60),
                    stderr: None,
                },
                adds: RefCell::new(Vec::new()),
            },
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    fn runtime(&self) -> Runtime<'_> {
        Runtime {
            exec: &self.exec,
            path: vec![crate::harness::bin_dir()],
            cache: Cache::new(self.cache.path()),
            base_env: Vec::new(),
        }
    }

    fn what(&self) -> String {
        format!("{} at {}", self.list.name, self.list.cni_version)
    }

    /// ADD through the chain; returns each plugin's result.
    fn add(&self, at: &Attachment) -> Vec<Value> {
        self.exec.adds.borrow_mut().clear();
        let last = self
            .runtime()
            .add(&self.list, &at.runtime_conf())
            .unwrap_or_else(|e| panic!("{} ADD: {e}", self.what()));
        let results = self.exec.adds.borrow().clone();
        assert_eq!(results.len(), self.list.plugins.len());
        let last: Option<Value> =
            last.map(|a| serde_json::from_slice(&a.to_json().expect("result")).expect("JSON"));
        assert_eq!(last.as_ref(), results.last(), "{}", self.what());
        results
    }

    fn check(&self, at: &Attachment) {
        self.runtime()
            .check(&self.list, &at.runtime_conf())
            .unwrap_or_else(|e| panic!("{} CHECK: {e}", self.what()));
    }

    /// DEL in reverse order, with the cached result from 0.4.0 on (cni-runtime's rule).
    fn del(&self, at: &Attachment) {
        self.runtime()
            .del(&self.list, &at.runtime_conf())
            .unwrap_or_else(|e| panic!("{} DEL: {e}", self.what()));
    }

    /// One plugin's config as the runtime builds it, for a call by hand.
    fn plugin_conf(&self, index: usize, at: &Attachment, prev: Option<&Value>) -> Value {
        Value::Object(plugin_config(
            &self.list,
            &self.list.plugins[index],
            prev,
            &at.runtime_conf(),
        ))
    }

    fn call(
        &self,
        index: usize,
        command: &str,
        at: &Attachment,
        prev: Option<&Value>,
    ) -> crate::harness::Out {
        let ty = self.list.plugins[index]["type"].as_str().expect("type");
        Cni::new(ty, command)
            .var("CNI_CONTAINERID", at.id)
            .var("CNI_IFNAME", at.ifname)
            .var("CNI_NETNS", &format!("/var/run/netns/{}", at.id))
            .run(&self.plugin_conf(index, at, prev))
    }
}

fn reserved(data: &Path, network: &str) -> Vec<IpAddr> {
    crate::harness::reserved_addresses(&data.join(network))
}

/// The addresses of a result of any version, without prefix.
fn addresses(r: &Value) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let mut push = |s: &str| out.push(s.split('/').next().unwrap_or(s).parse().expect("address"));
    for ip in r["ips"].as_array().into_iter().flatten() {
        push(ip["address"].as_str().expect("address"));
    }
    for key in ["ip4", "ip6"] {
        if let Some(s) = r[key]["ip"].as_str() {
            push(s);
        }
    }
    out.sort();
    out
}

fn port_mappings(capitalised: bool) -> Value {
    if capitalised {
        json!([{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
               {"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "127.0.0.1"}])
    } else {
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
    }
}

/// The whole lifecycle of two attachments through `file` at `version`.
fn lifecycle(file: &str, version: &str, capitalised: bool) {
    let data = tempfile::tempdir().expect("temp dir");
    let chain = Chain::new(load(file, data.path()), version);
    let network = chain.list.name.clone();
    let caps = json!({
        "portMappings": port_mappings(capitalised),
        "bandwidth": if capitalised {
            json!({"IngressRate": 1000000, "IngressBurst": 100000, "EgressRate": 1000000, "EgressBurst": 100000})
        } else {
            json!({"ingressRate": 1000000, "ingressBurst": 100000})
        },
    });
    let a = Attachment {
        id: "pod-a",
        ifname: "eth0",
        caps: caps.clone(),
    };
    let b = Attachment {
        id: "pod-b",
        ifname: "eth0",
        caps,
    };
    let what = format!("{file} at {version}");

    let ra = chain.add(&a);
    let final_a = ra.last().expect("a result").clone();
    for r in &ra {
        assert_eq!(
            r, &ra[0],
            "{what}: chained plugins pass the bridge result through unchanged"
        );
    }
    assert_eq!(final_a["cniVersion"], version, "{what}");
    let ips_a = addresses(&final_a);
    assert!(!ips_a.is_empty(), "{what}: no address in {final_a}");
    assert_eq!(
        reserved(data.path(), &network),
        ips_a,
        "{what}: one reservation per address"
    );
    if let Some(ifs) = final_a["interfaces"].as_array() {
        // containerd takes the pod IP from the interface named CNI_IFNAME.
        let eth0 = ifs
            .iter()
            .position(|i| i["name"] == "eth0")
            .expect("eth0 interface");
        assert_eq!(ifs[eth0]["sandbox"], "/var/run/netns/pod-a");
        for ip in final_a["ips"].as_array().expect("ips") {
            assert_eq!(ip["interface"], json!(eth0), "{what}");
        }
    }

    let rb = chain.add(&b);
    let final_b = rb.last().expect("b result").clone();
    let ips_b = addresses(&final_b);
    assert!(
        ips_a.iter().all(|ip| !ips_b.contains(ip)),
        "{what}: distinct addresses"
    );
    assert_eq!(reserved(data.path(), &network).len(), ips_a.len() + ips_b.len());

    let has_check = cni_runtime::version::at_least(version, "0.4.0").expect("version");
    if has_check {
        chain.check(&a);
        chain.check(&b);
        // A prevResult for the wrong attachment is caught by the bridge.
        chain.call(0, "CHECK", &a, Some(&final_b)).assert_error(102);
    }

    chain.del(&a);
    assert_eq!(
        reserved(data.path(), &network),
        ips_b,
        "{what}: a's addresses released, b's kept"
    );
    chain.del(&a);
    chain.del(&b);
    assert!(
        reserved(data.path(), &network).is_empty(),
        "{what}: everything released"
    );
    if has_check {
        // CHECK after DEL fails: the IPAM no longer holds the address.
        assert!(
            !chain.call(0, "CHECK", &a, Some(&final_a)).ok(),
            "{what}: CHECK after DEL must fail"
        );
    }
}

fn plugins(list: &Value) -> &Vec<Value> {
    list["plugins"].as_array().expect("plugins")
}

#[test]
fn the_planned_conflists_exist_with_their_fixed_shape() {
    let found = all_conflists();
    let expected = [
        (
            "10-sandbox-cni.conflist",
            "sandbox-cni",
            vec!["bridge", "portmap"],
        ),
        (
            "containerd-default.conflist",
            "containerd-net",
            vec!["bridge", "portmap"],
        ),
        (
            "podman-chain.conflist",
            "podman",
            vec!["bridge", "portmap", "firewall", "tuning"],
        ),
        (
            "dual-stack.conflist",
            "sandbox-cni-dual",
            vec!["bridge", "portmap"],
        ),
    ];
    for (file, name, types) in &expected {
        assert!(found.iter().any(|f| f == file), "cni-conf/{file} is missing");
        let text = std::fs::read_to_string(conf_dir().join(file)).expect("read");
        let list: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(list["name"], *name, "{file}");
        // libcni 1.1.2 (containerd 1.6/1.7) cannot parse 1.1.0 results: ship 1.0.0, list 1.1.0 for newer.
        assert_eq!(list["cniVersion"], "1.0.0", "{file}");
        assert_eq!(list["cniVersions"], json!(["1.0.0", "1.1.0"]), "{file}");
        let got: Vec<&str> = plugins(&list).iter().filter_map(|p| p["type"].as_str()).collect();
        assert_eq!(&got, types, "{file}");
        let bridge = &plugins(&list)[0];
        assert_eq!(bridge["ipam"]["type"], "host-local", "{file}");
        assert!(
            bridge["ipam"].get("dataDir").is_none(),
            "{file}: shipped lists use the default dataDir"
        );
        assert_eq!(
            plugins(&list)[1]["capabilities"],
            json!({"portMappings": true}),
            "{file}"
        );
        for p in plugins(&list) {
            assert!(
                p.get("cniVersion").is_none() && p.get("name").is_none(),
                "{file}: set at list level only"
            );
        }
    }
    // The default network install.sh writes.
    let default = load("10-sandbox-cni.conflist", Path::new("/unused"));
    let bridge = &default.plugins[0];
    assert_eq!(bridge["bridge"], "cni0");
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipam"]["ranges"], json!([[{"subnet": "10.42.0.0/24"}]]));
    assert_eq!(bridge["ipam"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
    let containerd = load("containerd-default.conflist", Path::new("/unused"));
    assert_eq!(
        containerd.plugins[0]["ipam"]["ranges"],
        json!([[{"subnet": "10.88.0.0/16"}]])
    );
    let dual = load("dual-stack.conflist", Path::new("/unused"));
    let sets = dual.plugins[0]["ipam"]["ranges"]
        .as_array()
        .expect("ranges")
        .clone();
    let families: Vec<bool> = sets
        .iter()
        .map(|s| s[0]["subnet"].as_str().expect("subnet").contains(':'))
        .collect();
    assert_eq!(
        families,
        vec![false, true],
        "dual-stack: an IPv4 then an IPv6 range set"
    );
}

#[test]
fn every_conflist_runs_add_check_del_at_every_version() {
    for file in all_conflists() {
        for version in ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            lifecycle(&file, version, false);
        }
    }
}

#[test]
fn containerd_capitalised_capability_args_work_through_every_chain() {
    for file in all_conflists() {
        lifecycle(&file, "1.0.0", true);
    }
}

#[test]
fn dual_stack_gets_one_address_and_default_route_per_family() {
    let data = tempfile::tempdir().expect("temp dir");
    let chain = Chain::new(load("dual-stack.conflist", data.path()), "1.0.0");
    let at = Attachment {
        id: "pod-a",
        ifname: "eth0",
        caps: json!({}),
    };
    let r = chain.add(&at).pop().expect("result");
    let ips = addresses(&r);
    assert_eq!(ips.len(), 2);
    assert!(ips[0].is_ipv4() && ips[1].is_ipv6(), "{r}");
    let defaults: Vec<&str> = r["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|rt| rt["dst"].as_str())
        .filter(|d| *d == "0.0.0.0/0" || *d == "::/0")
        .collect();
    assert_eq!(defaults, vec!["0.0.0.0/0", "::/0"]);
    chain.del(&at);
    assert!(reserved(data.path(), "sandbox-cni-dual").is_empty());
}

#[test]
fn a_k3s_shaped_chain_with_bandwidth_after_portmap_works() {
    // k3s chains portmap then bandwidth after the bridge: extend the default network the same way.
    let data = tempfile::tempdir().expect("temp dir");
    let mut list = load("10-sandbox-cni.conflist", data.path());
    let bandwidth = json!({"type": "bandwidth", "capabilities": {"bandwidth": true}});
    list.plugins.push(bandwidth.as_object().expect("object").clone());
    let chain = Chain::new(list, "1.0.0");
    let caps = json!({"portMappings": port_mappings(true),
                      "bandwidth": {"IngressRate": 1000, "IngressBurst": 1000}});
    let at = Attachment {
        id: "pod-k",
        ifname: "eth0",
        caps,
    };
    let r = chain.add(&at).pop().expect("result");
    chain.check(&at);
    // An unpaired limit is refused by bandwidth, as the reference documents.
    let bad = Attachment {
        id: "pod-x",
        ifname: "eth0",
        caps: json!({"bandwidth": {"IngressRate": 1000}}),
    };
    let last = chain.list.plugins.len() - 1;
    chain.call(last, "ADD", &bad, Some(&r)).assert_error(7);
    chain.del(&at);
    assert!(reserved(data.path(), "sandbox-cni").is_empty());
}
