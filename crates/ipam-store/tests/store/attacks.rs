//! Attacks on the store by someone who can write into it (issue 21): hard links planted under the
//! names of files rewritten in place, and a restore that sets the seal back.

use std::fs::{self, File, FileTimes};
use std::net::IpAddr;
use std::path::Path;

use super::common::{ip, opts, set};
use ipam_store::{DiskStore, Owner, Reservations, assign, release_attachment};

fn open(t: &Path) -> DiskStore {
    DiskStore::open(&t.join("data"), "net", &opts(t)).unwrap()
}

fn add(t: &Path, id: &str) -> Vec<IpAddr> {
    let mut s = open(t);
    assign(&mut s, &[set("10.77.0.0/24")], &Owner::new(id, "eth0"), &[])
        .unwrap()
        .iter()
        .map(|a| a.ip)
        .collect()
}

#[test]
fn in_place_rewrites_never_follow_a_planted_hard_link() {
    let t = tempfile::tempdir().unwrap();
    add(t.path(), "a");
    let net = t.path().join("data/net");
    let outside = t.path().join("outside");
    let body = "52 bytes that belong to someone else, not the store.\n";
    for (i, planted) in ["last_reserved_ip.0", ".sandbox-cni/state"].iter().enumerate() {
        fs::write(&outside, body).unwrap();
        fs::remove_file(net.join(planted)).unwrap();
        fs::hard_link(&outside, net.join(planted)).unwrap();
        // The open rewrites `state`, an ADD the cursor.
        add(t.path(), &format!("x{i}"));
        assert_eq!(
            fs::read_to_string(&outside).unwrap(),
            body,
            "written through {planted}"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(net.join(planted)).unwrap().nlink(), 1, "{planted}");
    }
    // The store still works: the cursor is back and a third ADD goes on from it.
    assert_eq!(add(t.path(), "c"), [ip("10.77.0.5")]);
}

/// A restore that puts back an older copy with its modification times (what `tar -xp`, `cp -a`
/// and `rsync -t` do): a reservation comes back, the directory's mtime is set back to the seal.
#[test]
fn a_restore_that_preserves_modification_times_is_detected() {
    let t = tempfile::tempdir().unwrap();
    let net = t.path().join("data/net");
    assert_eq!(add(t.path(), "c0"), [ip("10.77.0.2")]);
    assert_eq!(add(t.path(), "c1"), [ip("10.77.0.3")]);
    let sealed = fs::metadata(&net).unwrap().modified().unwrap();
    let backup = fs::read(net.join("10.77.0.3")).unwrap();
    let mut s = open(t.path());
    assert_eq!(
        release_attachment(&mut s, "c1", "eth0").unwrap(),
        [ip("10.77.0.3")]
    );
    drop(s);
    // The restore.
    fs::write(net.join("10.77.0.3"), &backup).unwrap();
    File::open(&net)
        .unwrap()
        .set_times(FileTimes::new().set_modified(sealed))
        .unwrap();
    assert_eq!(fs::metadata(&net).unwrap().modified().unwrap(), sealed);
    let c1 = Owner::new("c1", "eth0");
    // CHECK finds c1's address; a repeated ADD gets the same one, not a second.
    let mut s = open(t.path());
    assert!(s.report().rebuilt, "the restored store was trusted");
    assert_eq!(s.held_by(&c1).unwrap(), [ip("10.77.0.3")]);
    drop(s);
    assert_eq!(add(t.path(), "c1"), [ip("10.77.0.3")]);
    // DEL frees it: nothing leaks.
    let mut s = open(t.path());
    assert_eq!(
        release_attachment(&mut s, "c1", "eth0").unwrap(),
        [ip("10.77.0.3")]
    );
    drop(s);
    assert!(!net.join("10.77.0.3").exists());
}

fn mkfifo(p: &Path) {
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap()
            .success()
    );
}

