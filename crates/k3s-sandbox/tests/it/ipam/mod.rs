//! `k3s-sandbox ipam ls|release|gc`, the leak detection of `doctor` and `status`, and `trace`, against stores
//! filled by the workspace's real host-local plugin and a fake crictl / k3s crictl.

mod status;
mod store;
mod trace;
mod trace_attacks;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::common::*;
use serde_json::Value;

const POD_A: &str = "4b1c0e7d2a9f8e6b5c3d1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";
const POD_B: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

/// The words of a command line written as one string (no word holds a space).
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A sandbox with a conflist whose host-local store lives in the temp dir.
struct Net {
    sb: Sandbox,
    ipam_dir: PathBuf,
    conflist: String,
}

impl Net {
    fn new(subnet: &str) -> Net {
        Net::with_range(serde_json::json!({ "subnet": subnet }))
    }

    /// A network whose single range is `range` (subnet, optional rangeStart/rangeEnd).
    fn with_range(range: Value) -> Net {
        let sb = Sandbox::new();
        let ipam_dir = sb.tmp.path().join("networks");
        let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
        v["plugins"][0]["ipam"]["ranges"][0][0] = range;
        v["plugins"][0]["ipam"]["dataDir"] = Value::from(ipam_dir.to_str().unwrap());
        let conflist = serde_json::to_string_pretty(&v).unwrap();
        fs::create_dir_all(&sb.conf).unwrap();
        fs::write(sb.conf.join("10-sandbox-cni.conflist"), &conflist).unwrap();
        Net {
            sb,
            ipam_dir,
            conflist,
        }
    }

    fn store(&self) -> PathBuf {
        self.ipam_dir.join("sandbox-cni")
    }

    /// The first plugin's config as the runtime hands it over (name and cniVersion of the list).
    fn plugin_conf(&self) -> String {
        let v: Value = serde_json::from_str(&self.conflist).unwrap();
        let mut conf = v["plugins"][0].clone();
        conf["name"] = v["name"].clone();
        conf["cniVersion"] = v["cniVersion"].clone();
        conf.to_string()
    }

    /// host-local ADD for `id` (the IPAM part of the conflist, as bridge would delegate it).
    fn add(&self, id: &str) -> String {
        let out = run_plugin("host-local", "ADD", id, &self.plugin_conf(), &[]);
        let r: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("ADD {id}: {out}"));
        r["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    fn reserved(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.store())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        v.sort();
        v
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.sb.cmd(args);
        c.env_remove("CONTAINER_RUNTIME_ENDPOINT")
            .env_remove("SANDBOX_CNI_TRACE_DIR");
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd(args).output().unwrap())
    }

    /// `k3s-sandbox ipam ARGS`, the arguments written as one line.
    fn ipam(&self, args: &str) -> Out {
        self.run(&[&["ipam"], &words(args)[..]].concat())
    }

    /// `k3s-sandbox ipam gc sandbox-cni --cni-conf-dir C`: how the printed gc commands start here.
    fn printed_gc(&self) -> String {
        format!(
            "k3s-sandbox ipam gc sandbox-cni --cni-conf-dir {}",
            self.sb.conf.display()
        )
    }

    /// ` --from-cri --data-dir D`: the runtime of this sandbox's instance.
    fn cri_flags(&self) -> String {
        format!(" --from-cri --data-dir {}", self.sb.data.display())
    }

    fn crictl_log(&self) -> PathBuf {
        self.sb.tmp.path().join("crictl.log")
    }

    /// Runs `c` with the fake crictl (also what the fake k3s forwards `k3s crictl` to) answering
    /// as `mode` with the pods of the fixture `pods`.
    fn with_cri(&self, mut c: Command, mode: &str, pods: Option<&str>) -> Out {
        c.env("FAKE_CRICTL_MODE", mode)
            .env("FAKE_CRICTL_LOG", self.crictl_log());
        match pods {
            Some(p) => c.env("FAKE_CRICTL_PODS", fixture(&format!("crictl/{p}"))),
            None => c.env_remove("FAKE_CRICTL_PODS"),
        };
        Out::from(c.output().unwrap())
    }

    /// `k3s-sandbox ipam ARGS` with a fake crictl (mode, pods fixture) first on PATH and no k3s
    /// anywhere.
    fn ipam_cri(&self, args: &str, mode: &str, pods: Option<&str>) -> Out {
        let bin = self.sb.tmp.path().join("fake-bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(fixture("fake-crictl.sh"), bin.join("crictl")).unwrap();
        fs::set_permissions(bin.join("crictl"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = self.cmd(&[&["ipam"], &words(args)[..]].concat());
        c.env_remove("K3S_BIN")
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()));
        self.with_cri(c, mode, pods)
    }
}

fn run_plugin(plugin: &str, verb: &str, id: &str, conf: &str, env: &[(&str, &str)]) -> String {
    let dir = built_plugins_dir();
    let mut c = Command::new(dir.join(plugin));
    c.env_clear()
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", format!("/var/run/netns/{id}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(conf.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}
