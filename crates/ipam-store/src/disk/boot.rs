//! Opening a store: the network directory and the lock, the recorded boot (reclaiming after a
//! reboot), and the `state` file that says whether the index can be trusted.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use super::fs::{
    check_no_parent, ensure_dir, is_not_found, is_sealed, lock_with_timeout, make_dir, open_dir,
    open_single_link, open_store_file, read_open, read_small, real_dir, write_atomic,
};
use super::layout::{BOOT_ID, LOCK, META, OWNERS, STATE, STATE_HEADER, TMP_BOOT};
use super::{DiskOptions, DiskStore, Layout, OpenReport};
use crate::error::{StoreError, StoreResult};

impl DiskStore {
    pub(super) fn open_inner(
        data_dir: &Path,
        network: &str,
        opts: &DiskOptions,
        create: bool,
    ) -> StoreResult<Option<DiskStore>> {
        check_no_parent(data_dir, "dataDir")?;
        let name = Path::new(network);
        if network.is_empty()
            || name.components().count() != 1
            || !matches!(name.components().next(), Some(Component::Normal(_)))
        {
            return Err(StoreError::Unsafe {
                path: data_dir.join(network),
                why: "the network name must be a single plain path component".into(),
            });
        }
        let dir = data_dir.join(network);
        let (dir_fd, opened) = match open_dir(&dir) {
            Err(StoreError::Io { source, .. })
                if is_not_found(&source) || source.kind() == ErrorKind::NotADirectory =>
            {
                if !create {
                    return Ok(None);
                }
                fs::create_dir_all(data_dir).map_err(StoreError::io("cannot create dataDir", data_dir))?;
                make_dir(&dir)?;
                open_dir(&dir)?
            }
            other => other?,
        };
        let lock_path = dir.join(LOCK);
        let (lock, _) = open_store_file(&lock_path, "cannot open the lock file")?;
        lock_with_timeout(&lock, &lock_path, opts.lock_timeout)?;
        // Checked again now that nobody else may change the store: still the directory opened above.
        let dir_md = fs::symlink_metadata(&dir).map_err(StoreError::io("cannot inspect", &dir))?;
        real_dir(&dir, &dir_md)?;
        if (dir_md.dev(), dir_md.ino()) != (opened.dev(), opened.ino()) {
            return Err(StoreError::Unsafe {
                path: dir,
                why: "was replaced by another directory while the store was being opened; retry".into(),
            });
        }
        let meta = dir.join(META);
        ensure_dir(&meta)?;
        let owners = meta.join(OWNERS);
        let (owners_fd, owners_md) = match open_dir(&owners) {
            Err(StoreError::Io { source, .. }) if is_not_found(&source) => {
                make_dir(&owners)?;
                open_dir(&owners)?
            }
            other => other?,
        };
        let state_path = meta.join(STATE);
        // Rewritten in place: a second name (a hard link planted in the store) is dropped first.
        let (state, state_md) = open_single_link(&state_path)?;
        let text = read_open(&state, state_md.len(), &state_path)?;
        let mut store = DiskStore {
            dir,
            meta,
            _lock: lock,
            dir_fd,
            owners_fd,
            state,
            state_len: state_md.len(),
            layout: Layout::Flat,
            seal: 0,
            flat_limit: opts.flat_limit,
            dir_changed: false,
            checked: Vec::new(),
            touched: Vec::new(),
            cursors: BTreeMap::new(),
            pending: None,
            report: OpenReport::default(),
        };
        let valid = match parse_state(&text) {
            Some(st) => {
                store.layout = st.layout;
                store.seal = st.seal;
                st.matches(&dir_md, &owners_md)
            }
            None => false,
        };
        store.boot_check(opts)?;
        if !store.report.rebuilt && !valid {
            store.rebuild(&mut |_, _| false)?;
        }
        Ok(Some(store))
    }

