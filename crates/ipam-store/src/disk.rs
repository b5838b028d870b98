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
//!     state              what the index was last verified against
//!     boot_id            `boot_id <id>`: the boot during which the store was last used
//!     owners/HH/H.ADDR   the owner index: a second name (hard link) of reservation ADDR, where H
//!                        is the 16-hex-digit FNV-1a hash of its owner and HH H's first two digits
//! ```
//!
//! Reservation files are the truth; `owners/` is an index so that DEL, CHECK and a repeated ADD find
//! an attachment's addresses by listing one small directory instead of reading every reservation.
//! Every address it yields is confirmed by reading the reservation file under the address's name.
//! A reservation's body is written to its index entry first, which is then hard-linked to the
//! address's name: `link` fails if the name exists, which is the exclusive create, a reservation
//! file never exists empty or half-written, and the index never misses a reservation we made, even
//! when a call is killed. Other writers (the reference plugin, people) can add reservations behind
//! the index: it is trusted only while `state` matches the network directory (device, inode, mtime
//! and ctime to the nanosecond) and the content of every cursor file it recorded (the reference
//! changes the directory on every ADD and DEL and rewrites a cursor on every ADD); otherwise it is
//! rebuilt by one full scan.
//!
//! Files are opened with O_NOFOLLOW or created with O_EXCL, symlinks in the store are never
//! followed, and nothing is written outside the network directory.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::alloc::Reservations;
use crate::error::{StoreError, StoreResult};
use crate::owner::Owner;

/// O_NOFOLLOW (not in std; its value differs between architectures).
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
))]
const O_NOFOLLOW: i32 = 0o100000;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
)))]
const O_NOFOLLOW: i32 = 0o400000;

/// O_NONBLOCK: opening a FIFO planted in the store must not wait for a writer (or reader).
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const O_NONBLOCK: i32 = 0o200;
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const O_NONBLOCK: i32 = 0o4000;

/// Flags for opening anything in the store: never through a symlink, never waiting on a FIFO.
const SAFE_OPEN: i32 = O_NOFOLLOW | O_NONBLOCK;

/// ELOOP: what opening a symlink with O_NOFOLLOW fails with.
const ELOOP: i32 = 40;

/// The default `dataDir`, as in the reference.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Where Linux publishes the current boot's random ID.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

const META: &str = ".sandbox-cni";
const STATE_HEADER: &str = "sandbox-cni host-local index v2";
const LOCK: &str = "lock";
const CURSOR_PREFIX: &str = "last_reserved_ip.";
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
}

impl Default for DiskOptions {
    fn default() -> Self {
        DiskOptions {
            lock_timeout: Duration::from_secs(30),
            reclaim_after_reboot: false,
            boot_id_path: PathBuf::from(BOOT_ID_PATH),
        }
    }
}

/// What opening the store did besides locking it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The index was rebuilt by a full scan.
    pub rebuilt: bool,
    /// Reservations released because they were made during an earlier boot.
    pub reclaimed: Vec<IpAddr>,
}

/// An open, locked store of one network. The lock is released when it is dropped; before that, the
/// index state is recorded if this operation changed anything.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    meta: PathBuf,
    _lock: File,
    /// `.sandbox-cni/state`, open for the whole operation.
    state: File,
    /// This operation changed the store: `state` is rewritten when it ends.
    changed: bool,
    /// Cursor contents known in this operation (read or written): recorded in `state`.
    cursors: BTreeMap<usize, String>,
    /// Stamps of the index buckets (`owners/<HH>`) as this store last left them: recorded in `state`.
    /// A bucket whose stamp differs was changed by someone else (a person, a cleanup script, the
    /// reference plugin's DEL), so its entries cannot be trusted to be complete.
    buckets: BTreeMap<usize, String>,
    /// Buckets this operation changed: their stamps are taken again when `state` is written.
    touched: Vec<usize>,
    /// An index entry holding a body that is not linked to an address yet (see `create_reservation`).
    pending: Option<(Owner, PathBuf)>,
    report: OpenReport,
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// Refuses `..` components: the store never writes outside the directory it was configured with.
fn check_no_parent(path: &Path, what: &str) -> StoreResult<()> {
    if path.as_os_str().is_empty() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: format!("{what} is empty"),
        });
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: format!("{what} must not contain '..' components"),
        });
    }
    Ok(())
}

