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

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
/// ENOTDIR: a path runs through a file.
const ENOTDIR: i32 = 20;

/// The default `dataDir`, as in the reference.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
/// Where Linux publishes the current boot's random ID.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Up to this many index entries the index is one flat directory; beyond, 256 buckets.
pub const DEFAULT_FLAT_LIMIT: usize = 256;

const META: &str = ".sandbox-cni";
const OWNERS: &str = "owners";
const STATE_HEADER: &str = "sandbox-cni host-local index v3";
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
    make_dir(path)?;
    check_real_dir(path)
}

/// Creates a directory (mode 0755); one that exists already is fine.
fn make_dir(path: &Path) -> StoreResult<()> {
    match DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io("cannot create directory", path)(e)),
    }
}

fn check_real_dir(path: &Path) -> StoreResult<()> {
    let md = fs::symlink_metadata(path).map_err(StoreError::io("cannot inspect", path))?;
    real_dir(path, &md)
}

fn real_dir(path: &Path, md: &fs::Metadata) -> StoreResult<()> {
    if md.file_type().is_symlink() {
        return Err(symlink_error(path));
    }
    if !md.is_dir() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: "is not a directory".into(),
        });
    }
    Ok(())
}

fn symlink_error(path: &Path) -> StoreError {
    StoreError::Unsafe {
        path: path.to_owned(),
        why: "is a symbolic link; the store never follows symlinks: remove it (or replace it with what belongs there)".into(),
    }
}

/// Opens `opts` at `path` with [`SAFE_OPEN`]; a symlink is refused (never followed).
fn open_safe(opts: &mut OpenOptions, path: &Path, what: &'static str) -> StoreResult<(File, fs::Metadata)> {
    let file = opts.custom_flags(SAFE_OPEN).open(path).map_err(|e| {
        if e.raw_os_error() == Some(ELOOP) {
            symlink_error(path)
        } else {
            StoreError::io(what, path)(e)
        }
    })?;
    let md = file.metadata().map_err(StoreError::io("cannot inspect", path))?;
    Ok((file, md))
}

/// Opens `opts` at `path` with [`SAFE_OPEN`] and makes sure it is a regular file.
fn open_regular(
    opts: &mut OpenOptions,
    path: &Path,
    what: &'static str,
) -> StoreResult<(File, fs::Metadata)> {
    let (file, md) = open_safe(opts, path, what)?;
    if !md.is_file() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why:
                "is not a regular file (a pipe, device or directory where the store keeps a file): remove it"
                    .into(),
        });
    }
    Ok((file, md))
}

/// Opens a directory of the store (never through a symlink at its last component).
fn open_dir(path: &Path) -> StoreResult<(File, fs::Metadata)> {
    let (file, md) = open_safe(OpenOptions::new().read(true), path, "cannot open")?;
    real_dir(path, &md)?;
    Ok((file, md))
}

/// Reads a small file whose length `len` is known, normally in one `read` (a short read of a
/// regular file is its end); at most [`MAX_READ`] bytes.
fn read_open(mut file: &File, len: u64, path: &Path) -> StoreResult<Vec<u8>> {
    // One byte more than the length, to see the end in the same read; /proc files report 0.
    let mut buf = vec![0u8; len.clamp(63, MAX_READ) as usize + 1];
    let mut got = 0;
    loop {
        let n = file
            .read(&mut buf[got..])
            .map_err(StoreError::io("cannot read", path))?;
        got += n;
        if n == 0 || got < buf.len() || got as u64 >= MAX_READ {
            break;
        }
        buf.resize((got * 2).min(MAX_READ as usize), 0);
    }
    buf.truncate(got.min(MAX_READ as usize));
    Ok(buf)
}

/// Reads a small file without following a symlink; `None` when it does not exist.
fn read_small(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    let (file, md) = match open_regular(OpenOptions::new().read(true), path, "cannot open") {
        Ok(f) => f,
        Err(StoreError::Io { source, .. }) if is_not_found(&source) => return Ok(None),
        Err(e) => return Err(e),
    };
    read_open(&file, md.len(), path).map(Some)
}

