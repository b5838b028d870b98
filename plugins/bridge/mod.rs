//! Fake `bridge`: accepts the reference bridge plugin's configuration, delegates addressing to the IPAM
//! plugin found on CNI_PATH, and reports the result the reference would (bridge, host veth, container
//! interface, every IP on the container interface) without creating any kernel object.
//!
//! Names and MAC addresses are derived from sha256 (see `Names`), so ADD is repeatable and CHECK can
//! recompute what ADD reported. Anything that fails after IPAM ADD releases the allocation with IPAM DEL.
//!
//! The IPAM plugin runs through a [`cni_core::exec::Exec`]: a process for the binary ([`BRIDGE`]), or
//! in-process with `crate::inproc::InProcess` (tests: the `testing` feature).

mod add;
mod check;

use cni_core::delegate::delegate;
use cni_core::error::code;
use cni_core::exec::{Exec, ProcessExec};
use cni_core::ident::{hex_id, mac_from};
use cni_core::{CniError, CniResult, Command, Dns, Interface, NetResult, Plugin, Request};
use ipnetwork::IpNetwork;

use crate::attach;

/// The bridge plugin, running its IPAM plugin through `exec`. (A `&dyn Exec`, not a type parameter: a
/// generic bridge is instantiated in the binary's crate, which then carries its own copies of the drop
/// and formatting code the library already has, about 1 KB more.)
pub struct Bridge<'a> {
    exec: &'a dyn Exec,
}

impl<'a> Bridge<'a> {
    pub(crate) const fn new(exec: &'a dyn Exec) -> Self {
        Bridge { exec }
    }

    fn ipam_call(&self, req: &Request, ipam: &str, command: Command) -> CniResult<Option<NetResult>> {
        delegate(self.exec, ipam, command, req)
    }
}

/// The bridge as its binary runs it: the IPAM plugin is a process found on CNI_PATH.
pub const BRIDGE: Bridge<'static> = Bridge::new(&ProcessExec);

/// The reference's default bridge name.
const DEFAULT_BRIDGE: &str = "cni0";

/// Interface indexes in the result, as the reference orders them.
const BRIDGE_INDEX: usize = 0;
const HOST_VETH_INDEX: usize = 1;
const CONTAINER_INDEX: usize = 2;

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
    attach::bools(&f, &BOOL_KEYS)?;
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
    attach::one_of(&f, "ipMasqBackend", &["iptables", "nftables"])?;
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
        mac: attach::requested_mac(req)?,
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
struct Names {
    bridge_mac: String,
    host_veth: String,
    host_veth_mac: String,
    container_mac: String,
}

impl Names {
    /// `requested_mac` overrides the derived container MAC.
    fn new(
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

fn is_default(dst: &IpNetwork, v4: bool) -> bool {
    dst.prefix() == 0 && dst.is_ipv4() == v4
}

fn family(v4: bool) -> &'static str {
    if v4 { "IPv4" } else { "IPv6" }
}

impl Plugin for Bridge<'_> {
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
        let allocated = self.ipam_call(req, &ipam, Command::Add)?.ok_or_else(|| {
            CniError::new(
                code::DELEGATE_FAILED,
                format!("IPAM plugin {ipam:?} returned no result for ADD"),
            )
        });
        let built = allocated.and_then(|r| add::build(req, &conf, &ipam, r, &n));
        built.map_err(|e| match self.ipam_call(req, &ipam, Command::Del) {
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
            Some(ipam) => self.ipam_call(req, &ipam, Command::Del).map(|_| ()),
            None => Ok(()),
        }
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        let conf = load(req)?;
        check::check(req, &conf)?;
        match &conf.ipam {
            Some(ipam) => self.ipam_call(req, ipam, Command::Check).map(|_| ()),
            None => Ok(()),
        }
    }

    fn gc(&self, req: &Request) -> CniResult<()> {
        match req.conf.ipam_type()? {
            Some(ipam) => self.ipam_call(req, &ipam, Command::Gc).map(|_| ()),
            None => Ok(()),
        }
    }

    fn status(&self, req: &Request) -> CniResult<()> {
        let Some(ipam) = req.conf.ipam_type()? else {
            return Ok(());
        };
        self.exec.find(&ipam, &req.env.path).map_err(|e| {
            CniError::not_available(format!("IPAM plugin {ipam:?} is not available: {}", e.msg))
                .with_details("install it in a CNI_PATH directory (the directory holding the bridge plugin)")
        })?;
        self.ipam_call(req, &ipam, Command::Status).map(|_| ())
    }
}
