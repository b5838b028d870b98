//! Opening a store: the network directory and the lock, the recorded boot (reclaiming after a
//! reboot), and the `state` file that says whether the index can be trusted.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use super::fs::{
    check_no_parent, ensure_dir, is_not_found, is_sealed, lock_with_timeout, make_dir, open_dir,
    open_store_file, read_open, read_small, real_dir, write_atomic,
};
use super::{DiskOptions, DiskStore, LOCK, Layout, META, OWNERS, OpenReport, STATE_HEADER};
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
        let state_path = meta.join("state");
        let (state, state_md) = open_store_file(&state_path, "cannot open")?;
        let text = read_open(&state, state_md.len(), &state_path)?;
        let mut store = DiskStore {
            dir,
            meta,
            _lock: lock,
            dir_fd,
            owners_fd,
            state,
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
        let valid = store.read_state(&text, &dir_md, &owners_md);
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
        let marker = self.meta_path("boot_id");
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
            &self.meta_path("tmp-boot"),
            &marker,
            format!("boot_id {current}\n").as_bytes(),
        )
    }

    /// Takes the layout and seal from `state`; whether the index can be trusted: `state` is of this
    /// version, names this very network directory, and the directory and `owners/` carry the seal.
    fn read_state(&mut self, text: &[u8], dir_md: &fs::Metadata, owners_md: &fs::Metadata) -> bool {
        let Ok(text) = std::str::from_utf8(text) else {
            return false;
        };
        let mut lines = text.lines();
        if lines.next() != Some(STATE_HEADER) {
            return false;
        }
        let Some(seal) = lines.next().and_then(|l| l.strip_prefix("seal ")) else {
            return false;
        };
        let mut p = seal.split(' ');
        let (Some(Ok(dev)), Some(Ok(ino)), Some(Ok(seal)), None) = (
            p.next().map(str::parse::<u64>),
            p.next().map(str::parse::<u64>),
            p.next().map(str::parse::<i64>),
            p.next(),
        ) else {
            return false;
        };
        let layout = match lines.next() {
            Some("layout flat") => Layout::Flat,
            Some("layout buckets") => Layout::Buckets,
            _ => return false,
        };
        if lines.next() != Some("end") {
            return false;
        }
        self.layout = layout;
        self.seal = seal;
        (dev, ino) == (dir_md.dev(), dir_md.ino()) && is_sealed(dir_md, seal) && is_sealed(owners_md, seal)
    }

    /// Records the layout and the seal (only after a rebuild).
    pub(super) fn write_state(&mut self) -> StoreResult<()> {
        use std::os::unix::fs::FileExt;
        let path = self.meta_path("state");
        let md = self
            .dir_fd
            .metadata()
            .map_err(StoreError::io("cannot inspect", &self.dir))?;
        let layout = match self.layout {
            Layout::Flat => "flat",
            Layout::Buckets => "buckets",
        };
        let text = format!(
            "{STATE_HEADER}\nseal {} {} {}\nlayout {layout}\nend\n",
            md.dev(),
            md.ino(),
            self.seal
        );
        self.state
            .write_all_at(text.as_bytes(), 0)
            .and_then(|()| self.state.set_len(text.len() as u64))
            .map_err(StoreError::io("cannot write", &path))
    }
}
