//! Read-only inspection of a store, the owner-index reader and the operator's `release_address`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::common::{ip, opts, set};
use ipam_store::disk::read_index_entries;
use ipam_store::inspect::{Damage, inspect};
use ipam_store::{DiskStore, Owner, assign};

fn filled(t: &Path) -> DiskStore {
    let sets = vec![set("10.7.0.0/24")];
    let mut s = DiskStore::open(&t.join("data"), "net", &opts(t)).unwrap();
    for id in ["a", "b"] {
        assign(&mut s, &sets, &Owner::new(id, "eth0"), &[]).unwrap();
    }
    s
}

#[test]
fn the_index_reader_names_every_entry() {
    let t = tempfile::tempdir().unwrap();
    drop(filled(t.path()));
    let dir = t.path().join("data/net");
    assert_eq!(
        read_index_entries(&dir).unwrap(),
        vec![
            (ip("10.7.0.2"), Owner::new("a", "eth0")),
            (ip("10.7.0.3"), Owner::new("b", "eth0"))
        ]
    );
    // A store without our index (the reference plugin's) has no entries.
    fs::remove_dir_all(dir.join(".sandbox-cni")).unwrap();
    assert!(read_index_entries(&dir).unwrap().is_empty());
    let found = inspect(&dir, Duration::from_secs(1)).unwrap();
    assert!(!found.has_index);
    assert!(found.damage.is_empty(), "{:?}", found.damage);
    assert_eq!(found.reservations.len(), 2);
}

#[test]
fn inspection_finds_damage_and_never_writes() {
    let t = tempfile::tempdir().unwrap();
    drop(filled(t.path()));
    let dir = t.path().join("data/net");
    fs::write(dir.join("10.7.0.9"), b"").unwrap();
    fs::create_dir(dir.join("10.7.0.10")).unwrap();
    fs::write(dir.join("stray"), b"x").unwrap();
    fs::write(dir.join("last_reserved_ip.1"), b"garbage").unwrap();
    // An index entry whose reservation was removed behind the index's back.
    fs::remove_file(dir.join("10.7.0.3")).unwrap();
    let before: Vec<_> = walk(&dir);
    let found = inspect(&dir, Duration::from_secs(1)).unwrap();
    assert!(found.locked);
    assert_eq!(walk(&dir), before, "inspection changed the store");
    for d in [
        Damage::NoHolder { ip: ip("10.7.0.9") },
        Damage::NotAFile {
            ip: ip("10.7.0.10"),
            what: "directory",
        },
        Damage::Foreign { name: "stray".into() },
        Damage::BadCursor {
            name: "last_reserved_ip.1".into(),
        },
        Damage::StaleIndexEntry {
            ip: ip("10.7.0.3"),
            owner: Owner::new("b", "eth0"),
        },
    ] {
        assert!(found.damage.contains(&d), "{d:?} not in {:?}", found.damage);
    }
    assert_eq!(found.cursors, vec![(0, ip("10.7.0.3"))]);
    let owners: Vec<_> = found
        .reservations
        .iter()
        .map(|r| (r.ip, r.owner.clone()))
        .collect();
    assert_eq!(
        owners,
        vec![
            (ip("10.7.0.2"), Some(Owner::new("a", "eth0"))),
            (ip("10.7.0.9"), None),
            (ip("10.7.0.10"), None)
        ]
    );
    assert!(found.reservations[0].age.unwrap() < Duration::from_secs(600));
}

#[test]
fn release_address_frees_whoever_holds_it() {
    let t = tempfile::tempdir().unwrap();
    let mut s = filled(t.path());
    let dir = t.path().join("data/net");
    fs::write(dir.join("10.7.0.9"), b"").unwrap();
    assert_eq!(
        s.release_address(ip("10.7.0.2")).unwrap(),
        Some(Some(Owner::new("a", "eth0")))
    );
    assert_eq!(s.release_address(ip("10.7.0.9")).unwrap(), Some(None));
    assert_eq!(s.release_address(ip("10.7.0.50")).unwrap(), None);
    drop(s);
    assert!(!dir.join("10.7.0.2").exists() && !dir.join("10.7.0.9").exists());
    // The index follows: only b's entry is left, and a consistent store has no damage.
    assert_eq!(
        read_index_entries(&dir).unwrap(),
        vec![(ip("10.7.0.3"), Owner::new("b", "eth0"))]
    );
    assert!(inspect(&dir, Duration::from_secs(1)).unwrap().damage.is_empty());
}

/// Issue 22: `ipam gc` opened the store (exclusive lock), then inspected it with a shared lock that
/// could never be had, and reported `locked: false`. The holder of the lock inspects through the
/// store it holds: `locked` is true, the picture is the same, and nothing waits.
#[test]
fn the_holder_of_the_lock_inspects_through_its_store() {
    let t = tempfile::tempdir().unwrap();
    let s = filled(t.path());
    let dir = t.path().join("data/net");
    fs::write(dir.join("10.7.0.9"), b"").unwrap();
    let started = std::time::Instant::now();
    let held = s.inspect().unwrap();
    assert!(held.locked, "the caller holds the lock");
    // From outside, the shared lock cannot be had while the store is open.
    let outside = inspect(&dir, Duration::ZERO).unwrap();
    assert!(!outside.locked);
    assert!(started.elapsed() < Duration::from_secs(5));
    let holders = |f: &ipam_store::inspect::Inspection| -> Vec<_> {
        f.reservations.iter().map(|r| (r.ip, r.owner.clone())).collect()
    };
    assert_eq!(holders(&held), holders(&outside));
    assert!(held.damage.contains(&Damage::NoHolder { ip: ip("10.7.0.9") }));
    assert!(held.has_index);
    drop(s);
    assert!(inspect(&dir, Duration::from_secs(1)).unwrap().locked);
}

fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.push((p.display().to_string(), Vec::new()));
            out.extend(walk(&p));
        } else {
            out.push((p.display().to_string(), fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}
