//! The runtime side's file access, with the rules the plugins' store follows: never through a
//! symlink at the last component (O_NOFOLLOW), never waiting on a FIFO (O_NONBLOCK), regular files
//! only, reads capped, new files created exclusively under a temporary name and renamed into place,
//! a file rewritten in place only while it has one name, and names checked before a path is built
//! from them. Private directories (the trace's, the result cache's) are checked the way ssh checks
//! `~/.ssh`: a real directory, owned by the user or root, writable by nobody else.
//!
//! Used by the result cache (`cni-runtime`), the trace reader and writer and the store inspection.
//! Errors are `std::io::Error`s whose text says what was refused and why.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{Error, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::oflags::{O_NOFOLLOW, O_NONBLOCK, is_symlink_refused};

/// Flags for every open: never through a symlink, never waiting on a FIFO.
pub const SAFE_OPEN: i32 = O_NOFOLLOW | O_NONBLOCK;

fn refused(path: &Path, why: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{}: {why}", path.display()))
}

/// Opens `opts` at `path` without following a symlink or waiting on a FIFO, and makes sure it is
/// a regular file. A symlink, pipe, device or directory is refused with an error saying so.
pub fn open_regular(opts: &mut OpenOptions, path: &Path) -> std::io::Result<(File, Metadata)> {
    let file = opts.custom_flags(SAFE_OPEN).open(path).map_err(|e| {
        if is_symlink_refused(&e) {
            refused(path, "is a symbolic link, which is never followed")
        } else {
            e
        }
    })?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(refused(
            path,
            "is not a regular file (a pipe, device or directory), so it is not read",
        ));
    }
    Ok((file, md))
}

/// Reads an open file to its end, refusing more than `cap` bytes.
pub(crate) fn read_capped(file: &File, cap: u64, path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{}: larger than {cap} bytes, so it is not read", path.display()),
        ));
    }
    Ok(buf)
}

/// Reads a regular file of at most `cap` bytes; `Ok(None)` when it does not exist.
pub fn read_file(path: &Path, cap: u64) -> std::io::Result<Option<Vec<u8>>> {
    match open_regular(OpenOptions::new().read(true), path) {
        Ok((f, _)) => read_capped(&f, cap, path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `dir/name` atomically: to a new file `dir/.name.<pid>.<n>.tmp` created
/// exclusively (O_EXCL, so never through a planted symlink or onto a planted file) with `mode`,
/// then renamed over `name`. Readers see the old or the new content, never a part.
pub fn replace(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    check_name(name)?;
    let mut n = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(SAFE_OPEN)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let done = f.write_all(bytes).and_then(|()| fs::rename(&tmp, dir.join(name)));
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

/// A name that is safe as one path component: not empty, not `.` or `..`, no `/` or NUL.
pub(crate) fn check_name(name: &str) -> std::io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// Why [`check_private_dir`] refused a directory: the message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateDirError {
    #[error(
        "{} is a symbolic link: refused (anyone who can change the link decides where the files go); replace it with a directory",
        .0.display()
    )]
    Symlink(PathBuf),
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error(
        "bad ownership of {p}: owned by uid {owner}, not by uid {euid} or root; remove it, or `chown {euid} {p}`",
        p = .path.display()
    )]
    Owner { path: PathBuf, owner: u32, euid: u32 },
    /// Group- or world-writable; `mode` holds the permission bits.
    #[error(
        "bad modes for {p}: {mode:04o} lets other users write into it; fix with `chmod 700 {p}`",
        p = .path.display()
    )]
    Writable { path: PathBuf, mode: u32 },
}

/// Checks a private directory as ssh checks `~/.ssh`: a real directory (not a symlink), owned by
/// `euid` or root, and neither group- nor world-writable.
pub fn check_private_dir(path: &Path, md: &Metadata, euid: u32) -> Result<(), PrivateDirError> {
    if md.file_type().is_symlink() {
        return Err(PrivateDirError::Symlink(path.to_owned()));
    }
    if !md.is_dir() {
        return Err(PrivateDirError::NotADirectory(path.to_owned()));
    }
    if md.uid() != euid && md.uid() != 0 {
        return Err(PrivateDirError::Owner {
            path: path.to_owned(),
            owner: md.uid(),
            euid,
        });
    }
    if md.permissions().mode() & 0o022 != 0 {
        return Err(PrivateDirError::Writable {
            path: path.to_owned(),
            mode: md.permissions().mode() & 0o7777,
        });
    }
    Ok(())
}

/// Replaces control characters (escape sequences, carriage returns, ...) with `?`, so that text
/// read from a file cannot drive the terminal it is printed on.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests;
