//! `ipam ls`, `ipam release` and `ipam gc` on stores the real host-local plugin wrote.

use std::fs;

use serde_json::Value;

use super::{Net, POD_A, POD_B, words};
use crate::common::Out;

/// `gc --from-cri --apply` with no grace period: frees whatever the runtime does not list.
const GC_CRI_APPLY: &str = "gc sandbox-cni --from-cri --apply --min-age 0";

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
    let out = n.ipam("ls");
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

    let out = n.ipam("ls sandbox-cni --json");
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let net = &v["networks"][0];
    assert_eq!(net["name"], "sandbox-cni");
    assert_eq!(net["ranges"][0]["capacity"], 253);
    assert_eq!(net["ranges"][0]["used"], 3);
    assert_eq!(net["indexed"], true);
    let field = |list: &str, key: &str| -> Vec<String> {
        net[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[key].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        field("reservations", "ip"),
        ["10.9.9.9", a.as_str(), b.as_str(), "10.77.0.200"]
    );
    let kinds = field("damage", "kind");
    for k in [
        "no-holder",
        "foreign-file",
        "missing-index-entry",
        "outside-ranges",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{kinds:?}");
    }

    // An unknown network is an error naming the way out.
    n.ipam("ls nope").expect_code(1).stderr_has("--ipam-dir");
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
    let ipam_dir = n.ipam_dir.to_str().unwrap();
    let out = n.run(&["ipam", "ls", "cbr0", "--ipam-dir", ipam_dir]);
    out.ok()
        .stdout_has("network cbr0: store ")
        .stdout_has("ranges: unknown (no config names this network)")
        .stdout_has("aaa")
        .stdout_has("bbb")
        .stdout_has("damage: none");
    // Without a network, every store under --ipam-dir.
    let out = n.run(&["ipam", "ls", "--ipam-dir", ipam_dir, "--json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["networks"].as_array().unwrap().len(), 1, "{}", out.stdout);
    assert_eq!(v["networks"][0]["indexed"], false);
}

#[test]
fn release_frees_one_address_or_one_container() {
    let n = Net::new("10.79.0.0/24");
    let a = n.add("ctr-a");
    let b = n.add("ctr-b");
    let release_a = format!("release sandbox-cni --ip {a}");
    n.ipam(&release_a)
        .ok()
        .stdout_has(&format!("released {a} (container ctr-a (interface eth0))"));
    assert_eq!(n.reserved(), vec![b.clone()]);
    n.ipam(&release_a).expect_code(1).stderr_has("is not reserved");
    n.ipam("release sandbox-cni --container ctr-b --ifname net1")
        .expect_code(1)
        .stderr_has("holds no address");
    n.ipam("release sandbox-cni --container ctr-b")
        .ok()
        .stdout_has(&format!("released {b}"));
    assert!(n.reserved().is_empty());
    // The plugin still works on the store afterwards, and a released address is no longer held.
    let c = n.add("ctr-c");
    assert_eq!(n.reserved(), vec![c]);
    // One of --ip and --container is required.
    n.ipam("release sandbox-cni").expect_code(64);
}

#[test]
fn gc_with_valid_is_a_dry_run_until_apply() {
    let n = Net::new("10.80.0.0/24");
    let a = n.add("ctr-a");
    let _b = n.add("ctr-b");
    let c = n.add("ctr-c");
    let before = n.reserved();
    n.ipam("gc sandbox-cni --valid ctr-a --valid ctr-c/eth0 --min-age 0")
        .ok()
        .stdout_has("3 reservations: 2 held by live attachments (--valid), 0 younger than --min-age 0s (kept), 1 to free")
        .stdout_has(" ctr-b      eth0  ")
        .stderr_has("dry run: nothing freed")
        .stderr_has("--apply");
    assert_eq!(n.reserved(), before);
    // Young reservations are kept by the default --min-age.
    n.ipam("gc sandbox-cni --valid ctr-a --apply")
        .ok()
        .stdout_has("2 younger than --min-age 300s (kept), 0 to free");
    assert_eq!(n.reserved(), before);
    n.ipam("gc sandbox-cni --valid ctr-a --valid ctr-c/eth0 --min-age 0 --apply")
        .ok()
        .stderr_has("freed 1 reservation");
    let mut want = vec![a, c];
    want.sort();
    assert_eq!(n.reserved(), want);
    // A --valid naming another interface does not keep the eth0 reservation.
    n.ipam("gc sandbox-cni --valid ctr-a --valid ctr-c/net1 --min-age 0 --apply")
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
        n.ipam_cri(GC_CRI_APPLY, mode, Some("pods-none.json"))
            .expect_code(1)
            .stderr_has("refusing to collect garbage")
            .stderr_has("Nothing was freed");
        assert_eq!(n.reserved(), before, "mode {mode}");
    }
    n.ipam_cri(GC_CRI_APPLY, "down", None)
        .stderr_has("connection refused");
    // Neither crictl nor k3s: refused as well.
    let mut c = n.cmd(&[&["ipam"], &words(GC_CRI_APPLY)[..]].concat());
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
    let gc = "gc sandbox-cni --from-cri --min-age 0";
    n.ipam_cri(gc, "up", Some("pods-two.json"))
        .ok()
        .stderr_has("lists 2 pod sandboxes")
        .stdout_has("2 held by live attachments (the runtime's pod sandboxes)")
        .stdout_has("  ADDRESS    CONTAINER  IF    AGE\n")
        .stdout_has(" leaked-1   eth0  ")
        .stdout_has(" leaked-2   eth0  ");
    assert_eq!(n.reserved().len(), 4);
    let log = fs::read_to_string(n.crictl_log()).unwrap();
    assert!(
        log.contains("--runtime-endpoint unix:///run/k3s/containerd/containerd.sock pods -o json"),
        "{log}"
    );
    n.ipam_cri(GC_CRI_APPLY, "up", Some("pods-two.json"))
        .ok()
        .stderr_has("freed 2 reservations");
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(n.reserved(), want);
}

#[test]
fn gc_from_cri_needs_allow_empty_to_free_everything() {
    let n = Net::new("10.83.0.0/24");
    n.add("leaked-1");
    n.add("leaked-2");
    n.ipam_cri(
        "gc sandbox-cni --from-cri --min-age 0",
        "up",
        Some("pods-none.json"),
    )
    .ok()
    .stderr_has("lists 0 pod sandboxes")
    .stderr_has("--apply also needs --allow-empty");
    n.ipam_cri(GC_CRI_APPLY, "up", Some("pods-none.json"))
        .expect_code(1)
        .stderr_has("nothing was freed");
    assert_eq!(n.reserved().len(), 2);
    n.ipam_cri(
        &format!("{GC_CRI_APPLY} --allow-empty"),
        "up",
        Some("pods-none.json"),
    )
    .ok()
    .stderr_has("freed 2 reservations (all of them)");
    assert!(n.reserved().is_empty());
}

#[test]
fn gc_from_cri_prefers_k3s_crictl_with_the_instance_endpoint() {
    let n = Net::new("10.84.0.0/24");
    n.add(POD_A);
    n.add("leaked-1");
    let c = n.cmd(&words(
        "ipam gc sandbox-cni --from-cri --runtime-endpoint unix:///tmp/other.sock --min-age 0 --apply",
    ));
    n.with_cri(c, "up", Some("pods-two.json"))
        .ok()
        .stderr_has("fake-k3s.sh crictl (runtime endpoint unix:///tmp/other.sock)")
        .stderr_has("freed 1 reservation");
    let text = fs::read_to_string(n.crictl_log()).unwrap();
    assert!(
        text.contains("--runtime-endpoint unix:///tmp/other.sock version"),
        "{text}"
    );
    assert_eq!(n.reserved().len(), 1);
}

#[test]
fn ls_of_a_network_without_a_store_and_the_dry_run_hint_with_ipam_dir() {
    let n = Net::new("10.91.0.0/29");
    // No address handed out yet: the whole range is free.
    n.ipam("ls").ok().stdout_has(
        "  no store yet: no address has been handed out on this network\n  \
         range set 0: 10.91.0.1-10.91.0.6 (10.91.0.0/29)  used 0, free 5 of 5\n",
    );
    n.add("ctr-a");
    // The hint repeats the command line (--ipam-dir and --valid quoted for a shell) with --apply.
    let ipam_dir = n.ipam_dir.to_str().unwrap();
    let args = ["ipam", "gc", "sandbox-cni", "--ipam-dir", ipam_dir];
    // A value that is no container ID is a usage error (issue 20: one --valid parser).
    n.run(&[&args[..], &["--valid", "it's"]].concat())
        .expect_code(64)
        .stderr_has("is not ID[/IFNAME]");
    n.run(&[&args[..], &["--valid", "ctr-z.1", "--min-age", "0"]].concat())
        .ok()
        .stdout_has("1 to free")
        .stderr_has(&format!(
            "dry run: nothing freed. Free them with: {} --ipam-dir {ipam_dir} \
             --valid ctr-z.1 --min-age 0s --apply\n",
            n.printed_gc()
        ));
}
