//! Fake `bridge`: accepts the reference bridge plugin's configuration, delegates addressing to the IPAM
//! plugin found on CNI_PATH, and reports the result the reference would (bridge, host veth, container
//! interface, every IP on the container interface) without creating any kernel object.
//!
//! Names and MAC addresses are derived from sha256 (see [`Names`]), so ADD is repeatable and CHECK can
//! recompute what ADD reported. Anything that fails after IPAM ADD releases the allocation with IPAM DEL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_core::delegate::{delegate, find_plugin};
use cni_core::error::code;
use cni_core::ident::{hex_id, mac_from};
use cni_core::{CniError, CniResult, Command, Dns, Interface, IpConfig, NetResult, Plugin, Request, Route};
use ipnetwork::IpNetwork;

use crate::shared;

pub struct Bridge;

/// The reference's default bridge name.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// Interface indexes in the result, as the reference orders them.
pub const BRIDGE_INDEX: usize = 0;
pub const HOST_VETH_INDEX: usize = 1;
pub const CONTAINER_INDEX: usize = 2;

/// The configuration after validation; fields that only steer kernel work are checked and dropped.
#[derive(Debug, Clone)]
struct Conf {
    bridge: String,
    is_gateway: bool,
    is_default_gateway: bool,
    mtu: Option<u32>,
    vlan: u16,
    mac: Option<String>,
    ipam: Option<String>,
    dns: Option<Dns>,
}

/// Boolean keys of the reference bridge (all versions up to its HEAD) that only steer kernel work.
const BOOL_KEYS: [&str; 11] = [
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "hairpinMode",
    "promiscMode",
    "preserveDefaultVlan",
    "macspoofchk",
    "enabledad",
    "disableContainerInterface",
    "portIsolation",
];

fn load(req: &Request) -> CniResult<Conf> {
    let f = req.conf.fields();
    shared::bools(&f, &BOOL_KEYS)?;
    let flag = |k: &str| f.bool(k).map(|b| b.unwrap_or(false));

    let bridge = f.string("bridge")?.unwrap_or_else(|| DEFAULT_BRIDGE.to_owned());
    if bridge.is_empty() {
        return Err(CniError::invalid_config(
            "bridge must name the bridge interface, got an empty string (leave it out to use \"cni0\")",
        ));
    }
    cni_core::env::validate_ifname(&bridge).map_err(|e| CniError::invalid_config(format!("bridge: {e}")))?;

    let mtu = match f.int("mtu", 0, 65535)? {
        None | Some(0) => None,
        Some(m) if m < 68 => {
            return Err(CniError::invalid_config(format!(
                "mtu must be 0 (kernel default) or from 68 to 65535, got {m}: Linux refuses smaller MTUs on interfaces carrying IPv4"
            )));
        }
        Some(m) => u32::try_from(m).ok(),
    };
    let vlan = f
        .int("vlan", 0, 4094)?
        .and_then(|v| u16::try_from(v).ok())
        .unwrap_or(0);
    let trunk = vlan_trunk(&f)?;
    if vlan > 0 && trunk > 0 {
        return Err(CniError::invalid_config(
            "cannot set vlan and vlanTrunk at the same time: a bridge port is either an access port (vlan) or a trunk (vlanTrunk)",
        ));
    }
    shared::one_of(&f, "ipMasqBackend", &["iptables", "nftables"])?;
    if flag("hairpinMode")? && flag("promiscMode")? {
        return Err(CniError::invalid_config(
            "cannot set hairpin mode and promiscuous mode at the same time: set at most one of hairpinMode and promiscMode",
        ));
    }
    let ipam = req.conf.ipam_type()?;
    if ipam.is_some() && flag("disableContainerInterface")? {
        return Err(CniError::invalid_config(
            "cannot use IPAM when disableContainerInterface is set: use \"ipam\": {} for a layer-2-only attachment",
        ));
    }
    let is_default_gateway = flag("isDefaultGateway")?;
    Ok(Conf {
        bridge,
        is_gateway: flag("isGateway")? || is_default_gateway,
        is_default_gateway,
        mtu,
        vlan,
        mac: shared::requested_mac(req)?,
        ipam,
        dns: req.conf.dns()?,
    })
}

/// Validates `vlanTrunk` like the reference; returns how many entries it has.
fn vlan_trunk(f: &cni_core::Fields) -> CniResult<usize> {
    let items = f.objects("vlanTrunk")?;
    for item in &items {
        let min = item.int("minID", 1, 4094)?;
        let max = item.int("maxID", 1, 4094)?;
        item.int("id", 1, 4094)?;
        match (min, max) {
            (Some(lo), Some(hi)) if hi < lo => {
                return Err(CniError::invalid_config(format!(
                    "{} ({lo}) is greater than {} ({hi})",
                    item.name("minID"),
                    item.name("maxID")
                )));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(CniError::invalid_config(format!(
                    "{} and {} must be set together",
                    item.name("minID"),
                    item.name("maxID")
                )));
            }
            _ => {}
        }
    }
    Ok(items.len())
}

/// The deterministic names and MACs of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub bridge_mac: String,
    pub host_veth: String,
    pub host_veth_mac: String,
    pub container_mac: String,
}

