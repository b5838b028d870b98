//! The on-disk store, byte-compatible with the reference host-local (plugins/ipam/host-local/backend/disk).
//!
//! Layout of `<dataDir>/<network>/`:
//!
//! ```text
//! lock                   flock(LOCK_EX) target, held for a whole operation
//! 10.22.0.2              one file per reserved address, body `containerID\r\nifname`
//! fd00:10::2             (IPv6 in compressed text form)
//! last_reserved_ip.N     round-robin cursor of range set N: bare address text
//! .sandbox-cni/          ours (see below)
//!     state              `sandbox-cni host-local index v3`, the seal, the index layout, `end`
//!     boot_id            `boot_id <id>`: the boot during which the store was last used
//!     owners/H.ADDR      the owner index, flat layout (up to `flat_limit` entries, 256 by default)
//!     owners/HH/H.ADDR   the owner index, bucket layout (larger stores; all 256 buckets exist)
//! ```
//!
//! An index entry `H.ADDR` is a second name (hard link) of reservation ADDR, where H is the
//! 16-hex-digit FNV-1a hash of its owner and HH H's first two digits. Reservation files are the truth;
//! the index lets DEL, CHECK and a repeated ADD find an attachment's addresses by listing one small
//! directory instead of reading every reservation. Every address it yields is confirmed by reading the
//! reservation file under the address's name. A reservation's body is written to its index entry
//! first, which is then hard-linked to the address's name: `link` fails if the name exists, which is
//! the exclusive create; a reservation file never exists empty or half-written, and the index never
//! misses a reservation we made, even when a call is killed. An ADD thus creates one inode (entry and
//! reservation are the same file) and rewrites one other file (the cursor); no directory is created.
//!
//! Other writers (the reference plugin, people) can add reservations behind the index. Instead of
//! recording the directories' new timestamps after every change (a write to `state` on every call),
//! the store *seals* them: every directory it changed (the network directory and the index directory
//! of the owner) gets its modification time set back to the seal, a whole second in the past recorded
//! in `state` when the index was last built. Anyone else's change (creating or removing a reservation,
//! an index entry or a bucket) sets a directory's modification time to the present, which is never the
//! seal, so the index is trusted only while the network directory (same device and inode), `owners/`
//! and, before use, the owner's bucket still carry the seal; otherwise it is rebuilt by one full scan.
//! A call killed between its change and the seal leaves the directory unsealed: the next call rebuilds.
//! A store written by an older version (a `state` of another version) is rebuilt into this layout the
//! first time it is opened, under the lock.
//!
//! Files are opened with O_NOFOLLOW or created with O_EXCL, symlinks in the store are never
//! followed, and nothing is written outside the network directory.

mod boot;
mod fs;
mod index;
pub(crate) mod layout;
mod reserve;
mod verdict;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::alloc::Reservations;
use crate::error::{StoreError, StoreResult};
use crate::live::{Entry, Fate};
use crate::owner::Owner;

use self::fs::{apply_seal, create_exclusive, is_not_found, remove_if_exists, seal_path};
pub use self::fs::{open_regular, read_body, read_small};
pub use self::index::read_index_entries;
use self::index::{entry_name, index_dir_of};
use self::layout::{OWNERS, TMP_PROBE, cursor_name, reservation_name};
pub(crate) use self::verdict::verdict;

/// The default `dataDir`, as in the reference.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Where Linux publishes the current boot's random ID.
pub(crate) const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Up to this many index entries the index is one flat directory; beyond, 256 buckets.
pub const DEFAULT_FLAT_LIMIT: usize = 256;

/// Reservation bodies and index lines are small; refuse to read more than this from one file.
const MAX_READ: u64 = 64 * 1024;

/// How to open a store.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// How long to wait for another process to release the lock.
    pub lock_timeout: Duration,
    /// Free every reservation made during an earlier boot (see [`DiskStore::open`]).
    pub reclaim_after_reboot: bool,
    /// The file holding the current boot ID (tests point it elsewhere).
    pub boot_id_path: PathBuf,
    /// When the index is built, it is flat if the store holds at most this many reservations, and
    /// split into 256 buckets otherwise; a flat index found holding more entries is rebuilt split.
    pub flat_limit: usize,
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            lock_timeout: Duration::from_secs(30),
            reclaim_after_reboot: false,
            boot_id_path: PathBuf::from(BOOT_ID_PATH),
            flat_limit: DEFAULT_FLAT_LIMIT,
        }
    }
}

/// What opening the store did besides locking it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The index was rebuilt by a full scan (a store of an older layout is migrated this way).
    pub rebuilt: bool,
    /// Reservations released because they were made during an earlier boot.
    pub reclaimed: Vec<IpAddr>,
}

/// How the owner index is laid out under `.sandbox-cni/owners`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `owners/H.ADDR`.
    Flat,
    /// `owners/HH/H.ADDR`, all 256 buckets created with the index.
    Buckets,
}

/// A cursor file as read in this operation, kept open to be rewritten in place.
#[derive(Debug)]
struct Cursor {
    file: Option<File>,
    /// The file's length when read.
    len: u64,
    ip: Option<IpAddr>,
}

