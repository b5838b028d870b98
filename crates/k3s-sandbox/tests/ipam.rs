//! `k3s-sandbox ipam ls|release|gc`, the leak detection of `doctor` and `status`, and `trace`, against stores
//! filled by the workspace's real host-local plugin and a fake crictl / k3s crictl.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const POD_A: &str = "4b1c0e7d2a9f8e6b5c3d1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d";
const POD_B: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

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

    /// host-local ADD for `id` (the IPAM part of the conflist, as bridge would delegate it).
    fn add(&self, id: &str) -> String {
        let v: Value = serde_json::from_str(&self.conflist).unwrap();
        let mut conf = v["plugins"][0].clone();
        conf["name"] = v["name"].clone();
        conf["cniVersion"] = v["cniVersion"].clone();
        let out = run_plugin("host-local", "ADD", id, &conf.to_string(), &[]);
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

    /// With a fake crictl (mode, pods fixture) first on PATH and no k3s anywhere.
    fn run_cri(&self, args: &[&str], mode: &str, pods: Option<&str>) -> Out {
        let bin = self.sb.tmp.path().join("fake-bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(fixture("fake-crictl.sh"), bin.join("crictl")).unwrap();
        fs::set_permissions(bin.join("crictl"), fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = self.cmd(args);
        c.env_remove("K3S_BIN")
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("FAKE_CRICTL_MODE", mode)
            .env("FAKE_CRICTL_LOG", self.sb.tmp.path().join("crictl.log"));
        if let Some(p) = pods {
            c.env("FAKE_CRICTL_PODS", fixture(&format!("crictl/{p}")));
        }
        Out::from(c.output().unwrap())
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

#[test]
fn ls_shows_ranges_reservations_and_damage_of_our_store() {
    let n = Net::new("10.77.0.0/24");
    let a = n.add("ctr-a");
    let b = n.add("ctr-b");
    // Damage: an empty reservation (a crash of the reference plugin), a foreign file, and a
    // reservation outside the configured range.
    fs::write(n.store().join("10.77.0.200"), b"").unwrap();
    fs::write(n.store().join("notes.txt"), b"hello").unwrap();
    fs::write(n.store().join("10.9.9.9"), b"ctr-old\r\neth0").unwrap();
    let out = n.run(&["ipam", "ls"]);
    out.ok()
        .stdout_has("network sandbox-cni: store ")
        .stdout_has("range set 0: 10.77.0.1-10.77.0.254 (10.77.0.0/24)  used 3, free 250 of 253")
        .stdout_has(&a)
        .stdout_has("ctr-a")
        .stdout_has("ctr-b")
        .stdout_has("reservation 10.77.0.200 is empty or unreadable")
        .stdout_has("foreign file \"notes.txt\"")
        .stdout_has("10.9.9.9 lies outside every configured range")
        // Written behind the index's back: the index is out of step until the next plugin call.
        .stdout_has("reservation 10.9.9.9 of container ctr-old (interface eth0) is missing from the index");
    assert!(
        !out.stdout.contains(&format!("index entry {b}")),
        "{}",
        out.stdout
    );

    let out = n.run(&["ipam", "ls", "sandbox-cni", "--json"]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let net = &v["networks"][0];
    assert_eq!(net["name"], "sandbox-cni");
    assert_eq!(net["ranges"][0]["capacity"], 253);
    assert_eq!(net["ranges"][0]["used"], 3);
    assert_eq!(net["indexed"], true);
    let ips: Vec<&str> = net["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, vec!["10.9.9.9", a.as_str(), b.as_str(), "10.77.0.200"]);
    let kinds: Vec<&str> = net["damage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for k in [
        "no-holder",
        "foreign-file",
        "missing-index-entry",
        "outside-ranges",
    ] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }

    // An unknown network is an error naming the way out.
    n.run(&["ipam", "ls", "nope"])
        .expect_code(1)
        .stderr_has("--ipam-dir");
}

#[test]
fn ls_reads_a_store_only_the_reference_plugin_wrote() {
    let n = Net::new("10.78.0.0/24");
    // The reference layout: lock, cursor, reservation files, no .sandbox-cni.
    let dir = n.ipam_dir.join("cbr0");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("lock"), b"").unwrap();
    fs::write(dir.join("last_reserved_ip.0"), b"10.42.0.3").unwrap();
    fs::write(dir.join("10.42.0.2"), b"aaa\r\neth0").unwrap();
    fs::write(dir.join("10.42.0.3"), b"bbb").unwrap();
    let out = n.run(&["ipam", "ls", "cbr0", "--ipam-dir", n.ipam_dir.to_str().unwrap()]);
    out.ok()
        .stdout_has("network cbr0: store ")
        .stdout_has("ranges: unknown (no config names this network)")
        .stdout_has("aaa")
        .stdout_has("bbb")
        .stdout_has("damage: none");
    // Without a network, every store under --ipam-dir.
    let out = n.run(&["ipam", "ls", "--ipam-dir", n.ipam_dir.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["networks"].as_array().unwrap().len(), 1, "{}", out.stdout);
    assert_eq!(v["networks"][0]["indexed"], false);
}

#[test]
fn release_frees_one_address_or_one_container() {
    let n = Net::new("10.79.0.0/24");
    let a = n.add("ctr-a");
    let b = n.add("ctr-b");
    n.run(&["ipam", "release", "sandbox-cni", "--ip", &a])
        .ok()
        .stdout_has(&format!("released {a} (container ctr-a (interface eth0))"));
    assert_eq!(n.reserved(), vec![b.clone()]);
    n.run(&["ipam", "release", "sandbox-cni", "--ip", &a])
        .expect_code(1)
        .stderr_has("is not reserved");
    n.run(&[
        "ipam",
        "release",
        "sandbox-cni",
        "--container",
        "ctr-b",
        "--ifname",
        "net1",
    ])
    .expect_code(1)
    .stderr_has("holds no address");
    n.run(&["ipam", "release", "sandbox-cni", "--container", "ctr-b"])
        .ok()
        .stdout_has(&format!("released {b}"));
    assert!(n.reserved().is_empty());
    // The plugin still works on the store afterwards, and a released address is no longer held.
    let c = n.add("ctr-c");
    assert_eq!(n.reserved(), vec![c]);
    // One of --ip and --container is required.
    n.run(&["ipam", "release", "sandbox-cni"]).expect_code(64);
}

#[test]
fn gc_with_valid_is_a_dry_run_until_apply() {
    let n = Net::new("10.80.0.0/24");
    let a = n.add("ctr-a");
    let _b = n.add("ctr-b");
    let c = n.add("ctr-c");
    let before = n.reserved();
    let out = n.run(&[
        "ipam",
        "gc",
        "sandbox-cni",
        "--valid",
        "ctr-a",
        "ctr-c/eth0",
        "--min-age",
        "0",
    ]);
    out.ok()
        .stdout_has("3 reservation(s): 2 held by live attachments (--valid), 0 younger than --min-age 0s (kept), 1 to free")
        .stdout_has("container ctr-b (interface eth0)")
        .stderr_has("dry run: nothing freed")
        .stderr_has("--apply");
    assert_eq!(n.reserved(), before);
    // Young reservations are kept by the default --min-age.
    n.run(&["ipam", "gc", "sandbox-cni", "--valid", "ctr-a", "--apply"])
        .ok()
        .stdout_has("2 younger than --min-age 300s (kept), 0 to free");
    assert_eq!(n.reserved(), before);
    n.run(&[
        "ipam",
        "gc",
        "sandbox-cni",
        "--valid",
        "ctr-a",
        "ctr-c/eth0",
        "--min-age",
        "0",
        "--apply",
    ])
    .ok()
    .stderr_has("freed 1 reservation(s)");
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(n.reserved(), want);
    // A --valid naming another interface does not keep the eth0 reservation.
    n.run(&[
        "ipam",
        "gc",
        "sandbox-cni",
        "--valid",
        "ctr-a",
        "ctr-c/net1",
        "--min-age",
        "0",
        "--apply",
    ])
    .ok();
    assert_eq!(n.reserved().len(), 1);
}

#[test]
fn gc_from_cri_refuses_when_the_runtime_cannot_be_asked() {
    let n = Net::new("10.81.0.0/24");
    n.add(POD_A);
    n.add("leaked-1");
    let before = n.reserved();
    for mode in ["down", "garbage", "silent", "starting"] {
        let out = n.run_cri(
            &[
                "ipam",
                "gc",
                "sandbox-cni",
                "--from-cri",
                "--apply",
                "--min-age",
                "0",
            ],
            mode,
            Some("pods-none.json"),
        );
        out.expect_code(1)
            .stderr_has("refusing to collect garbage")
            .stderr_has("Nothing was freed");
        assert_eq!(n.reserved(), before, "mode {mode}");
    }
    let out = n.run_cri(
        &[
            "ipam",
            "gc",
            "sandbox-cni",
            "--from-cri",
            "--apply",
            "--min-age",
            "0",
        ],
        "down",
        None,
    );
    out.stderr_has("connection refused");
    // Neither crictl nor k3s: refused as well.
    let mut c = n.cmd(&[
        "ipam",
        "gc",
        "sandbox-cni",
        "--from-cri",
        "--apply",
        "--min-age",
        "0",
    ]);
    c.env_remove("K3S_BIN").env("PATH", "/nonexistent");
    Out::from(c.output().unwrap())
        .expect_code(1)
        .stderr_has("neither k3s");
    assert_eq!(n.reserved(), before);
}

#[test]
fn gc_from_cri_frees_only_what_the_runtime_does_not_list() {
    let n = Net::new("10.82.0.0/24");
    let a = n.add(POD_A);
    let b = n.add(POD_B);
    n.add("leaked-1");
    n.add("leaked-2");
    let args = ["ipam", "gc", "sandbox-cni", "--from-cri", "--min-age", "0"];
    let out = n.run_cri(&args, "up", Some("pods-two.json"));
    out.ok()
        .stderr_has("lists 2 pod sandbox(es)")
        .stdout_has("2 held by live attachments (the runtime's pod sandboxes)")
        .stdout_has("container leaked-1")
        .stdout_has("container leaked-2");
    assert_eq!(n.reserved().len(), 4);
    let log = fs::read_to_string(n.sb.tmp.path().join("crictl.log")).unwrap();
    assert!(
        log.contains("--runtime-endpoint unix:///run/k3s/containerd/containerd.sock pods -o json"),
        "{log}"
    );
    let mut apply = args.to_vec();
    apply.push("--apply");
    n.run_cri(&apply, "up", Some("pods-two.json"))
        .ok()
        .stderr_has("freed 2 reservation(s)");
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(n.reserved(), want);
}

#[test]
fn gc_from_cri_needs_allow_empty_to_free_everything() {
    let n = Net::new("10.83.0.0/24");
    n.add("leaked-1");
    n.add("leaked-2");
    let args = ["ipam", "gc", "sandbox-cni", "--from-cri", "--min-age", "0"];
    n.run_cri(&args, "up", Some("pods-none.json"))
        .ok()
        .stderr_has("lists 0 pod sandbox(es)")
        .stderr_has("--apply also needs --allow-empty");
    let mut apply = args.to_vec();
    apply.push("--apply");
    n.run_cri(&apply, "up", Some("pods-none.json"))
        .expect_code(1)
        .stderr_has("nothing was freed");
    assert_eq!(n.reserved().len(), 2);
    apply.push("--allow-empty");
    n.run_cri(&apply, "up", Some("pods-none.json"))
        .ok()
        .stderr_has("freed 2 reservation(s) (all of them)");
    assert!(n.reserved().is_empty());
}

#[test]
fn gc_from_cri_prefers_k3s_crictl_with_the_instance_endpoint() {
    let n = Net::new("10.84.0.0/24");
    n.add(POD_A);
    n.add("leaked-1");
    let log = n.sb.tmp.path().join("crictl.log");
    let out = Out::from(
        n.cmd(&[
            "ipam",
            "gc",
            "sandbox-cni",
            "--from-cri",
            "--runtime-endpoint",
            "unix:///tmp/other.sock",
            "--min-age",
            "0",
            "--apply",
        ])
        .env("FAKE_CRICTL_PODS", fixture("crictl/pods-two.json"))
        .env("FAKE_CRICTL_LOG", &log)
        .output()
        .unwrap(),
    );
    out.ok()
        .stderr_has("fake-k3s.sh crictl (runtime endpoint unix:///tmp/other.sock)")
        .stderr_has("freed 1 reservation(s)");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("--runtime-endpoint unix:///tmp/other.sock version"),
        "{text}"
    );
    assert_eq!(n.reserved().len(), 1);
}

#[test]
fn doctor_warns_about_a_nearly_full_range_with_the_gc_command() {
    // A /29 holds 5 addresses.
    let n = Net::new("10.85.0.0/29");
    for i in 0..5 {
        n.add(&format!("ctr-{i}"));
    }
    let out = n.run(&["doctor"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("IPAM sandbox-cni"))
        .unwrap_or_else(|| panic!("no IPAM line:\n{}", out.stdout))
        .to_string();
    assert!(line.starts_with("warn"), "{line}");
    assert!(line.contains("nearly full: 5 of 5 addresses used"), "{line}");
    let conf = n.sb.conf.to_str().unwrap();
    assert!(
        line.contains(&format!("run `k3s-sandbox --cni-conf-dir {conf}")),
        "{line}"
    );
    assert!(line.contains("ipam gc sandbox-cni --from-cri`"), "{line}");

    // With room left, an ok line.
    let n = Net::new("10.86.0.0/24");
    n.add("ctr-0");
    let out = n.run(&["doctor"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains("IPAM sandbox-cni: 1 of 253 addresses used")),
        "{}",
        out.stdout
    );
}

/// Runs `k3s-sandbox trace ...` with the trace directory `dir`.
fn trace(dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(exe());
    c.arg("trace")
        .args(args)
        .env("SANDBOX_CNI_TRACE_DIR", dir)
        .env_remove("NO_COLOR");
    Out::from(c.output().unwrap())
}

#[test]
fn trace_switches_and_prints_the_calls_of_the_real_plugins() {
    let n = Net::new("10.87.0.0/29");
    let dir = n.sb.tmp.path().join("run/sandbox-cni/trace");
    let env = [("SANDBOX_CNI_TRACE_DIR", dir.to_str().unwrap())];
    let v: Value = serde_json::from_str(&n.conflist).unwrap();
    let mut conf = v["plugins"][0].clone();
    conf["name"] = v["name"].clone();
    conf["cniVersion"] = v["cniVersion"].clone();
    let conf = conf.to_string();

    trace(&dir, &["status"]).expect_code(1).stdout_has("trace: off");
    trace(&dir, &[]).expect_code(1).stderr_has("k3s-sandbox trace on");
    // Off: nothing is created.
    run_plugin("bridge", "ADD", "ctr-off", &conf, &env);
    assert!(!dir.exists());

    trace(&dir, &["on"]).ok().stderr_has("trace on");
    trace(&dir, &["status"]).ok().stdout_has("trace: on");
    let ok = run_plugin("bridge", "ADD", "ctr-on", &conf, &env);
    assert!(ok.contains("10.87.0."), "{ok}");
    // Exhaust the /29 (5 addresses, one taken above by ctr-off and one by ctr-on).
    for i in 0..3 {
        run_plugin("bridge", "ADD", &format!("fill-{i}"), &conf, &env);
    }
    let err = run_plugin("bridge", "ADD", "ctr-full", &conf, &env);
    assert!(err.contains("\"code\":100"), "{err}");
    run_plugin("bridge", "DEL", "ctr-on", &conf, &env);

    let out = trace(&dir, &[]);
    out.ok()
        .stdout_has("TIME (UTC)")
        .stdout_has("bridge>host-local")
        .stdout_has("ERROR 100: failed to allocate for range 0: no IP addresses available in range set")
        .stdout_has("ctr-on");
    let lines: Vec<&str> = out.stdout.lines().collect();
    // Header, then ADD (host-local, bridge) x 4, failed ADD x 2, DEL x 2.
    assert_eq!(lines.len(), 1 + 8 + 2 + 2, "{}", out.stdout);
    assert!(
        lines[1].contains("bridge>host-local") && lines[1].contains(" ADD "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("bridge ") && lines[2].contains("10.87.0."),
        "{}",
        lines[2]
    );

    let out = trace(&dir, &["--json"]);
    let recs: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 12);
    let hl = &recs[0];
    assert_eq!(hl["plugin"], "host-local");
    assert_eq!(hl["parent"], "bridge");
    assert_eq!(hl["verb"], "ADD");
    assert_eq!(hl["network"], "sandbox-cni");
    assert_eq!(hl["cniVersion"], "1.0.0");
    assert_eq!(hl["containerID"], "ctr-on");
    assert_eq!(hl["ifname"], "eth0");
    assert_eq!(hl["netns"], "/var/run/netns/ctr-on");
    assert!(
        hl["reply"]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.87.0.")
    );
    assert!(hl["time"].as_f64().unwrap() > 1.7e9);
    assert!(hl["durationUs"].as_u64().is_some());
    let br = &recs[1];
    assert_eq!(br["plugin"], "bridge");
    assert_eq!(br["parent"], "");
    // The delegated call names its caller's pid.
    assert_eq!(hl["ppid"], br["pid"]);
    let failed = recs
        .iter()
        .find(|r| r["reply"]["code"] == 100 && r["plugin"] == "bridge")
        .unwrap();
    assert!(
        failed["reply"]["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available")
    );
    // DEL answers nothing.
    assert_eq!(recs[11]["verb"], "DEL");
    assert_eq!(recs[11]["reply"], Value::Null);

    // --since: everything is from the last hour; nothing from the last 0 seconds.
    assert_eq!(
        trace(&dir, &["--since", "1h", "--json"]).stdout.lines().count(),
        12
    );
    assert_eq!(
        trace(&dir, &["--since", "0s", "--json"]).stdout.lines().count(),
        0
    );

    // Off keeps the records readable; calls are no longer recorded.
    trace(&dir, &["off"]).ok();
    run_plugin("bridge", "DEL", "fill-0", &conf, &env);
    let out = trace(&dir, &["--json"]);
    out.ok().stderr_has("the trace is off");
    assert_eq!(out.stdout.lines().count(), 12);
    // On again continues the same records.
    trace(&dir, &["on"]).ok();
    run_plugin("bridge", "DEL", "fill-1", &conf, &env);
    assert_eq!(trace(&dir, &["--json"]).stdout.lines().count(), 14);
    trace(&dir, &["clear"]).ok();
    assert_eq!(trace(&dir, &["--json"]).stdout.lines().count(), 0);
}

// ------------------------------------------- `status` of a running agent: the ipam lines

impl Net {
    /// Starts the fake k3s as an agent on this sandbox's data dir. `up` writes the default
    /// conflist; the test's own (with the store in the temp dir) is put back afterwards.
    fn up_agent(&self) {
        let src = self.sb.plugin_src.to_string_lossy().into_owned();
        self.run(&[
            "up",
            "--profile",
            "agent",
            "--timeout",
            "10",
            "--plugins-from",
            &src,
            "--skip-selftest",
        ])
        .ok();
        fs::write(self.sb.conf.join("10-sandbox-cni.conflist"), &self.conflist).unwrap();
    }

    /// Backdates every reservation by an hour, past the grace period that protects the
    /// reservations of pods still starting.
    fn age_reservations(&self) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for ip in self.reserved() {
            fs::File::options()
                .write(true)
                .open(self.store().join(ip))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }

    /// Every file of the store with its content, to show that nothing was freed or claimed.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(self.store())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
            .collect();
        v.sort();
        v
    }

    fn crictl_log(&self) -> PathBuf {
        self.sb.tmp.path().join("crictl.log")
    }

    /// Sets up the fake crictl that the instance's (fake) k3s forwards `k3s crictl` to.
    fn with_cri(&self, mut c: Command, mode: &str, pods: Option<&str>) -> Out {
        c.env("FAKE_CRICTL_MODE", mode)
            .env("FAKE_CRICTL_LOG", self.crictl_log());
        match pods {
            Some(p) => c.env("FAKE_CRICTL_PODS", fixture(&format!("crictl/{p}"))),
            None => c.env_remove("FAKE_CRICTL_PODS"),
        };
        Out::from(c.output().unwrap())
    }

    /// `k3s-sandbox status`, the runtime answering as `mode` with the pods of `pods`.
    fn status(&self, mode: &str, pods: Option<&str>) -> Out {
        self.with_cri(self.cmd(&["status"]), mode, pods)
    }

    /// The exact command `fix: ...` that a warning printed, run as printed.
    fn run_printed(&self, line: &str, mode: &str, pods: Option<&str>) -> Out {
        let cmd = line.split("; fix: ").nth(1).unwrap();
        let words: Vec<&str> = cmd.split(' ').collect();
        assert_eq!(words[0], "k3s-sandbox", "{line}");
        let mut c = Command::new(exe());
        c.args(&words[1..])
            .env_remove("K3S_SANDBOX_DATA_DIR")
            .env_remove("CNI_CONF_DIR")
            .env_remove("CNI_BIN_DIR")
            .env_remove("CONTAINER_RUNTIME_ENDPOINT")
            .env_remove("SANDBOX_CNI_TRACE_DIR");
        self.with_cri(c, mode, pods)
    }

    /// `--cni-conf-dir C --data-dir D`: the global flags the printed commands need here.
    fn global_flags(&self) -> String {
        format!(
            "--cni-conf-dir {} --data-dir {}",
            self.sb.conf.display(),
            self.sb.data.display()
        )
    }
}

/// The `ipam <network>: ...` line of `status`, and the one warning about that network.
fn status_lines(out: &Out) -> (String, Option<String>) {
    let ipam: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("ipam ")).collect();
    assert_eq!(ipam.len(), 1, "one ipam line:\n{}", out.stdout);
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert!(warnings.len() <= 1, "{}", out.stderr);
    (ipam[0].to_string(), warnings.first().map(|w| w.to_string()))
}

#[test]
fn status_of_an_agent_shows_leaked_reservations_and_the_gc_command_that_frees_them() {
    let n = Net::new("10.87.0.0/24");
    n.up_agent();
    let a = n.add(POD_A);
    let b = n.add(POD_B);
    n.add("leaked-1");
    n.add("leaked-2");
    n.age_reservations();

    let out = n.status("up", Some("pods-two.json"));
    out.ok().stdout_has("profile: agent").stdout_has("readyz: ok");
    let (ipam, warning) = status_lines(&out);
    assert_eq!(
        ipam,
        format!(
            "ipam sandbox-cni: 4 of 253 addresses used ({})",
            n.store().display()
        )
    );
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert_eq!(
        warning,
        format!(
            "k3s-sandbox: warning: network sandbox-cni: 4 reservation(s) held by 4 container(s), \
             but only 2 live pod sandbox(es): 2 holder(s) are gone; \
             fix: k3s-sandbox {} ipam gc sandbox-cni --from-cri --apply",
            n.global_flags()
        )
    );
    // The runtime was asked through the instance's k3s, at k3s's containerd socket.
    let log = fs::read_to_string(n.crictl_log()).unwrap();
    assert!(
        log.contains("--runtime-endpoint unix:///run/k3s/containerd/containerd.sock pods -o json"),
        "{log}"
    );
    // Detection only: status freed nothing.
    assert_eq!(n.reserved().len(), 4);

    // The printed command, run as printed, frees exactly the leaked reservations...
    n.run_printed(&warning, "up", Some("pods-two.json"))
        .ok()
        .stderr_has("freed 2 reservation(s)");
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(n.reserved(), want);
    // ...and status is quiet afterwards.
    let out = n.status("up", Some("pods-two.json"));
    out.ok();
    let (ipam, warning) = status_lines(&out);
    assert!(
        ipam.starts_with("ipam sandbox-cni: 2 of 253 addresses used ("),
        "{ipam}"
    );
    assert_eq!(warning, None);

    // With no pod sandbox left at all, freeing everything needs --allow-empty, and the printed
    // command says so.
    let out = n.status("up", Some("pods-none.json"));
    let (_, warning) = status_lines(&out);
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert!(
        warning.contains("2 reservation(s) held by 2 container(s), but only 0 live pod sandbox(es)"),
        "{warning}"
    );
    assert!(
        warning.ends_with("ipam gc sandbox-cni --from-cri --apply --allow-empty"),
        "{warning}"
    );
    n.run(&["down"]).ok();
}

#[test]
fn status_of_an_agent_warns_when_a_range_is_nearly_full() {
    // Ten addresses; 90% of them is the threshold.
    let n = Net::with_range(serde_json::json!({
        "subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.19"
    }));
    n.up_agent();
    n.add(POD_A);
    n.add(POD_B);
    n.age_reservations();
    // Seven pods that are starting: fresh reservations the runtime does not list yet are not
    // leaks, but they do use the range.
    for i in 0..7 {
        n.add(&format!("starting-{i}"));
    }
    let out = n.status("up", Some("pods-two.json"));
    out.ok();
    let (ipam, warning) = status_lines(&out);
    assert!(
        ipam.starts_with("ipam sandbox-cni: 9 of 10 addresses used ("),
        "{ipam}"
    );
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert_eq!(
        warning,
        format!(
            "k3s-sandbox: warning: network sandbox-cni: range 10.88.0.10-10.88.0.19 (10.88.0.0/24) is nearly full: \
             9 of 10 addresses used; fix: k3s-sandbox {} ipam gc sandbox-cni --from-cri --apply",
            n.global_flags()
        )
    );
    assert!(!warning.contains("holder(s) are gone"), "{warning}");

    // Below 90%: no warning.
    n.run(&["ipam", "release", "sandbox-cni", "--container", "starting-0"])
        .ok();
    let out = n.status("up", Some("pods-two.json"));
    out.ok();
    let (ipam, warning) = status_lines(&out);
    assert!(
        ipam.starts_with("ipam sandbox-cni: 8 of 10 addresses used ("),
        "{ipam}"
    );
    assert_eq!(warning, None, "{}", out.stderr);
    n.run(&["down"]).ok();
}

#[test]
fn a_full_range_of_live_pods_asks_for_a_larger_range_not_for_gc() {
    // Two addresses, both held by the two pods the runtime lists: gc would free nothing.
    let n = Net::with_range(serde_json::json!({
        "subnet": "10.90.0.0/24", "rangeStart": "10.90.0.10", "rangeEnd": "10.90.0.11"
    }));
    n.up_agent();
    n.add(POD_A);
    n.add(POD_B);
    n.age_reservations();
    let out = n.status("up", Some("pods-two.json"));
    out.ok();
    let (ipam, warning) = status_lines(&out);
    assert!(
        ipam.starts_with("ipam sandbox-cni: 2 of 2 addresses used ("),
        "{ipam}"
    );
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{}", out.stderr));
    assert!(
        warning.contains("is nearly full: 2 of 2 addresses used"),
        "{warning}"
    );
    assert!(
        warning.contains("every address is held by a live pod sandbox, so gc would free none: give network sandbox-cni a larger range (ipam ranges in "),
        "{warning}"
    );
    assert!(!warning.contains("ipam gc"), "{warning}");
    n.run(&["down"]).ok();
}

#[test]
fn status_of_a_healthy_agent_store_prints_no_warning() {
    let n = Net::new("10.89.0.0/24");
    n.up_agent();
    n.add(POD_A);
    n.add(POD_B);
    n.age_reservations();
    let out = n.status("up", Some("pods-two.json"));
    out.ok().stdout_has("readyz: ok");
    let (ipam, warning) = status_lines(&out);
    assert_eq!(
        ipam,
        format!(
            "ipam sandbox-cni: 2 of 253 addresses used ({})",
            n.store().display()
        )
    );
    assert_eq!(warning, None);
    assert!(!out.stderr.contains("ipam gc"), "{}", out.stderr);
    assert!(!out.stderr.contains("cannot be counted"), "{}", out.stderr);
    // The runtime was really asked (a healthy verdict is not the runtime being skipped).
    let log = fs::read_to_string(n.crictl_log()).unwrap();
    assert!(log.contains(" pods -o json"), "{log}");
    n.run(&["down"]).ok();
}

#[test]
fn status_cannot_count_leaks_when_the_runtime_does_not_answer_and_touches_nothing() {
    // Two addresses: full, so the nearly-full warning stays, but only as a dry run.
    let n = Net::with_range(serde_json::json!({
        "subnet": "10.90.0.0/24", "rangeStart": "10.90.0.10", "rangeEnd": "10.90.0.11"
    }));
    n.up_agent();
    n.add(POD_A);
    n.add("leaked-1");
    n.age_reservations();
    let before = n.snapshot();
    for mode in ["down", "starting", "garbage", "silent"] {
        let out = n.status(mode, Some("pods-two.json"));
        out.ok();
        out.stderr_has(
            "k3s-sandbox: the container runtime did not answer `crictl pods`: \
             leaked reservations cannot be counted",
        );
        let (ipam, warning) = status_lines(&out);
        assert!(
            ipam.starts_with("ipam sandbox-cni: 2 of 2 addresses used ("),
            "{mode}: {ipam}"
        );
        let warning = warning.unwrap_or_else(|| panic!("{mode}: no warning:\n{}", out.stderr));
        assert!(!warning.contains("holder(s) are gone"), "{mode}: {warning}");
        assert!(
            warning.contains("is nearly full: 2 of 2 addresses used"),
            "{mode}: {warning}"
        );
        // Without the runtime's answer the command is the dry run, never --apply.
        assert!(
            warning.ends_with(&format!(
                "fix: k3s-sandbox {} ipam gc sandbox-cni --from-cri",
                n.global_flags()
            )),
            "{mode}: {warning}"
        );
        assert_eq!(n.snapshot(), before, "{mode}");
    }
    // The runtime down and no reservation to speak of: only the note, no warning.
    n.run(&["ipam", "release", "sandbox-cni", "--container", "leaked-1"])
        .ok();
    let out = n.status("down", None);
    out.ok().stderr_has("leaked reservations cannot be counted");
    let (ipam, warning) = status_lines(&out);
    assert!(
        ipam.starts_with("ipam sandbox-cni: 1 of 2 addresses used ("),
        "{ipam}"
    );
    assert_eq!(warning, None);
    n.run(&["down"]).ok();
}