    fn boot_check(&mut self, opts: &DiskOptions) -> StoreResult<()> {
        // Without a readable boot ID (no /proc) there is nothing to compare: reboot awareness is off.
        let Ok(Some(current)) = read_small(&opts.boot_id_path) else {
            return Ok(());
        };
        let Ok(current) = std::str::from_utf8(&current) else {
            return Ok(());
        };
        let current = current.trim();
        if current.is_empty() || current.contains(char::is_whitespace) {
            return Ok(());
        }
        let marker = self.meta_path(BOOT_ID);
        let recorded = read_small(&marker)?.and_then(|b| {
            String::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().strip_prefix("boot_id ").map(str::to_owned))
        });
        if recorded.as_deref() == Some(current) {
            return Ok(());
        }
        if opts.reclaim_after_reboot && recorded.is_some() {
            self.report.reclaimed = self.rebuild(&mut |_, _| true)?;
        }
        write_atomic(
            &self.meta_path(TMP_BOOT),
            &marker,
            format!("boot_id {current}\n").as_bytes(),
        )
    }

    /// Records the layout, the seal and the directories' change times as the seal left them
    /// (after a rebuild, and at the end of every call that changed the store). The text keeps its
    /// length between rebuilds, so it is one `pwrite`.
    pub(super) fn write_state(&mut self) -> StoreResult<()> {
        use std::os::unix::fs::FileExt;
        let path = self.meta_path(STATE);
        let md = self
            .dir_fd
            .metadata()
            .map_err(StoreError::io("cannot inspect", &self.dir))?;
        let owners = self
            .owners_fd
            .metadata()
            .map_err(StoreError::io("cannot inspect", &self.owners()))?;
        let text = State {
            dev: md.dev(),
            ino: md.ino(),
            seal: self.seal,
            layout: self.layout,
            ctimes: [ctime(&md), ctime(&owners)],
        }
        .text();
        self.state
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| {
                if text.len() as u64 == self.state_len {
                    Ok(())
                } else {
                    self.state.set_len(text.len() as u64)
                }
            })
            .map_err(StoreError::io("cannot write", &path))?;
        self.state_len = text.len() as u64;
        Ok(())
    }
}

/// A directory's change time (seconds, nanoseconds). Nobody can set it: any change to the
/// directory, its mode or its times (a restore setting the seal back included) moves it to the
/// present, so a `state` naming the change times the plugin left is stale after anyone else's change.
fn ctime(md: &fs::Metadata) -> (i64, i64) {
    (md.ctime(), md.ctime_nsec())
}

/// What `state` records.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct State {
    dev: u64,
    ino: u64,
    seal: i64,
    layout: Layout,
    /// Change times of the network directory and `owners/` as this plugin left them.
    ctimes: [(i64, i64); 2],
}

impl State {
    fn text(&self) -> String {
        let layout = match self.layout {
            Layout::Flat => "flat",
            Layout::Buckets => "buckets",
        };
        let [(a, an), (b, bn)] = self.ctimes;
        format!(
            "{STATE_HEADER}\nseal {} {} {}\nctime {a:020}.{an:09} {b:020}.{bn:09}\nlayout {layout}\nend\n",
            self.dev, self.ino, self.seal
        )
    }

    /// Whether the index can be trusted: `state` names this very network directory, and the
    /// directory and `owners/` carry the seal and the change times the plugin left.
    pub(super) fn matches(&self, dir_md: &fs::Metadata, owners_md: &fs::Metadata) -> bool {
        (self.dev, self.ino) == (dir_md.dev(), dir_md.ino())
            && is_sealed(dir_md, self.seal)
            && is_sealed(owners_md, self.seal)
            && self.ctimes == [ctime(dir_md), ctime(owners_md)]
    }
}

/// Reads `state`; `None` when it is not of this version or not well formed.
pub(super) fn parse_state(text: &[u8]) -> Option<State> {
    let mut lines = std::str::from_utf8(text).ok()?.lines();
    if lines.next() != Some(STATE_HEADER) {
        return None;
    }
    let mut p = lines.next()?.strip_prefix("seal ")?.split(' ');
    let (dev, ino, seal) = (
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
        p.next()?.parse().ok()?,
    );
    let mut c = lines.next()?.strip_prefix("ctime ")?.split(' ');
    let mut time = || -> Option<(i64, i64)> {
        let (s, n) = c.next()?.split_once('.')?;
        Some((s.parse().ok()?, n.parse().ok()?))
    };
    let ctimes = [time()?, time()?];
    let layout = match lines.next()? {
        "layout flat" => Layout::Flat,
        "layout buckets" => Layout::Buckets,
        _ => return None,
    };
    (p.next().is_none() && c.next().is_none() && lines.next() == Some("end")).then_some(State {
        dev,
        ino,
        seal,
        layout,
        ctimes,
    })
}
