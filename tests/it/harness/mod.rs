//! The one harness of the integration tests: [`Cni`] builds a call (environment and stdin) and runs it
//! as a real plugin binary with a clean environment, as a bounded process ([`bounded`]), or in this
//! process through `cni_core::skel::dispatch`; every way checks the output contract (exactly one JSON
//! document on stdout, or nothing; errors on stdout with a non-zero exit). Also each plugin's valid
//! baseline configuration ([`baseline`]), golden files, and the plugin and version lists.

pub(crate) mod baseline;
pub(crate) mod bounded;
pub(crate) mod strategy;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cni_core::env::EnvMap;
use sandbox_cni::inproc::InProcess;
use serde_json::Value;

pub(crate) use baseline::base_conf;

/// The directory holding every plugin binary under test (used as CNI_PATH): this build's, or the
/// one named by SANDBOX_CNI_BIN_DIR (for example cross-built release binaries). With
/// SANDBOX_CNI_RUNNER (for example `qemu-aarch64-static`), the directory returned holds one small
/// wrapper per plugin that execs the runner on the real binary, so plugins that call other
/// plugins through CNI_PATH (bridge calling host-local) run under the runner too.
pub(crate) fn bin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let real = match std::env::var_os("SANDBOX_CNI_BIN_DIR") {
            Some(d) => std::fs::canonicalize(&d).unwrap_or_else(|e| panic!("SANDBOX_CNI_BIN_DIR {d:?}: {e}")),
            None => build_dir(),
        };
        match std::env::var_os("SANDBOX_CNI_RUNNER") {
            Some(runner) => runner_wrappers(&real, Path::new(&runner)),
            None => real,
        }
    })
    .clone()
}

/// The directory of this build's binaries (target/debug), whatever SANDBOX_CNI_BIN_DIR says.
pub(crate) fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_loopback"))
        .parent()
        .expect("binary has a parent dir")
        .to_path_buf()
}

/// Writes `<target tmp>/runner-bin/<plugin>` scripts running `runner <real>/<plugin>`.
fn runner_wrappers(real: &Path, runner: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let runner = if runner.components().count() > 1 {
        runner.to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(runner))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("SANDBOX_CNI_RUNNER {} is not on PATH", runner.display()))
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("runner-bin");
    std::fs::create_dir_all(&dir).expect("create the runner wrapper dir");
    for p in PLUGINS {
        let script = format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            runner.display(),
            real.join(p).display()
        );
        let staged = dir.join(format!(".{p}.{}", std::process::id()));
        std::fs::write(&staged, script).expect("write a runner wrapper");
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .expect("chmod a runner wrapper");
        std::fs::rename(&staged, dir.join(p)).expect("install a runner wrapper");
    }
    dir
}

/// The path of plugin `name` from this build.
pub(crate) fn plugin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "plugin binary {} is missing: build the workspace first",
        p.display()
    );
    p
}

/// What one invocation printed.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub status: Option<i32>,
}

impl Out {
    pub(crate) fn ok(&self) -> bool {
        self.status == Some(0)
    }

    /// The stdout JSON document; panics (test failure) when there is none.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}): {:?}",
                String::from_utf8_lossy(&self.stdout)
            )
        })
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn assert_ok(&self) {
        assert!(
            self.ok(),
            "expected success, got {:?}: {} {}",
            self.status,
            self.text(),
            self.stderr
        );
    }

    /// Asserts success with an empty stdout (DEL, CHECK, GC, STATUS).
    pub(crate) fn assert_empty_success(&self) {
        self.assert_ok();
        assert!(
            self.stdout.is_empty(),
            "expected no output, got {:?}",
            self.text()
        );
    }

    /// Asserts success and returns the JSON result.
    pub(crate) fn assert_success(&self) -> Value {
        self.assert_ok();
        self.json()
    }

    /// Asserts that the call did not panic: no panic text on stderr, no internal error (code 999).
    pub(crate) fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "panic text on stderr: {}",
            self.stderr
        );
        if !self.ok() {
            assert_ne!(
                self.json()["code"].as_u64(),
                Some(999),
                "internal error (a panic): {}",
                self.text()
            );
        }
    }

    /// Asserts failure with a CNI error of `code` on stdout; returns the error object.
    pub(crate) fn assert_error(&self, code: u64) -> Value {
        assert!(!self.ok(), "expected error {code}, got success: {}", self.text());
        let v = self.json();
        assert_eq!(v["code"].as_u64(), Some(code), "wrong error code in {v}");
        assert!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "error without msg: {v}"
        );
        v
    }
}

