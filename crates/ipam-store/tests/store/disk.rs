//! The disk store against the reference's on-disk format, its index, locking, GC and reboot handling.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::common::{ip, opts, set};
use ipam_store::alloc::{attachment_addresses, first_free};
use ipam_store::{
    DiskOptions, DiskStore, Owner, RangeSet, Reservations, StoreError, assign, release_attachment,
};

fn open(data: &Path) -> DiskStore {
    DiskStore::open(&data.join("data"), "net", &opts(data)).unwrap()
}

fn add(data: &Path, sets: &[RangeSet], id: &str) -> Vec<IpAddr> {
    let mut s = open(data);
    assign(&mut s, sets, &Owner::new(id, "eth0"), &[])
        .unwrap()
        .iter()
        .map(|a| a.ip)
        .collect()
}

/// Reservation files in the network dir: name -> body.
fn reservations(data: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(data.join("data/net"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().parse::<IpAddr>().is_ok())
        .map(|e| (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

#[test]
fn format_is_the_references() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    assert_eq!(add(t.path(), &sets, "ctr-a"), [ip("10.22.0.2")]);
    assert_eq!(add(t.path(), &sets, "ctr-b"), [ip("10.22.0.3")]);
    let dir = t.path().join("data/net");
    assert_eq!(fs::read(dir.join("10.22.0.2")).unwrap(), b"ctr-a\r\neth0");
    assert_eq!(fs::read(dir.join("last_reserved_ip.0")).unwrap(), b"10.22.0.3");
    assert!(dir.join("lock").is_file());
    // Nothing else than the reference's files and our dot directory.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".sandbox-cni",
            "10.22.0.2",
            "10.22.0.3",
            "last_reserved_ip.0",
            "lock"
        ]
    );
}

#[test]
fn repeated_add_returns_the_same_address_and_del_frees_it() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24"), set("fd00:10::/64")];
    let first = add(t.path(), &sets, "ctr-a");
    assert_eq!(first, [ip("10.22.0.2"), ip("fd00:10::2")]);
    assert_eq!(add(t.path(), &sets, "ctr-a"), first);
    assert_eq!(reservations(t.path()).len(), 2);
    let mut s = open(t.path());
    let mut freed = release_attachment(&mut s, "ctr-a", "eth0").unwrap();
    freed.sort();
    assert_eq!(freed, first);
    assert!(release_attachment(&mut s, "ctr-a", "eth0").unwrap().is_empty());
    drop(s);
    assert!(reservations(t.path()).is_empty());
    // Round robin: the freed address is not handed straight back.
    assert_eq!(add(t.path(), &sets, "ctr-b"), [ip("10.22.0.3"), ip("fd00:10::3")]);
}

#[test]
fn files_written_behind_the_index_are_found() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    add(t.path(), &sets, "ctr-a");
    let dir = t.path().join("data/net");
    // Another writer (the reference plugin, or a person) adds and removes reservation files.
    fs::write(dir.join("10.22.0.50"), b"ctr-x\r\neth0").unwrap();
    fs::write(dir.join("10.22.0.51"), b"ctr-old").unwrap();
    fs::remove_file(dir.join("10.22.0.2")).unwrap();
    let mut s = open(t.path());
    assert!(s.report().rebuilt);
    assert_eq!(
        attachment_addresses(&mut s, "ctr-x", "eth0").unwrap(),
        [ip("10.22.0.50")]
    );
    assert_eq!(
        attachment_addresses(&mut s, "ctr-old", "eth1").unwrap(),
        [ip("10.22.0.51")]
    );
    assert!(attachment_addresses(&mut s, "ctr-a", "eth0").unwrap().is_empty());
    assert_eq!(
        release_attachment(&mut s, "ctr-old", "eth1").unwrap(),
        [ip("10.22.0.51")]
    );
    drop(s);
    let s = open(t.path());
    assert!(!s.report().rebuilt, "our own changes keep the index valid");
    drop(s);
    // A cursor rewritten in place (as the reference does on every ADD) also invalidates the index.
    fs::write(dir.join("last_reserved_ip.0"), b"10.22.0.60").unwrap();
    fs::write(dir.join("10.22.0.60"), b"ctr-y\r\neth0").unwrap();
    let mut s = open(t.path());
    assert!(s.report().rebuilt);
    assert_eq!(
        attachment_addresses(&mut s, "ctr-y", "eth0").unwrap(),
        [ip("10.22.0.60")]
    );
}

#[test]
fn a_stale_index_entry_is_never_trusted() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    add(t.path(), &sets, "ctr-a");
    // The file now names someone else, without the directory changing (same name, new body).
    fs::write(t.path().join("data/net/10.22.0.2"), b"ctr-z\r\neth0").unwrap();
    let mut s = open(t.path());
    assert!(release_attachment(&mut s, "ctr-a", "eth0").unwrap().is_empty());
    drop(s);
    assert_eq!(
        fs::read(t.path().join("data/net/10.22.0.2")).unwrap(),
        b"ctr-z\r\neth0"
    );
}

