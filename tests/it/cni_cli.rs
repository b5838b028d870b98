//! `k3s-sandbox cni` against libcni: for every conflist in cni-conf/ at 0.3.1, 0.4.0 and 1.0.0, our
//! cnitool-compatible ADD prints the result the project's libcni driver (libcni v1.1.2, cnitool's
//! contract) gets for the same inputs, and writes the same cache file; an attachment added by one tool
//! is removed by the other; `cni gc` frees exactly the attachments not listed.
//!
//! At 1.1.0, libcni v1.1.2 cannot read the results (it knows versions up to 1.0.0) and its DEL fails on
//! a cache entry it cannot read, so there our ADD, CHECK, STATUS and DEL run alone.
//!
//! Both tools work in one temporary directory (conf dir, host-local data dir, cache dir) with the same
//! fake netns path, so container ID, MACs and addresses agree; the data dir is emptied between runs so
//! host-local starts from the same state.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::build_dir;

const DEBIAN_GOCODE: &str = "/usr/share/gocode";
const CNI_ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=cli";

fn cap_args() -> String {
    json!({
        "portMappings": [{ "hostPort": 18080, "containerPort": 80, "protocol": "tcp" }],
        "bandwidth": { "ingressRate": 1_000_000, "ingressBurst": 2_000_000,
                       "egressRate": 1_000_000, "egressBurst": 2_000_000 },
    })
    .to_string()
}

