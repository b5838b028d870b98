//! Interop tests (issue 5): sandbox-cni's plugins driven by the real CNI clients.
//!
//! * libcni (the library inside cnitool, CRI-O and containerd) through `libcni-driver`, which has
//!   cnitool's command line and environment contract (and, built against libcni 1.2 or later with
//!   `-tags libcni12`, cnitool 1.3's `gc` and `status`);
//! * containerd's go-cni through `gocni-driver`, which loads a conf dir like containerd's CRI plugin
//!   (loopback network + default network, minimum network count 2).
//!
//! Both drivers are our own Go programs under `tests/interop/go`; they are built here once per test run
//! from Debian's packaged Go sources (no network): on Debian 12, libcni 1.1.2 and go-cni 1.1.7. The test
//! command also builds them inside the test root (tests/testroot) against libcni 1.3.0 and go-cni
//! 1.1.13 and runs this same suite with `SANDBOX_CNI_INTEROP_DRIVERS` naming that build. The suite asks
//! the driver which spec versions its libcni knows (`libcni-driver client`) and adapts: every version
//! the library knows is run, and conflists with `cniVersions` run as shipped too (libcni 1.2+ picks the
//! highest version from that list). They record every plugin execution the client makes
//! in a JSON-lines trace file, so the tests assert what the client really sent (verb order, prevResult,
//! runtimeConfig, CNI_ARGS) besides what it got back (results, reservations, libcni's cache files).
//!
//! Every case works in its own temporary directory: conf dir with the conflist copied and its
//! `ipam.dataDir` rewritten, libcni cache dir, trace file and fake netns paths (our plugins never open
//! the netns). The plugin directory (`CNI_PATH`) is the directory of the root package's binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

/// Every plugin binary of the root package.
const PLUGINS: [&str; 7] = k3s_sandbox::cni::plugins::ALL;
/// The oldest version the list lifecycle runs at (libcni parses results of 0.3.1 and later into the
/// current model; 0.1.0/0.2.0 single files have their own test).
const LIFECYCLE_MIN_VERSION: &str = "0.3.1";
/// What cnitool users typically pass: containerd-style labels.
const CNI_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=interop";
const DEBIAN_GOCODE: &str = "/usr/share/gocode";
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// Capability arguments sent with every libcni ADD/CHECK/DEL (cnitool's CAP_ARGS, spec key names).
fn cap_args() -> Value {
    json!({
        "portMappings": [{ "hostPort": 18080, "containerPort": 80, "protocol": "tcp" }],
        "bandwidth": { "ingressRate": 1_000_000, "ingressBurst": 2_000_000,
                       "egressRate": 1_000_000, "egressBurst": 2_000_000 },
    })
}

// ---------------------------------------------------------------------------------------------------------
// Processes with a deadline

struct Out {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.stdout)
            .map_err(|e| format!("stdout is not one JSON document ({e}):\n{}", self.describe()))
    }
}

/// Runs `cmd` with stdin closed, capturing its output; kills it after `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Out, String> {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{what}`: {e}"))?;
    let readers = [
        child.stdout.take().map(box_read),
        child.stderr.take().map(box_read),
    ]
    .map(|r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                // A read error just truncates the captured text; the exit status still counts.
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers are left behind: a grandchild may still hold the pipes.
                return Err(format!(
                    "`{what}` did not finish within {timeout:?} and was killed"
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for `{what}`: {e}")),
        }
    };
    let [stdout, stderr] = readers.map(|h| h.join().unwrap_or_else(|_| String::from("<reader panicked>")));
    Ok(Out {
        what,
        code: status.code(),
        stdout,
        stderr,
    })
}

fn box_read<R: Read + Send + 'static>(r: R) -> Box<dyn Read + Send> {
    Box::new(r)
}

// ---------------------------------------------------------------------------------------------------------
// Building the Go drivers (once per test run)

struct Drivers {
    libcni: PathBuf,
    gocni: PathBuf,
    client: Client,
}

/// What the drivers are built on, as `libcni-driver client` reports it.
struct Client {
    /// e.g. "libcni 1.3.0"
    libcni: String,
    /// e.g. "go-cni 1.1.13"
    gocni: String,
    /// Every spec version the libcni knows (`version.All`).
    versions: Vec<String>,
    /// Built with libcni's GC and STATUS API (`-tags libcni12`).
    gc_and_status: bool,
}

/// A directory with prebuilt `libcni-driver` and `gocni-driver` (e.g. built inside the test root
/// against libcni 1.3.0 and go-cni 1.1.13); unset: the drivers are built here from the host's sources.
const DRIVERS_ENV: &str = "SANDBOX_CNI_INTEROP_DRIVERS";

fn drivers() -> &'static Drivers {
    static DRIVERS: OnceLock<Result<Drivers, String>> = OnceLock::new();
    match DRIVERS.get_or_init(|| {
        let (libcni, gocni) = match std::env::var_os(DRIVERS_ENV).filter(|d| !d.is_empty()) {
            Some(dir) => prebuilt_drivers(Path::new(&dir))?,
            None => build_drivers()?,
        };
        let client = ask_client(&libcni)?;
        Ok(Drivers {
            libcni,
            gocni,
            client,
        })
    }) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn client() -> &'static Client {
    &drivers().client
}

fn prebuilt_drivers(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (libcni, gocni) = (dir.join("libcni-driver"), dir.join("gocni-driver"));
    for d in [&libcni, &gocni] {
        if !d.is_file() {
            return Err(format!(
                "${DRIVERS_ENV} is {} but {} is missing: build the drivers there (tests/run.sh does, \
                 inside the test root) or unset it to build them from the host's Go sources",
                dir.display(),
                d.display()
            ));
        }
    }
    Ok((libcni, gocni))
}

/// Runs `libcni-driver client`: which libraries it is built on and the spec versions libcni knows.
fn ask_client(libcni: &Path) -> Result<Client, String> {
    let out = run(Command::new(libcni).env_clear().arg("client"), RUN_TIMEOUT)?;
    if !out.ok() {
        return Err(format!(
            "asking the driver about its libcni failed:\n{}",
            out.describe()
        ));
    }
    let v = out.json()?;
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let versions: Vec<String> = v
        .get("specVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    match (
        text("library"),
        text("gocniLibrary"),
        v.get("gcAndStatus").and_then(Value::as_bool),
    ) {
        (Some(libcni), Some(gocni), Some(gc_and_status)) if !versions.is_empty() => Ok(Client {
            libcni,
            gocni,
            versions,
            gc_and_status,
        }),
        _ => Err(format!(
            "unexpected `libcni-driver client` output:\n{}",
            out.describe()
        )),
    }
}

/// The version of an installed Debian package, for report labels; `None` off Debian.
fn debian_version(package: &str) -> Option<String> {
    let out = run(
        Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]),
        RUN_TIMEOUT,
    )
    .ok()?;
    let v = out.stdout.trim();
    // "1.1.2-1" -> "1.1.2"; "1:1.0-2" -> "1.0"
    let v = v.rsplit_once(':').map_or(v, |(_, rest)| rest);
    let v = v.split(['-', '+', '~']).next().unwrap_or("");
    (out.ok() && !v.is_empty()).then(|| v.to_owned())
}

/// The spec versions the list lifecycle runs at: every one the client's libcni knows from 0.3.1 on.
fn lifecycle_versions() -> Vec<String> {
    client()
        .versions
        .iter()
        .filter(|v| version_at_least(v, LIFECYCLE_MIN_VERSION))
        .cloned()
        .collect()
}

