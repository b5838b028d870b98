//! The `.sandbox-cni` layout: what an ADD changes on disk, the flat and bucket index, the seal that
//! detects other writers, the migration of a store written by the previous layout, and
//! `read_index_entries`.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::common::{ip, opts_flat as opts, set};
use ipam_store::alloc::attachment_addresses;
use ipam_store::disk::read_index_entries;
use ipam_store::{DiskOptions, DiskStore, Owner, assign, release_attachment};

fn add(t: &Path, o: &DiskOptions, id: &str) -> IpAddr {
    let mut s = DiskStore::open(&t.join("data"), "net", o).unwrap();
    assign(&mut s, &[set("10.22.0.0/24")], &Owner::new(id, "eth0"), &[]).unwrap()[0].ip
}

/// Every path under `root` with its inode, kind, modification time and (for files) content.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    ino: u64,
    dir: bool,
    mtime: (i64, i64),
    content: Vec<u8>,
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                todo.push(p.clone());
            }
            let content = if md.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            out.insert(
                p,
                Node {
                    ino: md.ino(),
                    dir: md.is_dir(),
                    mtime: (md.mtime(), md.mtime_nsec()),
                    content,
                },
            );
        }
    }
    out
}

/// The FNV-1a hash the index names entries by (id, NUL, ifname), as in every layout so far.
fn fnv(id: &str, ifname: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id.as_bytes().iter().chain(&[0u8]).chain(ifname.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn an_add_into_an_existing_store_creates_one_inode_and_rewrites_only_the_cursor_and_state() {
    for flat_limit in [256, 0] {
        let t = tempfile::tempdir().unwrap();
        let o = opts(t.path(), flat_limit);
        for id in ["a", "b", "c", "d"] {
            add(t.path(), &o, id);
        }
        let net = t.path().join("data/net");
        let before = snapshot(&net);
        let got = add(t.path(), &o, "e");
        let after = snapshot(&net);
        let what = format!("flat_limit {flat_limit}");
        // New paths: the reservation and its index entry, two names of one new inode.
        let new: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        assert_eq!(new.len(), 2, "{what}: {new:?}");
        assert!(
            new.iter().all(|p| !after[*p].dir),
            "{what}: no directory is created"
        );
        assert_eq!(after[new[0]].ino, after[new[1]].ino, "{what}: one new inode");
        assert!(new.contains(&&net.join(got.to_string())), "{what}");
        assert!(
            before.keys().all(|p| after.contains_key(p)),
            "{what}: nothing removed"
        );
        // Changed files: the cursor, and `state` with the change times the seal left, rewritten
        // in place at the same length (boot_id and every reservation untouched).
        let changed: Vec<_> = before
            .iter()
            .filter(|(p, n)| !n.dir && after[*p].content != n.content)
            .map(|(p, _)| p.clone())
            .collect();
        let state = net.join(".sandbox-cni/state");
        assert_eq!(changed, [state.clone(), net.join("last_reserved_ip.0")], "{what}");
        assert_eq!(after[&state].ino, before[&state].ino, "{what}");
        assert_eq!(
            after[&state].content.len(),
            before[&state].content.len(),
            "{what}"
        );
        // Every directory keeps (or got back) its modification time: the seal.
        for (p, n) in before.iter().filter(|(_, n)| n.dir) {
            assert_eq!(
                after[p].mtime,
                n.mtime,
                "{what}: {} not sealed again",
                p.display()
            );
        }
        let s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
        assert!(!s.report().rebuilt, "{what}: our own ADD keeps the index valid");
    }
}

#[test]
fn the_flat_index_is_split_into_buckets_when_it_grows() {
    let t = tempfile::tempdir().unwrap();
    let o = opts(t.path(), 3);
    let owners = t.path().join("data/net/.sandbox-cni/owners");
    let ids = ["a", "b", "c", "d", "e"];
    let mut got = Vec::new();
    for id in ids {
        got.push(add(t.path(), &o, id));
    }
    // All 256 buckets exist: no later ADD creates a directory.
    let buckets: Vec<_> = fs::read_dir(&owners).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(buckets.len(), 256);
    assert!(buckets.iter().all(|e| e.file_type().unwrap().is_dir()));
    let mut s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    assert!(!s.report().rebuilt);
    for (id, want) in ids.iter().zip(&got) {
        assert_eq!(attachment_addresses(&mut s, id, "eth0").unwrap(), [*want]);
    }
    assert_eq!(release_attachment(&mut s, "c", "eth0").unwrap(), [got[2]]);
    drop(s);
    let listed = read_index_entries(&t.path().join("data/net")).unwrap();
    assert_eq!(listed.len(), 4);
    // Another writer removes an index entry in a bucket (the reference's DEL walks into
    // subdirectories): that bucket loses its seal, and the next lookup rebuilds.
    let victim = owners
        .join(format!("{:02x}", fnv("a", "eth0") >> 56))
        .join(format!("{:016x}.{}", fnv("a", "eth0"), got[0]));
    fs::remove_file(&victim).unwrap();
    let mut s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    assert!(!s.report().rebuilt, "the network directory itself is unchanged");
    assert_eq!(attachment_addresses(&mut s, "a", "eth0").unwrap(), [got[0]]);
    assert!(s.report().rebuilt, "a changed bucket is not trusted");
    drop(s);
    assert!(victim.exists(), "the rebuild restored the entry");
}

/// Writes a store the way the previous layout (index v2) left it: reservations, a cursor, the lock,
/// `.sandbox-cni/{state,boot_id}` and `owners/HH/H.ADDR` hard links, buckets made as needed.
fn write_v2_store(net: &Path, reservations: &[(&str, &str, &str)], boot: &str) {
    let meta = net.join(".sandbox-cni");
    fs::create_dir_all(meta.join("owners")).unwrap();
    fs::write(net.join("lock"), b"").unwrap();
    for (addr, id, ifname) in reservations {
        fs::write(net.join(addr), format!("{id}\r\n{ifname}")).unwrap();
        let h = fnv(id, ifname);
        let bucket = meta.join("owners").join(format!("{:02x}", h >> 56));
        fs::create_dir_all(&bucket).unwrap();
        fs::hard_link(net.join(addr), bucket.join(format!("{h:016x}.{addr}"))).unwrap();
    }
    let last = reservations.last().unwrap().0;
    fs::write(net.join("last_reserved_ip.0"), last).unwrap();
    let md = fs::symlink_metadata(net).unwrap();
    fs::write(
        meta.join("state"),
        format!(
            "sandbox-cni host-local index v2\ndir {} {} {}.{:09} {}.{:09}\ncursor 0 {last}\nend\n",
            md.dev(),
            md.ino(),
            md.mtime(),
            md.mtime_nsec(),
            md.ctime(),
            md.ctime_nsec()
        ),
    )
    .unwrap();
    fs::write(meta.join("boot_id"), format!("boot_id {boot}\n")).unwrap();
}

#[test]
fn a_store_of_the_previous_layout_is_migrated_on_first_use() {
    let held = [
        ("10.22.0.2", "a", "eth0"),
        ("10.22.0.3", "b", "eth0"),
        ("10.22.0.4", "c", "net1"),
    ];
    for flat_limit in [256, 2] {
        let t = tempfile::tempdir().unwrap();
        let o = opts(t.path(), flat_limit);
        let net = t.path().join("data/net");
        write_v2_store(&net, &held, "boot-1");
        let bodies: Vec<_> = held
            .iter()
            .map(|(a, ..)| fs::read(net.join(a)).unwrap())
            .collect();
        let what = format!("flat_limit {flat_limit}");
        // The old layout is readable before the migration too.
        assert_eq!(read_index_entries(&net).unwrap().len(), 3, "{what}");
        let mut s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
        assert!(s.report().rebuilt, "{what}: migrated by a rebuild under the lock");
        assert!(s.report().reclaimed.is_empty());
        for (addr, id, ifname) in held {
            assert_eq!(
                attachment_addresses(&mut s, id, ifname).unwrap(),
                [ip(addr)],
                "{what}"
            );
        }
        drop(s);
        let state = fs::read_to_string(net.join(".sandbox-cni/state")).unwrap();
        assert!(
            state.starts_with("sandbox-cni host-local index v4\n"),
            "{what}: {state}"
        );
        // Reservations and cursor are the reference's format: untouched.
        for ((addr, ..), body) in held.iter().zip(&bodies) {
            assert_eq!(&fs::read(net.join(addr)).unwrap(), body, "{what}");
        }
        assert_eq!(
            fs::read_to_string(net.join("last_reserved_ip.0")).unwrap(),
            "10.22.0.4"
        );
        // The new index: flat below the limit, else all 256 buckets; every entry a second name.
        let owners = net.join(".sandbox-cni/owners");
        let names: Vec<_> = fs::read_dir(&owners).unwrap().map(|e| e.unwrap()).collect();
        if flat_limit > 3 {
            assert_eq!(names.len(), 3, "{what}");
            for (addr, id, ifname) in held {
                let entry = owners.join(format!("{:016x}.{addr}", fnv(id, ifname)));
                assert_eq!(
                    fs::metadata(&entry).unwrap().ino(),
                    fs::metadata(net.join(addr)).unwrap().ino(),
                    "{what}"
                );
            }
        } else {
            assert_eq!(names.len(), 256, "{what}");
        }
        let entries = read_index_entries(&net).unwrap();
        let want: Vec<_> = held.iter().map(|(a, i, f)| (ip(a), Owner::new(*i, *f))).collect();
        assert_eq!(entries, want, "{what}");
        // Migrated once: the next call trusts the new index, and DEL works.
        let mut s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
        assert!(!s.report().rebuilt, "{what}");
        assert_eq!(
            release_attachment(&mut s, "b", "eth0").unwrap(),
            [ip("10.22.0.3")]
        );
        drop(s);
        assert!(!net.join("10.22.0.3").exists());
    }
    // The boot recorded by the old layout still counts: reservations of an earlier boot are
    // reclaimed on the first use after the upgrade when asked.
    let t = tempfile::tempdir().unwrap();
    let net = t.path().join("data/net");
    write_v2_store(&net, &held, "boot-0");
    let o = DiskOptions {
        reclaim_after_reboot: true,
        ..opts(t.path(), 256)
    };
    let s = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    assert_eq!(s.report().reclaimed.len(), 3);
    drop(s);
    assert!(read_index_entries(&net).unwrap().is_empty());
}

#[test]
fn read_index_entries_lists_without_locking_or_writing() {
    let t = tempfile::tempdir().unwrap();
    let net = t.path().join("data/net");
    // No store, and a store only the reference has used: no index of ours.
    assert!(read_index_entries(&net).unwrap().is_empty());
    fs::create_dir_all(&net).unwrap();
    fs::write(net.join("10.22.0.9"), b"ref\r\neth0").unwrap();
    fs::write(net.join("last_reserved_ip.0"), b"10.22.0.9").unwrap();
    assert!(read_index_entries(&net).unwrap().is_empty());
    fs::remove_dir_all(t.path().join("data")).unwrap();
    let o = opts(t.path(), 256);
    let a = add(t.path(), &o, "a");
    let b = add(t.path(), &o, "b");
    // A leftover that names no owner it was made for is not listed.
    fs::write(
        net.join(".sandbox-cni/owners/0000000000000000.10.22.0.77"),
        b"x\r\neth0",
    )
    .unwrap();
    let before = snapshot(&net);
    // While a call holds the lock.
    let held = DiskStore::open(&t.path().join("data"), "net", &o).unwrap();
    let listed = read_index_entries(&net).unwrap();
    drop(held);
    assert_eq!(
        listed,
        [(a, Owner::new("a", "eth0")), (b, Owner::new("b", "eth0"))]
    );
    // Symlinks are refused, not followed.
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let owners = net.join(".sandbox-cni/owners");
    let moved = t.path().join("owners-moved");
    fs::rename(&owners, &moved).unwrap();
    std::os::unix::fs::symlink(&outside, &owners).unwrap();
    let e = read_index_entries(&net).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    fs::remove_file(&owners).unwrap();
    fs::rename(&moved, &owners).unwrap();
    let mut after = snapshot(&net);
    // The store's open above may have removed the leftover and rebuilt (writing `state`); the
    // listing itself wrote nothing.
    after.retain(|p, _| before.contains_key(p) && !p.ends_with(".sandbox-cni/state"));
    let mut before = before;
    before.retain(|p, _| after.contains_key(p));
    assert_eq!(before.len(), after.len());
    for (p, n) in &before {
        assert_eq!(&after[p].content, &n.content, "{}", p.display());
    }
}
