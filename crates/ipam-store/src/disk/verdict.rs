//! The plugins' verdict on a store, reached read-only with their own checks: every condition under
//! which a call would fail (a pipe, directory or symlink where the store keeps a file, a file where
//! it keeps a directory), and whether the next call trusts the index or rebuilds it. Nothing is
//! created, written or waited on; `ipam ls`, `ipam gc` and `doctor` report what it finds.

use std::fs::{self, OpenOptions};
use std::path::Path;

use super::boot::parse_state;
use super::fs::{is_not_found, open_dir, open_regular, read_open, read_small, real_dir};
use super::layout::{
    BOOT_ID, LOCK, META, OWNERS, OWNERS_NEW, OWNERS_OLD, STATE, TMP_BOOT, TMP_PROBE, cursor_set,
};
use crate::error::{StoreError, StoreResult};

/// What a plugin call would make of a store.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// The network directory itself is usable (a real directory, not a symlink to one); when it is
    /// not, nothing in it was looked at.
    pub(crate) dir_ok: bool,
    /// Every condition that makes calls fail (code 5), as the plugin's own error.
    pub(crate) refusals: Vec<StoreError>,
    /// The store has our index and `state` says it is current: the seal and the change times
    /// the plugin left still hold. `false` also when there is no index yet.
    pub(crate) index_current: bool,
    /// The store has our owner index (`.sandbox-cni/owners` is a real directory).
    pub(crate) has_index: bool,
}

/// `Ok` for a file that does not exist yet (a call creates it).
fn unless_missing<T>(r: StoreResult<T>) -> StoreResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Io { source, .. }) if is_not_found(&source) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The verdict on the store in `network_dir`, in the order a call opens it: the directory, the
/// lock, `.sandbox-cni`, `owners/`, `state`, the boot record, the rebuild's scratch names, the cursors.
pub(crate) fn verdict(network_dir: &Path) -> Verdict {
    let mut v = Verdict::default();
    let dir_md = match open_dir(network_dir) {
        Ok((_, md)) => md,
        Err(e) => {
            v.refusals.push(e);
            return v;
        }
    };
    v.dir_ok = true;
    let mut refuse = |r: StoreResult<()>| {
        if let Err(e) = r {
            v.refusals.push(e);
        }
    };
    let read = || {
        let mut o = OpenOptions::new();
        o.read(true);
        o
    };
    let lock = network_dir.join(LOCK);
    refuse(unless_missing(open_regular(&mut read(), &lock, "cannot open the lock file")).map(drop));
    let meta = network_dir.join(META);
    let mut index_current = false;
    let mut v_has_index = false;
    match fs::symlink_metadata(&meta) {
        Err(e) if is_not_found(&e) => {}
        Err(e) => refuse(Err(StoreError::io("cannot inspect", &meta)(e))),
        Ok(md) if real_dir(&meta, &md).is_err() => refuse(real_dir(&meta, &md)),
        Ok(_) => {
            let owners = unless_missing(open_dir(&meta.join(OWNERS)));
            let state_path = meta.join(STATE);
            let state = unless_missing(open_regular(&mut read(), &state_path, "cannot open"))
                .and_then(|f| f.map(|(f, md)| read_open(&f, md.len(), &state_path)).transpose());
            if let (Ok(Some((_, owners_md))), Ok(Some(text))) = (&owners, &state) {
                index_current = parse_state(text).is_some_and(|st| st.matches(&dir_md, owners_md));
            }
            v_has_index = matches!(owners, Ok(Some(_)));
            refuse(owners.map(drop));
            refuse(state.map(drop));
            refuse(read_small(&meta.join(BOOT_ID)).map(drop));
            // Scratch files written and renamed: a directory there makes the write fail (the first
            // call after a reboot for `tmp-boot`, every STATUS for `tmp-probe`).
            for scratch in [TMP_BOOT, TMP_PROBE] {
                let p = meta.join(scratch);
                if fs::symlink_metadata(&p).is_ok_and(|md| md.is_dir()) {
                    refuse(Err(StoreError::Unsafe {
                        path: p,
                        why: "is a directory where the store writes a scratch file: calls that write it fail; remove it".into(),
                    }));
                }
            }
            // A rebuild first removes these trees; a file there makes every rebuild fail.
            for scratch in [OWNERS_NEW, OWNERS_OLD] {
                let p = meta.join(scratch);
                if fs::symlink_metadata(&p).is_ok_and(|md| !md.is_dir() && !md.file_type().is_symlink()) {
                    refuse(Err(StoreError::Unsafe {
                        path: p,
                        why: "is not a directory: every index rebuild fails to remove it; remove it".into(),
                    }));
                }
            }
        }
    }
    v.index_current = index_current;
    v.has_index = v_has_index;
    if let Ok(entries) = fs::read_dir(network_dir) {
        let mut cursors: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(cursor_set)
                    .is_some()
            })
            .collect();
        cursors.sort();
        for c in cursors {
            v.refusals.extend(read_small(&c).err());
        }
    }
    v
}
