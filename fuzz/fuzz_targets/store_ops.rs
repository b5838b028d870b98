//! The host-local disk store under arbitrary operation sequences and arbitrary file contents.
//!
//! Phase 1 runs the same operations against `DiskStore` (reopened for every operation, as separate
//! plugin calls do) and the in-memory `MemStore`, and requires the same answers. Phase 2 overwrites,
//! deletes or plants files of the store (reservation files, cursors, the index and its state) with
//! fuzzed bytes, and phase 3 keeps operating on the disk store: every call must return (no panic, no
//! hang) and whatever it reports must be true on disk; nothing may appear outside the network directory.
#![no_main]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use ipam_store::alloc::attachment_addresses;
use ipam_store::{
    DiskOptions, DiskStore, MemStore, Owner, Range, RangeSet, Reservations, StoreError, assign,
    release_attachment,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    Assign { owner: u8, requested: Option<u8> },
    Release { owner: u8 },
    Held { owner: u8 },
    Gc { keep: u8 },
}

#[derive(Debug, Arbitrary)]
enum Damage {
    /// Overwrite (or create) the n-th known path with these bytes.
    Write {
        file: u8,
        bytes: Vec<u8>,
    },
    Remove {
        file: u8,
    },
    /// Replace it with a symlink to a file outside the store.
    Symlink {
        file: u8,
    },
    /// Replace it with a directory.
    Dir {
        file: u8,
    },
    /// Replace it with a named pipe (opening one for reading blocks until a writer appears).
    Fifo {
        file: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    before: Vec<Op>,
    damage: Vec<Damage>,
    after: Vec<Op>,
}

const OWNERS: [(&str, &str); 4] = [
    ("ctr-0", "eth0"),
    ("ctr-1", "eth0"),
    ("ctr-1", "eth1"),
    ("ctr-2", "net1"),
];

fn owner(k: u8) -> Owner {
    let (id, ifname) = OWNERS[usize::from(k) % OWNERS.len()];
    Owner::new(id, ifname)
}

fn sets() -> Vec<RangeSet> {
    let v4 = Range::new(
        "10.9.0.0/29".parse().unwrap(),
        Some("10.9.0.4".parse().unwrap()),
        None,
        None,
    );
    let v6 = Range::new(
        "fd09::/125".parse().unwrap(),
        None,
        Some("fd09::4".parse().unwrap()),
        None,
    );
    vec![
        RangeSet::new(vec![v4.unwrap()]).unwrap(),
        RangeSet::new(vec![v6.unwrap()]).unwrap(),
    ]
}

fn requested(k: u8) -> IpAddr {
    if k.is_multiple_of(2) {
        format!("10.9.0.{}", (k / 2) % 8).parse().unwrap()
    } else {
        format!("fd09::{}", (k / 2) % 8).parse().unwrap()
    }
}

/// A comparable summary of an operation's answer.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Ips(Vec<IpAddr>),
    Err(&'static str),
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Io { .. } => "io",
        StoreError::Unsafe { .. } => "unsafe",
        StoreError::Locked { .. } => "locked",
        StoreError::Exhausted { .. } => "exhausted",
        StoreError::Taken { .. } => "taken",
        StoreError::NotAllocatable { .. } => "not allocatable",
        StoreError::Unmatched(_) => "unmatched",
        StoreError::HoldsOther { .. } => "holds other",
    }
}

fn apply<S: Reservations>(
    store: &mut S,
    op: &Op,
    gc: impl FnOnce(&mut S, u8) -> Result<Vec<IpAddr>, StoreError>,
) -> Answer {
    let r = match op {
        Op::Assign {
            owner: o,
            requested: req,
        } => {
            let req: Vec<IpAddr> = req.iter().map(|k| requested(*k)).collect();
            assign(store, &sets(), &owner(*o), &req).map(|a| a.iter().map(|a| a.ip).collect())
        }
        Op::Release { owner: o } => {
            let w = owner(*o);
            release_attachment(store, &w.id, w.ifname.as_deref().unwrap_or_default())
        }
        Op::Held { owner: o } => {
            let w = owner(*o);
            attachment_addresses(store, &w.id, w.ifname.as_deref().unwrap_or_default())
        }
        Op::Gc { keep } => gc(store, *keep),
    };
    match r {
        Ok(mut ips) => {
            ips.sort();
            Answer::Ips(ips)
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Answer::Err(kind(&e))
        }
    }
}

fn kept(keep: u8, o: &Owner) -> bool {
    (0..OWNERS.len()).any(|k| keep & (1 << k) != 0 && owner(k as u8) == *o)
}

fn mem_gc(m: &mut MemStore, keep: u8) -> Result<Vec<IpAddr>, StoreError> {
    let gone: Vec<IpAddr> = m
        .reserved
        .iter()
        .filter(|(_, o)| o.as_ref().is_none_or(|o| !kept(keep, o)))
        .map(|(ip, _)| *ip)
        .collect();
    for ip in &gone {
        m.reserved.remove(ip);
    }
    Ok(gone)
}

fn disk_gc(d: &mut DiskStore, keep: u8) -> Result<Vec<IpAddr>, StoreError> {
    d.retain(|o| kept(keep, o))
        .map(|g| g.into_iter().map(|(ip, _)| ip).collect())
}

