//! CNI spec versions (SPEC.md "Version considerations"; libcni pkg/version).
//!
//! A request's `cniVersion` must match one of [`SUPPORTED`] exactly (`1.0` is not `1.0.0`); a missing
//! version means 0.1.0, as in libcni.

use std::fmt;

/// The spec versions every sandbox-cni plugin speaks, oldest first; this is the VERSION answer.
pub const SUPPORTED: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// One supported spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// The three result layouts the supported versions share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` objects.
    Legacy,
    /// 0.3.0, 0.3.1 and 0.4.0: `ips[]` entries carry `"version"`.
    V04,
    /// 1.0.0 and 1.1.0: `ips[]` without `"version"`; 1.1.0 adds interface and route fields.
    V1,
}

impl Version {
    pub const ALL: [Version; 7] = [
        Version::V0_1_0,
        Version::V0_2_0,
        Version::V0_3_0,
        Version::V0_3_1,
        Version::V0_4_0,
        Version::V1_0_0,
        Version::V1_1_0,
    ];

    /// Parses a version string exactly; the empty string is 0.1.0 (libcni's rule).
    pub fn parse(s: &str) -> Option<Version> {
        if s.is_empty() {
            return Some(Version::V0_1_0);
        }
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        SUPPORTED[self as usize]
    }

    pub(crate) fn layout(self) -> Layout {
        match self {
            Version::V0_1_0 | Version::V0_2_0 => Layout::Legacy,
            Version::V0_3_0 | Version::V0_3_1 | Version::V0_4_0 => Layout::V04,
            Version::V1_0_0 | Version::V1_1_0 => Layout::V1,
        }
    }

    /// CHECK exists since 0.4.0.
    pub(crate) fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// GC and STATUS exist since 1.1.0.
    pub(crate) fn has_gc_status(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_exact() {
        assert_eq!(Version::parse("1.0.0"), Some(Version::V1_0_0));
        assert_eq!(Version::parse(""), Some(Version::V0_1_0));
        for bad in ["1.0", "1.0.0-dev", "9.9.9", " 1.0.0", "v1.0.0"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_supported_string_round_trips() {
        for s in SUPPORTED {
            assert_eq!(Version::parse(s).map(Version::as_str), Some(s));
        }
    }

    #[test]
    fn verb_floors() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_gc_status());
        assert!(Version::V1_1_0.has_gc_status());
    }
}
