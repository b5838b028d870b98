//! Reservations: the exclusive create through the owner's index entry, release, the round-robin
//! cursors, and finding an owner's addresses through the index.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;

use super::fs::{
    create_exclusive, is_not_found, no_hard_links, open_regular, open_single_link, read_body, read_open,
    remove_if_exists,
};
use super::index::{entry_name, owner_hash};
use super::layout::{cursor_ip, reservation_name};
use super::{Cursor, DiskStore, Layout};
use crate::alloc::Reservations;
use crate::error::{StoreError, StoreResult};
use crate::owner::Owner;

impl DiskStore {
    /// Creates the reservation file of `ip` with `owner`'s body, atomically; false if it exists.
    ///
    /// The body is written to the owner's index entry for `ip`, which is then hard-linked to the
    /// address's name: `link` fails if the name exists (the exclusive create), a reservation file
    /// never exists empty or half-written, and the index entry exists before the reservation does.
    /// When the address is taken, the entry is renamed to the next candidate's name.
    fn create_reservation(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        let index = self.index_dir(owner)?;
        let entry = index.join(entry_name(owner, ip));
        self.touch(&index);
        let body = owner.body();
        match self.pending.take() {
            Some((o, from)) if &o == owner => {
                fs::rename(&from, &entry).map_err(StoreError::io("cannot rename", &from))?;
            }
            other => {
                if let Some((_, stale)) = other {
                    remove_if_exists(&stale)?;
                }
                match create_exclusive(&entry, body.as_bytes()) {
                    Ok(()) => {}
                    // Left by an earlier call that was killed, or naming a freed address: never
                    // rewritten in place (it may still be a second name of a reservation).
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        remove_if_exists(&entry)?;
                        create_exclusive(&entry, body.as_bytes())
                            .map_err(StoreError::io("cannot write", &entry))?;
                    }
                    Err(e) => return Err(StoreError::io("cannot write", &entry)(e)),
                }
            }
        }
        let dest = self.reservation_path(ip);
        let made = match fs::hard_link(&entry, &dest) {
            // File systems without hard links: the reference's exclusive create; the entry stays a copy.
            Err(e) if no_hard_links(&e) => create_exclusive(&dest, body.as_bytes()),
            Err(e) if e.kind() != ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&entry);
                Err(e)
            }
            other => other,
        };
        match made {
            Ok(()) => {
                self.dir_changed = true;
                Ok(true)
            }
            // Taken: the entry is kept, to be renamed to the next candidate's name.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.pending = Some((owner.clone(), entry));
                Ok(false)
            }
            Err(e) => Err(StoreError::io("cannot create reservation", &dest)(e)),
        }
    }
}

impl Reservations for DiskStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        self.create_reservation(ip, owner)
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        let path = self.reservation_path(ip);
        let holder = read_body(&path)?;
        if holder.as_ref() != Some(owner) {
            return Ok(false);
        }
        let index = self.index_dir(owner)?;
        self.touch(&index);
        self.dir_changed = true;
        remove_if_exists(&path)?;
        remove_if_exists(&index.join(entry_name(owner, ip)))?;
        Ok(true)
    }

    fn owner_of(&mut self, ip: IpAddr) -> StoreResult<Option<Owner>> {
        read_body(&self.reservation_path(ip))
    }

    fn is_reserved(&mut self, ip: IpAddr) -> StoreResult<bool> {
        let path = self.reservation_path(ip);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(StoreError::io("cannot inspect", &path)(e)),
        }
    }

    fn last_reserved(&mut self, set: usize) -> StoreResult<Option<IpAddr>> {
        if let Some(c) = self.cursors.get(&set) {
            return Ok(c.ip);
        }
        // Kept open to be rewritten in place by `set_last_reserved` (read-only where it cannot be written).
        let path = self.cursor_path(set);
        let opened = match open_regular(OpenOptions::new().read(true).write(true), &path, "cannot open") {
            Err(StoreError::Io { source, .. })
                if matches!(
                    source.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                open_regular(OpenOptions::new().read(true), &path, "cannot open")
            }
            other => other,
        };
        let cursor = match opened {
            // Rewritten in place only while it has no second name: a hard link planted in the store
            // would carry the write to a file outside it. Such a name is dropped, and the cursor
            // is created anew when it is next written.
            Ok((_, md)) if md.nlink() != 1 => {
                self.dir_changed = true;
                remove_if_exists(&path)?;
                Cursor {
                    file: None,
                    len: 0,
                    ip: None,
                }
            }
            Ok((file, md)) => {
                let content = read_open(&file, md.len(), &path)?;
                Cursor {
                    file: Some(file),
                    len: md.len(),
                    ip: cursor_ip(&content),
                }
            }
            Err(StoreError::Io { source, .. }) if is_not_found(&source) => Cursor {
                file: None,
                len: 0,
                ip: None,
            },
            Err(e) => return Err(e),
        };
        let ip = cursor.ip;
        self.cursors.insert(set, cursor);
        Ok(ip)
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> StoreResult<()> {
        use std::os::unix::fs::FileExt;
        self.last_reserved(set)?;
        let path = self.cursor_path(set);
        let text = ip.to_string();
        let Some(c) = self.cursors.get_mut(&set) else {
            return Ok(());
        };
        // In place, as the reference writes it, but overwritten rather than truncated first (cheaper:
        // no block is freed and allocated again), and cut only when the new address is shorter. A
        // torn cursor only moves where the round robin resumes.
        let created = c.file.is_none();
        if created {
            c.file = Some(open_single_link(&path)?.0);
        }
        if let Some(f) = &c.file {
            f.write_all_at(text.as_bytes(), 0)
                .and_then(|()| {
                    if (text.len() as u64) < c.len {
                        f.set_len(text.len() as u64)
                    } else {
                        Ok(())
                    }
                })
                .map_err(StoreError::io("cannot write", &path))?;
        }
        c.len = text.len() as u64;
        c.ip = Some(ip);
        self.dir_changed |= created;
        Ok(())
    }

    fn held_by(&mut self, owner: &Owner) -> StoreResult<Vec<IpAddr>> {
        let index = self.index_dir(owner)?;
        let prefix = format!("{:016x}.", owner_hash(owner));
        let entries = match fs::read_dir(&index) {
            Ok(e) => e,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("cannot list", &index)(e)),
        };
        let mut count = 0;
        let mut candidates = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::io("cannot list", &index))?;
            count += 1;
            let name = entry.file_name();
            if let Some(ip) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(reservation_name)
            {
                candidates.push((ip, entry.path()));
            }
        }
        // A flat index that has grown past its limit is split into buckets, once.
        if self.layout == Layout::Flat && count >= self.flat_limit && !self.report.rebuilt {
            self.rebuild(&mut |_, _| false)?;
            return self.held_by(owner);
        }
        let mut held = Vec::new();
        for (ip, entry) in candidates {
            // Only the reservation file itself counts; an entry that does not match it is stale.
            if self.owner_of(ip)?.as_ref() == Some(owner) {
                held.push(ip);
            } else if self.pending.as_ref().is_none_or(|(_, p)| *p != entry) {
                self.touch(&index);
                remove_if_exists(&entry)?;
            }
        }
        crate::order::sort_by_dyn(&mut held, &|a, b| a.cmp(b));
        Ok(held)
    }
}
