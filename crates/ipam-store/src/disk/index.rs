//! The owner index: entry names (the FNV-1a hash of the owner and the address), where an owner's
//! entries live in each layout, the read-only listing, and the rebuild by one full scan.

use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::fs::{
    apply_seal, ensure_dir, is_not_found, is_sealed, link_or_copy, make_dir, open_dir, read_body, real_dir,
    remove_if_exists, remove_tree_if_exists, seal_path,
};
use super::layout::{META, OWNERS, OWNERS_NEW, OWNERS_OLD, STATE, reservation_name};
use super::{DiskStore, Layout};
use crate::error::{StoreError, StoreResult};
use crate::owner::Owner;

/// The FNV-1a (64 bit) hash of an owner: id, NUL, ifname (0xff for a legacy owner).
pub(super) fn owner_hash(o: &Owner) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tail: &[u8] = o.ifname.as_deref().map_or(&[0xff], str::as_bytes);
    for &b in o.id.as_bytes().iter().chain(&[0u8]).chain(tail) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The name of an index entry: `<16 hex digits of the owner's hash>.<address>`.
pub(super) fn entry_name(o: &Owner, ip: IpAddr) -> String {
    format!("{:016x}.{ip}", owner_hash(o))
}

/// The index directory holding an owner's entries under `owners`.
pub(super) fn index_dir_of(owners: &Path, layout: Layout, o: &Owner) -> PathBuf {
    match layout {
        Layout::Flat => owners.to_owned(),
        Layout::Buckets => owners.join(format!("{:02x}", owner_hash(o) >> 56)),
    }
}

/// An index entry name `<16 hex digits>.<address>`: (hash, address).
pub(super) fn parse_entry_name(name: &str) -> Option<(u64, IpAddr)> {
    let (h, ip) = name.split_at_checked(16)?;
    let ip = ip.strip_prefix('.')?;
    Some((u64::from_str_radix(h, 16).ok()?, reservation_name(ip)?))
}

/// Every owner-index entry of the store in `network_dir`: the address each names and the owner its
/// body names, sorted. Read-only: takes no lock and writes nothing, so it may run beside a plugin
/// call and see an index being changed. Entries are what the index says, not verified against the
/// reservation files (the files are the truth: compare with them where it matters). Entries whose
/// body does not name the owner their name was made for are left out. Empty when the store has no
/// index of ours (a store only the reference plugin has used); reads both the flat and the bucket
/// layout, so also stores written before the flat layout existed.
pub fn read_index_entries(network_dir: &Path) -> StoreResult<Vec<(IpAddr, Owner)>> {
    let owners = network_dir.join(META).join(OWNERS);
    match fs::symlink_metadata(&owners) {
        Err(e) if is_not_found(&e) || e.kind() == ErrorKind::NotADirectory => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("cannot inspect", &owners)(e)),
        Ok(md) => real_dir(&owners, &md)?,
    }
    let mut out = Vec::new();
    let mut dirs = vec![owners.clone()];
    while let Some(d) = dirs.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if is_not_found(&e) => continue,
            Err(e) => return Err(StoreError::io("cannot list", &d)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io("cannot list", &d))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(kind) = entry.file_type() else { continue };
            // Buckets are two hex digits, one level deep; symlinks are never followed.
            if kind.is_dir() && d == owners && name.len() == 2 && u8::from_str_radix(name, 16).is_ok() {
                dirs.push(entry.path());
                continue;
            }
            let Some((hash, ip)) = parse_entry_name(name).filter(|_| kind.is_file()) else {
                continue;
            };
            if let Some(owner) = read_body(&entry.path())?.filter(|o| owner_hash(o) == hash) {
                out.push((ip, owner));
            }
        }
    }
    crate::order::sort_by_dyn(&mut out, &|a, b| a.cmp(b));
    Ok(out)
}