/// Makes sure `path` is a real directory (creating it if missing), never a symlink to one.
fn ensure_dir(path: &Path) -> StoreResult<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => return Ok(()),
        Ok(_) => return check_real_dir(path),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(StoreError::io("cannot inspect", path)(e)),
    }
    match DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::io("cannot create directory", path)(e)),
    }
    check_real_dir(path)
}

fn check_real_dir(path: &Path) -> StoreResult<()> {
    let md = fs::symlink_metadata(path).map_err(StoreError::io("cannot inspect", path))?;
    if md.file_type().is_symlink() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: "is a symbolic link; the store never follows symlinks: replace it with a directory".into(),
        });
    }
    if !md.is_dir() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: "is not a directory".into(),
        });
    }
    Ok(())
}

/// Opens `opts` at `path` with [`SAFE_OPEN`] and makes sure it is a regular file.
fn open_regular(opts: &mut OpenOptions, path: &Path, what: &'static str) -> StoreResult<File> {
    let file = opts.custom_flags(SAFE_OPEN).open(path).map_err(|e| {
        if e.raw_os_error() == Some(ELOOP) {
            StoreError::Unsafe {
                path: path.to_owned(),
                why: "is a symbolic link; the store never follows symlinks: remove it".into(),
            }
        } else {
            StoreError::io(what, path)(e)
        }
    })?;
    let md = file.metadata().map_err(StoreError::io("cannot inspect", path))?;
    if !md.is_file() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why:
                "is not a regular file (a pipe, device or directory where the store keeps a file): remove it"
                    .into(),
        });
    }
    Ok(file)
}

/// Reads a small file without following a symlink; `None` when it does not exist.
fn read_small(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    let file = match open_regular(OpenOptions::new().read(true), path, "cannot open") {
        Ok(f) => f,
        Err(StoreError::Io { source, .. }) if is_not_found(&source) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    file.take(MAX_READ)
        .read_to_end(&mut buf)
        .map_err(StoreError::io("cannot read", path))?;
    Ok(Some(buf))
}

/// Opens (creating, mode 0600, never truncating) one of the store's own files for reading and writing.
fn open_store_file(path: &Path, what: &'static str) -> StoreResult<File> {
    open_regular(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600),
        path,
        what,
    )
}