struct Scratch {
    data: PathBuf,
    opts: DiskOptions,
}

impl Scratch {
    fn new() -> Scratch {
        let root = std::env::temp_dir().join(format!("sbx-fuzz-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let boot = root.join("boot_id");
        std::fs::write(&boot, "11111111-2222-3333-4444-555555555555\n").unwrap();
        std::fs::write(root.join("outside"), "ctr-0\r\neth0").unwrap();
        let opts = DiskOptions {
            lock_timeout: std::time::Duration::from_secs(5),
            reclaim_after_reboot: false,
            boot_id_path: boot,
            // Small, so that a run crosses from the flat index to the bucket layout.
            flat_limit: 4,
        };
        Scratch {
            data: root.join("data"),
            opts,
        }
    }

    fn net(&self) -> PathBuf {
        self.data.join("net")
    }

    fn open(&self) -> Result<DiskStore, StoreError> {
        DiskStore::open(&self.data, "net", &self.opts)
    }

    /// Every path under the network directory, plus names the store would use.
    fn known_paths(&self) -> Vec<PathBuf> {
        let net = self.net();
        let mut set = BTreeSet::new();
        walk(&net, &mut set);
        for name in [
            "10.9.0.4",
            "10.9.0.5",
            "fd09::2",
            "last_reserved_ip.0",
            "last_reserved_ip.1",
            "lock",
        ] {
            set.insert(net.join(name));
        }
        for name in ["state", "boot_id", "owners", "tmp-reserve"] {
            set.insert(net.join(".sandbox-cni").join(name));
        }
        set.into_iter().collect()
    }
}

fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
        out.insert(p);
    }
}

fn damage(s: &Scratch, d: &Damage) {
    let paths = s.known_paths();
    let pick = |f: u8| paths[usize::from(f) % paths.len()].clone();
    let clear = |p: &Path| {
        let _ = std::fs::remove_dir_all(p);
        let _ = std::fs::remove_file(p);
    };
    match d {
        Damage::Write { file, bytes } => {
            let p = pick(*file);
            // Never write through a symlink or into a pipe planted earlier: replace those.
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => return,
                Ok(m) if !m.is_file() => {
                    let _ = std::fs::remove_file(&p);
                }
                _ => {}
            }
            let _ = std::fs::write(&p, bytes);
        }
        Damage::Remove { file } => clear(&pick(*file)),
        Damage::Symlink { file } => {
            let p = pick(*file);
            clear(&p);
            let _ = std::os::unix::fs::symlink(s.data.parent().unwrap().join("outside"), &p);
        }
        Damage::Dir { file } => {
            let p = pick(*file);
            clear(&p);
            let _ = std::fs::create_dir(&p);
        }
        Damage::Fifo { file } => {
            let p = pick(*file);
            clear(&p);
            let _ = std::process::Command::new("mkfifo").arg(&p).status();
        }
    }
}

/// On-disk truth: who holds what, read directly.
fn holders(s: &Scratch) -> Vec<(IpAddr, Option<Owner>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(s.net()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(ip) = name.parse::<IpAddr>() else { continue };
        let body = if e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::read(e.path()).ok()
        } else {
            None
        };
        out.push((ip, body.and_then(|b| Owner::parse_body(&b))));
    }
    out
}

fuzz_target!(|input: Input| {
    if input.before.len() + input.after.len() > 24 || input.damage.len() > 8 {
        return;
    }
    let s = Scratch::new();
    let mut mem = MemStore::default();
    for op in &input.before {
        let want = apply(&mut mem, op, mem_gc);
        let got = match s.open() {
            Ok(mut d) => apply(&mut d, op, disk_gc),
            Err(e) => panic!("opening an undamaged store failed: {e}"),
        };
        assert_eq!(got, want, "disk store and in-memory model disagree on {op:?}");
    }
    for d in &input.damage {
        damage(&s, d);
    }
    for op in &input.after {
        let Ok(mut d) = s.open() else { continue };
        let answer = apply(&mut d, op, disk_gc);
        drop(d);
        if let (Op::Assign { owner: o, .. }, Answer::Ips(ips)) = (op, &answer) {
            let truth = holders(&s);
            for ip in ips {
                assert!(
                    truth
                        .iter()
                        .any(|(i, h)| i == ip && h.as_ref() == Some(&owner(*o))),
                    "ADD reported {ip} for {:?} but the reservation file says otherwise: {truth:?}",
                    owner(*o)
                );
            }
        }
        if let (Op::Release { owner: o }, Answer::Ips(_)) = (op, &answer) {
            let truth = holders(&s);
            assert!(
                !truth.iter().any(|(_, h)| h.as_ref() == Some(&owner(*o))),
                "DEL succeeded but {:?} still holds a reservation: {truth:?}",
                owner(*o)
            );
        }
    }
    // Nothing outside the network directory: the scratch root holds exactly what we put there.
    let root = s.data.parent().unwrap();
    let mut top: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    top.retain(|n| n != "data");
    assert_eq!(
        top,
        ["boot_id", "outside"],
        "the store wrote outside its directory"
    );
    assert_eq!(
        std::fs::read(root.join("outside")).unwrap(),
        b"ctr-0\r\neth0",
        "a file outside the store changed"
    );
    let _ = std::fs::remove_dir_all(root);
});