/// The version libcni runs a list at: libcni 1.2 and later (which know 1.1.0) pick the highest of
/// `cniVersions` and `cniVersion` they know; older ones read only `cniVersion`.
fn effective_version(conf: &Value) -> String {
    let declared = conf.get("cniVersion").and_then(Value::as_str).unwrap_or("");
    let knows = |v: &str| client().versions.iter().any(|k| k == v);
    let listed: Vec<&str> = conf
        .get("cniVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if listed.is_empty() || !knows("1.1.0") {
        return declared.to_owned();
    }
    listed
        .into_iter()
        .chain((!declared.is_empty()).then_some(declared))
        .filter(|v| knows(v))
        .fold(String::new(), |best, v| {
            if best.is_empty() || version_at_least(v, &best) {
                v.to_owned()
            } else {
                best
            }
        })
}

fn find_go() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("go"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/lib/go/bin/go")])
        .find(|p| p.is_file())
}

fn build_drivers() -> Result<(PathBuf, PathBuf), String> {
    const HOW: &str = "The interop tests need Go and Debian's packaged CNI Go sources: run the test command \
                       (tests/run.sh), which installs them, or `apt-get install golang-go \
                       golang-github-appc-cni-dev golang-github-containerd-go-cni-dev`.";
    let go = find_go().ok_or_else(|| format!("no `go` binary on PATH or in /usr/lib/go/bin. {HOW}"))?;
    for (dir, package) in [
        (
            "github.com/containernetworking/cni/libcni",
            "golang-github-appc-cni-dev",
        ),
        (
            "github.com/containerd/go-cni",
            "golang-github-containerd-go-cni-dev",
        ),
    ] {
        let path = Path::new(DEBIAN_GOCODE).join("src").join(dir);
        if !path.is_dir() {
            return Err(format!(
                "{} is missing (Debian package {package}). {HOW}",
                path.display()
            ));
        }
    }
    let gopath = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/go");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
    let bin_dir = out_dir.join("bin");
    fs::create_dir_all(&bin_dir).map_err(|e| format!("creating {}: {e}", bin_dir.display()))?;
    let joined = std::env::join_paths([gopath.as_path(), Path::new(DEBIAN_GOCODE)])
        .map_err(|e| format!("building GOPATH: {e}"))?;
    let out = run(
        Command::new(&go)
            .current_dir(&gopath)
            .env("GOPATH", joined)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("GOENV", "off")
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", out_dir.join("gocache"))
            .arg("build")
            .arg("-ldflags")
            .arg(format!(
                "-X 'main.library={}' -X 'main.gocniLibrary={}'",
                debian_version("golang-github-appc-cni-dev")
                    .map_or_else(|| "libcni".to_owned(), |v| format!("libcni {v}")),
                debian_version("golang-github-containerd-go-cni-dev")
                    .map_or_else(|| "go-cni".to_owned(), |v| format!("go-cni {v}")),
            ))
            .arg("-o")
            .arg(format!("{}/", bin_dir.display()))
            .args(["interop/cmd/libcni-driver", "interop/cmd/gocni-driver"]),
        BUILD_TIMEOUT,
    )?;
    if !out.ok() {
        return Err(format!(
            "building the Go interop drivers failed. {HOW}\n{}",
            out.describe()
        ));
    }
    Ok((bin_dir.join("libcni-driver"), bin_dir.join("gocni-driver")))
}

// ---------------------------------------------------------------------------------------------------------
// Plugins, conflists and per-case state

/// Overrides the plugin directory, e.g. to run the interop cases against installed release binaries.
const PLUGIN_DIR_ENV: &str = "SANDBOX_CNI_INTEROP_PLUGIN_DIR";

/// Our CNI_PATH: the directory holding the root package's binaries, unless overridden.
fn plugin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(PLUGIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let loopback = Path::new(env!("CARGO_BIN_EXE_loopback"));
    loopback
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Fails clearly when a plugin binary a case needs has not been built.
fn require_plugins<'a>(types: impl IntoIterator<Item = &'a str>) {
    let dir = plugin_dir();
    let missing: Vec<&str> = types.into_iter().filter(|t| !dir.join(t).is_file()).collect();
    assert!(
        missing.is_empty(),
        "plugin binaries {missing:?} not found in {} (used as CNI_PATH: the directory of the root package's \
         binaries, or ${PLUGIN_DIR_ENV} when set); each plugin needs a [[bin]] entry in Cargo.toml",
        dir.display()
    );
}

fn conflists() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conflist"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.conflist in {}", dir.display());
    files
}

