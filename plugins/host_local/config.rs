//! host-local's configuration (mirrors plugins/ipam/host-local/backend/allocator/config.go).
//!
//! Range sets come from `runtimeConfig.ipRanges` (capability `ipRanges`), then the legacy
//! `ipam.subnet`/`rangeStart`/`rangeEnd`/`gateway` form, then `ipam.ranges`, in that order; the
//! position in that merged list is the range set's index (and names its cursor file). Range keys are
//! matched case-insensitively, as Go's JSON decoding does (containerd sends `Subnet`, `RangeStart`...).
//! Requested addresses come from CNI_ARGS `IP=` (a comma list), `args.cni.ips` and `runtimeConfig.ips`.

use std::net::IpAddr;
use std::path::{Component, PathBuf};

use cni_core::args::CniArgs;
use cni_core::result::parse_cidr;
use cni_core::{CniError, CniResult, Fields, Request, Route, Version};
use ipam_store::disk::DEFAULT_DATA_DIR;
use ipam_store::{Range, RangeSet};
use ipnetwork::IpNetwork;
use serde_json::Value;

/// What host-local needs from the request.
#[derive(Debug, Clone)]
pub struct IpamConf {
    pub sets: Vec<RangeSet>,
    /// Where each set came from, e.g. `ipam.ranges[1]`, for messages.
    pub labels: Vec<String>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
    pub reclaim_after_reboot: bool,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(msg)
}

/// The `ipam` object, or the reference's message when it is missing.
fn ipam<'a>(req: &'a Request) -> CniResult<Fields<'a>> {
    req.conf
        .fields()
        .object("ipam")?
        .ok_or_else(|| invalid("IPAM config missing 'ipam' key"))
}

/// `dataDir` and `reclaimAfterReboot` only: all DEL and GC need, so that they work even when the
/// ranges of the configuration have become invalid.
pub fn store_settings(req: &Request) -> CniResult<(PathBuf, bool)> {
    let ipam = ipam(req)?;
    let data_dir = match ipam.string("dataDir")? {
        None => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) if d.is_empty() => PathBuf::from(DEFAULT_DATA_DIR),
        Some(d) => {
            let p = PathBuf::from(&d);
            if p.components().any(|c| c == Component::ParentDir) {
                return Err(invalid(format!(
                    "ipam.dataDir {d:?} must not contain '..': give the directory's plain path"
                )));
            }
            p
        }
    };
    let reclaim = ipam.bool("reclaimAfterReboot")?.unwrap_or(false);
    Ok((data_dir, reclaim))
}

fn ci_string(f: &Fields, key: &str) -> CniResult<Option<(String, String)>> {
    match f.get_ci(key) {
        None => Ok(None),
        Some((_, Value::String(s))) if s.is_empty() => Ok(None),
        Some((k, Value::String(s))) => Ok(Some((f.name(k), s.clone()))),
        Some((k, v)) => Err(invalid(format!(
            "{} must be a string, got {}",
            f.name(k),
            cni_core::config::describe(v)
        ))),
    }
}

fn ci_ip(f: &Fields, key: &str) -> CniResult<Option<IpAddr>> {
    ci_string(f, key)?
        .map(|(name, s)| {
            s.parse::<IpAddr>()
                .map_err(|_| invalid(format!("{name}: {s:?} is not an IP address")))
        })
        .transpose()
}

/// One range object (`f` names it in messages).
fn range(f: &Fields) -> CniResult<Range> {
    let (name, s) = ci_string(f, "subnet")?.ok_or_else(|| {
        invalid(format!(
            "{} is missing: every range needs a subnet",
            f.name("subnet")
        ))
    })?;
    let subnet = parse_cidr(&s).map_err(|e| invalid(format!("{name}: {e}")))?;
    Range::new(
        subnet,
        ci_ip(f, "rangeStart")?,
        ci_ip(f, "rangeEnd")?,
        ci_ip(f, "gateway")?,
    )
    .map_err(|e| invalid(format!("{}: {}", f.name(e.field.key()), e.msg)))
}

/// A list of range sets (`ranges` or `ipRanges`): a list of lists of range objects.
fn range_sets(list: &[Value], path: &str, out: &mut Vec<(String, Vec<Range>)>) -> CniResult<()> {
    for (i, set) in list.iter().enumerate() {
        let label = format!("{path}[{i}]");
        let Value::Array(items) = set else {
            return Err(invalid(format!(
                "{label} must be a list of range objects, got {}",
                cni_core::config::describe(set)
            )));
        };
        let mut ranges = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let Value::Object(obj) = item else {
                return Err(invalid(format!(
                    "{label}[{j}] must be an object with a subnet, got {}",
                    cni_core::config::describe(item)
                )));
            };
            ranges.push(range(&Fields::new(obj, format!("{label}[{j}].")))?);
        }
        out.push((label, ranges));
    }
    Ok(())
}