/// An open, locked store of one network. The lock is released when it is dropped; before that, the
/// directories this operation changed are sealed again.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    meta: PathBuf,
    _lock: File,
    /// The network directory, open for its identity and its seal.
    dir_fd: File,
    /// `.sandbox-cni/owners`, open for its seal.
    owners_fd: File,
    /// `.sandbox-cni/state`, open for the whole operation.
    state: File,
    /// Its length as last read or written.
    state_len: u64,
    layout: Layout,
    /// The modification time (whole seconds since the epoch) of every directory of the store as
    /// this plugin leaves it.
    seal: i64,
    flat_limit: usize,
    /// This operation changed the network directory: it is sealed again at the end.
    dir_changed: bool,
    /// Index directories found sealed in this operation (no one else changed them).
    checked: Vec<PathBuf>,
    /// Index directories this operation changed: sealed again at the end.
    touched: Vec<PathBuf>,
    cursors: BTreeMap<usize, Cursor>,
    /// An index entry holding a body that is not linked to an address yet (see `create_reservation`).
    pending: Option<(Owner, PathBuf)>,
    report: OpenReport,
}

impl DiskStore {
    /// Opens (creating it if needed) and locks the store of `network` under `data_dir`.
    ///
    /// Then, with `reclaim_after_reboot`, if the store was last used during another boot, every
    /// reservation is released (all were made before this boot). A store never used by this plugin
    /// (no recorded boot) is left alone. Finally the index is checked and rebuilt when stale (or of
    /// an older layout).
    pub fn open(data_dir: &Path, network: &str, opts: &DiskOptions) -> StoreResult<DiskStore> {
        match Self::open_inner(data_dir, network, opts, true)? {
            Some(s) => Ok(s),
            None => Err(StoreError::Unsafe {
                path: data_dir.join(network),
                why: "cannot be created".into(),
            }),
        }
    }

    /// Opens the store only if the network's directory exists (DEL and GC create nothing): `None`
    /// when it is missing or its path runs through a file.
    pub fn open_existing(
        data_dir: &Path,
        network: &str,
        opts: &DiskOptions,
    ) -> StoreResult<Option<DiskStore>> {
        Self::open_inner(data_dir, network, opts, false)
    }

    /// What opening did (rebuild, reclaimed reservations).
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// The network directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.meta.join(name)
    }

    fn reservation_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn cursor_path(&self, set: usize) -> PathBuf {
        self.dir.join(cursor_name(set))
    }

    fn owners(&self) -> PathBuf {
        self.meta.join(OWNERS)
    }

    /// Where the index entry of (owner, address) lives.
    pub fn entry_path(&self, o: &Owner, ip: IpAddr) -> PathBuf {
        index_dir_of(&self.owners(), self.layout, o).join(entry_name(o, ip))
    }

    /// Every reservation: (address, holder) with `None` for unreadable bodies. A full scan.
    pub fn list(&self) -> StoreResult<Vec<(IpAddr, Option<Owner>)>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(StoreError::io("cannot list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(StoreError::io("cannot list", &self.dir))?;
            let Some(ip) = entry.file_name().to_str().and_then(reservation_name) else {
                continue;
            };
            let owner = match entry.file_type() {
                Ok(t) if t.is_file() => read_body(&entry.path())?,
                _ => None,
            };
            out.push((ip, owner));
        }
        crate::order::sort_by_dyn(&mut out, &|a, b| a.cmp(b));
        Ok(out)
    }

    /// GC: releases every reservation whose holder `keep` rejects (unreadable bodies included) and
    /// rebuilds the index. Returns the released addresses with their holders.
    ///
    /// Each reservation's fate is `crate::live::fate`'s; what is not a regular file is never
    /// removed (the rebuild never touches it).
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&Owner) -> bool,
    ) -> StoreResult<Vec<(IpAddr, Option<Owner>)>> {
        let mut gone = Vec::new();
        self.rebuild(&mut |ip, o| {
            let drop_it = crate::live::fate(Entry::File(o), &mut keep) == Fate::Dead;
            if drop_it {
                gone.push((ip, o.cloned()));
            }
            drop_it
        })?;
        crate::order::sort_by_dyn(&mut gone, &|a, b| a.cmp(b));
        Ok(gone)
    }

    /// Releases `ip` whoever holds it (an operator's repair): the reservation file and, when its
    /// holder can be read, that holder's index entry. `None` when nothing reserves `ip`, else the holder
    /// the file named (`None` inside for an empty or unreadable file).
    pub fn release_address(&mut self, ip: IpAddr) -> StoreResult<Option<Option<Owner>>> {
        let path = self.reservation_path(ip);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(StoreError::io("cannot inspect", &path)(e)),
        }
        let holder = read_body(&path)?;
        if let Some(o) = &holder
            && self.release(ip, o)?
        {
            return Ok(Some(holder));
        }
        self.dir_changed = true;
        remove_if_exists(&path)?;
        Ok(Some(holder))
    }

    /// Whether the network directory accepts new files (used by STATUS).
    pub fn check_writable(&mut self) -> StoreResult<()> {
        let probe = self.meta_path(TMP_PROBE);
        remove_if_exists(&probe)?;
        create_exclusive(&probe, b"probe").map_err(StoreError::io("cannot write", &probe))?;
        remove_if_exists(&probe)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        if let Some((_, entry)) = self.pending.take() {
            let _ = std::fs::remove_file(entry);
        }
        // Every directory this operation changed gets the seal back; one left unsealed (a failure
        // here, a kill before) makes the next operation rebuild the index.
        let changed = self.dir_changed || !self.touched.is_empty();
        let owners = self.owners();
        for d in std::mem::take(&mut self.touched) {
            if d == owners {
                let _ = apply_seal(&self.owners_fd, self.seal);
            } else {
                let _ = seal_path(&d, self.seal);
            }
        }
        if self.dir_changed {
            let _ = apply_seal(&self.dir_fd, self.seal);
        }
        // The change times the seal left, for the next call to compare: any change by someone
        // else (a restore that sets the seal back included) moves them. Killed before this
        // write, or failing it, the next call finds them different and rebuilds.
        if changed {
            let _ = self.write_state();
        }
    }
}