fn conflist(file_name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("cni-conf")
        .join(file_name);
    assert!(
        path.is_file(),
        "{} is missing (planned conflist, written by another engineer)",
        path.display()
    );
    path
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One network under test, in its own temporary directory.
struct Net {
    _tmp: tempfile::TempDir,
    name: String,
    version: String,
    conf_dir: PathBuf,
    data_dir: PathBuf,
    cache_dir: PathBuf,
    trace: PathBuf,
    netns_dir: PathBuf,
    /// The plugin objects of the list (a single .conf counts as a list of one).
    plugins: Vec<Value>,
    /// host-local range sets: one address per set, in this order.
    range_sets: Vec<Vec<IpNetwork>>,
}

impl Net {
    /// Copies a conflist (or .conf) into a fresh conf dir, rewriting every `ipam.dataDir` into the
    /// temporary directory and, when given, the top-level `cniVersion`.
    fn prepare(src: &Path, version: Option<&str>) -> Result<Net, String> {
        let text = fs::read_to_string(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", src.display()))?;
        Net::from_value(&file_name(src), value, version)
    }

    fn from_value(file_name: &str, mut conf: Value, version: Option<&str>) -> Result<Net, String> {
        let tmp = tempfile::Builder::new()
            .prefix("interop-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir: {e}"))?;
        let root = tmp.path().to_path_buf();
        let (conf_dir, data_dir, cache_dir, netns_dir) = (
            root.join("conf"),
            root.join("data"),
            root.join("cache"),
            root.join("netns"),
        );
        for d in [&conf_dir, &data_dir, &cache_dir] {
            fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        let obj = conf
            .as_object_mut()
            .ok_or_else(|| format!("{file_name}: not a JSON object"))?;
        if let Some(v) = version {
            obj.insert("cniVersion".into(), json!(v));
            // Else libcni 1.2+ would pick the highest of `cniVersions` instead.
            obj.remove("cniVersions");
        }
        let data = json!(data_dir.to_string_lossy());
        let is_list = obj.contains_key("plugins");
        let plugin_objs: Vec<&mut Value> = if is_list {
            match obj.get_mut("plugins") {
                Some(Value::Array(a)) => a.iter_mut().collect(),
                _ => return Err(format!("{file_name}: `plugins` is not an array")),
            }
        } else {
            vec![&mut conf]
        };
        let mut range_sets = Vec::new();
        let mut plugins = Vec::new();
        for p in plugin_objs {
            if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
                ipam.insert("dataDir".into(), data.clone());
                if ipam.get("type").and_then(Value::as_str) == Some("host-local") {
                    range_sets.extend(host_local_range_sets(ipam)?);
                }
            }
            plugins.push(p.clone());
        }
        let name = str_field(&conf, "name")?.to_owned();
        let version = effective_version(&conf);
        let dest = conf_dir.join(file_name);
        let bytes = serde_json::to_vec_pretty(&conf).map_err(|e| format!("serialising {file_name}: {e}"))?;
        fs::write(&dest, bytes).map_err(|e| format!("writing {}: {e}", dest.display()))?;
        Ok(Net {
            _tmp: tmp,
            name,
            version,
            conf_dir,
            data_dir,
            cache_dir,
            trace: root.join("trace.jsonl"),
            netns_dir,
            plugins,
            range_sets,
        })
    }

    fn plugin_types(&self) -> Vec<String> {
        self.plugins
            .iter()
            .map(|p| p.get("type").and_then(Value::as_str).unwrap_or("").to_owned())
            .collect()
    }

    /// Every binary this network runs: list plugins and their IPAM plugins.
    fn binaries(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.plugin_types().into_iter().collect();
        for p in &self.plugins {
            if let Some(t) = p.pointer("/ipam/type").and_then(Value::as_str) {
                all.insert(t.to_owned());
            }
        }
        all
    }

    /// Capabilities enabled in any plugin, sorted (what libcni's validate reports).
    fn capabilities(&self) -> Vec<String> {
        let mut caps = BTreeSet::new();
        for p in &self.plugins {
            if let Some(m) = p.get("capabilities").and_then(Value::as_object) {
                caps.extend(
                    m.iter()
                        .filter(|(_, on)| on.as_bool() == Some(true))
                        .map(|(k, _)| k.clone()),
                );
            }
        }
        caps.into_iter().collect()
    }

    /// A fake netns path; it never exists (our plugins do not open it).
    fn netns(&self, pod: &str) -> String {
        self.netns_dir.join(pod).to_string_lossy().into_owned()
    }

    fn libcni(&self, args: &[&str]) -> Result<Out, String> {
        self.libcni_with(&plugin_dir(), args)
    }

    fn libcni_with(&self, bin_dir: &Path, args: &[&str]) -> Result<Out, String> {
        self.libcni_env(bin_dir, args, &[])
    }

    /// The libcni driver with extra environment variables (e.g. `GC_VALID`).
    fn libcni_env(&self, bin_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Out, String> {
        run(
            Command::new(&drivers().libcni)
                .env_clear()
                .envs(env.iter().copied())
                .args(args)
                .env("NETCONFPATH", &self.conf_dir)
                .env("CNI_PATH", bin_dir)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_ARGS", CNI_ARGS)
                .env("CAP_ARGS", cap_args().to_string())
                .env("CNI_CACHE_DIR", &self.cache_dir)
                .env("INTEROP_TRACE", &self.trace),
            RUN_TIMEOUT,
        )
    }

    fn gocni(&self, bin_dir: &Path, flags: &[&str], args: &[&str]) -> Result<Out, String> {
        run(
            Command::new(&drivers().gocni)
                .env_clear()
                .arg("-conf-dir")
                .arg(&self.conf_dir)
                .arg("-bin-dir")
                .arg(bin_dir)
                .arg("-cache-dir")
                .arg(&self.cache_dir)
                .arg("-trace")
                .arg(&self.trace)
                .args(["-timeout", "50s"])
                .args(flags)
                .args(args),
            RUN_TIMEOUT,
        )
    }

    /// All plugin executions recorded so far.
    fn trace(&self) -> Result<Vec<Value>, String> {
        let text = match fs::read_to_string(&self.trace) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("reading trace {}: {e}", self.trace.display())),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).map_err(|e| format!("bad trace line {l:?}: {e}")))
            .collect()
    }

    /// host-local reservations: address -> file content.
    fn reservations(&self) -> Result<BTreeMap<IpAddr, String>, String> {
        let dir = self.data_dir.join(&self.name);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("reading {}: {e}", dir.display())),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let path = entry
                .map_err(|e| format!("reading {}: {e}", dir.display()))?
                .path();
            let Ok(ip) = file_name(&path).parse::<IpAddr>() else {
                continue;
            };
            let content =
                fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            out.insert(ip, content);
        }
        Ok(out)
    }

    /// Files in libcni's result cache.
    fn cached_results(&self) -> Result<BTreeSet<String>, String> {
        let dir = self.cache_dir.join("results");
        match fs::read_dir(&dir) {
            Ok(entries) => Ok(entries
                .filter_map(|e| e.ok().map(|e| file_name(&e.path())))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
            Err(e) => Err(format!("reading {}: {e}", dir.display())),
        }
    }
}

fn host_local_range_sets(ipam: &serde_json::Map<String, Value>) -> Result<Vec<Vec<IpNetwork>>, String> {
    let parse = |v: &Value| -> Result<IpNetwork, String> {
        let s = v
            .get("subnet")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("range without subnet: {v}"))?;
        s.parse().map_err(|e| format!("bad subnet {s:?}: {e}"))
    };
    let mut sets = Vec::new();
    if ipam.contains_key("subnet") {
        sets.push(vec![parse(&Value::Object(ipam.clone()))?]);
    }
    for set in ipam.get("ranges").and_then(Value::as_array).into_iter().flatten() {
        let ranges = set
            .as_array()
            .ok_or_else(|| format!("range set is not an array: {set}"))?;
        sets.push(ranges.iter().map(parse).collect::<Result<_, _>>()?);
    }
    Ok(sets)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, String> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no string `{key}` in {v}"))
}

