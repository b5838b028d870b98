//! Shared by tests/bad_input.rs and tests/bad_input_store.rs: a bounded runner (deadline, memory limit,
//! empty working directory, raw-byte environment) and each plugin's valid baseline configuration.
//! Compiled on its own as well (cargo builds every tests/*.rs), where it holds no test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
pub mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Out, assert_stdout_contract, bin_dir, plugin};
use serde_json::{Value, json};

#[allow(unused_imports)] // not every test file that includes this module lists the plugins
pub use common::PLUGINS;

/// A call is killed and the test fails after this long.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Address-space limit of every call (prlimit --as): far above what a plugin needs, far below a leak.
pub const MEMORY_LIMIT: u64 = 512 << 20;

/// The uid/gid the unprivileged cases run as (nobody).
pub const NOBODY: u32 = 65534;

pub struct ChainedPlugins;

impl ChainedPlugins {
    /// Plugins whose ADD reads prevResult.
    pub fn all_reading_prev_result() -> [&'static str; 5] {
        ["loopback", "portmap", "bandwidth", "firewall", "tuning"]
    }
}

/// The result the chained plugins receive as prevResult in their baseline.
pub fn prev_result() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "02:11:22:33:44:55"},
            {"name": "eth0", "mac": "02:11:22:33:44:66", "sandbox": "/var/run/netns/bad-input"}
        ],
        "ips": [{"interface": 1, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    })
}

/// A valid ADD configuration for `plugin`, keeping any host-local store under `data_dir`.
pub fn base_conf(plugin: &str, data_dir: &Path) -> Value {
    let ipam = json!({
        "type": "host-local",
        "ranges": [[{"subnet": "10.77.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": data_dir.display().to_string(),
    });
    let mut conf = json!({"cniVersion": "1.0.0", "name": "bad-input", "type": plugin});
    match plugin {
        "loopback" => {}
        "host-local" => conf["ipam"] = ipam,
        "bridge" => {
            conf["bridge"] = json!("cni0");
            conf["isGateway"] = json!(true);
            conf["ipam"] = ipam;
        }
        "portmap" => {
            conf["runtimeConfig"] =
                json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
            conf["prevResult"] = prev_result();
        }
        "bandwidth" => {
            conf["runtimeConfig"] = json!({"bandwidth": {"ingressRate": 1000000, "ingressBurst": 100000}});
            conf["prevResult"] = prev_result();
        }
        "firewall" => {
            conf["backend"] = json!("iptables");
            conf["prevResult"] = prev_result();
        }
        "tuning" => {
            conf["sysctl"] = json!({"net.core.somaxconn": "512"});
            conf["prevResult"] = prev_result();
        }
        other => panic!("no baseline for plugin {other}"),
    }
    conf
}

fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (from /proc, without unsafe code).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// One bounded plugin invocation with a raw-byte environment.
#[derive(Debug, Clone)]
pub struct Call {
    pub exe: PathBuf,
    pub env: BTreeMap<OsString, OsString>,
    /// Run as nobody (needs root and setpriv).
    pub unprivileged: bool,
}

impl Call {
    /// Plugin `name` with CNI_COMMAND, container ID, netns, ifname and CNI_PATH = the build's binaries.
    pub fn new(name: &str, command: &str) -> Call {
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_NETNS", "/var/run/netns/bad-input".to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", bin_dir().display().to_string()),
        ] {
            env.insert(OsString::from(k), OsString::from(v));
        }
        Call {
            exe: plugin(name),
            env,
            unprivileged: false,
        }
    }

    pub fn var(self, key: &str, value: &str) -> Call {
        self.var_bytes(key, value.as_bytes())
    }

    pub fn var_bytes(mut self, key: &str, value: &[u8]) -> Call {
        self.env
            .insert(OsString::from(key), OsString::from_vec(value.to_vec()));
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.remove(&OsString::from(key));
        self
    }

    pub fn unprivileged(mut self) -> Call {
        self.unprivileged = true;
        self
    }

    /// Runs the plugin; panics (fails the test) past the deadline, on a broken stdout contract, a
    /// panic, or anything left in the working directory.
    pub fn run(&self, stdin: &[u8]) -> Out {
        let cwd = tempfile::tempdir().expect("temp cwd");
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(prlimit) = find_tool("prlimit") {
            argv.push(prlimit.into());
            argv.push(format!("--as={MEMORY_LIMIT}").into());
            argv.push("--".into());
        }
        if self.unprivileged {
            let setpriv =
                find_tool("setpriv").expect("setpriv (util-linux) is needed for the unprivileged cases");
            argv.extend([
                setpriv.into_os_string(),
                format!("--reuid={NOBODY}").into(),
                format!("--regid={NOBODY}").into(),
                "--clear-groups".into(),
                "--".into(),
            ]);
            // nobody must be able to enter the working directory (it stays empty either way).
            set_mode(cwd.path(), 0o777);
        }
        argv.push(self.exe.clone().into_os_string());
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(&self.env)
            .current_dir(cwd.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.exe.display()));
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            // The plugin may stop reading early (oversized input): a broken pipe is expected then.
            let _ = input.write_all(&data);
        });
        let mut out_pipe = child.stdout.take().expect("stdout");
        let mut err_pipe = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out_pipe.read_to_end(&mut b);
            b
        });
        let err_reader = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err_pipe.read_to_end(&mut b);
            b
        });
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {:?} did not finish within {} s (killed)",
                    self.exe.display(),
                    self.env.get(&OsString::from("CNI_COMMAND")),
                    DEADLINE.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = writer.join();
        let out = Out {
            stdout: reader.join().expect("stdout reader"),
            stderr: String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned(),
            status: status.code(),
        };
        assert!(
            status.code().is_some(),
            "{} was killed by a signal ({status}); stderr: {}",
            self.exe.display(),
            out.stderr
        );
        assert_stdout_contract(&out);
        assert!(
            !out.stderr.contains("panicked"),
            "panic text on stderr: {}",
            out.stderr
        );
        if !out.ok() {
            assert_ne!(
                out.json()["code"].as_u64(),
                Some(999),
                "internal error (a panic): {}",
                out.text()
            );
        }
        let left: Vec<_> = std::fs::read_dir(cwd.path())
            .expect("cwd")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(
            left.is_empty(),
            "{} wrote into its working directory: {left:?}",
            self.exe.display()
        );
        out
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Everything under `dir`: relative path -> type, mode, and content for regular files (symlinks as
/// their target, never followed). Two equal snapshots mean nothing was written.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            let desc = if ft.is_symlink() {
                format!(
                    "link -> {}",
                    std::fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                )
            } else if ft.is_dir() {
                walk(root, &p, out);
                format!("dir {:o}", md.mode())
            } else if ft.is_file() {
                let content = if md.len() <= 1 << 20 {
                    std::fs::read(&p).unwrap_or_default()
                } else {
                    Vec::new()
                };
                format!(
                    "file {:o} {} {:?}",
                    md.mode(),
                    md.len(),
                    String::from_utf8_lossy(&content)
                )
            } else {
                format!("other {:o}", md.mode())
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
