//! ADD's result: the IPAM result turned into the bridge's (gateways, routes, interfaces, DNS).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_core::error::code;
use cni_core::{CniError, CniResult, Dns, Interface, IpConfig, NetResult, Request, Route};
use ipnetwork::IpNetwork;

use super::{CONTAINER_INDEX, Conf, Names, family, interfaces, is_default};

/// The first address after the subnet's network address, the reference's default gateway.
fn first_host(net: &IpNetwork) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

/// A route gateway the container can reach: inside one of its subnets, or an IPv6 link-local address.
fn reachable(gw: IpAddr, addresses: &[IpNetwork]) -> bool {
    match gw {
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => true,
        _ => addresses.iter().any(|n| n.contains(gw)),
    }
}

/// Turns the IPAM result into the bridge result. Every error here happens after IPAM ADD succeeded.
pub(super) fn build(
    req: &Request,
    conf: &Conf,
    ipam_name: &str,
    ipam: NetResult,
    n: &Names,
) -> CniResult<NetResult> {
    if ipam.ips.is_empty() {
        return Err(CniError::invalid_config(format!(
            "IPAM plugin {ipam_name:?} returned no IP address; the bridge needs at least one"
        ))
        .with_details("check the IPAM configuration, or use \"ipam\": {} for a layer-2-only attachment"));
    }
    let ifname = &req.env.ifname;
    let mut ips = Vec::with_capacity(ipam.ips.len());
    for ip in ipam.ips {
        let mut gateway = ip.gateway;
        if conf.is_gateway && gateway.is_none() {
            gateway = Some(first_host(&ip.address));
        }
        if let Some(gw) = gateway.filter(|_| conf.is_gateway)
            && gw == ip.address.ip()
        {
            let msg = format!(
                "isGateway would put gateway {gw} on bridge {:?}, but IPAM gave that address to {ifname}",
                conf.bridge
            );
            let fix = "give the IPAM range a gateway outside the allocatable addresses";
            return Err(CniError::invalid_config(msg).with_details(fix));
        }
        ips.push(IpConfig {
            address: ip.address,
            gateway,
            interface: Some(CONTAINER_INDEX),
        });
    }
    let addresses: Vec<IpNetwork> = ips.iter().map(|ip| ip.address).collect();
    let mut routes = ipam.routes;
    for r in &routes {
        let Some(gw) = r.gw else { continue };
        if gw.is_ipv4() != r.dst.is_ipv4() {
            return Err(CniError::invalid_config(format!(
                "IPAM route to {} has an {} gateway {gw}: the gateway must be of the destination's family",
                r.dst,
                family(gw.is_ipv4())
            )));
        }
        if !reachable(gw, &addresses) {
            return Err(CniError::invalid_config(format!(
                "IPAM route to {} via {gw} cannot be installed: the gateway is not inside any subnet of {ifname} ({})",
                r.dst,
                addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ))
            .with_details("the kernel refuses a route whose gateway is not on-link; fix the route's \"gw\" in the IPAM configuration"));
        }
    }
    if conf.is_default_gateway {
        for v4 in [true, false] {
            let gw = ips
                .iter()
                .find(|ip| ip.address.is_ipv4() == v4)
                .and_then(|ip| ip.gateway);
            let Some(gw) = gw else { continue };
            if !routes.iter().any(|r| is_default(&r.dst, v4)) {
                let any = if v4 {
                    IpNetwork::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
                } else {
                    IpNetwork::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)
                };
                let dst = any.map_err(|e| CniError::new(code::INTERNAL, e.to_string()))?;
                routes.push(Route::new(dst, Some(gw)));
            }
        }
    }
    let mut interfaces = interfaces(req, conf, n);
    if conf.vlan > 0 && conf.is_gateway {
        // The reference puts the gateway on a VLAN sub-interface of the bridge and reports it last.
        interfaces.push(Interface {
            name: format!("{}.{}", conf.bridge, conf.vlan),
            mac: Some(n.bridge_mac.clone()),
            ..Interface::default()
        });
    }
    // It has an address (checked above), so every version can lay it out (only a 0.1.0/0.2.0 result
    // without one cannot be): writing the reply cannot fail after the allocation is kept.
    Ok(NetResult {
        interfaces,
        ips,
        routes,
        dns: merge_dns(conf.dns.clone(), ipam.dns),
    })
}

/// The config's `dns` wins field by field; the IPAM's fills the fields the config leaves empty.
fn merge_dns(conf: Option<Dns>, ipam: Dns) -> Dns {
    let Some(c) = conf else { return ipam };
    Dns {
        nameservers: if c.nameservers.is_empty() {
            ipam.nameservers
        } else {
            c.nameservers
        },
        domain: c.domain.or(ipam.domain),
        search: if c.search.is_empty() {
            ipam.search
        } else {
            c.search
        },
        options: if c.options.is_empty() {
            ipam.options
        } else {
            c.options
        },
    }
}
