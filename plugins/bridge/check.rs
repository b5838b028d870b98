//! CHECK: compares prevResult with the attachment ADD would report for this configuration.

use cni_core::error::code;
use cni_core::{CniError, CniResult, Interface, IpConfig, NetResult, Request};

use super::{BRIDGE_INDEX, CONTAINER_INDEX, Conf, HOST_VETH_INDEX, family, interfaces, is_default, names};

fn mismatch(msg: String) -> CniError {
    CniError::new(code::CHECK_MISMATCH, msg)
}

/// Compares one prevResult interface with what ADD reports for it.
fn check_interface(prev: &NetResult, want: &Interface, role: &str) -> CniResult<usize> {
    let (idx, got) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == want.name)
        .ok_or_else(|| {
            mismatch(format!(
                "prevResult has no {role} interface named {:?}",
                want.name
            ))
        })?;
    let norm = |m: &Option<String>| m.as_ref().map(|s| s.to_ascii_lowercase());
    if norm(&got.mac) != norm(&want.mac) {
        return Err(mismatch(format!(
            "{role} interface {:?}: prevResult says MAC {}, this attachment's is {}",
            want.name,
            got.mac.as_deref().unwrap_or("(none)"),
            want.mac.as_deref().unwrap_or("(none)")
        )));
    }
    if got.sandbox.as_deref().filter(|s| !s.is_empty()) != want.sandbox.as_deref() {
        return Err(mismatch(format!(
            "{role} interface {:?}: prevResult says sandbox {:?}, expected {:?}",
            want.name,
            got.sandbox.as_deref().unwrap_or(""),
            want.sandbox.as_deref().unwrap_or("")
        )));
    }
    Ok(idx)
}

pub(super) fn check(req: &Request, conf: &Conf) -> CniResult<()> {
    let prev = req.conf.prev_result()?.ok_or_else(|| {
        CniError::invalid_config(
            "Required prevResult missing: CHECK compares the attachment with the result ADD returned",
        )
        .with_details(
            "the runtime passes ADD's result as prevResult; libcni does so for cniVersion 0.4.0 and later",
        )
    })?;
    let n = names(req, conf);
    let want = interfaces(req, conf, &n);
    let bridge = check_interface(&prev, &want[BRIDGE_INDEX], "bridge")?;
    let veth = check_interface(&prev, &want[HOST_VETH_INDEX], "host veth")?;
    let container = check_interface(&prev, &want[CONTAINER_INDEX], "container")?;
    let ifname = &req.env.ifname;
    if let Some(ip) = prev
        .ips
        .iter()
        .find(|ip| ip.interface == Some(bridge) || ip.interface == Some(veth))
    {
        let on = &prev.interfaces[ip.interface.unwrap_or(bridge)].name;
        return Err(mismatch(format!(
            "prevResult puts address {} on host interface {on:?}; this attachment's addresses are on {ifname}",
            ip.address
        )));
    }
    let mine: Vec<&IpConfig> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(container))
        .collect();
    if conf.ipam.is_some() {
        if mine.is_empty() {
            return Err(mismatch(format!("prevResult has no IP address on {ifname}")));
        }
        let mut seen = Vec::new();
        for ip in &mine {
            if seen.contains(&ip.address.ip()) {
                return Err(mismatch(format!(
                    "prevResult lists address {} twice on {ifname}",
                    ip.address
                )));
            }
            seen.push(ip.address.ip());
            if conf.is_gateway && ip.gateway.is_none() {
                return Err(mismatch(format!(
                    "isGateway is set but prevResult's address {} on {ifname} has no gateway",
                    ip.address
                )));
            }
            if let Some(gw) = ip.gateway
                && (gw == ip.address.ip() || gw.is_ipv4() != ip.address.is_ipv4())
            {
                return Err(mismatch(format!(
                    "prevResult's address {} on {ifname} has an impossible gateway {gw}",
                    ip.address
                )));
            }
        }
        if conf.is_default_gateway {
            for v4 in [true, false] {
                if mine.iter().any(|ip| ip.address.is_ipv4() == v4)
                    && !prev.routes.iter().any(|r| is_default(&r.dst, v4))
                {
                    return Err(mismatch(format!(
                        "isDefaultGateway is set but prevResult has no {} default route",
                        family(v4)
                    )));
                }
            }
        }
        // Routes are not compared: a route without "gw" is valid (it uses the family gateway), unlike
        // the reference's CHECK which fails on its own result then.
    } else if let Some(ip) = mine.first() {
        return Err(mismatch(format!(
            "the configuration is layer-2 only (no ipam) but prevResult puts address {} on {ifname}",
            ip.address
        )));
    }
    Ok(())
}