/// Opens (creating, mode 0600, never truncating) one of the store's own files for reading and writing.
fn open_store_file(path: &Path, what: &'static str) -> StoreResult<(File, fs::Metadata)> {
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

fn remove_tree_if_exists(path: &Path) -> StoreResult<()> {
    match fs::remove_dir_all(path) {
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

/// Whether a directory carries the seal: a modification time of exactly `seal` seconds.
fn is_sealed(md: &fs::Metadata, seal: i64) -> bool {
    md.mtime() == seal && md.mtime_nsec() == 0
}

/// Sets an open directory's modification time to the seal (its access time is left alone).
fn apply_seal(dir: &File, seal: i64) -> std::io::Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(seal).unwrap_or(0));
    dir.set_times(FileTimes::new().set_modified(t))
}

/// Seals the directory at `path` (opened without following a symlink).
fn seal_path(path: &Path, seal: i64) -> StoreResult<()> {
    let (f, _) = open_dir(path)?;
    apply_seal(&f, seal).map_err(StoreError::io("cannot set the modification time of", path))
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

/// The name of an index entry: `<16 hex digits of the owner's hash>.<address>`.
fn entry_name(o: &Owner, ip: IpAddr) -> String {
    format!("{:016x}.{ip}", owner_hash(o))
}

/// The index directory holding an owner's entries under `owners`.
fn index_dir_of(owners: &Path, layout: Layout, o: &Owner) -> PathBuf {
    match layout {
        Layout::Flat => owners.to_owned(),
        Layout::Buckets => owners.join(format!("{:02x}", owner_hash(o) >> 56)),
    }
}

/// A directory entry name that is a reservation: a canonical address text.
fn reservation_name(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok().filter(|ip| ip.to_string() == name)
}

/// An index entry name `<16 hex digits>.<address>`: (hash, address).
fn parse_entry_name(name: &str) -> Option<(u64, IpAddr)> {
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
        Err(e) if is_not_found(&e) || e.raw_os_error() == Some(ENOTDIR) => return Ok(Vec::new()),
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
    crate::sort_by_dyn(&mut out, &|a, b| a.cmp(b));
    Ok(out)
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

    fn open_inner(
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
                if is_not_found(&source) || source.raw_os_error() == Some(ENOTDIR) =>
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
        self.meta.join(OWNERS)
    }

    /// Where the index entry of (owner, address) lives.
    pub fn entry_path(&self, o: &Owner, ip: IpAddr) -> PathBuf {
        index_dir_of(&self.owners(), self.layout, o).join(entry_name(o, ip))
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
    fn write_state(&mut self) -> StoreResult<()> {
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

    /// The index directory of `o`, checked: found as this plugin sealed it (otherwise someone
    /// removed or added entries, and the index is rebuilt first).
    fn index_dir(&mut self, o: &Owner) -> StoreResult<PathBuf> {
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
    fn touch(&mut self, d: &Path) {
        if !self.touched.iter().any(|t| t == d) {
            self.touched.push(d.to_owned());
        }
    }

    /// Scans every reservation; those for which `drop_it(ip, owner)` is true are removed, the others
    /// make up the new index (flat below `flat_limit` reservations, else in 256 buckets, all created
    /// here so that no ADD ever creates a directory). Then seals every directory and records the
    /// seal. Returns the removed addresses.
    fn rebuild(
        &mut self,
        drop_it: &mut dyn FnMut(IpAddr, Option<&Owner>) -> bool,
    ) -> StoreResult<Vec<IpAddr>> {
        // Until the new state is written, no kill can leave a state that validates a half-built index.
        let state_path = self.meta_path("state");
        self.state
            .set_len(0)
            .map_err(StoreError::io("cannot write", &state_path))?;
        let owners = self.owners();
        let fresh = self.meta.join("owners.new");
        let old = self.meta.join("owners.old");
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
        match fs::hard_link(&entry, &dest) {
            Ok(()) => {
                self.dir_changed = true;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.pending = Some((owner.clone(), entry));
                Ok(false)
            }
            // File systems without hard links: the reference's exclusive create; the entry stays a copy.
            Err(e) if matches!(e.raw_os_error(), Some(1 | 95 | 18)) => {
                match create_exclusive(&dest, body.as_bytes()) {
                    Ok(()) => {
                        self.dir_changed = true;
                        Ok(true)
                    }
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
        self.dir_changed = true;
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

/// The address a cursor file holds, if it holds one (surrounding white space ignored).
fn cursor_ip(content: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(content).ok()?.trim().parse().ok()
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
            Err(StoreError::Io { source, .. }) if matches!(source.raw_os_error(), Some(13 | 30)) => {
                open_regular(OpenOptions::new().read(true), &path, "cannot open")
            }
            other => other,
        };
        let cursor = match opened {
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
            c.file = Some(open_store_file(&path, "cannot open")?.0);
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
        crate::sort_by_dyn(&mut held, &|a, b| a.cmp(b));
        Ok(held)
    }
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        if let Some((_, entry)) = self.pending.take() {
            let _ = fs::remove_file(entry);
        }
        // Every directory this operation changed gets the seal back; one left unsealed (a failure
        // here, a kill before) makes the next operation rebuild the index.
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
    }
}