/// Checks the stdout contract for any invocation: nothing, or exactly one JSON value with no
/// trailing bytes; an error object iff the exit status is non-zero.
pub(crate) fn assert_stdout_contract(out: &Out) {
    if out.stdout.is_empty() {
        assert!(
            out.ok(),
            "failed without an error object on stdout; stderr: {}",
            out.stderr
        );
        return;
    }
    let mut stream = serde_json::Deserializer::from_slice(&out.stdout).into_iter::<Value>();
    let first = stream.next().expect("one value").expect("stdout is valid JSON");
    assert!(
        stream.next().is_none(),
        "more than one JSON document on stdout: {}",
        out.text()
    );
    let trailing = out
        .stdout
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    assert_eq!(trailing, 0, "trailing bytes after the JSON document");
    let is_error = first.get("code").is_some() && first.get("msg").is_some();
    assert_eq!(
        is_error,
        !out.ok(),
        "error object iff non-zero exit: status {:?}, {}",
        out.status,
        out.text()
    );
}

/// Runs `exe` with only `env` set (plus nothing else) and `stdin`; checks the stdout contract.
fn run(exe: &Path, env: &EnvMap, stdin: &[u8]) -> Out {
    let mut child = Command::new(exe)
        .env_clear()
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("wait");
    let _ = writer.join();
    let out = Out {
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status.code(),
    };
    assert_stdout_contract(&out);
    out
}

/// The CNI_NETNS every call starts with.
pub(crate) const NETNS: &str = "/var/run/netns/test-1";

/// A CNI invocation under construction: `Cni::new("loopback", "ADD").var("CNI_IFNAME", "lo").run(&conf)`.
/// The same call runs as a process of this build's binary ([`Cni::run`]), as a bounded process
/// ([`Cni::bounded`]: memory limit, deadline, empty working directory), or in this process through the
/// dispatcher ([`Cni::dispatch`]).
#[derive(Debug, Clone)]
pub(crate) struct Cni {
    /// The plugin type (what the in-process run dispatches to).
    pub name: String,
    pub exe: PathBuf,
    /// The whole environment of the call, raw bytes allowed.
    pub env: EnvMap,
    bounded: bool,
    unprivileged: bool,
}

