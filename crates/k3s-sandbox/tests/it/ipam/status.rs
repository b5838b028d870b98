//! The leak and fill-level detection of `doctor` and of `status` on a running agent, and the gc
//! command they print.

use std::fs;
use std::process::Command;

use serde_json::{Value, json};

use super::{Net, POD_A, POD_B};
use crate::common::{Out, exe};

/// What `status` (which must succeed) said: its one `ipam` line and its one warning, if any.
struct Status {
    out: Out,
    ipam: String,
    warning: Option<String>,
}

impl Status {
    /// Asserts that the `ipam` line counts `used` (e.g. "9 of 10") addresses.
    fn used(&self, used: &str) -> &Status {
        assert!(
            self.ipam
                .starts_with(&format!("ipam sandbox-cni: {used} addresses used in ")),
            "{}",
            self.ipam
        );
        self
    }

    /// The warning, which must be there.
    fn warning(&self) -> &str {
        self.warning
            .as_deref()
            .unwrap_or_else(|| panic!("no warning:\n{}", self.out.stderr))
    }
}

impl Net {
    /// A sandbox running the fake k3s as an agent, its network's single range `range`, with one
    /// reservation for each of `holders` (their addresses returned) backdated by an hour, past
    /// the grace period that protects the reservations of pods still starting.
    fn agent(range: Value, holders: &[&str]) -> (Net, Vec<String>) {
        let n = Net::with_range(range);
        // `up` writes the default conflist; the test's own (with the store in the temp dir) is
        // put back afterwards.
        let src = n.sb.plugin_src.to_string_lossy().into_owned();
        n.run(&[
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
        fs::write(n.sb.conf.join("10-sandbox-cni.conflist"), &n.conflist).unwrap();
        let ips = holders.iter().map(|h| n.add(h)).collect();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for ip in n.reserved() {
            fs::File::options()
                .write(true)
                .open(n.store().join(ip))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        (n, ips)
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

    /// `k3s-sandbox status`, the runtime answering as `mode` with the pods of `pods`.
    fn status(&self, mode: &str, pods: Option<&str>) -> Status {
        let out = self.with_cri(self.cmd(&["status"]), mode, pods);
        out.ok();
        let ipam: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("ipam ")).collect();
        assert_eq!(ipam.len(), 1, "one ipam line:\n{}", out.stdout);
        let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("warning")).collect();
        assert!(warnings.len() <= 1, "{}", out.stderr);
        Status {
            ipam: ipam[0].to_string(),
            warning: warnings.first().map(|w| w.to_string()),
            out,
        }
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
}

/// Ten addresses, 10.88.0.10 to 10.88.0.19.
fn ten_addresses() -> Value {
    json!({"subnet": "10.88.0.0/24", "rangeStart": "10.88.0.10", "rangeEnd": "10.88.0.19"})
}

/// Two addresses, 10.90.0.10 and 10.90.0.11.
fn two_addresses() -> Value {
    json!({"subnet": "10.90.0.0/24", "rangeStart": "10.90.0.10", "rangeEnd": "10.90.0.11"})
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
    // k3s is not running here: the remedy shows the holders and a gc naming the live ones, never
    // a --from-cri that would fail (issue 20).
    assert!(
        line.contains(&format!(
            "`k3s-sandbox ipam ls sandbox-cni --cni-conf-dir {conf}`"
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "`k3s-sandbox ipam gc sandbox-cni --cni-conf-dir {conf} --valid LIVE-ID ...`"
        )),
        "{line}"
    );
    assert!(!line.contains("--from-cri"), "{line}");

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

#[test]
fn status_of_an_agent_shows_leaked_reservations_and_the_gc_command_that_frees_them() {
    let holders = [POD_A, POD_B, "leaked-1", "leaked-2"];
    let (n, ips) = Net::agent(json!({"subnet": "10.87.0.0/24"}), &holders);

    let s = n.status("up", Some("pods-two.json"));
    s.out.stdout_has("profile: agent").stdout_has("readyz: ok");
    assert_eq!(
        s.ipam,
        format!(
            "ipam sandbox-cni: 4 of 253 addresses used in 10.87.0.0/24 ({})",
            n.store().display()
        )
    );
    assert_eq!(
        s.warning(),
        format!(
            "k3s-sandbox: warning: network sandbox-cni: 4 reservations held by 4 containers, \
             but only 2 live pod sandboxes: 2 holders are gone; \
             fix: {}{} --apply",
            n.printed_gc(),
            n.cri_flags()
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
    n.run_printed(s.warning(), "up", Some("pods-two.json"))
        .ok()
        .stderr_has("freed 2 reservations");
    let mut want = ips[..2].to_vec();
    want.sort();
    assert_eq!(n.reserved(), want);
    // ...and status is quiet afterwards.
    let s = n.status("up", Some("pods-two.json"));
    s.used("2 of 253");
    assert_eq!(s.warning, None);

    // With no pod sandbox left at all, freeing everything needs --allow-empty, and the printed
    // command says so.
    let s = n.status("up", Some("pods-none.json"));
    let warning = s.warning();
    assert!(
        warning.contains("2 reservations held by 2 containers, but only 0 live pod sandboxes"),
        "{warning}"
    );
    assert!(
        warning.ends_with(&format!(
            "{}{} --apply --allow-empty",
            n.printed_gc(),
            n.cri_flags()
        )),
        "{warning}"
    );
    n.run(&["down"]).ok();
}

#[test]
fn status_of_an_agent_warns_when_a_range_is_nearly_full() {
    // Ten addresses; 90% of them is the threshold.
    let (n, _) = Net::agent(ten_addresses(), &[POD_A, POD_B]);
    // Seven pods that are starting: fresh reservations the runtime does not list yet are not
    // leaks, but they do use the range.
    for i in 0..7 {
        n.add(&format!("starting-{i}"));
    }
    let s = n.status("up", Some("pods-two.json"));
    s.used("9 of 10");
    assert_eq!(
        s.warning(),
        format!(
            "k3s-sandbox: warning: network sandbox-cni: range 10.88.0.10-10.88.0.19 (10.88.0.0/24) is nearly full: \
             9 of 10 addresses used; fix: {}{} --apply",
            n.printed_gc(),
            n.cri_flags()
        )
    );
    assert!(!s.warning().contains("holders are gone"), "{:?}", s.warning);

    // Below 90%: no warning.
    n.ipam("release sandbox-cni --container starting-0").ok();
    let s = n.status("up", Some("pods-two.json"));
    s.used("8 of 10");
    assert_eq!(s.warning, None, "{}", s.out.stderr);
    n.run(&["down"]).ok();
}

#[test]
fn a_full_range_of_live_pods_asks_for_a_larger_range_not_for_gc() {
    // Two addresses, both held by the two pods the runtime lists: gc would free nothing.
    let (n, _) = Net::agent(two_addresses(), &[POD_A, POD_B]);
    let s = n.status("up", Some("pods-two.json"));
    let warning = s.used("2 of 2").warning();
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
    let (n, _) = Net::agent(json!({"subnet": "10.89.0.0/24"}), &[POD_A, POD_B]);
    let s = n.status("up", Some("pods-two.json"));
    s.out.stdout_has("readyz: ok");
    assert_eq!(
        s.ipam,
        format!(
            "ipam sandbox-cni: 2 of 253 addresses used in 10.89.0.0/24 ({})",
            n.store().display()
        )
    );
    assert_eq!(s.warning, None);
    assert!(!s.out.stderr.contains("ipam gc"), "{}", s.out.stderr);
    assert!(!s.out.stderr.contains("cannot be counted"), "{}", s.out.stderr);
    // The runtime was really asked (a healthy verdict is not the runtime being skipped).
    let log = fs::read_to_string(n.crictl_log()).unwrap();
    assert!(log.contains(" pods -o json"), "{log}");
    n.run(&["down"]).ok();
}

#[test]
fn status_cannot_count_leaks_when_the_runtime_does_not_answer_and_touches_nothing() {
    // Two addresses: full, so the nearly-full warning stays, but only as a dry run.
    let (n, _) = Net::agent(two_addresses(), &[POD_A, "leaked-1"]);
    let before = n.snapshot();
    for mode in ["down", "starting", "garbage", "silent"] {
        let s = n.status(mode, Some("pods-two.json"));
        s.out.stderr_has(
            "k3s-sandbox: the container runtime did not answer `crictl pods`: \
             leaked reservations cannot be counted",
        );
        let warning = s.used("2 of 2").warning();
        assert!(!warning.contains("holders are gone"), "{mode}: {warning}");
        assert!(
            warning.contains("is nearly full: 2 of 2 addresses used"),
            "{mode}: {warning}"
        );
        // Without the runtime's answer the command is the dry run, never --apply.
        assert!(
            warning.contains(&format!(
                "`{} --valid LIVE-ID ...` (a dry run; add --apply)",
                n.printed_gc()
            )),
            "{mode}: {warning}"
        );
        assert!(!warning.contains("--from-cri"), "{mode}: {warning}");
        assert_eq!(n.snapshot(), before, "{mode}");
    }
    // The runtime down and no reservation to speak of: only the note, no warning.
    n.ipam("release sandbox-cni --container leaked-1").ok();
    let s = n.status("down", None);
    s.out.stderr_has("leaked reservations cannot be counted");
    s.used("1 of 2");
    assert_eq!(s.warning, None);
    n.run(&["down"]).ok();
}

/// A store every ADD refuses (issue 21): `ipam ls` and `doctor` say so, with the plugin's reason.
#[test]
fn ls_and_doctor_report_a_store_the_plugin_refuses() {
    let n = Net::new("10.87.0.0/24");
    n.add("ctr-0");
    let lock = n.store().join("lock");
    fs::remove_file(&lock).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&lock)
            .status()
            .unwrap()
            .success()
    );
    let out = n.ipam("ls");
    out.ok()
        .stdout_has("every plugin call on this store fails (code 5)")
        .stdout_has("lock: is not a regular file");
    assert!(!out.stdout.contains("damage: none"), "{}", out.stdout);
    let out = n.run(&["doctor"]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("IPAM sandbox-cni"))
        .unwrap_or_else(|| panic!("no IPAM line:\n{}", out.stdout))
        .to_string();
    assert!(
        line.starts_with("warn") && line.contains("every plugin call on this store fails"),
        "{line}"
    );
    // A FIFO cursor: gc's dry run says calls fail (the store itself opens).
    fs::remove_file(&lock).unwrap();
    let cursor = n.store().join("last_reserved_ip.0");
    fs::remove_file(&cursor).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&cursor)
            .status()
            .unwrap()
            .success()
    );
    n.ipam("gc sandbox-cni --valid ctr-0")
        .ok()
        .stdout_has("every plugin call on this store fails (code 5)")
        .stdout_has("last_reserved_ip.0: is not a regular file");
}

/// Issue 22: status counted only dead holders by container ID, so a reservation naming no holder
/// (which gc frees) went uncounted and one that is not a file (which gc never removes) made it
/// offer gc. It now counts what `ipam gc`'s plan decides, from the same liveness rule.
#[test]
fn status_and_the_gc_dry_run_agree_on_a_store_with_damaged_entries() {
    let (n, _) = Net::agent(json!({"subnet": "10.87.0.0/24"}), &[POD_A, POD_B, "leaked-1"]);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let empty = n.store().join("10.87.0.100");
    fs::write(&empty, "").unwrap();
    fs::File::options()
        .write(true)
        .open(&empty)
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::create_dir(n.store().join("10.87.0.200")).unwrap();

    let s = n.status("up", Some("pods-two.json"));
    assert_eq!(
        s.warning(),
        format!(
            "k3s-sandbox: warning: network sandbox-cni: 5 reservations held by 3 containers, \
             but only 2 live pod sandboxes: 1 holder is gone, 1 reservation names no holder (empty or unreadable); \
             1 address holds something that is not a reservation file (10.87.0.200): it blocks the address, \
             and gc never removes it; fix: {}{} --apply",
            n.printed_gc(),
            n.cri_flags()
        )
    );
    // The printed command without --apply: gc's dry run frees the same two, blocks the same one.
    let dry = s.warning().replace(" --apply", "");
    let out = n.run_printed(&dry, "up", Some("pods-two.json"));
    out.ok()
        .stdout_has(
            "network sandbox-cni: 5 reservations: 2 held by live attachments (the runtime's pod sandboxes), \
             0 younger than --min-age 300s (kept), 2 to free",
        )
        .stdout_has("10.87.0.200: not a regular file, never removed by gc");
    assert_eq!(n.reserved().len(), 5, "a dry run frees nothing");
    n.run(&["down"]).ok();
}