fn k3s_sandbox() -> PathBuf {
    let p = build_dir().join("k3s-sandbox");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p k3s-sandbox` (`cargo test --workspace` does)",
        p.display()
    );
    p
}

fn libcni_driver() -> &'static Path {
    static DRIVER: OnceLock<PathBuf> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let gopath = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/go");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cni-cli");
        let go = ["/usr/bin/go", "/usr/lib/go/bin/go"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("Go is needed (apt-get install golang-go golang-github-appc-cni-dev)");
        let gopath_var = std::env::join_paths([gopath.as_path(), Path::new(DEBIAN_GOCODE)]).unwrap();
        let status = Command::new(go)
            .current_dir(&gopath)
            .env("GOPATH", gopath_var)
            .env("GO111MODULE", "off")
            .env("GOFLAGS", "")
            .env("GOPROXY", "off")
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", out.join("gocache"))
            .args(["build", "-o"])
            .arg(out.join("libcni-driver"))
            .arg("interop/cmd/libcni-driver")
            .status()
            .expect("run go build");
        assert!(status.success(), "building the libcni driver failed");
        out.join("libcni-driver")
    })
}

/// One network in a temporary directory, run by both tools.
struct Net {
    _tmp: tempfile::TempDir,
    name: String,
    conf_dir: PathBuf,
    data_dir: PathBuf,
    cache_dir: PathBuf,
    netns: String,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Net {
    /// `version`: the cniVersion to set (`None` removes it); `cniVersions` is removed so both tools
    /// run the list at the same version.
    fn new(src: &Path, version: Option<&str>) -> Net {
        let tmp = tempfile::Builder::new().prefix("cni-cli-").tempdir().unwrap();
        let root = tmp.path();
        let (conf_dir, data_dir, cache_dir) = (root.join("conf"), root.join("data"), root.join("cache"));
        fs::create_dir_all(&conf_dir).unwrap();
        let mut conf: Value = serde_json::from_slice(&fs::read(src).unwrap()).unwrap();
        let obj = conf.as_object_mut().unwrap();
        obj.remove("cniVersions");
        match version {
            Some(v) => obj.insert("cniVersion".into(), json!(v)),
            None => obj.remove("cniVersion"),
        };
        for p in obj["plugins"].as_array_mut().unwrap() {
            if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
                ipam.insert("dataDir".into(), json!(data_dir));
            }
        }
        let name = conf["name"].as_str().unwrap().to_string();
        fs::write(
            conf_dir.join(src.file_name().unwrap()),
            serde_json::to_vec_pretty(&conf).unwrap(),
        )
        .unwrap();
        Net {
            netns: root.join("netns").to_string_lossy().into_owned(),
            _tmp: tmp,
            name,
            conf_dir,
            data_dir,
            cache_dir,
        }
    }

    fn run(&self, program: &Path, pre: &[&str], args: &[&str]) -> Out {
        let out = Command::new(program)
            .env_clear()
            .args(pre)
            .args(args)
            .env("NETCONFPATH", &self.conf_dir)
            .env("CNI_PATH", build_dir())
            .env("CNI_ARGS", CNI_ARGS)
            .env("CAP_ARGS", cap_args())
            .env("CNI_CACHE_DIR", &self.cache_dir)
            .output()
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ours(&self, args: &[&str]) -> Out {
        self.run(&k3s_sandbox(), &["cni"], args)
    }

    fn libcni(&self, args: &[&str]) -> Out {
        self.run(libcni_driver(), &[], args)
    }

    fn attach(&self, tool: &str, verb: &str, netns: &str) -> String {
        let args = [verb, self.name.as_str(), netns];
        let out = if tool == "ours" {
            self.ours(&args)
        } else {
            self.libcni(&args)
        };
        assert!(
            out.ok,
            "{tool} {verb} {} failed:\n{}\n{}",
            self.name, out.stdout, out.stderr
        );
        out.stdout
    }

    fn cache_files(&self) -> Vec<String> {
        match fs::read_dir(self.cache_dir.join("results")) {
            Ok(d) => {
                let mut v: Vec<String> = d
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                v
            }
            Err(_) => Vec::new(),
        }
    }

    fn cache_file(&self) -> Value {
        let files = self.cache_files();
        assert_eq!(files.len(), 1, "{files:?}");
        serde_json::from_slice(&fs::read(self.cache_dir.join("results").join(&files[0])).unwrap()).unwrap()
    }

    /// host-local's address files.
    fn reservations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(nets) = fs::read_dir(&self.data_dir) {
            for net in nets.flatten() {
                for f in fs::read_dir(net.path()).unwrap().flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if n.parse::<std::net::IpAddr>().is_ok() {
                        out.push(n);
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn assert_clean(&self, what: &str) {
        assert!(
            self.reservations().is_empty(),
            "{what}: addresses left: {:?}",
            self.reservations()
        );
        assert!(
            self.cache_files().is_empty(),
            "{what}: cache left: {:?}",
            self.cache_files()
        );
        let _ = fs::remove_dir_all(&self.data_dir);
    }
}

/// JSON with empty objects and arrays dropped (Go prints `"dns": {}`, the spec makes it optional).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| {
                    !matches!(v, Value::Object(o) if o.is_empty())
                        && !matches!(v, Value::Array(a) if a.is_empty())
                })
                .map(|(k, v)| (k.clone(), normalise(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn conflists() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf");
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist"))
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn add_prints_and_caches_what_libcni_does() {
    for src in conflists() {
        for version in ["0.3.1", "0.4.0", "1.0.0"] {
            let what = format!("{} at {version}", src.display());
            let net = Net::new(&src, Some(version));
            let theirs = net.attach("libcni", "add", &net.netns);
            let their_cache = net.cache_file();
            net.attach("libcni", "del", &net.netns);
            net.assert_clean(&what);

            let ours = net.attach("ours", "add", &net.netns);
            let our_cache = net.cache_file();
            assert_eq!(
                normalise(&parse(&ours)),
                normalise(&parse(&theirs)),
                "{what}: printed result"
            );
            // cnitool prints with four-space indentation.
            assert!(ours.starts_with("{\n    \"cniVersion\""), "{what}: {ours}");
            let mut mine = our_cache.clone();
            // libcni 1.2+ records the netns; 1.1.2 does not.
            assert_eq!(
                mine.as_object_mut().unwrap().remove("netns"),
                Some(json!(net.netns))
            );
            assert_eq!(normalise(&mine), normalise(&their_cache), "{what}: cache file");
            if version != "0.3.1" {
                net.attach("ours", "check", &net.netns);
            }
            net.attach("ours", "del", &net.netns);
            net.assert_clean(&what);
        }
    }
}

#[test]
fn one_tool_adds_and_the_other_deletes() {
    for src in conflists() {
        for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
            let what = format!("{} at {version}", src.display());
            let net = Net::new(&src, Some(version));
            if version == "1.1.0" {
                // libcni 1.1.2 cannot read 1.1.0 results, and its DEL fails on a cache entry it cannot
                // read (libcni 1.2+ drops it and deletes anyway); ours runs the whole cycle alone.
                let out = net.attach("ours", "add", &net.netns);
                assert_eq!(parse(&out)["cniVersion"], "1.1.0");
                net.attach("ours", "check", &net.netns);
                assert!(net.ours(&["status", &net.name]).ok);
                net.attach("ours", "del", &net.netns);
                net.assert_clean(&what);
                continue;
            }
            net.attach("ours", "add", &net.netns);
            net.attach("libcni", "del", &net.netns);
            net.assert_clean(&format!("{what}: ours ADD, libcni DEL"));
            net.attach("libcni", "add", &net.netns);
            net.attach("ours", "del", &net.netns);
            net.assert_clean(&format!("{what}: libcni ADD, ours DEL"));
        }
    }
}

#[test]
fn gc_frees_exactly_the_unlisted_attachments() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf/10-sandbox-cni.conflist");
    let net = Net::new(&src, Some("1.1.0"));
    let pods: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|p| format!("{}-{p}", net.netns))
        .collect();
    let mut ips = Vec::new();
    let mut ids = Vec::new();
    for p in &pods {
        let before = net.cache_files();
        let r = parse(&net.attach("ours", "add", p));
        let address = r["ips"][0]["address"].as_str().unwrap();
        ips.push(address.split('/').next().unwrap().to_string());
        // The container ID, from the cache file this ADD wrote (<network>-<id>-<ifname>).
        let file = net
            .cache_files()
            .into_iter()
            .find(|f| !before.contains(f))
            .unwrap();
        let id = file.strip_prefix(&format!("{}-", net.name)).unwrap();
        ids.push(id.strip_suffix("-eth0").unwrap().to_string());
    }
    assert!(
        ids.iter().all(|id| id.starts_with("cnitool-") && id.len() == 28),
        "{ids:?}"
    );
    let keep = ids[1].clone();
    // Without --apply, a dry run: it lists what it would release and releases nothing (issue 20).
    let before = net.cache_files();
    let out = net.ours(&["gc", &net.name, "--json", "--valid", &keep]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let plan = parse(&out.stdout);
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["release"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(net.cache_files(), before);
    assert_eq!(net.reservations().len(), 3);
    let out = net.ours(&["gc", &net.name]);
    assert!(
        out.ok && out.stdout.contains("3 cached attachments to release"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("dry run: nothing released"), "{}", out.stderr);
    assert_eq!(net.cache_files(), before);
    // Malformed --valid values are refused before anything is looked at.
    for bad in [format!("{keep}/"), String::new(), "/eth0".to_string()] {
        let out = net.ours(&["gc", &net.name, "--valid", &bad, "--apply"]);
        assert!(
            !out.ok && out.stderr.contains("ID[/IFNAME]"),
            "{bad:?}: {}",
            out.stderr
        );
    }
    assert_eq!(net.cache_files(), before);
    let out = net.ours(&[
        "gc",
        &net.name,
        "--json",
        "--apply",
        "--valid",
        &format!("{keep}/eth0"),
    ]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    let report = parse(&out.stdout);
    assert_eq!(report["released"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["kept"], json!([{"containerID": keep, "ifname": "eth0"}]));
    assert_eq!(net.reservations(), vec![ips[1].clone()]);
    assert_eq!(net.cache_files(), vec![format!("{}-{keep}-eth0", net.name)]);
    // GC with nothing valid frees the rest; a second GC has nothing to do.
    assert!(net.ours(&["gc", &net.name, "--apply"]).ok);
    net.assert_clean("gc without --valid");
    assert!(net.ours(&["gc", &net.name, "--apply"]).ok);
}

#[test]
fn drift_missing_cni_version_runs_as_libcni_does() {
    // A list without cniVersion reaches the plugins as "" (0.1.0), not 0.3.1.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf/10-sandbox-cni.conflist");
    let net = Net::new(&src, None);
    let theirs = net.libcni(&["add", &net.name, &net.netns]);
    let ours = net.ours(&["add", &net.name, &net.netns]);
    assert!(
        ours.ok && theirs.ok,
        "ours: {}\ntheirs: {}",
        ours.stderr,
        theirs.stderr
    );
    assert_eq!(parse(&theirs.stdout)["cniVersion"], "0.1.0");
    assert_eq!(parse(&ours.stdout)["cniVersion"], "0.1.0");
}

#[test]
fn drift_cni_versions_picks_the_highest_known() {
    // The repository conflist says cniVersion 1.0.0 and cniVersions [1.0.0, 1.1.0]: libcni 1.2+ runs
    // it at 1.1.0, and so does ours.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf/10-sandbox-cni.conflist");
    let tmp = tempfile::tempdir().unwrap();
    let conf: Value = serde_json::from_slice(&fs::read(&src).unwrap()).unwrap();
    assert_eq!(conf["cniVersions"], json!(["1.0.0", "1.1.0"]));
    fs::write(tmp.path().join("10.conflist"), fs::read(&src).unwrap()).unwrap();
    let out = Command::new(k3s_sandbox())
        .env_clear()
        .args(["cni", "ls", "--json"])
        .env("NETCONFPATH", tmp.path())
        .output()
        .unwrap();
    let ls = parse(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(ls[0]["cniVersion"], "1.1.0", "{ls}");
    assert_eq!(ls[0]["containerdDefault"], true);
}

#[test]
fn cnitool_link_and_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("cnitool");
    std::os::unix::fs::symlink(k3s_sandbox(), &link).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf/10-sandbox-cni.conflist");
    let net = Net::new(&src, Some("1.0.0"));
    let out = net.run(&link, &[], &["add", &net.name, &net.netns]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(parse(&out.stdout)["cniVersion"], "1.0.0");
    assert!(net.run(&link, &[], &["del", &net.name, &net.netns]).ok);
    net.assert_clean("cnitool link");
    // Unknown network and usage errors: exit status 1, as cnitool.
    for args in [&["add", "nope", "/x"][..], &["bogus"][..]] {
        let st = Command::new(&link)
            .env_clear()
            .env("NETCONFPATH", &net.conf_dir)
            .args(args)
            .status()
            .unwrap();
        assert_eq!(st.code(), Some(1), "{args:?}");
    }
}

#[test]
fn version_status_and_ls_report_what_they_found() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cni-conf/10-sandbox-cni.conflist");
    let net = Net::new(&src, Some("1.0.0"));
    let out = net.ours(&["version", "--json"]);
    assert!(out.ok, "{}", out.stderr);
    let v = parse(&out.stdout);
    assert_eq!(v["plugins"].as_object().unwrap().len(), 7, "{v}");
    assert!(
        v["plugins"]["bridge"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.1.0"))
    );
    let out = net.ours(&["version", "no-such-plugin"]);
    assert!(
        !out.ok && out.stderr.contains("failed to find plugin"),
        "{}",
        out.stderr
    );
    // STATUS exists from 1.1.0: at 1.0.0 nothing is asked.
    let out = net.ours(&["status", &net.name, "--json"]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(parse(&out.stdout)["asked"], false);
    let net11 = Net::new(&src, Some("1.1.0"));
    let out = net11.ours(&["status", &net11.name, "--json"]);
    assert_eq!(parse(&out.stdout)["asked"], true, "{}", out.stderr);
    // ls: an unreadable file sorted first is what containerd would pick, and is reported as such.
    fs::write(net.conf_dir.join("00-broken.conflist"), "{").unwrap();
    let out = net.ours(&["ls", "--json"]);
    // containerd cannot load its default network: ls says so and exits 1 (issue 20).
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("containerd fails to load it"),
        "{}",
        out.stderr
    );
    let ls = parse(&out.stdout);
    assert_eq!(ls[0]["file"], "00-broken.conflist");
    assert_eq!(ls[0]["containerdDefault"], true);
    assert!(ls[0]["error"].as_str().unwrap().contains("parsing"), "{ls}");
    assert_eq!(ls[1]["name"], net.name.as_str());
    assert_eq!(ls[1]["plugins"], json!(["bridge", "portmap"]));
    // ... and it stops a lookup by name, naming the file, as in libcni.
    let out = net.ours(&["add", &net.name, &net.netns]);
    assert!(
        !out.ok && out.stderr.contains("00-broken.conflist"),
        "{}",
        out.stderr
    );
}
