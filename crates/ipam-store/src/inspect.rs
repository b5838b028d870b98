//! Read-only inspection of one network's store: every reservation with its holder and age, the
//! cursors, and the damage found (files the store does not know, empty or unreadable reservations,
//! owner-index entries out of step with the reservations). Works on a store only the reference
//! plugin has used, too (it then has no index).
//!
//! It never writes. [`inspect`] takes the store's lock *shared* for a consistent picture (plugins
//! take it exclusively, so nothing changes while it reads), and reads without it when the lock
//! cannot be had in time; [`DiskStore::inspect`] inspects a store its caller has open, under the
//! lock it holds. File names come from the store's layout module, files are read with the store's
//! own readers, what would make plugin calls fail is the plugins' own `crate::disk::verdict`, and
//! our index is read only through [`crate::disk::read_index_entries`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::disk::layout::{LOCK, META, cursor_ip, cursor_set, reservation_name};
use crate::disk::{DiskStore, open_regular, read_body, read_index_entries, read_small, verdict};
use crate::error::{StoreError, StoreResult};
use crate::live::Entry;
use crate::owner::Owner;
use crate::range::Range;

/// One reservation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: IpAddr,
    /// A regular file (anything else blocks its address; see the damage list).
    pub file: bool,
    /// `None`: the file is empty or unreadable, or not a regular file (it blocks the address for
    /// nobody; see the damage list).
    pub owner: Option<Owner>,
    /// Time since the file was last written (its modification time): how long it has been held.
    pub age: Option<Duration>,
}

impl Reservation {
    /// What GC sees of it ([`crate::live`]).
    pub fn entry(&self) -> Entry<'_> {
        if self.file {
            Entry::File(self.owner.as_ref())
        } else {
            Entry::NotAFile
        }
    }
}

/// Something wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A reservation file that names no holder: empty (a crash of the reference plugin between
    /// create and write) or unreadable. No DEL ever frees it; GC and `ipam release` do.
    NoHolder { ip: IpAddr },
    /// Something other than a regular file under an address's name (a symlink, a directory).
    NotAFile { ip: IpAddr, what: &'static str },
    /// A name the store does not use.
    Foreign { name: String },
    /// A cursor file whose content is not an address.
    BadCursor { name: String },
    /// An index entry whose reservation is gone or names someone else.
    StaleIndexEntry { ip: IpAddr, owner: Owner },
    /// A reservation the index does not name.
    MissingIndexEntry { ip: IpAddr, owner: Owner },
    /// A condition under which every plugin call on this store fails (code 5), found by the
    /// plugin's own checks (`crate::disk::verdict`).
    Refused { why: String },
    /// The index is no longer the one the plugin left (someone else changed or restored the
    /// store): the next plugin call rebuilds it.
    IndexStale,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::NoHolder { ip } => write!(
                f,
                "reservation {ip} is empty or unreadable: it names no holder, so no DEL frees it (free it with `ipam release --ip {ip}` or `ipam gc`)"
            ),
            Damage::NotAFile { ip, what } => {
                write!(
                    f,
                    "{ip} is a {what}, not a reservation file: it blocks the address; remove it by hand"
                )
            }
            Damage::Foreign { name } => write!(f, "foreign file {name:?}: not part of a host-local store"),
            Damage::BadCursor { name } => {
                write!(
                    f,
                    "cursor {name} does not hold an address (harmless: allocation restarts at the range start)"
                )
            }
            Damage::StaleIndexEntry { ip, owner } => write!(
                f,
                "index entry {ip} for {owner} is stale (the reservation is gone or held by someone else): plugin calls check entries against the reservations and drop it"
            ),
            Damage::MissingIndexEntry { ip, owner } => write!(
                f,
                "reservation {ip} of {owner} is missing from the index (written by another plugin or by hand); `ipam gc --apply` rebuilds the index"
            ),
            Damage::Refused { why } => write!(f, "every plugin call on this store fails (code 5): {why}"),
            Damage::IndexStale => write!(
                f,
                "the index is not the one the plugin left (the store was changed or restored by someone else): the next plugin call rebuilds it"
            ),
        }
    }
}

impl Damage {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Damage::NoHolder { .. } => "no-holder",
            Damage::NotAFile { .. } => "not-a-file",
            Damage::Foreign { .. } => "foreign-file",
            Damage::BadCursor { .. } => "bad-cursor",
            Damage::StaleIndexEntry { .. } => "stale-index-entry",
            Damage::MissingIndexEntry { .. } => "missing-index-entry",
            Damage::Refused { .. } => "refused",
            Damage::IndexStale => "index-stale",
        }
    }

    /// Whether plugin calls on the store fail because of it.
    pub fn blocks_calls(&self) -> bool {
        matches!(self, Damage::Refused { .. })
    }
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub dir: PathBuf,
    /// Sorted by address.
    pub reservations: Vec<Reservation>,
    /// Range set index and the address its cursor holds.
    pub cursors: Vec<(usize, IpAddr)>,
    pub damage: Vec<Damage>,
    /// The store has our owner index (`.sandbox-cni/owners`).
    pub has_index: bool,
    /// The picture was taken under the store's lock.
    pub locked: bool,
}