impl Cni {
    /// Plugin `name` of this build, with CNI_COMMAND, a container ID, ifname eth0, a netns path and
    /// CNI_PATH = the build's binary directory.
    pub(crate) fn new(name: &str, command: &str) -> Cni {
        let mut env = EnvMap::new();
        for (k, v) in [
            ("CNI_COMMAND", command.to_owned()),
            ("CNI_CONTAINERID", "ctr-1".to_owned()),
            ("CNI_NETNS", NETNS.to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_PATH", bin_dir().display().to_string()),
        ] {
            env.insert(OsString::from(k), OsString::from(v));
        }
        Cni {
            name: name.to_owned(),
            exe: plugin(name),
            env,
            bounded: false,
            unprivileged: false,
        }
    }

    /// Plugin `name` with an empty environment, as when someone runs it by hand.
    pub(crate) fn by_hand(name: &str) -> Cni {
        let mut call = Cni::new(name, "");
        call.env.clear();
        call
    }

    /// [`Cni::new`], run bounded: see [`bounded`].
    pub(crate) fn bounded(name: &str, command: &str) -> Cni {
        Cni {
            bounded: true,
            ..Cni::new(name, command)
        }
    }

    /// Runs as nobody (needs root and setpriv); implies bounded.
    pub(crate) fn unprivileged(self) -> Cni {
        Cni {
            bounded: true,
            unprivileged: true,
            ..self
        }
    }

    /// Sets (or, with an empty value, keeps but empties) a variable.
    pub(crate) fn var(self, key: &str, value: &str) -> Cni {
        self.var_bytes(key, value.as_bytes())
    }

    /// Sets a variable to any bytes (invalid UTF-8 included).
    pub(crate) fn var_bytes(mut self, key: &str, value: &[u8]) -> Cni {
        self.env
            .insert(OsString::from(key), OsString::from_vec(value.to_vec()));
        self
    }

    /// Removes a variable entirely.
    pub(crate) fn unset(mut self, key: &str) -> Cni {
        self.env.remove(&OsString::from(key));
        self
    }

    pub(crate) fn run(&self, stdin: &Value) -> Out {
        self.run_bytes(stdin.to_string().as_bytes())
    }

    /// Runs the binary; checks the stdout contract (and, bounded, everything [`bounded`] checks).
    pub(crate) fn run_bytes(&self, stdin: &[u8]) -> Out {
        if self.bounded {
            return bounded::run(self, stdin);
        }
        run(&self.exe, &self.env, stdin)
    }

    /// [`Cni::dispatch_bytes`] with a JSON document.
    pub(crate) fn dispatch(&self, stdin: &Value) -> Out {
        self.dispatch_bytes(stdin.to_string().as_bytes())
    }

    /// Runs the plugin in this process through the dispatcher, with this call's environment and
    /// `stdin` (a bridge's IPAM runs in-process too); checks the stdout contract and that nothing
    /// panicked. The binary's `main` does nothing more than this with the process's environment.
    pub(crate) fn dispatch_bytes(&self, stdin: &[u8]) -> Out {
        let outcome = InProcess
            .dispatch(&self.name, &self.env, stdin)
            .unwrap_or_else(|| panic!("{} is not a plugin of this package", self.name));
        let out = Out {
            stdout: outcome.stdout,
            stderr: outcome.stderr,
            status: Some(i32::from(outcome.exit)),
        };
        assert_stdout_contract(&out);
        out.assert_no_panic();
        out
    }
}

/// Fails once with every failure a table of cases collected (so one run reports all of them).
pub(crate) fn assert_none_failed(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Compares `actual` with the golden file `tests/golden/<rel>`; with UPDATE_GOLDEN=1 writes it instead.
/// Golden files hold the exact stdout bytes followed by one newline.
pub(crate) fn golden(rel: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel);
    let mut want = actual.to_vec();
    want.push(b'\n');
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir golden");
        std::fs::write(&path, &want).expect("write golden");
        return;
    }
    let have = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} missing ({e}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        have == want,
        "output differs from {}:\n got: {}\nwant: {}",
        path.display(),
        String::from_utf8_lossy(&want),
        String::from_utf8_lossy(&have)
    );
}

/// Every supported spec version (cni-core's list).
pub(crate) const VERSIONS: [&str; 7] = cni_core::version::SUPPORTED;

/// Every plugin binary of the suite (the product's list, plugins/list.txt through k3s-sandbox).
pub(crate) const PLUGINS: [&str; 7] = k3s_sandbox::cni::plugins::ALL;

/// The addresses reserved in a host-local network directory (`<dataDir>/<network>`), sorted; empty
/// when the directory does not exist.
pub(crate) fn reserved_addresses(net_dir: &Path) -> Vec<std::net::IpAddr> {
    let mut ips: Vec<std::net::IpAddr> = std::fs::read_dir(net_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ips.sort();
    ips
}
