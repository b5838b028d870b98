//! The one version ordering (libcni pkg/version `ParseVersion`): one to three numeric parts, missing
//! parts are 0 (so "1.0" equals "1.0.0"), and the empty string is 0.1.0.

use std::cmp::Ordering;

use cni_core::env::Command;

/// The newest spec version this runtime implements (libcni 1.2 and later say the same).
pub const CURRENT: &str = "1.1.0";

/// A version string that is not one to three numbers separated by dots.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid version {version:?}: too many parts")]
    TooManyParts { version: String },
    #[error("invalid version {version:?}: {part:?} is not a number")]
    NotANumber { version: String, part: String },
    #[error("invalid version {version:?}: {part:?} is too large")]
    TooLarge { version: String, part: String },
}

/// `[major, minor, micro]` of a version string.
pub(crate) fn parse(v: &str) -> Result<[u32; 3], Error> {
    if v.is_empty() {
        return Ok([0, 1, 0]);
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() > 3 {
        return Err(Error::TooManyParts { version: v.into() });
    }
    let mut out = [0u32; 3];
    for (slot, part) in out.iter_mut().zip(&parts) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::NotANumber {
                version: v.into(),
                part: (*part).into(),
            });
        }
        *slot = part.parse().map_err(|_| Error::TooLarge {
            version: v.into(),
            part: (*part).into(),
        })?;
    }
    Ok(out)
}

/// Orders two version strings numerically.
pub fn compare(a: &str, b: &str) -> Result<Ordering, Error> {
    Ok(parse(a)?.cmp(&parse(b)?))
}

/// `v >= min`; an unparsable `v` is an error naming it.
pub fn at_least(v: &str, min: &str) -> Result<bool, Error> {
    Ok(compare(v, min)? != Ordering::Less)
}

/// Whether a list at version `v` has `command` (its [`Command::min_version`]); an unparsable `v` is
/// an error naming it.
pub fn has(v: &str, command: Command) -> Result<bool, Error> {
    at_least(v, command.min_version().as_str())
}

/// The version libcni 1.2+ runs a list at: the highest of `cniVersions` ∪ {`cniVersion`} that is not
/// newer than [`CURRENT`]; `cniVersion` as given (possibly "") when there is nothing else to choose.
pub(crate) fn select(cni_version: &str, cni_versions: Option<&[String]>) -> Result<String, Error> {
    let Some(list) = cni_versions else {
        return Ok(cni_version.to_string());
    };
    let mut best: Option<&str> = None;
    let candidates = list
        .iter()
        .map(String::as_str)
        .chain((!cni_version.is_empty()).then_some(cni_version));
    for v in candidates {
        if compare(v, CURRENT)? == Ordering::Greater {
            continue;
        }
        if best.is_none_or(|b| compare(v, b).is_ok_and(|o| o == Ordering::Greater)) {
            best = Some(v);
        }
    }
    Ok(best.unwrap_or(cni_version).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_equal_full_ones() {
        // Drift bug: one copy ordered "1.0" before "1.0.0".
        assert_eq!(compare("1.0", "1.0.0").unwrap(), Ordering::Equal);
        assert_eq!(compare("1", "1.0.0").unwrap(), Ordering::Equal);
        assert!(at_least("1.0", "1.0.0").unwrap());
        assert!(at_least("0.10.0", "0.4.0").unwrap());
        assert!(!at_least("0.3.1", "0.4.0").unwrap());
        assert_eq!(parse("").unwrap(), [0, 1, 0]);
    }

    #[test]
    fn verbs_have_their_floors() {
        assert!(!has("0.3.1", Command::Check).unwrap() && has("0.4.0", Command::Check).unwrap());
        assert!(!has("1.0.0", Command::Gc).unwrap() && has("1.1", Command::Status).unwrap());
        assert!(has("", Command::Add).unwrap());
        assert!(has("x", Command::Del).is_err());
    }

    #[test]
    fn junk_is_an_error() {
        for bad in ["1.0.0.0", "v1", "1.+0", "1..0", "a"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn select_picks_the_highest_supported() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(select("1.0.0", Some(&l(&["1.0.0", "1.1.0"]))).unwrap(), "1.1.0");
        assert_eq!(select("1.0.0", Some(&l(&["1.1.0", "9.9.9"]))).unwrap(), "1.1.0");
        assert_eq!(select("", Some(&l(&["0.4.0", "0.3.1"]))).unwrap(), "0.4.0");
        assert_eq!(select("1.0.0", Some(&l(&["2.0.0"]))).unwrap(), "1.0.0");
        assert_eq!(select("1.0.0", None).unwrap(), "1.0.0");
        assert_eq!(select("", None).unwrap(), "");
        assert!(select("1.0.0", Some(&l(&["x"]))).is_err());
    }
}
