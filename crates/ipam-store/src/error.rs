//! Store and allocation errors. The plugin maps each variant to a CNI error code.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::owner::Owner;

/// Everything that can go wrong in the store or the allocator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something in the store is not what it must be (a symlink, a file where a directory belongs).
    #[error("{}: {why}", path.display())]
    Unsafe { path: PathBuf, why: String },
    /// The store's lock was not released in time by another process.
    #[error("the store lock {} is held by another process; gave up after {secs} s", path.display())]
    Locked { path: PathBuf, secs: u64 },
    /// No free address in a range set (the reference's text, which alerts match on).
    #[error("failed to allocate for range {set}: no IP addresses available in range set: {ranges}")]
    Exhausted { set: usize, ranges: String, size: u128 },
    /// A requested address is taken.
    #[error(
        "failed to allocate for range {set}: requested IP address {ip} is not available in range set {ranges}: it is reserved by {}",
        owner.as_ref().map_or_else(|| "a reservation file with no readable owner".to_owned(), |o| o.to_string())
    )]
    Taken {
        set: usize,
        ip: IpAddr,
        ranges: String,
        owner: Option<Owner>,
    },
    /// A requested address may never be handed out (gateway, network or broadcast address).
    #[error("failed to allocate for range {set}: requested ip {ip} is {why}")]
    NotAllocatable {
        set: usize,
        ip: IpAddr,
        why: &'static str,
    },
    /// Requested addresses that fall in no range set, or several in one set.
    #[error("failed to allocate all requested IPs: {}", join(.0))]
    Unmatched(Vec<IpAddr>),
    /// The attachment already holds another address in the set the requested one belongs to.
    #[error(
        "failed to allocate for range {set}: requested IP address {requested} differs from {held}, which this attachment already holds in that range set"
    )]
    HoldsOther {
        set: usize,
        requested: IpAddr,
        held: IpAddr,
    },
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

impl StoreError {
    /// The `map_err` adapter of a failed file system operation: `op` on `path` failed. The path is
    /// copied only when the operation has failed.
    pub(crate) fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
        move |source| io_error(op, path, source)
    }
}

/// Not generic and out of line: one copy of the error-building code for every call site.
#[cold]
#[inline(never)]
fn io_error(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
