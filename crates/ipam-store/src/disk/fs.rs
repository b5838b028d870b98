//! File-safety helpers of the store: never through a symlink, never waiting on a FIFO, never
//! writing outside the network directory; small bounded reads, exclusive creates, the lock and the
//! seal.

use std::fs::{self, DirBuilder, File, FileTimes, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use cni_core::oflags::is_symlink_refused;
// Flags for opening anything in the store: never through a symlink, never waiting on a FIFO (the
// rules of the runtime side's file layer, `cni_core::safefs`).
use cni_core::safefs::SAFE_OPEN;

use super::MAX_READ;
use crate::error::{StoreError, StoreResult};
use crate::owner::Owner;

pub(super) fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotFound
}

/// Refuses `..` components: the store never writes outside the directory it was configured with.
pub(super) fn check_no_parent(path: &Path, what: &str) -> StoreResult<()> {
    if path.as_os_str().is_empty() {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: format!("{what} is empty"),
        });
    }
    if crate::config::has_parent_component(path) {
        return Err(StoreError::Unsafe {
            path: path.to_owned(),
            why: format!("{what} must not contain '..' components"),
        });
    }
    Ok(())
}

/// Makes sure `path` is a real directory (creating it if missing), never a symlink to one.
pub(super) fn ensure_dir(path: &Path) -> StoreResult<()> {
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
pub(super) fn make_dir(path: &Path) -> StoreResult<()> {
    match DirBuilder::new().mode(0o755).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io("cannot create directory", path)(e)),
    }
}

pub(super) fn check_real_dir(path: &Path) -> StoreResult<()> {
    let md = fs::symlink_metadata(path).map_err(StoreError::io("cannot inspect", path))?;
    real_dir(path, &md)
}

pub(super) fn real_dir(path: &Path, md: &fs::Metadata) -> StoreResult<()> {
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

pub(super) fn symlink_error(path: &Path) -> StoreError {
    StoreError::Unsafe {
        path: path.to_owned(),
        why: "is a symbolic link; the store never follows symlinks: remove it (or replace it with what belongs there)".into(),
    }
}

/// Opens `opts` at `path` with [`SAFE_OPEN`]; a symlink is refused (never followed).
pub(super) fn open_safe(
    opts: &mut OpenOptions,
    path: &Path,
    what: &'static str,
) -> StoreResult<(File, fs::Metadata)> {
    let file = opts.custom_flags(SAFE_OPEN).open(path).map_err(|e| {
        if is_symlink_refused(&e) {
            symlink_error(path)
        } else {
            StoreError::io(what, path)(e)
        }
    })?;
    let md = file.metadata().map_err(StoreError::io("cannot inspect", path))?;
    Ok((file, md))
}

/// Opens `opts` at `path` with [`SAFE_OPEN`] and makes sure it is a regular file.
pub fn open_regular(
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
pub(super) fn open_dir(path: &Path) -> StoreResult<(File, fs::Metadata)> {
    let (file, md) = open_safe(OpenOptions::new().read(true), path, "cannot open")?;
    real_dir(path, &md)?;
    Ok((file, md))
}

/// Reads a small file whose length `len` is known, normally in one `read` (a short read of a
/// regular file is its end); at most [`MAX_READ`] bytes.
pub(super) fn read_open(mut file: &File, len: u64, path: &Path) -> StoreResult<Vec<u8>> {
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
pub fn read_small(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    let (file, md) = match open_regular(OpenOptions::new().read(true), path, "cannot open") {
        Ok(f) => f,
        Err(StoreError::Io { source, .. }) if is_not_found(&source) => return Ok(None),
        Err(e) => return Err(e),
    };
    read_open(&file, md.len(), path).map(Some)
}

/// Opens (creating, mode 0600, never truncating) one of the store's own files for reading and writing.
pub(super) fn open_store_file(path: &Path, what: &'static str) -> StoreResult<(File, fs::Metadata)> {
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

/// Opens one of the store's own files to be rewritten in place (created 0600 if missing). When it
/// has a second name (a hard link planted in the store to a file elsewhere), that name is removed
/// and the file created anew, exclusively: an in-place write never reaches another file.
pub(super) fn open_single_link(path: &Path) -> StoreResult<(File, fs::Metadata)> {
    let (file, md) = open_store_file(path, "cannot open")?;
    if md.nlink() == 1 {
        return Ok((file, md));
    }
    drop(file);
    remove_if_exists(path)?;
    open_regular(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600),
        path,
        "cannot create",
    )
}

/// The holder named by a reservation file; `None` when it is missing, unreadable, or not a regular
/// file (a pipe, link or directory with an address's name blocks the address for nobody).
pub fn read_body(path: &Path) -> StoreResult<Option<Owner>> {
    match read_small(path) {
        Ok(b) => Ok(b.and_then(|b| Owner::parse_body(&b))),
        Err(StoreError::Unsafe { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn remove_if_exists(path: &Path) -> StoreResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(StoreError::io("cannot remove", path)(e)),
    }
}

pub(super) fn remove_tree_if_exists(path: &Path) -> StoreResult<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(StoreError::io("cannot remove", path)(e)),
    }
}

/// Creates `path` exclusively (O_EXCL: never through a symlink) holding `content`.
pub(super) fn create_exclusive(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(SAFE_OPEN)
        .open(path)?;
    f.write_all(content)
}

/// Whether `link` failed because the file system makes no hard links here (EPERM, EACCES,
/// EOPNOTSUPP, EXDEV): the reference's exclusive create of a copy is used instead.
pub(super) fn no_hard_links(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::PermissionDenied | ErrorKind::Unsupported | ErrorKind::CrossesDevices
    )
}

/// Makes `to` a second name of the reservation file `from` (or, where hard links are not
/// supported, a copy of its body).
pub(super) fn link_or_copy(from: &Path, to: &Path, owner: &Owner) -> std::io::Result<()> {
    match fs::hard_link(from, to) {
        Err(e) if no_hard_links(&e) => create_exclusive(to, owner.body().as_bytes()),
        other => other,
    }
}

/// Writes `content` to `tmp`, then renames it over `dest`: readers see the old or the new content.
pub(super) fn write_atomic(tmp: &Path, dest: &Path, content: &[u8]) -> StoreResult<()> {
    remove_if_exists(tmp)?;
    create_exclusive(tmp, content).map_err(StoreError::io("cannot write", tmp))?;
    fs::rename(tmp, dest).map_err(StoreError::io("cannot rename into place", dest))
}

pub(super) fn lock_with_timeout(file: &File, path: &Path, timeout: Duration) -> StoreResult<()> {
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
pub(super) fn is_sealed(md: &fs::Metadata, seal: i64) -> bool {
    md.mtime() == seal && md.mtime_nsec() == 0
}

/// Sets an open directory's modification time to the seal (its access time is left alone).
pub(super) fn apply_seal(dir: &File, seal: i64) -> std::io::Result<()> {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(seal).unwrap_or(0));
    dir.set_times(FileTimes::new().set_modified(t))
}

/// Seals the directory at `path` (opened without following a symlink).
pub(super) fn seal_path(path: &Path, seal: i64) -> StoreResult<()> {
    let (f, _) = open_dir(path)?;
    apply_seal(&f, seal).map_err(StoreError::io("cannot set the modification time of", path))
}