/// Takes the store's lock shared, waiting up to `timeout`; `None` when there is no lock file or
/// it stays taken.
fn lock_shared(dir: &Path, timeout: Duration) -> Option<File> {
    // Only a regular file, never through a symlink; a FIFO planted there is not waited on.
    let (file, _) = open_regular(fs::OpenOptions::new().read(true), &dir.join(LOCK), "cannot open").ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock_shared() {
            Ok(()) => return Some(file),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    }
}

fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Inspects the store in `network_dir` (which must exist). Waits up to `lock_timeout` for the lock.
/// Files are read as the plugins read them: never through a symlink, never from a pipe, at most
/// 64 KiB each. A network directory that is a symlink is not followed: the inspection then holds
/// only the refusal.
pub fn inspect(network_dir: &Path, lock_timeout: Duration) -> StoreResult<Inspection> {
    scan(network_dir, Some(lock_timeout))
}

impl DiskStore {
    /// Inspects this store under the lock it holds (`locked` is true): for a caller that opened
    /// the store to change it after looking (`ipam gc`).
    pub fn inspect(&self) -> StoreResult<Inspection> {
        scan(self.dir(), None)
    }
}

/// The inspection; `lock_timeout` `None`: the caller holds the lock already.
fn scan(network_dir: &Path, lock_timeout: Option<Duration>) -> StoreResult<Inspection> {
    let mut out = Inspection {
        dir: network_dir.to_owned(),
        ..Inspection::default()
    };
    let verdict = verdict(network_dir);
    let refusals = verdict
        .refusals
        .iter()
        .map(|e| Damage::Refused { why: e.to_string() });
    if !verdict.dir_ok {
        out.damage.extend(refusals);
        return Ok(out);
    }
    let lock = lock_timeout.map(|t| lock_shared(network_dir, t));
    out.locked = lock.as_ref().is_none_or(Option::is_some);
    out.has_index = verdict.has_index;
    out.damage.extend(refusals);
    let now = SystemTime::now();
    let entries = fs::read_dir(network_dir).map_err(StoreError::io("cannot list", network_dir))?;
    for entry in entries {
        let entry = entry.map_err(StoreError::io("cannot list", network_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(md) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if let Some(ip) = reservation_name(&name) {
            let file = md.is_file();
            // The store's own reader (no symlink, no pipe, bounded); an error names nobody.
            let owner = if file {
                read_body(&entry.path()).ok().flatten()
            } else {
                out.damage.push(Damage::NotAFile {
                    ip,
                    what: kind_of(md.file_type()),
                });
                None
            };
            if owner.is_none() && file {
                out.damage.push(Damage::NoHolder { ip });
            }
            let age = md.modified().ok().and_then(|t| now.duration_since(t).ok());
            out.reservations.push(Reservation { ip, file, owner, age });
        } else if let Some(n) = cursor_set(&name) {
            // A cursor that is not a regular file is among the refusals already.
            if !md.is_file() {
                continue;
            }
            match read_small(&entry.path())
                .ok()
                .flatten()
                .and_then(|b| cursor_ip(&b))
            {
                Some(ip) => out.cursors.push((n, ip)),
                None => out.damage.push(Damage::BadCursor { name }),
            }
        } else if name != META && name != LOCK {
            out.damage.push(Damage::Foreign { name });
        }
    }
    out.reservations.sort_by_key(|r| r.ip);
    out.cursors.sort();
    if out.has_index {
        if !verdict.index_current {
            out.damage.push(Damage::IndexStale);
        }
        let held: BTreeMap<IpAddr, &Owner> = out
            .reservations
            .iter()
            .filter_map(|r| Some((r.ip, r.owner.as_ref()?)))
            .collect();
        let index = read_index_entries(network_dir)?;
        for (ip, owner) in &index {
            if held.get(ip) != Some(&owner) {
                out.damage.push(Damage::StaleIndexEntry {
                    ip: *ip,
                    owner: owner.clone(),
                });
            }
        }
        for (ip, owner) in held {
            if index
                .binary_search_by(|(i, o)| (i, o).cmp(&(&ip, owner)))
                .is_err()
            {
                out.damage.push(Damage::MissingIndexEntry {
                    ip,
                    owner: owner.clone(),
                });
            }
        }
    }
    drop(lock);
    Ok(out)
}

/// How many addresses of `range` can ever be handed out: `rangeStart..=rangeEnd` without the
/// network address, the IPv4 broadcast address and the gateway.
pub fn capacity(range: &Range) -> u128 {
    let mut excluded = vec![range.gateway, range.subnet.network()];
    if range.subnet.is_ipv4() {
        excluded.push(range.subnet.broadcast());
    }
    excluded.sort();
    excluded.dedup();
    let inside = excluded.iter().filter(|ip| range.contains(**ip)).count() as u128;
    range.size().saturating_sub(inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>) -> Range {
        Range::new(
            subnet.parse().unwrap(),
            start.map(|s| s.parse().unwrap()),
            end.map(|s| s.parse().unwrap()),
            None,
        )
        .unwrap()
    }

    #[test]
    fn capacity_excludes_network_broadcast_and_gateway() {
        assert_eq!(capacity(&range("10.0.0.0/24", None, None)), 253);
        assert_eq!(capacity(&range("10.0.0.0/29", None, None)), 5);
        assert_eq!(
            capacity(&range("10.0.0.0/24", Some("10.0.0.100"), Some("10.0.0.109"))),
            10
        );
        // IPv6 has no broadcast: fd00::1 (the gateway) to fd00::ff, less the gateway.
        assert_eq!(capacity(&range("fd00::/120", None, None)), 254);
    }
}