/// Every planted condition: the inspection reports a refusal exactly when an ADD fails.
#[test]
fn inspection_reports_every_condition_under_which_calls_fail() {
    use ipam_store::inspect::{Damage, inspect};
    type Plant = fn(&Path, &Path);
    let cases: &[(&str, Plant)] = &[
        ("fifo lock", |n, _| {
            fs::remove_file(n.join("lock")).unwrap();
            mkfifo(&n.join("lock"));
        }),
        ("directory lock", |n, _| {
            fs::remove_file(n.join("lock")).unwrap();
            fs::create_dir(n.join("lock")).unwrap();
        }),
        ("directory state", |n, _| {
            fs::remove_file(n.join(".sandbox-cni/state")).unwrap();
            fs::create_dir(n.join(".sandbox-cni/state")).unwrap();
        }),
        ("fifo state", |n, _| {
            fs::remove_file(n.join(".sandbox-cni/state")).unwrap();
            mkfifo(&n.join(".sandbox-cni/state"));
        }),
        ("fifo cursor", |n, _| {
            fs::remove_file(n.join("last_reserved_ip.0")).unwrap();
            mkfifo(&n.join("last_reserved_ip.0"));
        }),
        ("fifo boot record", |n, _| {
            fs::remove_file(n.join(".sandbox-cni/boot_id")).unwrap();
            mkfifo(&n.join(".sandbox-cni/boot_id"));
        }),
        ("file in the rebuild's scratch name", |n, _| {
            fs::write(n.join(".sandbox-cni/owners.new"), "x").unwrap();
            fs::write(n.join("10.77.0.6"), "other\r\neth0").unwrap();
        }),
        ("file where owners/ belongs", |n, _| {
            fs::remove_dir_all(n.join(".sandbox-cni/owners")).unwrap();
            fs::write(n.join(".sandbox-cni/owners"), "x").unwrap();
        }),
        ("file where .sandbox-cni belongs", |n, _| {
            fs::remove_dir_all(n.join(".sandbox-cni")).unwrap();
            fs::write(n.join(".sandbox-cni"), "x").unwrap();
        }),
        ("symlinked network directory", |n, t| {
            let real = t.join("real");
            fs::rename(n, &real).unwrap();
            std::os::unix::fs::symlink(&real, n).unwrap();
        }),
        // Harmless: calls go on.
        ("foreign file in the index", |n, _| {
            fs::write(n.join(".sandbox-cni/owners/foo"), "x").unwrap();
        }),
        ("foreign directory in the index", |n, _| {
            fs::create_dir(n.join(".sandbox-cni/owners/foo")).unwrap();
        }),
        ("directory under a scratch name, after a reboot", |n, t| {
            fs::create_dir(n.join(".sandbox-cni/tmp-boot")).unwrap();
            fs::write(t.join("boot_id"), "boot-2\n").unwrap();
        }),
        ("foreign file", |n, _| fs::write(n.join("notes"), "x").unwrap()),
    ];
    for (what, plant) in cases {
        let t = tempfile::tempdir().unwrap();
        add(t.path(), "c0");
        let net = t.path().join("data/net");
        plant(&net, t.path());
        let found = inspect(&net, std::time::Duration::from_secs(1)).unwrap();
        let refusals: Vec<_> = found.damage.iter().filter(|d| d.blocks_calls()).collect();
        let add = DiskStore::open(&t.path().join("data"), "net", &opts(t.path()))
            .and_then(|mut s| assign(&mut s, &[set("10.77.0.0/24")], &Owner::new("c1", "eth0"), &[]));
        assert_eq!(
            add.is_err(),
            !refusals.is_empty(),
            "{what}: ADD {add:?}, inspection {:?}",
            found.damage
        );
        if let Err(e) = add {
            // The refusal names the file the plugin's error names.
            let e = e.to_string();
            let path = e[e.find('/').unwrap()..].split(':').next().unwrap();
            assert!(
                refusals
                    .iter()
                    .any(|d| matches!(d, Damage::Refused { why } if why.contains(path))),
                "{what}: {e} vs {refusals:?}"
            );
        }
        if *what == "symlinked network directory" {
            assert!(found.reservations.is_empty(), "followed the symlink");
        }
    }
}

#[test]
fn inspection_reads_bounded_and_prints_no_control_characters() {
    use ipam_store::inspect::inspect;
    let t = tempfile::tempdir().unwrap();
    add(t.path(), "c0");
    let net = t.path().join("data/net");
    // A 600 MiB sparse reservation: read 64 KiB of it, as the plugins do.
    let f = File::create(net.join("10.77.0.9")).unwrap();
    f.set_len(600 << 20).unwrap();
    drop(f);
    fs::write(net.join("10.77.0.10"), "\x1b[2J\x1b]0;owned\x07evil\r\neth0").unwrap();
    let start = std::time::Instant::now();
    let found = inspect(&net, std::time::Duration::from_secs(1)).unwrap();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let evil = found
        .reservations
        .iter()
        .find(|r| r.ip == ip("10.77.0.10"))
        .unwrap();
    let shown = evil.owner.as_ref().unwrap().to_string();
    assert!(!shown.contains('\x1b') && !shown.contains('\x07'), "{shown:?}");
    for d in &found.damage {
        assert!(!d.to_string().chars().any(char::is_control), "{d}");
    }
}

/// After a restore, inspection says the next call rebuilds, and the next call does.
#[test]
fn inspection_and_plugin_agree_on_a_stale_index() {
    use ipam_store::inspect::{Damage, inspect};
    let t = tempfile::tempdir().unwrap();
    add(t.path(), "c0");
    let net = t.path().join("data/net");
    let insp = || inspect(&net, std::time::Duration::from_secs(1)).unwrap().damage;
    assert!(insp().is_empty(), "{:?}", insp());
    let sealed = fs::metadata(&net).unwrap().modified().unwrap();
    fs::write(net.join("10.77.0.7"), "c9\r\neth0").unwrap();
    File::open(&net)
        .unwrap()
        .set_times(FileTimes::new().set_modified(sealed))
        .unwrap();
    assert!(insp().contains(&Damage::IndexStale), "{:?}", insp());
    assert!(open(t.path()).report().rebuilt);
    assert!(insp().is_empty(), "{:?}", insp());
}