/// Parses and validates the whole IPAM configuration.
pub fn parse(req: &Request) -> CniResult<IpamConf> {
    let ipam = ipam(req)?;
    let (data_dir, reclaim_after_reboot) = store_settings(req)?;
    let mut raw_sets: Vec<(String, Vec<Range>)> = Vec::new();
    let rc = req.conf.runtime_config()?;
    if let Some(list) = rc.array_ci("ipRanges")? {
        range_sets(list, "runtimeConfig.ipRanges", &mut raw_sets)?;
    }
    if ipam.get_ci("subnet").is_some() {
        raw_sets.push(("ipam".to_owned(), vec![range(&ipam)?]));
    }
    if let Some(list) = ipam.array_ci("ranges")? {
        range_sets(list, "ipam.ranges", &mut raw_sets)?;
    }
    if raw_sets.is_empty() {
        return Err(invalid(
            "no IP ranges specified: set ipam.ranges (a list of range sets, each a list of {\"subnet\": ...}) or ipam.subnet",
        ));
    }
    let mut sets = Vec::with_capacity(raw_sets.len());
    let mut labels = Vec::with_capacity(raw_sets.len());
    for (n, (label, ranges)) in raw_sets.into_iter().enumerate() {
        let set =
            RangeSet::new(ranges).map_err(|e| invalid(format!("invalid range set {n} ({label}): {e}")))?;
        if let Some(m) = sets.iter().position(|s: &RangeSet| s.overlaps(&set)) {
            return Err(invalid(format!(
                "range set {m} ({}) overlaps with {n} ({label}): range sets must not share addresses",
                labels[m]
            )));
        }
        sets.push(set);
        labels.push(label);
    }
    if req.conf.version < Version::V0_3_0 {
        let v4 = sets.iter().filter(|s| s.is_ipv4()).count();
        if v4 > 1 || sets.len() - v4 > 1 {
            return Err(invalid(format!(
                "CNI version {} does not support more than 1 address per family: use cniVersion 0.3.0 or later, or one range set per family",
                req.conf.version.as_str()
            )));
        }
    }
    let mut routes = Vec::new();
    for r in ipam.objects("routes")? {
        let dst = r.cidr("dst")?.ok_or_else(|| {
            invalid(format!(
                "{} is missing: every route needs a destination",
                r.name("dst")
            ))
        })?;
        let dst = IpNetwork::new(dst.network(), dst.prefix())
            .map_err(|e| invalid(format!("{}: {e}", r.name("dst"))))?;
        let gw = r.ip("gw")?;
        if let Some(g) = gw
            && g.is_ipv4() != dst.is_ipv4()
        {
            return Err(invalid(format!(
                "{}: gateway {g} is not of the same family as destination {dst}",
                r.name("gw")
            )));
        }
        routes.push(Route::new(dst, gw));
    }
    let resolv_conf = ipam
        .string("resolvConf")?
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    Ok(IpamConf {
        sets,
        labels,
        routes,
        data_dir,
        resolv_conf,
        reclaim_after_reboot,
    })
}

fn parse_requested(s: &str, source: &str, out: &mut Vec<IpAddr>) -> CniResult<()> {
    let text = s.trim();
    let addr = text.split_once('/').map_or(text, |(a, _)| a);
    let ip = addr.parse::<IpAddr>().map_err(|_| {
        invalid(format!(
            "{source}: {s:?} is not an IP address (an address, optionally with /prefix, is expected)"
        ))
    })?;
    if !out.contains(&ip) {
        out.push(ip);
    }
    Ok(())
}

/// The requested addresses of an ADD, from all three sources, without duplicates.
pub fn requested(req: &Request) -> CniResult<Vec<IpAddr>> {
    let mut out = Vec::new();
    let args = CniArgs::parse(&req.env.args, &["IP"])?;
    if let Some(list) = args.get("IP") {
        for item in list.split(',').filter(|s| !s.trim().is_empty()) {
            parse_requested(item, "CNI_ARGS IP", &mut out)?;
        }
    }
    if let Some(cni) = req.conf.args_cni()? {
        for s in cni.strings("ips")? {
            parse_requested(&s, &cni.name("ips"), &mut out)?;
        }
    }
    let rc = req.conf.runtime_config()?;
    if let Some(list) = rc.array_ci("ips")? {
        for (i, v) in list.iter().enumerate() {
            let Value::String(s) = v else {
                return Err(invalid(format!(
                    "runtimeConfig.ips[{i}] must be a string, got {}",
                    cni_core::config::describe(v)
                )));
            };
            parse_requested(s, "runtimeConfig.ips", &mut out)?;
        }
    }
    Ok(out)
}
