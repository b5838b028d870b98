//! The names of a store's files (the layout table of [`crate::disk`]): the one place that knows
//! them, for the store's own operations, the plugins' verdict and the read-only inspection.

use std::net::IpAddr;

/// The lock file every operation holds (`flock`).
pub(crate) const LOCK: &str = "lock";
/// Our directory beside the reservations.
pub(crate) const META: &str = ".sandbox-cni";
/// The owner index, under [`META`].
pub(crate) const OWNERS: &str = "owners";
/// The index's state (layout, seal, change times), under [`META`].
pub(crate) const STATE: &str = "state";
/// The first line of [`STATE`] in this version of the layout.
pub(crate) const STATE_HEADER: &str = "sandbox-cni host-local index v4";
/// The boot during which the store was last used, under [`META`].
pub(crate) const BOOT_ID: &str = "boot_id";
/// Scratch files under [`META`], written and renamed (`boot_id`) or removed (the STATUS probe).
pub(crate) const TMP_BOOT: &str = "tmp-boot";
pub(crate) const TMP_PROBE: &str = "tmp-probe";
/// Scratch trees under [`META`] while the index is rebuilt.
pub(crate) const OWNERS_NEW: &str = "owners.new";
pub(crate) const OWNERS_OLD: &str = "owners.old";
/// Round-robin cursor of range set N: `last_reserved_ip.N`.
const CURSOR_PREFIX: &str = "last_reserved_ip.";

/// The name of range set `set`'s cursor file.
pub(crate) fn cursor_name(set: usize) -> String {
    format!("{CURSOR_PREFIX}{set}")
}

/// The range set whose cursor a directory entry name is, if it is one.
pub(crate) fn cursor_set(name: &str) -> Option<usize> {
    name.strip_prefix(CURSOR_PREFIX)?.parse().ok()
}

/// A directory entry name that is a reservation: a canonical address text.
pub(crate) fn reservation_name(name: &str) -> Option<IpAddr> {
    name.parse::<IpAddr>().ok().filter(|ip| ip.to_string() == name)
}

/// The address a cursor file holds, if it holds one (surrounding white space ignored).
pub(crate) fn cursor_ip(content: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(content).ok()?.trim().parse().ok()
}
