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
