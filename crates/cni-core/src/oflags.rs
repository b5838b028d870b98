//! Linux `open(2)` flags and errno values that `std` does not name, per architecture.
//!
//! The plugins depend on no libc binding crate, so the few values they need are written out here,
//! once, for every Linux architecture whose value differs from the common one (x86, x86_64,
//! riscv, s390x, loongarch). Shared by the trace file, the host-local store and the host-local
//! `resolvConf` reader. Where `std::io::ErrorKind` has a stable kind for an errno, match on the
//! kind instead of adding the number here.

const MIPS: bool = cfg!(any(target_arch = "mips", target_arch = "mips64"));
const SPARC: bool = cfg!(any(target_arch = "sparc", target_arch = "sparc64"));

/// O_NOFOLLOW: fail with [`ELOOP`] instead of following a symlink at the last path component.
pub(crate) const O_NOFOLLOW: i32 = if cfg!(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "m68k",
    target_arch = "powerpc",
    target_arch = "powerpc64"
)) {
    0o100000
} else {
    0o400000
};

/// O_NONBLOCK: opening a FIFO does not wait for its other end.
pub const O_NONBLOCK: i32 = if MIPS {
    0o200
} else if SPARC {
    0o40000
} else {
    0o4000
};

/// ELOOP: what opening a symlink with [`O_NOFOLLOW`] fails with. (Its `ErrorKind`,
/// `FilesystemLoop`, is not stable.)
pub(crate) const ELOOP: i32 = if MIPS {
    90
} else if SPARC {
    62
} else {
    40
};

/// Whether `e` is the error of opening a symlink with `O_NOFOLLOW`.
pub fn is_symlink_refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(ELOOP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::OpenOptionsExt;

    #[test]
    fn nofollow_refuses_a_symlink_with_eloop() {
        let dir = std::env::temp_dir().join(format!("cni-core-oflags-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("target"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.join("target"), dir.join("link")).unwrap();
        let err = OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW | O_NONBLOCK)
            .open(dir.join("link"))
            .unwrap_err();
        assert!(is_symlink_refused(&err), "{err:?}");
        // The real file opens with the same flags.
        OpenOptions::new()
            .read(true)
            .custom_flags(O_NOFOLLOW | O_NONBLOCK)
            .open(dir.join("target"))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
