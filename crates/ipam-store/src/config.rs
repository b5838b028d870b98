//! host-local's configuration (mirrors plugins/ipam/host-local/backend/allocator/config.go): the one
//! reader of `dataDir`, `reclaimAfterReboot` and the range sets, for the plugin and for
//! `k3s-sandbox ipam` alike, so that the CLI never reads a store from a configuration the plugin
//! refuses.
//!
//! Range sets come from `runtimeConfig.ipRanges` (capability `ipRanges`), then the legacy
//! `ipam.subnet`/`rangeStart`/`rangeEnd`/`gateway` form, then `ipam.ranges`, in that order; the
//! position in that merged list is the range set's index (and names its cursor file). Range keys are
//! matched case-insensitively, as Go's JSON decoding does (containerd sends `Subnet`, `RangeStart`...).
//! The JSON is read through cni-core's field reader; its type errors pass through unchanged
//! ([`ConfigError::Field`]), every other problem is a variant of its own whose text is the plugin's
//! message (code 7).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cni_core::config::describe;
use cni_core::result::parse_cidr;
use cni_core::{CniError, Fields, Version};

use crate::disk::DEFAULT_DATA_DIR;
use crate::range::{Range, RangeError, RangeSet, SetError};

/// A host-local configuration the plugin refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key of the wrong JSON type, as cni-core's field reader words it (its code and message).
    #[error(transparent)]
    Field(#[from] CniError),
    /// The configuration has no `ipam` object.
    #[error("IPAM config missing 'ipam' key")]
    NoIpam,
    /// `dataDir` runs through a `..` component.
    #[error("ipam.dataDir {0:?} must not contain '..': give the directory's plain path")]
    DataDirParent(String),
    /// A range key (matched case-insensitively) that is not a string; `key` is its full name.
    #[error("{key} must be a string, got {found}")]
    NotAString { key: String, found: String },
    /// `rangeStart`, `rangeEnd` or `gateway` is not an address.
    #[error("{key}: {value:?} is not an IP address")]
    NotAnAddress { key: String, value: String },
    /// A range without a subnet; the full name of its `subnet` key.
    #[error("{0} is missing: every range needs a subnet")]
    NoSubnet(String),
    /// A subnet that is not in CIDR notation.
    #[error("{key}: {why}")]
    BadSubnet { key: String, why: String },
    /// A range the store cannot use ([`Range::new`]'s checks); `key` names the offending key.
    #[error("{key}: {}", .error.msg)]
    BadRange { key: String, error: RangeError },
    /// An item of `ranges` or `ipRanges` that is not a list.
    #[error("{label} must be a list of range objects, got {found}")]
    SetNotAList { label: String, found: String },
    /// A range that is not an object.
    #[error("{label}[{item}] must be an object with a subnet, got {found}")]
    RangeNotAnObject {
        label: String,
        item: usize,
        found: String,
    },
    /// Neither `ranges`, `subnet` nor `ipRanges`.
    #[error(
        "no IP ranges specified: set ipam.ranges (a list of range sets, each a list of {{\"subnet\": ...}}) or ipam.subnet"
    )]
    NoRanges,
    /// A range set the store cannot use ([`RangeSet::new`]'s checks).
    #[error("invalid range set {set} ({label}): {error}")]
    BadSet {
        set: usize,
        label: String,
        error: SetError,
    },
    /// Two range sets share addresses.
    #[error(
        "range set {first} ({first_label}) overlaps with {second} ({second_label}): range sets must not share addresses"
    )]
    SetsOverlap {
        first: usize,
        first_label: String,
        second: usize,
        second_label: String,
    },
    /// More than one range set of a family before CNI 0.3.0.
    #[error(
        "CNI version {0} does not support more than 1 address per family: use cniVersion 0.3.0 or later, or one range set per family"
    )]
    TooManyForVersion(&'static str),
}

/// Where the store lives: all DEL and GC need, so that they work even when the ranges of the
/// configuration have become invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// `dataDir` (the reference's default when absent or empty).
    pub data_dir: PathBuf,
    pub reclaim_after_reboot: bool,
}

/// The range sets of a configuration, in the order that numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSets {
    pub sets: Vec<RangeSet>,
    /// Where each set came from, e.g. `ipam.ranges[1]`, for messages.
    pub labels: Vec<String>,
}

/// The `ipam` object of a plugin configuration `conf`.
pub fn ipam<'a>(conf: &Fields<'a>) -> Result<Fields<'a>, ConfigError> {
    conf.object("ipam")?.ok_or(ConfigError::NoIpam)
}

/// Whether `path` has a `..` component (the store never writes outside the directory it was given).
pub(crate) fn has_parent_component(path: &Path) -> bool {
    path.components().any(|c| c == std::path::Component::ParentDir)
}