#[test]
fn exhaustion_and_requested_addresses() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("192.168.77.0/30")];
    assert_eq!(add(t.path(), &sets, "t1"), [ip("192.168.77.2")]);
    let mut s = open(t.path());
    let e = assign(&mut s, &sets, &Owner::new("t2", "eth0"), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to allocate for range 0: no IP addresses available in range set: 192.168.77.1-192.168.77.2"
    );
    let e = assign(&mut s, &sets, &Owner::new("t2", "eth0"), &[ip("192.168.77.2")]).unwrap_err();
    assert!(
        matches!(&e, StoreError::Taken { owner: Some(o), .. } if o.id == "t1"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("reserved by container t1 (interface eth0)"),
        "{e}"
    );
    let e = assign(&mut s, &sets, &Owner::new("t2", "eth0"), &[ip("192.168.77.1")]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("requested ip 192.168.77.1 is subnet's gateway"),
        "{e}"
    );
    let e = assign(&mut s, &sets, &Owner::new("t2", "eth0"), &[ip("10.0.0.1")]).unwrap_err();
    assert_eq!(e.to_string(), "failed to allocate all requested IPs: 10.0.0.1");
    assert_eq!(first_free(&mut s, 0, &sets[0]).unwrap(), None);
}

#[test]
fn failure_in_a_later_set_rolls_back_earlier_ones() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.1.0.0/24"), set("fd77::/126")];
    add(t.path(), &sets, "a");
    add(t.path(), &sets, "b");
    let mut s = open(t.path());
    assert!(matches!(
        assign(&mut s, &sets, &Owner::new("c", "eth0"), &[]),
        Err(StoreError::Exhausted { set: 1, .. })
    ));
    drop(s);
    assert_eq!(reservations(t.path()).len(), 4);
}

#[test]
fn lock_timeout_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let held = open(t.path());
    let mut o = opts(t.path());
    o.lock_timeout = Duration::from_millis(200);
    let e = DiskStore::open(&t.path().join("data"), "net", &o).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    drop(held);
    DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
}

#[test]
fn symlinks_and_parent_components_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let elsewhere = t.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, data.join("net")).unwrap();
    let e = DiskStore::open(&data, "net", &opts(t.path())).unwrap_err();
    assert!(matches!(e, StoreError::Unsafe { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written through the link"
    );
    let e = DiskStore::open(&t.path().join("a/../data"), "x", &opts(t.path())).unwrap_err();
    assert!(e.to_string().contains(".."), "{e}");
    // A symlink named like an address is never followed: the address just counts as taken.
    let real = t.path().join("data2");
    let target = t.path().join("target");
    fs::write(&target, b"keep").unwrap();
    {
        let _s = DiskStore::open(&real, "net", &opts(t.path())).unwrap();
    }
    std::os::unix::fs::symlink(&target, real.join("net/10.9.0.2")).unwrap();
    let mut s = DiskStore::open(&real, "net", &opts(t.path())).unwrap();
    let got = assign(&mut s, &[set("10.9.0.0/24")], &Owner::new("c", "eth0"), &[]).unwrap();
    assert_eq!(got[0].ip, ip("10.9.0.3"));
    drop(s);
    assert_eq!(fs::read(&target).unwrap(), b"keep");
    // A symlinked index directory is never listed or cleaned through. In the bucket layout the
    // bucket no longer carries the seal, so the index is rebuilt by a scan and the link discarded.
    let buckets = DiskOptions {
        flat_limit: 0,
        ..opts(t.path())
    };
    let mut s = DiskStore::open(&real, "net", &buckets).unwrap();
    // The flat index holds more entries than `flat_limit`: the first lookup splits it.
    attachment_addresses(&mut s, "d", "eth0").unwrap();
    let entry = s.entry_path(&Owner::new("d", "eth0"), ip("10.9.0.9"));
    drop(s);
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let name = entry.file_name().unwrap().to_owned();
    fs::write(outside.join(&name), b"d\r\neth0").unwrap();
    let sub = entry.parent().unwrap();
    assert_ne!(sub.file_name().unwrap(), "owners", "bucket layout expected");
    let _ = fs::remove_dir_all(sub);
    std::os::unix::fs::symlink(&outside, sub).unwrap();
    let mut s = DiskStore::open(&real, "net", &buckets).unwrap();
    assert_eq!(
        release_attachment(&mut s, "d", "eth0").unwrap(),
        Vec::<IpAddr>::new()
    );
    assert!(s.report().rebuilt, "a replaced bucket triggers a rebuild");
    drop(s);
    assert!(outside.join(&name).exists(), "nothing removed through the link");
    assert!(
        !fs::symlink_metadata(sub).is_ok_and(|m| m.file_type().is_symlink()),
        "the link is gone"
    );
    // In the flat layout the index directory is `owners` itself: a link there is refused, by name.
    let flat = t.path().join("data3");
    drop(DiskStore::open(&flat, "net", &opts(t.path())).unwrap());
    let owners = flat.join("net/.sandbox-cni/owners");
    fs::remove_dir_all(&owners).unwrap();
    std::os::unix::fs::symlink(&outside, &owners).unwrap();
    let e = DiskStore::open(&flat, "net", &opts(t.path())).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(outside.join(&name).exists(), "nothing removed through the link");
}

#[test]
fn a_leftover_index_entry_never_corrupts_a_reservation() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    add(t.path(), &sets, "ctr-a");
    let dir = t.path().join("data/net");
    // The worst leftover: ctr-b's entry for the next candidate is a second name of ctr-a's file.
    let s = open(t.path());
    let entry = s.entry_path(&Owner::new("ctr-b", "eth0"), ip("10.22.0.3"));
    drop(s);
    fs::create_dir_all(entry.parent().unwrap()).unwrap();
    fs::hard_link(dir.join("10.22.0.2"), &entry).unwrap();
    // An entry whose reservation is gone (a call killed before linking it).
    let s = open(t.path());
    let gone = s.entry_path(&Owner::new("ctr-c", "eth0"), ip("10.22.0.9"));
    drop(s);
    fs::create_dir_all(gone.parent().unwrap()).unwrap();
    fs::write(&gone, "ctr-c\r\neth0").unwrap();
    assert_eq!(add(t.path(), &sets, "ctr-b"), [ip("10.22.0.3")]);
    assert_eq!(fs::read(dir.join("10.22.0.2")).unwrap(), b"ctr-a\r\neth0");
    assert_eq!(fs::read(dir.join("10.22.0.3")).unwrap(), b"ctr-b\r\neth0");
    let mut s = open(t.path());
    assert!(attachment_addresses(&mut s, "ctr-c", "eth0").unwrap().is_empty());
    assert!(release_attachment(&mut s, "ctr-c", "eth0").unwrap().is_empty());
    drop(s);
    assert!(!gone.exists(), "stale entries are dropped");
}