impl Names {
    /// `requested_mac` overrides the derived container MAC.
    pub fn new(
        network: &str,
        bridge: &str,
        container_id: &str,
        ifname: &str,
        requested_mac: Option<&str>,
    ) -> Names {
        Names {
            bridge_mac: mac_from(&["bridge", bridge]),
            host_veth: format!("veth{}", hex_id(&[network, container_id, ifname], 8)),
            host_veth_mac: mac_from(&["host-veth", network, container_id, ifname]),
            container_mac: requested_mac
                .map(str::to_owned)
                .unwrap_or_else(|| mac_from(&["container", network, container_id, ifname])),
        }
    }
}

fn names(req: &Request, conf: &Conf) -> Names {
    Names::new(
        &req.conf.name,
        &conf.bridge,
        &req.env.container_id,
        &req.env.ifname,
        conf.mac.as_deref(),
    )
}

/// The three interfaces in the reference order: bridge, host veth, container interface.
fn interfaces(req: &Request, conf: &Conf, n: &Names) -> Vec<Interface> {
    vec![
        Interface {
            name: conf.bridge.clone(),
            mac: Some(n.bridge_mac.clone()),
            ..Interface::default()
        },
        Interface {
            name: n.host_veth.clone(),
            mac: Some(n.host_veth_mac.clone()),
            ..Interface::default()
        },
        Interface {
            name: req.env.ifname.clone(),
            mac: Some(n.container_mac.clone()),
            mtu: conf.mtu,
            sandbox: Some(req.env.netns.clone()),
            ..Interface::default()
        },
    ]
}

/// The first address after the subnet's network address, the reference's default gateway.
fn first_host(net: &IpNetwork) -> IpAddr {
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    }
}

fn is_default(dst: &IpNetwork, v4: bool) -> bool {
    dst.prefix() == 0 && dst.is_ipv4() == v4
}

fn family(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

/// A route gateway the container can reach: inside one of its subnets, or an IPv6 link-local address.
fn reachable(gw: IpAddr, addresses: &[IpNetwork]) -> bool {
    match gw {
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 => true,
        _ => addresses.iter().any(|n| n.contains(gw)),
    }
}

/// Turns the IPAM result into the bridge result. Every error here happens after IPAM ADD succeeded.
fn build(req: &Request, conf: &Conf, ipam_name: &str, ipam: NetResult, n: &Names) -> CniResult<NetResult> {
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
    let result = NetResult {
        interfaces,
        ips,
        routes,
        dns: merge_dns(conf.dns.clone(), ipam.dns),
    };
    // Fail here, while the allocation can still be rolled back, if the reply cannot be laid out.
    result.to_json(req.conf.version)?;
    Ok(result)
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

fn ipam_call(req: &Request, ipam: &str, command: Command) -> CniResult<Option<NetResult>> {
    delegate(ipam, command, &req.env, req.stdin, req.conf.version)
}

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

fn check(req: &Request, conf: &Conf) -> CniResult<()> {
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

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn about(&self) -> &'static str {
        "reports a bridge + veth attachment with addresses from the IPAM plugin, without touching the kernel"
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        let conf = load(req)?;
        let n = names(req, &conf);
        let Some(ipam) = conf.ipam.clone() else {
            return Ok(NetResult {
                interfaces: interfaces(req, &conf, &n),
                dns: conf.dns.clone().unwrap_or_default(),
                ..NetResult::default()
            });
        };
        let allocated = ipam_call(req, &ipam, Command::Add)?.ok_or_else(|| {
            CniError::new(
                code::DELEGATE_FAILED,
                format!("IPAM plugin {ipam:?} returned no result for ADD"),
            )
        });
        let built = allocated.and_then(|r| build(req, &conf, &ipam, r, &n));
        built.map_err(|e| match ipam_call(req, &ipam, Command::Del) {
            Ok(_) => e,
            Err(undo) => {
                let prior = e.details.clone().map(|d| format!("{d}; ")).unwrap_or_default();
                let why = format!("{prior}releasing the IPAM allocation also failed: {}", undo.msg);
                e.with_details(why)
            }
        })
    }

    fn del(&self, req: &Request) -> CniResult<()> {
        // Only the IPAM type matters for teardown: a bridge key edited since ADD must not block DEL.
        match req.conf.ipam_type()? {
            Some(ipam) => ipam_call(req, &ipam, Command::Del).map(|_| ()),
            None => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        let conf = load(req)?;
        check(req, &conf)?;
        match &conf.ipam {
            Some(ipam) => ipam_call(req, ipam, Command::Check).map(|_| ()),
            None => Ok(()),
        }
    }

    fn gc(&self, req: &Request) -> CniResult<()> {
        match req.conf.ipam_type()? {
            Some(ipam) => ipam_call(req, &ipam, Command::Gc).map(|_| ()),
            None => Ok(()),
        }
    }

    fn status(&self, req: &Request) -> CniResult<()> {
        let Some(ipam) = req.conf.ipam_type()? else {
            return Ok(());
        };
        find_plugin(&ipam, &req.env.path).map_err(|e| {
            CniError::not_available(format!("IPAM plugin {ipam:?} is not available: {}", e.msg))
                .with_details("install it in a CNI_PATH directory (the directory holding the bridge plugin)")
        })?;
        ipam_call(req, &ipam, Command::Status).map(|_| ())
    }
}
