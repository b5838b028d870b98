//! host-local's request: the configuration (read by ipam-store's one reader of host-local
//! configuration, [`ipam_store::config`], whose errors map to CNI errors here), routes, `resolvConf`
//! and the requested addresses.
//!
//! Requested addresses come from CNI_ARGS `IP=` (a comma list), `args.cni.ips` and `runtimeConfig.ips`.

use std::net::IpAddr;
use std::path::PathBuf;

use cni_core::args::CniArgs;
use cni_core::{CniError, CniResult, Fields, Request, Route};
use ipam_store::RangeSet;
use ipam_store::config::{self, ConfigError, StoreSettings};
use ipnetwork::IpNetwork;
use serde_json::Value;

/// What host-local needs from the request.
#[derive(Debug, Clone)]
pub struct IpamConf {
    pub sets: Vec<RangeSet>,
    /// Where each set came from, e.g. `ipam.ranges[1]`, for messages.
    pub labels: Vec<String>,
    pub(crate) routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub(crate) resolv_conf: Option<PathBuf>,
    pub(crate) reclaim_after_reboot: bool,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::invalid_config(msg)
}

/// The CNI error of a configuration the store's reader refuses: the field reader's own error, or
/// the message with code 7. Out of line: one copy of the messages' formatting for every call site.
#[cold]
#[inline(never)]
fn config_error(e: ConfigError) -> CniError {
    match e {
        ConfigError::Field(e) => e,
        other => invalid(other.to_string()),
    }
}

/// The `ipam` object, or the reference's message when it is missing.
fn ipam<'a>(req: &'a Request) -> CniResult<Fields<'a>> {
    config::ipam(&req.conf.fields()).map_err(config_error)
}

/// `dataDir` and `reclaimAfterReboot` only: all DEL and GC need, so that they work even when the
/// ranges of the configuration have become invalid.
pub fn store_settings(req: &Request) -> CniResult<StoreSettings> {
    config::store_settings(&ipam(req)?).map_err(config_error)
}

/// Parses and validates the whole IPAM configuration.
pub fn parse(req: &Request) -> CniResult<IpamConf> {
    let ipam = ipam(req)?;
    let store = config::store_settings(&ipam).map_err(config_error)?;
    let rc = req.conf.runtime_config()?;
    let ranges = config::range_sets(&ipam, &rc, req.conf.version).map_err(config_error)?;
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
        sets: ranges.sets,
        labels: ranges.labels,
        routes,
        data_dir: store.data_dir,
        resolv_conf,
        reclaim_after_reboot: store.reclaim_after_reboot,
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