/// The holder named by a reservation file; `None` when it is missing, unreadable, or not a regular
/// file (a pipe, link or directory with an address's name blocks the address for nobody).
fn read_body(path: &Path) -> StoreResult<Option<Owner>> {
    match read_small(path) {
        Ok(b) => Ok(b.and_then(|b| Owner::parse_body(&b))),
        Err(StoreError::Unsafe { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn remove_if_exists(path: &Path) -> StoreResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(StoreError::io("cannot remove", path)(e)),
    }
}

/// Creates `path` exclusively (O_EXCL: never through a symlink) holding `content`.
fn create_exclusive(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(SAFE_OPEN)
        .open(path)?;
    f.write_all(content)
}

/// Makes `to` a second name of the reservation file `from` (or, where hard links are not
/// supported, a copy of its body).
fn link_or_copy(from: &Path, to: &Path, owner: &Owner) -> std::io::Result<()> {
    match fs::hard_link(from, to) {
        Err(e) if matches!(e.raw_os_error(), Some(1 | 95 | 18)) => {
            create_exclusive(to, owner.body().as_bytes())
        }
        other => other,
    }
}

/// Writes `content` to `tmp`, then renames it over `dest`: readers see the old or the new content.
fn write_atomic(tmp: &Path, dest: &Path, content: &[u8]) -> StoreResult<()> {
    remove_if_exists(tmp)?;
    create_exclusive(tmp, content).map_err(StoreError::io("cannot write", tmp))?;
    fs::rename(tmp, dest).map_err(StoreError::io("cannot rename into place", dest))
}

fn lock_with_timeout(file: &File, path: &Path, timeout: Duration) -> StoreResult<()> {
    match file.try_lock() {
        Ok(()) => return Ok(()),
        Err(fs::TryLockError::WouldBlock) => {}
        Err(fs::TryLockError::Error(e)) => return Err(StoreError::io("cannot lock", path)(e)),
    }
    // Poll with a growing pause (50 us up to 2 ms): a holder keeps the lock for well under a
    // millisecond, and waiting without a helper thread keeps the binary small. flock has no timeout.
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_micros(50);
    loop {
        std::thread::sleep(pause);
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(StoreError::io("cannot lock", path)(e)),
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Locked {
                path: path.to_owned(),
                secs: timeout.as_secs(),
            });
        }
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// A directory's identity and change times, as recorded in `state`: any entry added or removed by
/// anyone changes them.
fn stamp_of(md: &fs::Metadata) -> String {
    format!(
        "{} {} {}.{:09} {}.{:09}",
        md.dev(),
        md.ino(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    )
}

/// The network directory's stamp line.
fn dir_stamp(dir: &Path) -> StoreResult<String> {
    let md = fs::symlink_metadata(dir).map_err(StoreError::io("cannot inspect", dir))?;
    Ok(format!("dir {}", stamp_of(&md)))
}

/// How a cursor file's content is recorded: the address, `-` when absent, `?` when unreadable.
fn cursor_token(content: Option<&[u8]>) -> String {
    match content {
        None => "-".into(),
        Some(b) => std::str::from_utf8(b)
            .ok()
            .map(str::trim)
            .filter(|s| s.parse::<IpAddr>().is_ok())
            .map_or_else(|| "?".into(), str::to_owned),
    }
}

/// The FNV-1a (64 bit) hash of an owner: id, NUL, ifname (0xff for a legacy owner).
fn owner_hash(o: &Owner) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tail: &[u8] = o.ifname.as_deref().map_or(&[0xff], str::as_bytes);
    for &b in o.id.as_bytes().iter().chain(&[0u8]).chain(tail) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where an owner's index entries live (`owners/<first 2 hex digits>`) and their name prefix
/// (`<16 hex digits>.`); an entry is `<prefix><address>`.
fn entry_location(owners: &Path, o: &Owner) -> (PathBuf, String) {
    let h = owner_hash(o);
    (owners.join(format!("{:02x}", bucket_of(o))), format!("{h:016x}."))
}

/// The index bucket (`owners/<HH>`) of an owner.
fn bucket_of(o: &Owner) -> usize {
    (owner_hash(o) >> 56) as usize
}

/// A directory entry name that is a reservation: a canonical address text.
fn reservation_name(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok().filter(|ip| ip.to_string() == name)
}

/// Every entry of a network directory's owner index: its address and the owner its body names,
/// sorted. Empty when the store has no index (a store only the reference plugin has used). Entries
/// whose body cannot be read are left out. Reads without taking the lock; for inspection only.
pub fn read_index_entries(network_dir: &Path) -> StoreResult<Vec<(IpAddr, Owner)>> {
    let owners = network_dir.join(META).join("owners");
    let buckets = match fs::read_dir(&owners) {
        Ok(b) => b,
        Err(e) if is_not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("cannot list", &owners)(e)),
    };
    let mut out = Vec::new();
    for bucket in buckets {
        let bucket = bucket.map_err(StoreError::io("cannot list", &owners))?;
        // Never through a symlink, and only the index's own bucket names.
        if !bucket.file_type().is_ok_and(|t| t.is_dir()) || bucket.file_name().len() != 2 {
            continue;
        }
        let sub = bucket.path();
        for entry in fs::read_dir(&sub).map_err(StoreError::io("cannot list", &sub))? {
            let entry = entry.map_err(StoreError::io("cannot list", &sub))?;
            let name = entry.file_name();
            let Some(ip) = name
                .to_str()
                .and_then(|n| n.split_once('.'))
                .and_then(|(_, addr)| reservation_name(addr))
            else {
                continue;
            };
            if let Some(owner) = read_body(&entry.path())? {
                out.push((ip, owner));
            }
        }
    }
    crate::sort_by_dyn(&mut out, &|a, b| a.cmp(b));
    Ok(out)
}

impl DiskStore {
    /// Opens (creating it if needed) and locks the store of `network` under `data_dir`.
    ///
    /// Then, with `reclaim_after_reboot`, if the store was last used during another boot, every
    /// reservation is released (all were made before this boot). A store never used by this plugin
    /// (no recorded boot) is left alone. Finally the index is checked and rebuilt when stale.
    pub fn open(data_dir: &Path, network: &str, opts: &DiskOptions) -> StoreResult<DiskStore> {
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
        if fs::symlink_metadata(&dir).is_err() {
            fs::create_dir_all(data_dir).map_err(StoreError::io("cannot create dataDir", data_dir))?;
        }
        ensure_dir(&dir)?;
        let lock_path = dir.join(LOCK);
        let lock = open_store_file(&lock_path, "cannot open the lock file")?;
        lock_with_timeout(&lock, &lock_path, opts.lock_timeout)?;
        // Checked again now that nobody else may change the store.
        check_real_dir(&dir)?;
        let meta = dir.join(META);
        ensure_dir(&meta)?;
        ensure_dir(&meta.join("owners"))?;
        let state_path = meta.join("state");
        let state = open_store_file(&state_path, "cannot open")?;
        let mut store = DiskStore {
            dir,
            meta,
            _lock: lock,
            state,
            changed: false,
            cursors: BTreeMap::new(),
            buckets: BTreeMap::new(),
            touched: Vec::new(),
            pending: None,
            report: OpenReport::default(),
        };
        store.boot_check(opts)?;
        if !store.report.rebuilt && !store.index_valid()? {
            store.rebuild(&mut |_, _| false)?;
        }
        Ok(store)
    }

    /// What opening did (rebuild, reclaimed reservations).
    pub fn report(&self) -> &OpenReport {
        &self.report
    }

    /// The network directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.meta.join(name)
    }

    fn reservation_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn cursor_path(&self, set: usize) -> PathBuf {
        self.dir.join(format!("{CURSOR_PREFIX}{set}"))
    }

    fn owners(&self) -> PathBuf {
        self.meta.join("owners")
    }

    /// Where the index entry of (owner, address) lives.
    pub fn entry_path(&self, o: &Owner, ip: IpAddr) -> PathBuf {
        let (dir, prefix) = entry_location(&self.owners(), o);
        dir.join(format!("{prefix}{ip}"))
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

    /// Whether `state` matches the directory and every cursor it recorded.
    fn index_valid(&mut self) -> StoreResult<bool> {
        let mut state = Vec::new();
        (&self.state)
            .take(MAX_READ)
            .read_to_end(&mut state)
            .map_err(StoreError::io("cannot read", &self.meta_path("state")))?;
        let Ok(state) = String::from_utf8(state) else {
            return Ok(false);
        };
        let mut lines = state.lines();
        if lines.next() != Some(STATE_HEADER) {
            return Ok(false);
        }
        if lines.next() != Some(dir_stamp(&self.dir)?.as_str()) {
            return Ok(false);
        }
        for line in lines {
            if line == "end" {
                return Ok(true);
            }
            if let Some(rest) = line.strip_prefix("bucket ") {
                let parsed = rest
                    .split_once(' ')
                    .and_then(|(b, st)| Some((usize::from_str_radix(b, 16).ok()?, st)));
                let Some((b, st)) = parsed else {
                    return Ok(self.forget());
                };
                self.buckets.insert(b, st.to_owned());
                continue;
            }
            let mut parts = line.split(' ');
            let (Some("cursor"), Some(Ok(set)), Some(token), None) = (
                parts.next(),
                parts.next().map(str::parse::<usize>),
                parts.next(),
                parts.next(),
            ) else {
                return Ok(false);
            };
            let now = cursor_token(read_small(&self.cursor_path(set))?.as_deref());
            if now != token {
                return Ok(self.forget());
            }
            self.cursors.insert(set, now);
        }
        // No `end` line: torn.
        Ok(self.forget())
    }

    /// Drops what a `state` found invalid had recorded; returns false (not valid).
    fn forget(&mut self) -> bool {
        self.cursors.clear();
        self.buckets.clear();
        false
    }

    /// Notes that `state` must be recorded again when this operation ends. (The index itself is
    /// consistent with our own changes at every instant; `state` only guards against other writers.)
    fn mark_changed(&mut self) {
        self.changed = true;
    }

    /// Notes that this operation changes `owner`'s index bucket.
    fn touch(&mut self, owner: &Owner) {
        self.changed = true;
        let b = bucket_of(owner);
        if !self.touched.contains(&b) {
            self.touched.push(b);
        }
    }

    /// Records what the index is valid for, in place; an `end` line closes it (an older, longer
    /// content may follow). A torn write (a kill) cannot validate content other than this one.
    fn write_state(&mut self) -> StoreResult<()> {
        use std::os::unix::fs::FileExt;
        let mut text = format!("{STATE_HEADER}\n{}\n", dir_stamp(&self.dir)?);
        for (set, token) in &self.cursors {
            text.push_str(&format!("cursor {set} {token}\n"));
        }
        let owners = self.owners();
        for b in std::mem::take(&mut self.touched) {
            match fs::symlink_metadata(owners.join(format!("{b:02x}"))) {
                Ok(md) => self.buckets.insert(b, stamp_of(&md)),
                Err(_) => self.buckets.remove(&b),
            };
        }
        for (b, st) in &self.buckets {
            text.push_str(&format!("bucket {b:02x} {st}\n"));
        }
        text.push_str("end\n");
        self.state
            .write_all_at(text.as_bytes(), 0)
            .map_err(StoreError::io("cannot write", &self.meta_path("state")))
    }

    /// Scans every reservation; those for which `drop_it(ip, owner)` is true are removed, the others
    /// make up the new index. Returns the removed addresses.
    fn rebuild(
        &mut self,
        drop_it: &mut dyn FnMut(IpAddr, Option<&Owner>) -> bool,
    ) -> StoreResult<Vec<IpAddr>> {
        self.mark_changed();
        let owners = self.owners();
        let fresh = self.meta.join("owners.new");
        let old = self.meta.join("owners.old");
        for d in [&fresh, &old] {
            match fs::remove_dir_all(d) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(StoreError::io("cannot remove", d.as_path())(e)),
            }
        }
        ensure_dir(&fresh)?;
        let mut removed = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(StoreError::io("cannot list", &self.dir))?;
        for entry in entries {
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
                let (sub, prefix) = entry_location(&fresh, &o);
                let entry = sub.join(format!("{prefix}{ip}"));
                match link_or_copy(&path, &entry, &o) {
                    Err(e) if is_not_found(&e) => {
                        ensure_dir(&sub)?;
                        link_or_copy(&path, &entry, &o).map_err(StoreError::io("cannot write", &entry))?;
                    }
                    other => other.map_err(StoreError::io("cannot write", &entry))?,
                }
            }
        }
        match fs::rename(&owners, &old) {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(StoreError::io("cannot rename", owners.as_path())(e)),
        }
        fs::rename(&fresh, &owners).map_err(StoreError::io("cannot rename into place", &owners))?;
        let _ = fs::remove_dir_all(&old);
        self.buckets.clear();
        self.touched.clear();
        for entry in fs::read_dir(&owners).map_err(StoreError::io("cannot list", &owners))? {
            let entry = entry.map_err(StoreError::io("cannot list", &owners))?;
            let bucket = entry
                .file_name()
                .to_str()
                .and_then(|n| usize::from_str_radix(n, 16).ok());
            if let (Some(b), Ok(md)) = (bucket, fs::symlink_metadata(entry.path())) {
                self.buckets.insert(b, stamp_of(&md));
            }
        }
        self.report.rebuilt = true;
        Ok(removed)
    }

    /// Creates the reservation file of `ip` with `owner`'s body, atomically; false if it exists.
    ///
    /// The body is written to the owner's index entry for `ip`, which is then hard-linked to the
    /// address's name: `link` fails if the name exists (the exclusive create), a reservation file
    /// never exists empty or half-written, and the index entry exists before the reservation does.
    /// When the address is taken, the entry is renamed to the next candidate's name.
    fn create_reservation(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        let entry = self.entry_path(owner, ip);
        self.touch(owner);
        let body = owner.body();
        match self.pending.take() {
            Some((o, from)) if &o == owner => {
                fs::rename(&from, &entry).map_err(StoreError::io("cannot rename", &from))?;
            }
            other => {
                if let Some((_, stale)) = other {
                    remove_if_exists(&stale)?;
                }
                if let Some(sub) = entry.parent() {
                    ensure_dir(sub)?;
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
        match fs::hard_link(&entry, &dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.pending = Some((owner.clone(), entry));
                Ok(false)
            }
            // File systems without hard links: the reference's exclusive create; the entry stays a copy.
            Err(e) if matches!(e.raw_os_error(), Some(1 | 95 | 18)) => {
                match create_exclusive(&dest, body.as_bytes()) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        self.pending = Some((owner.clone(), entry));
                        Ok(false)
                    }
                    Err(e) => Err(StoreError::io("cannot create reservation", &dest)(e)),
                }
            }
            Err(e) => {
                let _ = fs::remove_file(&entry);
                Err(StoreError::io("cannot create reservation", &dest)(e))
            }
        }
    }

    /// Every reservation: (address, holder) with `None` for unreadable bodies. A full scan.
    pub fn list(&self) -> StoreResult<Vec<(IpAddr, Option<Owner>)>> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(StoreError::io("cannot list", &self.dir))?;
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
        crate::sort_by_dyn(&mut out, &|a, b| a.cmp(b));
        Ok(out)
    }

    /// GC: releases every reservation whose holder `keep` rejects (unreadable bodies included) and
    /// rebuilds the index. Returns the released addresses with their holders.
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(&Owner) -> bool,
    ) -> StoreResult<Vec<(IpAddr, Option<Owner>)>> {
        let mut gone = Vec::new();
        self.rebuild(&mut |ip, o| {
            let drop_it = o.is_none_or(|o| !keep(o));
            if drop_it {
                gone.push((ip, o.cloned()));
            }
            drop_it
        })?;
        crate::sort_by_dyn(&mut gone, &|a, b| a.cmp(b));
        Ok(gone)
    }

    /// Releases `ip` whoever holds it (an operator's repair): the reservation file and, when its
    /// holder can be read, that holder's index entry. `None` when nothing reserves `ip`, else the holder
    /// the file named (`None` inside for an empty or unreadable file).
    pub fn release_address(&mut self, ip: IpAddr) -> StoreResult<Option<Option<Owner>>> {
        let path = self.reservation_path(ip);
        match fs::symlink_metadata(&path) {
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
        self.mark_changed();
        remove_if_exists(&path)?;
        Ok(Some(holder))
    }

    /// Whether the network directory accepts new files (used by STATUS).
    pub fn check_writable(&mut self) -> StoreResult<()> {
        let probe = self.meta_path("tmp-probe");
        remove_if_exists(&probe)?;
        create_exclusive(&probe, b"probe").map_err(StoreError::io("cannot write", &probe))?;
        remove_if_exists(&probe)
    }
}