/// cnitool's container ID: "cnitool-" + hex of the first 10 bytes of SHA-512(netns path).
fn cnitool_container_id(netns: &str) -> String {
    let digest = Sha512::digest(netns.as_bytes());
    let mut id = String::from("cnitool-");
    for b in &digest[..10] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// `v >= min` in cni-runtime's version order ("1.0" equals "1.0.0").
fn version_at_least(v: &str, min: &str) -> bool {
    cni_runtime::version::at_least(v, min).unwrap_or(false)
}

/// Index of the range set (and the subnet in it) that contains `ip`.
fn range_set_of(net: &Net, ip: IpAddr) -> Option<(usize, IpNetwork)> {
    net.range_sets
        .iter()
        .enumerate()
        .find_map(|(i, set)| set.iter().find(|s| s.contains(ip)).map(|s| (i, *s)))
}

/// Checks an address handed out for a range set: inside it, not its network address or gateway.
fn check_address(net: &Net, ip: IpAddr, gateway: Option<IpAddr>) -> Result<usize, String> {
    let (set, subnet) = range_set_of(net, ip).ok_or_else(|| {
        format!(
            "address {ip} is outside every configured range {:?}",
            net.range_sets
        )
    })?;
    ensure(ip != subnet.network(), || {
        format!("{ip} is the network address of {subnet}")
    })?;
    if let Some(gw) = gateway {
        ensure(subnet.contains(gw), || {
            format!("gateway {gw} of {ip} is outside {subnet}")
        })?;
        ensure(gw != ip, || format!("{ip} is its own gateway"))?;
    }
    Ok(set)
}

// ---------------------------------------------------------------------------------------------------------
// Result and trace checks

/// Checks a 0.3.x/0.4.0/1.x result from ADD: version, the container interface (`ifname`, sandbox),
/// one address per range set in range-set order, each pointing at the container interface.
fn check_result(
    net: &Net,
    v: &str,
    result: &Value,
    netns: &str,
    ifname: &str,
) -> Result<Vec<IpAddr>, String> {
    ensure(result.get("cniVersion") == Some(&json!(v)), || {
        format!("result cniVersion is not {v}: {result}")
    })?;
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ips = result
        .get("ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let container = ifaces
        .iter()
        .position(|i| i.get("name") == Some(&json!(ifname)))
        .ok_or_else(|| format!("no interface named {ifname} in result {result}"))?;
    ensure(ifaces[container].get("sandbox") == Some(&json!(netns)), || {
        format!(
            "interface {ifname} has sandbox {:?}, want {netns}",
            ifaces[container].get("sandbox")
        )
    })?;
    ensure(ips.len() == net.range_sets.len(), || {
        format!(
            "{} addresses for {} range sets: {result}",
            ips.len(),
            net.range_sets.len()
        )
    })?;
    let mut addrs = Vec::new();
    for (n, ip) in ips.iter().enumerate() {
        let cidr: IpNetwork = str_field(ip, "address")?
            .parse()
            .map_err(|e| format!("bad address in {ip}: {e}"))?;
        let gw = match ip.get("gateway").and_then(Value::as_str) {
            Some(g) => Some(
                g.parse::<IpAddr>()
                    .map_err(|e| format!("bad gateway in {ip}: {e}"))?,
            ),
            None => None,
        };
        let set = check_address(net, cidr.ip(), gw)?;
        ensure(set == n, || {
            format!("address {n} ({cidr}) comes from range set {set}: wrong order")
        })?;
        let idx = ip
            .get("interface")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("no interface index: {ip}"))?;
        ensure(usize::try_from(idx).is_ok_and(|i| i == container), || {
            format!(
                "ips[{n}].interface = {idx}, but {ifname} is interface {container} of {}",
                ifaces.len()
            )
        })?;
        let family = if cidr.is_ipv4() { "4" } else { "6" };
        if version_at_least(v, "1.0.0") {
            ensure(ip.get("version").is_none(), || {
                format!("1.x result carries ips[].version: {ip}")
            })?;
        } else {
            ensure(ip.get("version") == Some(&json!(family)), || {
                format!("ips[{n}].version is not {family}: {ip}")
            })?;
        }
        addrs.push(cidr.ip());
    }
    Ok(addrs)
}

/// Checks the reservations left in the host-local store: exactly `want` (address -> owner).
fn check_reservations(net: &Net, want: &BTreeMap<IpAddr, (String, String)>) -> Result<(), String> {
    let have = net.reservations()?;
    let have_ips: BTreeSet<_> = have.keys().collect();
    let want_ips: BTreeSet<_> = want.keys().collect();
    ensure(have_ips == want_ips, || {
        format!(
            "store {}/{} holds {have_ips:?}, want {want_ips:?}",
            net.data_dir.display(),
            net.name
        )
    })?;
    for (ip, (id, ifname)) in want {
        let content = &have[ip];
        ensure(content.trim_end() == format!("{id}\r\n{ifname}"), || {
            format!("reservation {ip} contains {content:?}, want \"{id}\\r\\n{ifname}\"")
        })?;
    }
    Ok(())
}

fn records<'a>(trace: &'a [Value], command: &str) -> Vec<&'a Value> {
    trace
        .iter()
        .filter(|r| r.get("command") == Some(&json!(command)))
        .collect()
}

fn plugin_of(rec: &Value) -> &str {
    rec.get("plugin").and_then(Value::as_str).unwrap_or("")
}

/// Checks what libcni sent for one verb of a list: the plugins in `order`, the common parameters, and
/// prevResult on every plugin (`prev == Some(true)`), none (`Some(false)`) or all but the first (None).
fn check_calls(
    net: &Net,
    recs: &[&Value],
    order: &[String],
    id: &str,
    ifname: &str,
    prev: Option<bool>,
) -> Result<(), String> {
    let got: Vec<&str> = recs.iter().map(|r| plugin_of(r)).collect();
    ensure(
        got == order.iter().map(String::as_str).collect::<Vec<_>>(),
        || format!("plugins executed {got:?}, want {order:?}"),
    )?;
    for (i, r) in recs.iter().enumerate() {
        let stdin = r
            .get("stdin")
            .ok_or_else(|| format!("no JSON stdin recorded: {r}"))?;
        ensure(stdin.get("cniVersion") == Some(&json!(net.version)), || {
            format!("stdin version: {stdin}")
        })?;
        ensure(stdin.get("name") == Some(&json!(net.name)), || {
            format!("stdin name: {stdin}")
        })?;
        ensure(r.get("containerId") == Some(&json!(id)), || {
            format!("CNI_CONTAINERID: {r}")
        })?;
        ensure(r.get("ifName") == Some(&json!(ifname)), || {
            format!("CNI_IFNAME: {r}")
        })?;
        let want_prev = prev.unwrap_or(i > 0);
        match stdin.get("prevResult") {
            Some(p) if want_prev => ensure(p.get("cniVersion") == Some(&json!(net.version)), || {
                format!("prevResult version: {p}")
            })?,
            None if !want_prev => {}
            other => {
                return Err(format!(
                    "{} of plugin #{i} ({}): prevResult {other:?}, expected {}",
                    r.get("command").unwrap_or(&Value::Null),
                    plugin_of(r),
                    if want_prev { "one" } else { "none" }
                ));
            }
        }
    }
    Ok(())
}

/// Checks that each plugin got exactly the capability arguments it declares, with `args`' values.
fn check_runtime_config(recs: &[&Value], plugins: &[Value], args: &Value) -> Result<(), String> {
    for (rec, plugin) in recs.iter().zip(plugins) {
        let stdin = rec.get("stdin").unwrap_or(&Value::Null);
        for (cap, value) in args.as_object().into_iter().flatten() {
            let declared = plugin.pointer(&format!("/capabilities/{cap}")) == Some(&json!(true));
            let sent = stdin.pointer(&format!("/runtimeConfig/{cap}"));
            if declared {
                ensure(sent == Some(value), || {
                    format!(
                        "plugin {} declares {cap} but got runtimeConfig {sent:?}, want {value}",
                        plugin_of(rec)
                    )
                })?;
            } else {
                ensure(sent.is_none(), || {
                    format!("plugin {} got undeclared capability {cap}", plugin_of(rec))
                })?;
            }
        }
    }
    Ok(())
}

fn since(trace: Result<Vec<Value>, String>, mark: usize) -> Result<Vec<Value>, String> {
    Ok(trace?.into_iter().skip(mark).collect())
}

// ---------------------------------------------------------------------------------------------------------
// libcni (cnitool contract)