#[test]
fn gc_keeps_only_valid_attachments() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    for id in ["a", "b", "c"] {
        add(t.path(), &sets, id);
    }
    fs::write(t.path().join("data/net/10.22.0.99"), b"").unwrap();
    let mut s = open(t.path());
    let gone = s.retain(|o| o.id == "b").unwrap();
    let gone: Vec<_> = gone.iter().map(|(ip, _)| ip.to_string()).collect();
    assert_eq!(gone, ["10.22.0.2", "10.22.0.4", "10.22.0.99"]);
    assert_eq!(
        attachment_addresses(&mut s, "b", "eth0").unwrap(),
        [ip("10.22.0.3")]
    );
    drop(s);
    assert_eq!(reservations(t.path()).len(), 1);
}

#[test]
fn reservations_of_an_earlier_boot_are_reclaimed_only_when_asked() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    add(t.path(), &sets, "a");
    fs::write(t.path().join("boot_id"), "boot-2\n").unwrap();
    // Not asked: the new boot is recorded, nothing is freed.
    add(t.path(), &sets, "b");
    assert_eq!(reservations(t.path()).len(), 2);
    fs::write(t.path().join("boot_id"), "boot-3\n").unwrap();
    let mut o = opts(t.path());
    o.reclaim_after_reboot = true;
    let s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    let mut got = s.report().reclaimed.clone();
    got.sort();
    assert_eq!(got, [ip("10.22.0.2"), ip("10.22.0.3")]);
    drop(s);
    assert!(reservations(t.path()).is_empty());
    // Same boot again: nothing more happens.
    add(t.path(), &sets, "c");
    let s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    assert!(s.report().reclaimed.is_empty());
    drop(s);
    assert_eq!(reservations(t.path()).len(), 1);
}

#[test]
fn requested_address_is_reserved_and_moves_the_cursor() {
    let t = tempfile::tempdir().unwrap();
    let sets = [set("10.22.0.0/24")];
    let mut s = open(t.path());
    let got = assign(&mut s, &sets, &Owner::new("a", "eth0"), &[ip("10.22.0.50")]).unwrap();
    assert_eq!(got[0].ip, ip("10.22.0.50"));
    assert_eq!(s.last_reserved(0).unwrap(), Some(ip("10.22.0.50")));
    // Asking again for a different address while holding one is refused.
    let e = assign(&mut s, &sets, &Owner::new("a", "eth0"), &[ip("10.22.0.51")]).unwrap_err();
    assert!(matches!(e, StoreError::HoldsOther { .. }), "{e}");
    drop(s);
    assert_eq!(add(t.path(), &sets, "b"), [ip("10.22.0.51")]);
}
