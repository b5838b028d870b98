//! Builders shared by the store's tests: addresses, a one-range set, and options whose boot ID
//! file lives in the test's directory.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipam_store::{DiskOptions, Range, RangeSet};

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One range set of one range: the whole of `subnet`.
pub(crate) fn set(subnet: &str) -> RangeSet {
    RangeSet::new(vec![
        Range::new(subnet.parse().unwrap(), None, None, None).unwrap(),
    ])
    .unwrap()
}

/// Options for a store under `dir`, with the default flat-index limit.
pub(crate) fn opts(dir: &Path) -> DiskOptions {
    opts_flat(dir, ipam_store::disk::DEFAULT_FLAT_LIMIT)
}

/// Options for a store under `dir`: the boot ID file `dir/boot_id` (written `boot-1` if missing), a
/// 5 s lock timeout, no reclaiming after a reboot, and the index flat up to `flat_limit` entries.
pub(crate) fn opts_flat(dir: &Path, flat_limit: usize) -> DiskOptions {
    let boot = dir.join("boot_id");
    if !boot.exists() {
        fs::write(&boot, "boot-1\n").unwrap();
    }
    DiskOptions {
        lock_timeout: Duration::from_secs(5),
        reclaim_after_reboot: false,
        boot_id_path: boot,
        flat_limit,
    }
}