impl DiskStore {
    /// The index directory of `o`, checked: found as this plugin sealed it (otherwise someone
    /// removed or added entries, and the index is rebuilt first).
    pub(super) fn index_dir(&mut self, o: &Owner) -> StoreResult<PathBuf> {
        let d = index_dir_of(&self.owners(), self.layout, o);
        // The flat index is `owners/` itself, checked at open; a rebuilt index is fresh.
        if self.layout == Layout::Flat || self.report.rebuilt || self.checked.contains(&d) {
            return Ok(d);
        }
        match fs::symlink_metadata(&d) {
            Ok(md) if md.is_dir() && is_sealed(&md, self.seal) => {
                self.checked.push(d.clone());
                return Ok(d);
            }
            // Missing (all buckets exist in this layout), replaced, or changed by someone else.
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(StoreError::io("cannot inspect", &d)(e)),
        }
        self.rebuild(&mut |_, _| false)?;
        Ok(index_dir_of(&self.owners(), self.layout, o))
    }

    /// Notes that this operation changed the index directory `d`: it is sealed again at the end.
    pub(super) fn touch(&mut self, d: &Path) {
        if !self.touched.iter().any(|t| t == d) {
            self.touched.push(d.to_owned());
        }
    }

    /// Scans every reservation; those for which `drop_it(ip, owner)` is true are removed, the others
    /// make up the new index (flat below `flat_limit` reservations, else in 256 buckets, all created
    /// here so that no ADD ever creates a directory). Then seals every directory and records the
    /// seal. Returns the removed addresses.
    pub(super) fn rebuild(
        &mut self,
        drop_it: &mut dyn FnMut(IpAddr, Option<&Owner>) -> bool,
    ) -> StoreResult<Vec<IpAddr>> {
        // Until the new state is written, no kill can leave a state that validates a half-built index.
        let state_path = self.meta_path(STATE);
        self.state
            .set_len(0)
            .map_err(StoreError::io("cannot write", &state_path))?;
        let owners = self.owners();
        let fresh = self.meta.join(OWNERS_NEW);
        let old = self.meta.join(OWNERS_OLD);
        remove_tree_if_exists(&fresh)?;
        remove_tree_if_exists(&old)?;
        let list = || fs::read_dir(&self.dir).map_err(StoreError::io("cannot list", &self.dir));
        let mut count = 0;
        for entry in list()? {
            let entry = entry.map_err(StoreError::io("cannot list", &self.dir))?;
            if entry.file_name().to_str().and_then(reservation_name).is_some() {
                count += 1;
            }
        }
        let layout = if count >= self.flat_limit {
            Layout::Buckets
        } else {
            Layout::Flat
        };
        ensure_dir(&fresh)?;
        if layout == Layout::Buckets {
            for b in 0..=255u8 {
                make_dir(&fresh.join(format!("{b:02x}")))?;
            }
        }
        let mut removed = Vec::new();
        for entry in list()? {
            let entry = entry.map_err(StoreError::io("cannot list", &self.dir))?;
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(reservation_name) else {
                continue;
            };
            let path = entry.path();
            // A symlink or directory with an address name blocks that address but is never followed.
            match entry.file_type() {
                Ok(t) if t.is_file() => {}
                _ => continue,
            }
            let owner = read_body(&path)?;
            if drop_it(ip, owner.as_ref()) {
                remove_if_exists(&path)?;
                removed.push(ip);
                continue;
            }
            if let Some(o) = owner {
                let entry = index_dir_of(&fresh, layout, &o).join(entry_name(&o, ip));
                link_or_copy(&path, &entry, &o).map_err(StoreError::io("cannot write", &entry))?;
            }
        }
        match fs::rename(&owners, &old) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(StoreError::io("cannot rename", owners.as_path())(e)),
        }
        fs::rename(&fresh, &owners).map_err(StoreError::io("cannot rename into place", &owners))?;
        let _ = fs::remove_dir_all(&old);
        self.owners_fd = open_dir(&owners)?.0;
        self.layout = layout;
        self.checked.clear();
        self.touched.clear();
        self.dir_changed = false;
        // A whole second in the past: no change made from now on can carry this time.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.seal = i64::try_from(now).unwrap_or(i64::MAX) - 1;
        // Where a seal cannot be set (a file system without settable times), the next call rebuilds.
        if layout == Layout::Buckets {
            for b in 0..=255u8 {
                let _ = seal_path(&owners.join(format!("{b:02x}")), self.seal);
            }
        }
        let _ = apply_seal(&self.owners_fd, self.seal);
        let _ = apply_seal(&self.dir_fd, self.seal);
        self.write_state()?;
        self.report.rebuilt = true;
        Ok(removed)
    }
}
