//! Test harness: a temp sandbox (data dir, CNI dirs, argv log) with the fake
//! k3s fixture, and cleanup that kills whatever a test started even when the
//! test fails. The k3s-sandbox library gives the state-file reading, the /proc parsing and the
//! defaults, so the tests read what the binary writes with the code that writes it.
// Test-support code: panicking on a broken fixture is the right failure.
#![allow(dead_code, clippy::unwrap_used)]

use k3s_sandbox::k3s::process::{self, Instance};
use k3s_sandbox::paths::StateFiles;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Poll `cond` every 50 ms until it holds or `limit` passes (the CLI's own wait).
pub(crate) fn wait_until(cond: impl FnMut() -> bool, limit: std::time::Duration) -> bool {
    process::wait_for(cond, limit)
}

pub(crate) const PLUGINS: [&str; 4] = k3s_sandbox::cni::plugins::REQUIRED;

pub(crate) fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_k3s-sandbox"))
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The repository's default conflist (cni-conf/10-sandbox-cni.conflist, built into the binary).
pub(crate) fn repo_conflist() -> String {
    k3s_sandbox::cni::conflist::TEMPLATE.to_string()
}

pub(crate) struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub bin: PathBuf,
    pub conf: PathBuf,
    /// Fake plugins to install from (--plugins-from).
    pub plugin_src: PathBuf,
    pub argv_log: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let plugin_src = root.join("plugin-src");
        fs::create_dir_all(&plugin_src).unwrap();
        for p in PLUGINS {
            fs::copy(fixture("fake-cni-plugin.sh"), plugin_src.join(p)).unwrap();
            fs::set_permissions(plugin_src.join(p), fs::Permissions::from_mode(0o755)).unwrap();
        }
        let argv_log = root.join("argv.log");
        let env = vec![
            (
                "K3S_BIN".to_string(),
                fixture("fake-k3s.sh").to_string_lossy().into_owned(),
            ),
            (
                "FAKE_K3S_ARGV_LOG".to_string(),
                argv_log.to_string_lossy().into_owned(),
            ),
            (
                "CNI_BIN_DIR".to_string(),
                root.join("cni-bin").to_string_lossy().into_owned(),
            ),
            (
                "CNI_CONF_DIR".to_string(),
                root.join("net.d").to_string_lossy().into_owned(),
            ),
        ];
        Sandbox {
            data: root.join("data"),
            bin: root.join("cni-bin"),
            conf: root.join("net.d"),
            plugin_src,
            argv_log,
            env,
            tmp,
        }
    }

    pub(crate) fn set_env(&mut self, k: &str, v: &str) {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.to_string(), v.to_string()));
    }

    pub(crate) fn unset_env(&mut self, k: &str) {
        self.env.retain(|(key, _)| key != k);
    }

    /// `k3s-sandbox <args>` with the sandbox environment; `--data-dir` is
    /// added after the subcommand when the subcommand takes it (the instance's commands).
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(exe());
        c.env_remove("K3S_BIN")
            .env_remove("K3S_SANDBOX_DATA_DIR")
            .env_remove("CNI_BIN_DIR")
            .env_remove("CNI_CONF_DIR")
            .env_remove("NETCONFPATH")
            .env_remove("CNI_PATH")
            .env_remove("CNI_CACHE_DIR")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let (sub, rest) = args.split_first().expect("a subcommand");
        c.arg(sub);
        if ["doctor", "up", "down", "status", "env", "logs"].contains(sub) {
            c.arg("--data-dir").arg(&self.data);
        }
        c.args(rest);
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd(args).output().unwrap())
    }

    /// `up --profile control-plane` with fake plugins and a short timeout, not run yet.
    pub(crate) fn up_cp_cmd(&self, extra: &[&str]) -> Command {
        self.up_cp_from(&self.plugin_src, extra)
    }

    /// `up --profile control-plane --plugins-from DIR` with a short timeout, not run yet.
    pub(crate) fn up_cp_from(&self, plugins_from: &Path, extra: &[&str]) -> Command {
        let src = plugins_from.to_string_lossy().into_owned();
        let mut args = vec![
            "up",
            "--profile",
            "control-plane",
            "--timeout",
            "10",
            "--plugins-from",
            &src,
        ];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    /// `up --profile control-plane` with fake plugins and a short timeout.
    pub(crate) fn up_cp(&self, extra: &[&str]) -> Out {
        Out::from(self.up_cp_cmd(extra).output().unwrap())
    }

    /// `up --profile agent --timeout SECS` with the fake plugins, without the self-test, then
    /// `extra`.
    pub(crate) fn up_agent(&self, secs: &str, extra: &[&str]) -> Out {
        let src = self.plugin_src.to_string_lossy().into_owned();
        let mut args = vec![
            "up",
            "--profile",
            "agent",
            "--timeout",
            secs,
            "--plugins-from",
            &src,
            "--skip-selftest",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// Every recorded k3s invocation, as argument lists.
    pub(crate) fn invocations(&self) -> Vec<Vec<String>> {
        let text = fs::read_to_string(&self.argv_log).unwrap_or_default();
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for line in text.lines() {
            if line == "@@end" {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(line.to_string());
            }
        }
        out
    }

    /// The `server` invocations only.
    pub(crate) fn servers(&self) -> Vec<Vec<String>> {
        self.invocations()
            .into_iter()
            .filter(|a| a.first().map(String::as_str) == Some("server"))
            .collect()
    }

    /// The state files of the data dir.
    pub(crate) fn state(&self) -> StateFiles {
        StateFiles::new(&self.data)
    }

    /// The instance recorded in the data dir, if any (none also when the record is unreadable).
    pub(crate) fn instance(&self) -> Option<Instance> {
        process::read_instance(&self.state()).ok().flatten()
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.instance().map(|i| i.pid)
    }

    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.data.join("kubeconfig.yaml")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Kill the recorded process group directly, without `down`: this must work even when the
        // commands under test are broken.
        if let Some(inst) = self.instance() {
            cni_runtime::runner::kill_group(inst.pgid, rustix::process::Signal::KILL);
        }
    }
}

pub(crate) struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    #[track_caller]
    pub(crate) fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit status\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    #[track_caller]
    pub(crate) fn ok(&self) -> &Self {
        self.expect_code(0)
    }
    #[track_caller]
    pub(crate) fn stderr_has(&self, s: &str) -> &Self {
        assert!(self.stderr.contains(s), "stderr lacks {s:?}:\n{}", self.stderr);
        self
    }
    #[track_caller]
    pub(crate) fn stdout_has(&self, s: &str) -> &Self {
        assert!(self.stdout.contains(s), "stdout lacks {s:?}:\n{}", self.stdout);
        self
    }
}

/// Live (non-zombie) processes in group `pgid`.
pub(crate) fn group_alive(pgid: u32) -> bool {
    !process::group_members(pgid).is_empty()
}

/// Directory of the k3s-sandbox test binary, where cargo also puts the
/// plugin binaries of the workspace.
pub(crate) fn built_plugins_dir() -> PathBuf {
    let dir = exe().parent().unwrap().to_path_buf();
    let missing: Vec<&str> = PLUGINS
        .iter()
        .copied()
        .filter(|p| !dir.join(p).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "the plugin binaries {missing:?} are missing from {}; build the whole workspace first \
         (`cargo build --workspace`, or run the tests with `cargo test --workspace`)",
        dir.display()
    );
    dir
}