/// `dataDir` and `reclaimAfterReboot` of an `ipam` object.
pub fn store_settings(ipam: &Fields) -> Result<StoreSettings, ConfigError> {
    let data_dir = match ipam.string("dataDir")? {
        None => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) if d.is_empty() => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) if has_parent_component(Path::new(&d)) => return Err(ConfigError::DataDirParent(d)),
        Some(d) => PathBuf::from(d),
    };
    let reclaim_after_reboot = ipam.bool("reclaimAfterReboot")?.unwrap_or(false);
    Ok(StoreSettings {
        data_dir,
        reclaim_after_reboot,
    })
}

/// A string key matched case-insensitively: (its full name, its value); an empty string is absent.
fn ci_string<'a>(f: &Fields<'a>, key: &str) -> Result<Option<(String, &'a str)>, ConfigError> {
    let Some((k, v)) = f.get_ci(key) else {
        return Ok(None);
    };
    match v.as_str() {
        Some("") => Ok(None),
        Some(s) => Ok(Some((f.name(k), s))),
        None => Err(ConfigError::NotAString {
            key: f.name(k),
            found: describe(v),
        }),
    }
}

fn ci_ip(f: &Fields, key: &str) -> Result<Option<IpAddr>, ConfigError> {
    let Some((key, s)) = ci_string(f, key)? else {
        return Ok(None);
    };
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(Some(ip)),
        Err(_) => Err(ConfigError::NotAnAddress {
            key,
            value: s.to_owned(),
        }),
    }
}

/// One range object (`f` names it in messages).
fn range(f: &Fields) -> Result<Range, ConfigError> {
    let Some((key, s)) = ci_string(f, "subnet")? else {
        return Err(ConfigError::NoSubnet(f.name("subnet")));
    };
    let subnet = parse_cidr(s).map_err(|why| ConfigError::BadSubnet {
        key,
        why: why.to_string(),
    })?;
    Range::new(
        subnet,
        ci_ip(f, "rangeStart")?,
        ci_ip(f, "rangeEnd")?,
        ci_ip(f, "gateway")?,
    )
    .map_err(|error| ConfigError::BadRange {
        key: f.name(error.field.key()),
        error,
    })
}

/// A list of range sets (`ranges` or `ipRanges`), labelled `path[i]`: a list of lists of range objects.
fn list_of_sets(
    f: &Fields,
    key: &str,
    path: &str,
    out: &mut Vec<(String, Vec<Range>)>,
) -> Result<(), ConfigError> {
    let Some(list) = f.array_ci(key)? else {
        return Ok(());
    };
    for (i, set) in list.iter().enumerate() {
        let label = format!("{path}[{i}]");
        let Some(items) = set.as_array() else {
            return Err(ConfigError::SetNotAList {
                label,
                found: describe(set),
            });
        };
        let mut ranges = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let Some(obj) = item.as_object() else {
                return Err(ConfigError::RangeNotAnObject {
                    label,
                    item: j,
                    found: describe(item),
                });
            };
            ranges.push(range(&Fields::new(obj, format!("{label}[{j}].")))?);
        }
        out.push((label, ranges));
    }
    Ok(())
}

/// The range sets of an `ipam` object and the `runtimeConfig` beside it, validated as the plugin
/// does for a request of CNI `version`.
pub fn range_sets(
    ipam: &Fields,
    runtime_config: &Fields,
    version: Version,
) -> Result<RangeSets, ConfigError> {
    let mut raw: Vec<(String, Vec<Range>)> = Vec::new();
    list_of_sets(runtime_config, "ipRanges", "runtimeConfig.ipRanges", &mut raw)?;
    if ipam.get_ci("subnet").is_some() {
        raw.push(("ipam".to_owned(), vec![range(ipam)?]));
    }
    list_of_sets(ipam, "ranges", "ipam.ranges", &mut raw)?;
    if raw.is_empty() {
        return Err(ConfigError::NoRanges);
    }
    let mut sets: Vec<RangeSet> = Vec::with_capacity(raw.len());
    let mut labels: Vec<String> = Vec::with_capacity(raw.len());
    for (n, (label, ranges)) in raw.into_iter().enumerate() {
        let set = match RangeSet::new(ranges) {
            Ok(s) => s,
            Err(error) => return Err(ConfigError::BadSet { set: n, label, error }),
        };
        if let Some(m) = sets.iter().position(|s| s.overlaps(&set)) {
            return Err(ConfigError::SetsOverlap {
                first: m,
                first_label: std::mem::take(&mut labels[m]),
                second: n,
                second_label: label,
            });
        }
        sets.push(set);
        labels.push(label);
    }
    if version < Version::V0_3_0 {
        let v4 = sets.iter().filter(|s| s.is_ipv4()).count();
        if v4 > 1 || sets.len() - v4 > 1 {
            return Err(ConfigError::TooManyForVersion(version.as_str()));
        }
    }
    Ok(RangeSets { sets, labels })
}