impl Reservations for DiskStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        self.mark_changed();
        self.create_reservation(ip, owner)
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        let path = self.reservation_path(ip);
        let holder = read_body(&path)?;
        if holder.as_ref() != Some(owner) {
            return Ok(false);
        }
        self.mark_changed();
        self.touch(owner);
        remove_if_exists(&path)?;
        remove_if_exists(&self.entry_path(owner, ip))?;
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
        if let Some(token) = self.cursors.get(&set) {
            // Read (and verified) at open, or written by this operation.
            return Ok(token.parse().ok());
        }
        let content = read_small(&self.cursor_path(set))?;
        let token = cursor_token(content.as_deref());
        let ip = token.parse().ok();
        self.cursors.insert(set, token);
        Ok(ip)
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> StoreResult<()> {
        self.mark_changed();
        let text = ip.to_string();
        // In place, as the reference writes it, but overwritten rather than truncated first (cheaper:
        // no block is freed and allocated again). A torn cursor only moves where the round robin
        // resumes.
        let path = self.cursor_path(set);
        let f = open_store_file(&path, "cannot open")?;
        let overwrite = || -> std::io::Result<()> {
            use std::os::unix::fs::FileExt;
            f.write_all_at(text.as_bytes(), 0)?;
            f.set_len(text.len() as u64)
        };
        overwrite().map_err(StoreError::io("cannot write", &path))?;
        self.cursors.insert(set, text);
        Ok(())
    }

    fn held_by(&mut self, owner: &Owner) -> StoreResult<Vec<IpAddr>> {
        let (sub, prefix) = entry_location(&self.owners(), owner);
        let b = bucket_of(owner);
        // The bucket must be as this store left it; otherwise someone removed (or added) entries and
        // only a full scan can tell what this owner holds.
        let now = match fs::symlink_metadata(&sub) {
            Ok(md) => Some(stamp_of(&md)),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(StoreError::io("cannot inspect", &sub)(e)),
        };
        if !self.touched.contains(&b) && !self.report.rebuilt && now.as_ref() != self.buckets.get(&b) {
            self.rebuild(&mut |_, _| false)?;
            return self.held_by(owner);
        }
        // Stale entries are removed below: never through a symlinked directory.
        match now {
            None => return Ok(Vec::new()),
            Some(_) => check_real_dir(&sub)?,
        }
        let entries = match fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("cannot list", &sub)(e)),
        };
        let mut candidates = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StoreError::io("cannot list", &sub))?;
            let name = entry.file_name();
            if let Some(ip) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(reservation_name)
            {
                candidates.push((ip, entry.path()));
            }
        }
        let mut held = Vec::new();
        for (ip, entry) in candidates {
            // Only the reservation file itself counts; an entry that does not match it is stale.
            if self.owner_of(ip)?.as_ref() == Some(owner) {
                held.push(ip);
            } else if self.pending.as_ref().is_none_or(|(_, p)| *p != entry) {
                self.mark_changed();
                self.touch(owner);
                remove_if_exists(&entry)?;
            }
        }
        crate::sort_by_dyn(&mut held, &|a, b| a.cmp(b));
        Ok(held)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        if let Some((_, entry)) = self.pending.take() {
            let _ = fs::remove_file(entry);
        }
        if self.changed {
            // On failure `state` no longer matches and the next operation rebuilds the index.
            let _ = self.write_state();
        }
    }
}