/// validate, ADD, CHECK, DEL, DEL again, ADD again, DEL of one conflist at one version through libcni.
fn libcni_lifecycle(net: &Net) -> Result<(), String> {
    let v = net.version.as_str();
    let netns = net.netns("pod-a");
    let id = cnitool_container_id(&netns);
    let order = net.plugin_types();
    let reverse: Vec<String> = order.iter().rev().cloned().collect();
    let cache_file = format!("{}-{id}-eth0", net.name);

    // validate: VERSION of every list plugin, list version supported, capabilities reported.
    let out = net.libcni(&["validate", &net.name])?;
    ensure(out.ok(), || format!("validate failed:\n{}", out.describe()))?;
    let caps = out.json()?;
    ensure(
        caps.get("capabilities") == Some(&json!(net.capabilities())),
        || {
            format!(
                "validate reported {caps}, want capabilities {:?}",
                net.capabilities()
            )
        },
    )?;

    // ADD with capability args and CNI_ARGS.
    let mark = net.trace()?.len();
    let out = net.libcni(&["add", &net.name, &netns])?;
    ensure(out.ok(), || format!("ADD failed:\n{}", out.describe()))?;
    let result = out.json()?;
    let addrs = check_result(net, v, &result, &netns, "eth0")?;
    let trace = since(net.trace(), mark)?;
    let adds = records(&trace, "ADD");
    check_calls(net, &adds, &order, &id, "eth0", None)?;
    check_runtime_config(&adds, &net.plugins, &cap_args())?;
    for r in &adds {
        ensure(r.get("args") == Some(&json!(CNI_ARGS)), || {
            format!("CNI_ARGS not passed through: {r}")
        })?;
    }
    let owned: BTreeMap<IpAddr, (String, String)> = addrs
        .iter()
        .map(|ip| (*ip, (id.clone(), "eth0".to_owned())))
        .collect();
    check_reservations(net, &owned)?;
    let cache_path = net.cache_dir.join("results").join(&cache_file);
    let cached: Value = serde_json::from_slice(
        &fs::read(&cache_path)
            .map_err(|e| format!("libcni cache {} after ADD: {e}", cache_path.display()))?,
    )
    .map_err(|e| format!("libcni cache is not JSON: {e}"))?;
    for (key, want) in [
        ("kind", json!("cniCacheV1")),
        ("containerId", json!(id)),
        ("ifName", json!("eth0")),
        ("networkName", json!(net.name)),
    ] {
        ensure(cached.get(key) == Some(&want), || {
            format!("cache {key} = {:?}, want {want}", cached.get(key))
        })?;
    }
    ensure(cached.pointer("/result/cniVersion") == Some(&json!(v)), || {
        format!("cached result: {cached}")
    })?;
    ensure(cached.pointer("/result/ips") == result.get("ips"), || {
        format!(
            "cached ips {:?} differ from the ADD result {:?}",
            cached.pointer("/result/ips"),
            result.get("ips")
        )
    })?;

    // CHECK: libcni refuses it below 0.4.0 without running any plugin.
    let mark = net.trace()?.len();
    let out = net.libcni(&["check", &net.name, &netns])?;
    let trace = since(net.trace(), mark)?;
    if version_at_least(v, "0.4.0") {
        ensure(out.ok(), || {
            format!("CHECK after ADD failed:\n{}", out.describe())
        })?;
        check_calls(net, &records(&trace, "CHECK"), &order, &id, "eth0", Some(true))?;
    } else {
        let want = format!("configuration version \"{v}\" does not support the CHECK command");
        ensure(!out.ok() && out.stderr.contains(&want), || {
            format!(
                "CHECK at {v} should be refused by libcni ({want}):\n{}",
                out.describe()
            )
        })?;
        ensure(trace.is_empty(), || {
            format!("libcni ran plugins for a refused CHECK: {trace:?}")
        })?;
    }

    // DEL: reverse order, prevResult from the cache from 0.4.0 on; everything released.
    let mark = net.trace()?.len();
    let out = net.libcni(&["del", &net.name, &netns])?;
    ensure(out.ok(), || format!("DEL failed:\n{}", out.describe()))?;
    let trace = since(net.trace(), mark)?;
    check_calls(
        net,
        &records(&trace, "DEL"),
        &reverse,
        &id,
        "eth0",
        Some(version_at_least(v, "0.4.0")),
    )?;
    check_reservations(net, &BTreeMap::new())?;
    ensure(!cache_path.exists(), || {
        format!("libcni cache {} left after DEL", cache_path.display())
    })?;

    // DEL again: no cache any more, so no prevResult; still success.
    let mark = net.trace()?.len();
    let out = net.libcni(&["del", &net.name, &netns])?;
    ensure(out.ok(), || format!("second DEL failed:\n{}", out.describe()))?;
    let trace = since(net.trace(), mark)?;
    check_calls(net, &records(&trace, "DEL"), &reverse, &id, "eth0", Some(false))?;
    check_reservations(net, &BTreeMap::new())?;

    // The same attachment can be added again after DEL.
    let out = net.libcni(&["add", &net.name, &netns])?;
    ensure(out.ok(), || format!("ADD after DEL failed:\n{}", out.describe()))?;
    let addrs = check_result(net, v, &out.json()?, &netns, "eth0")?;
    let owned = addrs
        .iter()
        .map(|ip| (*ip, (id.clone(), "eth0".to_owned())))
        .collect();
    check_reservations(net, &owned)?;
    let out = net.libcni(&["del", &net.name, &netns])?;
    ensure(out.ok(), || format!("final DEL failed:\n{}", out.describe()))?;
    check_reservations(net, &BTreeMap::new())?;
    ensure(net.cached_results()?.is_empty(), || {
        "libcni cache not empty at the end".to_owned()
    })
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Runs the libcni lifecycle for one conflist at every version the client's libcni parses, and as
/// shipped when the conflist has `cniVersions` and libcni reads it; returns the passed cases and the
/// failures.
fn libcni_at_every_version(file: &str, conf: &Value) -> (Vec<String>, Vec<String>) {
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    let mut versions: Vec<Option<String>> = lifecycle_versions().into_iter().map(Some).collect();
    if conf.get("cniVersions").is_some() && client().versions.iter().any(|v| v == "1.1.0") {
        versions.push(None);
    }
    for v in versions {
        let case = match &v {
            Some(v) => format!("{file} at cniVersion {v}"),
            None => format!("{file} as shipped (cniVersions: {})", effective_version(conf)),
        };
        let net = match Net::from_value(file, conf.clone(), v.as_deref()) {
            Ok(net) => net,
            Err(e) => {
                failures.push(format!("{case}: {e}"));
                continue;
            }
        };
        require_plugins(net.binaries().iter().map(String::as_str));
        match libcni_lifecycle(&net) {
            Ok(()) => passed.push(case),
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    (passed, failures)
}

// A test diagnostic (test functions may print; this helper of theirs says what passed).
#[allow(clippy::print_stderr)]
fn report(what: &str, passed: &[String], failures: &[String]) {
    eprintln!("{what} passed for:\n  {}", passed.join("\n  "));
    assert!(
        failures.is_empty(),
        "{what}: {} of {} cases failed:\n\n{}",
        failures.len(),
        passed.len() + failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn libcni_every_conflist_at_every_version() {
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    for file in conflists() {
        let (p, f) = libcni_at_every_version(&file_name(&file), &read_json(&file));
        passed.extend(p);
        failures.extend(f);
    }
    report(
        &format!("{} validate/ADD/CHECK/DEL/DEL", client().libcni),
        &passed,
        &failures,
    );
}

/// The default network with a bandwidth plugin chained after portmap (the shape of k3s' flannel list):
/// the bandwidth capability reaches the bandwidth plugin through libcni and go-cni.
fn with_bandwidth() -> Value {
    let mut conf = read_json(&conflist("10-sandbox-cni.conflist"));
    match conf.get_mut("plugins").and_then(Value::as_array_mut) {
        Some(plugins) => plugins.push(json!({ "type": "bandwidth", "capabilities": { "bandwidth": true } })),
        None => panic!("10-sandbox-cni.conflist has no plugins array"),
    }
    conf
}

#[test]
fn libcni_chain_with_bandwidth_at_every_version() {
    let (passed, failures) = libcni_at_every_version("with-bandwidth.conflist", &with_bandwidth());
    report(
        &format!("{} validate/ADD/CHECK/DEL/DEL", client().libcni),
        &passed,
        &failures,
    );
}

#[test]
fn libcni_version_of_every_plugin() {
    require_plugins(PLUGINS);
    let net = Net::from_value(
        "unused.conflist",
        json!({"cniVersion": "1.0.0", "name": "unused", "plugins": []}),
        None,
    )
    .expect("temp conf dir");
    let out = net
        .libcni(&[&["version"][..], &PLUGINS[..]].concat())
        .expect("running libcni-driver");
    assert!(out.ok(), "VERSION through libcni failed:\n{}", out.describe());
    let info = out.json().expect("version output");
    for plugin in PLUGINS {
        let supported: Vec<&str> = info
            .pointer(&format!("/{plugin}/supportedVersions"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for v in &client().versions {
            assert!(
                supported.contains(&v.as_str()),
                "{plugin} does not list {v} in VERSION: {supported:?}"
            );
        }
    }
    // What libcni sent and got: its probe input, and a reply naming a version.
    let trace = net.trace().expect("trace");
    let calls = records(&trace, "VERSION");
    assert_eq!(
        calls.iter().map(|r| plugin_of(r)).collect::<Vec<_>>(),
        PLUGINS,
        "VERSION calls"
    );
    // libcni probes with the newest version it knows (version.Current()).
    let newest = client().versions.last().expect("the client knows a version");
    for r in calls {
        assert_eq!(
            r.pointer("/stdin/cniVersion"),
            Some(&json!(newest)),
            "{} probe input: {r}",
            client().libcni
        );
        let reply = r
            .pointer("/stdout/cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(!reply.is_empty(), "VERSION reply without cniVersion: {r}");
    }
}

#[test]
fn libcni_single_020_conf_file() {
    require_plugins(["bridge", "host-local"]);
    let conf = json!({
        "cniVersion": "0.2.0",
        "name": "sandbox-legacy",
        "type": "bridge",
        "bridge": "cni-legacy0",
        "isGateway": true,
        "ipam": {
            "type": "host-local",
            "subnet": "10.77.0.0/24",
            "routes": [{ "dst": "0.0.0.0/0" }],
        },
    });
    let net = Net::from_value("sandbox-legacy.conf", conf, None).expect("temp conf dir");
    let netns = net.netns("legacy");
    let id = cnitool_container_id(&netns);

    let out = net.libcni(&["validate", "sandbox-legacy"]).expect("validate");
    assert!(out.ok(), "validate of a 0.2.0 .conf failed:\n{}", out.describe());

    let out = net.libcni(&["add", "sandbox-legacy", &netns]).expect("add");
    assert!(out.ok(), "ADD of a 0.2.0 .conf failed:\n{}", out.describe());
    let result = out.json().expect("result");
    assert_eq!(result.get("cniVersion"), Some(&json!("0.2.0")), "{result}");
    for key in ["ips", "interfaces", "ip6"] {
        assert!(result.get(key).is_none(), "0.2.0 result has `{key}`: {result}");
    }
    let ip4: IpNetwork = result
        .pointer("/ip4/ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("0.2.0 result without a valid ip4.ip: {result}"));
    let gw = result
        .pointer("/ip4/gateway")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    check_address(&net, ip4.ip(), gw).expect("ip4 address");
    assert_eq!(ip4.prefix(), 24, "{result}");
    let owned = BTreeMap::from([(ip4.ip(), (id.clone(), "eth0".to_owned()))]);
    check_reservations(&net, &owned).expect("reservation after ADD");
    let cache = format!("sandbox-legacy-{id}-eth0");
    assert!(
        net.cached_results().expect("cache").contains(&cache),
        "no libcni cache file {cache}"
    );

    let out = net.libcni(&["check", "sandbox-legacy", &netns]).expect("check");
    assert!(
        !out.ok()
            && out
                .stderr
                .contains("configuration version \"0.2.0\" does not support the CHECK command"),
        "CHECK of a 0.2.0 config must be refused by libcni:\n{}",
        out.describe()
    );

    for round in ["DEL", "second DEL"] {
        let mark = net.trace().expect("trace").len();
        let out = net.libcni(&["del", "sandbox-legacy", &netns]).expect("del");
        assert!(out.ok(), "{round} of a 0.2.0 .conf failed:\n{}", out.describe());
        let trace = since(net.trace(), mark).expect("trace");
        let dels = records(&trace, "DEL");
        check_calls(&net, &dels, &["bridge".to_owned()], &id, "eth0", Some(false)).expect(round);
        check_reservations(&net, &BTreeMap::new()).expect("store after DEL");
        assert!(
            net.cached_results().expect("cache").is_empty(),
            "libcni cache left after {round}"
        );
    }
}

/// Trap 2: libcni before 1.2 (1.1.2) cannot parse a 1.1.0 result; a DEL must still release what the
/// ADD reserved. (Why the shipped conflists say 1.0.0 and list 1.1.0 only in `cniVersions`.) libcni
/// 1.2 and later take the 1.1.0 result; DEL and go-cni's Remove release it just the same.
#[test]
fn libcni_and_gocni_with_a_110_list_del_cleans_up() {
    let src = conflist("10-sandbox-cni.conflist");
    let net = Net::prepare(&src, Some("1.1.0")).expect("conf dir");
    require_plugins(net.binaries().iter().map(String::as_str));
    let knows_110 = client().versions.iter().any(|v| v == "1.1.0");
    let rejected = |out: &Out| !out.ok() && out.stderr.contains("unsupported CNI result version \"1.1.0\"");
    let netns = net.netns("pod-110");
    let out = net.libcni(&["add", &net.name, &netns]).expect("add");
    if knows_110 {
        assert!(
            out.ok(),
            "{} rejected a 1.1.0 ADD:\n{}",
            client().libcni,
            out.describe()
        );
        let result = out.json().expect("result");
        assert_eq!(result.get("cniVersion"), Some(&json!("1.1.0")), "{result}");
        assert_eq!(
            net.cached_results().expect("cache").len(),
            1,
            "libcni cache after ADD"
        );
    } else {
        assert!(
            rejected(&out),
            "{} should reject the 1.1.0 result:\n{}",
            client().libcni,
            out.describe()
        );
        assert!(
            net.cached_results().expect("cache").is_empty(),
            "libcni cached a result it rejected"
        );
    }
    assert!(
        !net.reservations().expect("store").is_empty(),
        "the plugin did not reserve an address"
    );
    let out = net.libcni(&["del", &net.name, &netns]).expect("del");
    assert!(out.ok(), "DEL after the rejected ADD failed:\n{}", out.describe());
    check_reservations(&net, &BTreeMap::new()).expect("DEL releases the address");

    // go-cni sits on the same libcni: Setup fails the same way (or succeeds with libcni 1.2+), and
    // Remove (what containerd does after a failed Setup, or at pod removal) releases the address.
    let out = net
        .gocni(&plugin_dir(), &[], &["setup", "pod-110", &netns])
        .expect("setup");
    if knows_110 {
        assert!(
            out.ok(),
            "{} Setup of a 1.1.0 list failed:\n{}",
            client().gocni,
            out.describe()
        );
    } else {
        assert!(
            rejected(&out),
            "{} Setup should fail on the 1.1.0 result:\n{}",
            client().gocni,
            out.describe()
        );
    }
    assert!(
        !net.reservations().expect("store").is_empty(),
        "the plugin did not reserve an address"
    );
    let out = net
        .gocni(&plugin_dir(), &[], &["remove", "pod-110", &netns])
        .expect("remove");
    assert!(out.ok(), "Remove after Setup failed:\n{}", out.describe());
    check_reservations(&net, &BTreeMap::new()).expect("Remove releases the address");
}

// cnitool 1.3's gc and status (libcni 1.2+): tests/it/interop/cnitool.rs
mod cnitool;

// ---------------------------------------------------------------------------------------------------------
// go-cni (containerd CRI style)

const SANDBOXES: usize = 5;
/// Per-sandbox options the go-cni driver passes like containerd: port mapping, bandwidth, DNS.
const GOCNI_SETUP_FLAGS: [&str; 8] = [
    "-portmap",
    "18080:80/tcp",
    "-ingress-rate",
    "1000000",
    "-egress-rate",
    "2000000",
    "-dns",
    "10.43.0.10",
];

/// What go-cni's capability structs look like on the wire: Capitalised keys (trap 4).
fn gocni_cap_args() -> Value {
    json!({
        "portMappings": [{ "HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": "" }],
        "bandwidth": { "IngressRate": 1_000_000, "IngressBurst": 1_000_000,
                       "EgressRate": 2_000_000, "EgressBurst": 2_000_000 },
        "dns": { "Servers": ["10.43.0.10"], "Searches": null, "Options": null },
    })
}

fn parse_ip(v: &Value) -> Result<IpAddr, String> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an IP address: {v}"))
}

/// Checks one go-cni Setup output; returns the eth0 addresses.
fn check_setup(net: &Net, out: &Value, netns: &str) -> Result<Vec<IpAddr>, String> {
    let eth0 = out
        .pointer("/interfaces/eth0")
        .ok_or_else(|| format!("no eth0 in go-cni result: {out}"))?;
    ensure(eth0.get("sandbox") == Some(&json!(netns)), || {
        format!("eth0 sandbox is not {netns}: {eth0}")
    })?;
    let mac = eth0.get("mac").and_then(Value::as_str).unwrap_or("");
    ensure(
        mac.len() == 17
            && mac
                .split(':')
                .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok()),
        || format!("eth0 MAC {mac:?} is not a MAC address"),
    )?;
    let ips = eth0
        .get("ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    ensure(ips.len() == net.range_sets.len(), || {
        format!(
            "eth0 has {} addresses for {} range sets: {eth0}",
            ips.len(),
            net.range_sets.len()
        )
    })?;
    let mut addrs = Vec::new();
    let mut sets = BTreeSet::new();
    for ip in &ips {
        let addr = parse_ip(ip.get("ip").unwrap_or(&Value::Null))?;
        let gw = ip.get("gateway").map(parse_ip).transpose()?;
        sets.insert(check_address(net, addr, gw)?);
        addrs.push(addr);
    }
    ensure(sets.len() == net.range_sets.len(), || {
        format!("two eth0 addresses from one range set: {eth0}")
    })?;
    // containerd's pod IPs: eth0's addresses, IPv4 first.
    let mut want_pod: Vec<IpAddr> = addrs.clone();
    want_pod.sort_by_key(|a| !a.is_ipv4());
    let pod: Vec<IpAddr> = out
        .get("podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(parse_ip)
        .collect::<Result<_, _>>()?;
    ensure(pod == want_pod, || format!("pod IPs {pod:?}, want {want_pod:?}"))?;

    let lo = out
        .pointer("/interfaces/lo")
        .ok_or_else(|| format!("no lo in go-cni result: {out}"))?;
    ensure(lo.get("sandbox") == Some(&json!(netns)), || {
        format!("lo sandbox is not {netns}: {lo}")
    })?;
    let lo_ips: Vec<&str> = lo
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str())
        .collect();
    ensure(lo_ips.contains(&"127.0.0.1"), || {
        format!("lo lacks 127.0.0.1: {lo}")
    })?;

    let raw = out
        .get("raw")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    ensure(raw.len() == 2, || {
        format!("go-cni should return 2 raw results (loopback, default): {out}")
    })?;
    // go-cni converts every result to libcni's current version (the newest it knows).
    let current = client().versions.last().map_or("", String::as_str);
    for r in &raw {
        ensure(r.get("cniVersion") == Some(&json!(current)), || {
            format!("raw result not converted to {current}: {r}")
        })?;
    }
    Ok(addrs)
}

/// go-cni against one conflist: Status, parallel Setup of 5 sandboxes, Check, Remove, Remove again.
fn gocni_lifecycle(net: &Net) -> Result<(), String> {
    let bins = plugin_dir();
    let order = net.plugin_types();

    let out = net.gocni(&bins, &[], &["status"])?;
    ensure(out.ok() && out.stdout.trim() == "NetworkReady=true", || {
        format!("Status:\n{}", out.describe())
    })?;

    let ids: Vec<String> = (0..SANDBOXES).map(|i| format!("sandbox-{i}")).collect();
    let setups: Vec<Result<Out, String>> = thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (net, bins) = (net, &bins);
                s.spawn(move || net.gocni(bins, &GOCNI_SETUP_FLAGS, &["setup", id, &net.netns(id)]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("setup thread panicked".into())))
            .collect()
    });
    let mut owned = BTreeMap::new();
    for (id, out) in ids.iter().zip(setups) {
        let out = out?;
        ensure(out.ok(), || format!("Setup of {id} failed:\n{}", out.describe()))?;
        for addr in check_setup(net, &out.json()?, &net.netns(id))? {
            if let Some((other, _)) = owned.insert(addr, (id.clone(), "eth0".to_owned())) {
                return Err(format!("{addr} was given to both {other} and {id}"));
            }
        }
    }
    check_reservations(net, &owned)?;
    let mut want_cache = BTreeSet::new();
    for id in &ids {
        want_cache.insert(format!("{}-{id}-eth0", net.name));
        want_cache.insert(format!("cni-loopback-{id}-lo"));
    }
    ensure(net.cached_results()? == want_cache, || {
        format!("libcni cache holds {:?}", net.cached_results())
    })?;

    let trace = net.trace()?;
    for id in &ids {
        let adds: Vec<&Value> = records(&trace, "ADD")
            .into_iter()
            .filter(|r| r.get("containerId") == Some(&json!(id)))
            .collect();
        let (lo, main): (Vec<&Value>, Vec<&Value>) = adds
            .into_iter()
            .partition(|r| r.pointer("/stdin/name") == Some(&json!("cni-loopback")));
        ensure(lo.len() == 1 && plugin_of(lo[0]) == "loopback", || {
            format!("loopback ADDs for {id}: {lo:?}")
        })?;
        ensure(
            lo[0].pointer("/stdin/cniVersion") == Some(&json!("0.3.1")) && lo[0]["ifName"] == "lo",
            || format!("containerd's loopback network is 0.3.1 on lo: {}", lo[0]),
        )?;
        check_calls(net, &main, &order, id, "eth0", None)?;
        check_runtime_config(&main, &net.plugins, &gocni_cap_args())?;
        for r in &main {
            let args = r.get("args").and_then(Value::as_str).unwrap_or("");
            let pairs: BTreeSet<&str> = args.split(';').collect();
            for want in [
                "IgnoreUnknown=1",
                "K8S_POD_NAME=interop-pod",
                "K8S_POD_NAMESPACE=default",
            ] {
                ensure(pairs.contains(want), || format!("CNI_ARGS {args:?} lacks {want}"))?;
            }
            ensure(
                pairs.contains(format!("K8S_POD_INFRA_CONTAINER_ID={id}").as_str()),
                || format!("CNI_ARGS {args:?} lacks the sandbox id"),
            )?;
        }
    }

    // go-cni's Check with containerd's networks always fails in libcni on the 0.3.1 loopback network,
    // before any plugin runs.
    let mark = net.trace()?.len();
    let out = net.gocni(&bins, &[], &["check", &ids[0], &net.netns(&ids[0])])?;
    ensure(
        !out.ok()
            && out
                .stderr
                .contains("configuration version \"0.3.1\" does not support the CHECK command"),
        || {
            format!(
                "go-cni Check with the loopback network should fail in libcni:\n{}",
                out.describe()
            )
        },
    )?;
    ensure(since(net.trace(), mark)?.is_empty(), || {
        "plugins ran for the refused Check".to_owned()
    })?;
    // Check of the default network alone (go-cni loaded without the loopback network) succeeds.
    for id in &ids {
        let mark = net.trace()?.len();
        let out = net.gocni(
            &bins,
            &["-no-loopback", "-min-networks", "1"],
            &["check", id, &net.netns(id)],
        )?;
        ensure(out.ok(), || {
            format!(
                "go-cni Check of {id} (default network) failed:\n{}",
                out.describe()
            )
        })?;
        let trace = since(net.trace(), mark)?;
        check_calls(net, &records(&trace, "CHECK"), &order, id, "eth0", Some(true))?;
    }

    let removes: Vec<Result<Out, String>> = thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let (net, bins) = (net, &bins);
                s.spawn(move || net.gocni(bins, &GOCNI_SETUP_FLAGS, &["remove", id, &net.netns(id)]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("remove thread panicked".into())))
            .collect()
    });
    for (id, out) in ids.iter().zip(removes) {
        let out = out?;
        ensure(out.ok(), || format!("Remove of {id} failed:\n{}", out.describe()))?;
    }
    check_reservations(net, &BTreeMap::new())?;
    ensure(net.cached_results()?.is_empty(), || {
        format!("libcni cache after Remove: {:?}", net.cached_results())
    })?;
    let out = net.gocni(&bins, &[], &["remove", &ids[0], &net.netns(&ids[0])])?;
    ensure(out.ok(), || format!("second Remove failed:\n{}", out.describe()))?;
    let out = net.gocni(&bins, &[], &["status"])?;
    ensure(out.ok(), || format!("Status after Remove:\n{}", out.describe()))
}

#[test]
fn gocni_every_conflist() {
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    let mut cases: Vec<(String, Value)> = conflists().iter().map(|f| (file_name(f), read_json(f))).collect();
    cases.push(("with-bandwidth.conflist".to_owned(), with_bandwidth()));
    for (file, conf) in cases {
        let net = match Net::from_value(&file, conf, None) {
            Ok(net) => net,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        require_plugins(net.binaries().iter().map(String::as_str).chain(["loopback"]));
        match gocni_lifecycle(&net) {
            Ok(()) => passed.push(file),
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    report(
        &format!("{} Status/Setup x{SANDBOXES}/Check/Remove", client().gocni),
        &passed,
        &failures,
    );
}

#[test]
fn gocni_dual_stack_gives_both_families() {
    let net = Net::prepare(&conflist("dual-stack.conflist"), None).expect("conf dir");
    require_plugins(net.binaries().iter().map(String::as_str).chain(["loopback"]));
    let families: BTreeSet<bool> = net.range_sets.iter().flatten().map(IpNetwork::is_ipv4).collect();
    assert_eq!(
        families.len(),
        2,
        "dual-stack.conflist should configure IPv4 and IPv6 ranges: {:?}",
        net.range_sets
    );
    let netns = net.netns("dual");
    let out = net
        .gocni(&plugin_dir(), &[], &["setup", "dual", &netns])
        .expect("setup");
    assert!(out.ok(), "Setup failed:\n{}", out.describe());
    let addrs = check_setup(&net, &out.json().expect("setup output"), &netns).expect("setup result");
    let got: BTreeSet<bool> = addrs.iter().map(IpAddr::is_ipv4).collect();
    assert_eq!(
        got, families,
        "eth0 addresses {addrs:?} should cover both families"
    );
    let out = net
        .gocni(&plugin_dir(), &[], &["remove", "dual", &netns])
        .expect("remove");
    assert!(out.ok(), "Remove failed:\n{}", out.describe());
    check_reservations(&net, &BTreeMap::new()).expect("store after Remove");
}

#[test]
fn gocni_status_with_empty_conf_dir_is_not_ready() {
    require_plugins(["loopback"]);
    let net = Net::from_value(
        "unused.conflist",
        json!({"cniVersion": "1.0.0", "name": "unused", "plugins": []}),
        None,
    )
    .expect("temp dir");
    fs::remove_file(net.conf_dir.join("unused.conflist")).expect("emptying the conf dir");
    let out = net.gocni(&plugin_dir(), &[], &["status"]).expect("status");
    assert!(
        !out.ok(),
        "Status with an empty conf dir must fail:\n{}",
        out.describe()
    );
    assert_eq!(
        out.stdout.trim(),
        "NetworkReady=false reason=NetworkPluginNotReady message=Network plugin returns error: cni plugin not initialized",
        "{}",
        out.describe()
    );
    let why = format!("no network config found in {}", net.conf_dir.display());
    assert!(
        out.stderr.contains(&why),
        "the load error should say {why:?}:\n{}",
        out.describe()
    );
    let out = net
        .gocni(&plugin_dir(), &[], &["setup", "nothing", &net.netns("nothing")])
        .expect("setup");
    assert!(
        !out.ok() && out.stderr.contains("cni plugin not initialized"),
        "Setup without a network must fail like Status:\n{}",
        out.describe()
    );
    assert!(
        net.trace().expect("trace").is_empty(),
        "no plugin may run without a network"
    );
}

/// go-cni 1.1.7's Status only counts loaded networks: a missing plugin binary shows up at Setup.
/// go-cni 1.1.13 (on libcni 1.2+) also sends STATUS to every plugin of a 1.1.0 list (the shipped
/// conflists run at 1.1.0 from their `cniVersions`), so there Status already reports the missing binary.
#[test]
fn gocni_missing_plugin_fails_at_setup_not_status() {
    let net = Net::prepare(&conflist("10-sandbox-cni.conflist"), None).expect("conf dir");
    require_plugins(net.binaries().iter().map(String::as_str).chain(["loopback"]));
    assert!(
        net.plugin_types().contains(&"bridge".to_owned()),
        "10-sandbox-cni.conflist should use bridge"
    );
    let bins = net.conf_dir.with_file_name("bin-without-bridge");
    fs::create_dir_all(&bins).expect("bin dir");
    for p in PLUGINS.iter().filter(|p| **p != "bridge") {
        std::os::unix::fs::symlink(plugin_dir().join(p), bins.join(p)).expect("symlink plugin");
    }
    let want = format!("failed to find plugin \"bridge\" in path [{}]", bins.display());

    let out = net.gocni(&bins, &[], &["status"]).expect("status");
    if version_at_least(&net.version, "1.1.0") {
        assert!(
            !out.ok() && out.stdout.starts_with("NetworkReady=false") && out.stdout.contains(&want),
            "{} Status of a {} list runs STATUS, which cannot find bridge:\n{}",
            client().gocni,
            net.version,
            out.describe()
        );
    } else {
        assert!(
            out.ok() && out.stdout.trim() == "NetworkReady=true",
            "{} Status does not look for plugin binaries; if this changed, update \
             docs/compatibility.md:\n{}",
            client().gocni,
            out.describe()
        );
    }
    let netns = net.netns("missing");
    let out = net
        .gocni(&bins, &[], &["setup", "missing", &netns])
        .expect("setup");
    assert!(
        !out.ok() && out.stderr.contains(&want),
        "Setup should fail with {want:?}:\n{}",
        out.describe()
    );
    check_reservations(&net, &BTreeMap::new()).expect("nothing reserved");
    let out = net
        .gocni(&bins, &[], &["remove", "missing", &netns])
        .expect("remove");
    assert!(
        !out.ok() && out.stderr.contains(&want),
        "Remove should fail with {want:?}:\n{}",
        out.describe()
    );
    // libcni's validate finds it up front.
    let out = net
        .libcni_with(&bins, &["validate", &net.name])
        .expect("validate");
    assert!(
        !out.ok() && out.stderr.contains(&want),
        "validate should fail with {want:?}:\n{}",
        out.describe()
    );
}
