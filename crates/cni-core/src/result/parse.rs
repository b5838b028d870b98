//! Reading a result of any supported version into the model, through the typed reader
//! [`Fields::result`] (decode errors, code 6, naming the field).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::{Dns, Interface, IpConfig, NetResult, Route, kind};
use crate::error::{CniError, CniResult};
use crate::fields::Fields;
use crate::version::{Layout, Version};

/// The reader of a JSON object that is part of a result; `what` names it in messages.
fn object<'a>(v: &'a Value, what: &str) -> CniResult<Fields<'a>> {
    v.as_object()
        .map(|o| Fields::result(o, format!("{what}.")))
        .ok_or_else(|| CniError::decode(format!("{what} must be an object, got {}", kind(v))))
}

impl Dns {
    /// Reads a `dns` object; `what` names it in error messages (e.g. "dns" or "prevResult.dns").
    pub(crate) fn from_json(v: &Value, what: &str) -> CniResult<Dns> {
        Dns::read(&object(v, what)?)
    }

    fn read(f: &Fields<'_>) -> CniResult<Dns> {
        Ok(Dns {
            nameservers: f.strings("nameservers")?,
            domain: f.string("domain")?,
            search: f.strings("search")?,
            options: f.strings("options")?,
        })
    }
}

impl NetResult {
    /// Reads a result of any supported version (a prevResult, or a delegated plugin's reply).
    ///
    /// `default_version` applies when the object has no `cniVersion`. `what` names the object in errors.
    pub fn from_json(v: &Value, default_version: Version, what: &str) -> CniResult<NetResult> {
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::decode(format!("{what} must be a JSON object, got {}", kind(v))))?;
        let f = Fields::result(obj, format!("{what}."));
        let version = match f.string("cniVersion")? {
            None => default_version,
            Some(s) => Version::parse(&s).ok_or_else(|| {
                CniError::incompatible_version(format!("{what} has unsupported cniVersion {s:?}"))
                    .with_details(format!("supported: {}", crate::version::SUPPORTED.join(", ")))
            })?,
        };
        let dns = match f.object("dns")? {
            None => Dns::default(),
            Some(d) => Dns::read(&d)?,
        };
        if version.layout() == Layout::Legacy {
            return legacy(&f, dns);
        }
        let interfaces = each(&f, "interfaces", parse_interface)?;
        let ips = each(&f, "ips", |ip| parse_ip(ip, interfaces.len()))?;
        let routes = parse_routes(&f, "routes")?;
        Ok(NetResult {
            interfaces,
            ips,
            routes,
            dns,
        })
    }
}

/// A 0.1.0/0.2.0 result: `ip4` and `ip6`, each with its address, gateway and routes.
fn legacy(f: &Fields<'_>, dns: Dns) -> CniResult<NetResult> {
    let mut res = NetResult {
        dns,
        ..NetResult::default()
    };
    let mut routes6 = Vec::new();
    for (key, v4) in [("ip4", true), ("ip6", false)] {
        let Some(o) = f.object(key)? else {
            continue;
        };
        let address = o
            .cidr("ip")?
            .ok_or_else(|| o.error(format!("{} is missing", o.name("ip"))))?;
        if address.is_ipv4() != v4 {
            return Err(o.error(format!(
                "{} {address} is not an IPv{} address",
                o.name("ip"),
                if v4 { 4 } else { 6 }
            )));
        }
        res.ips.push(IpConfig {
            address,
            gateway: o.ip("gateway")?,
            interface: None,
        });
        let routes = parse_routes(&o, "routes")?;
        if v4 {
            res.routes.extend(routes)
        } else {
            routes6 = routes
        }
    }
    res.routes.extend(routes6);
    Ok(res)
}

fn parse_interface(o: &Fields<'_>) -> CniResult<Interface> {
    Ok(Interface {
        name: o.string("name")?.unwrap_or_default(),
        mac: o.string("mac")?,
        mtu: o.u32("mtu")?,
        sandbox: o.string("sandbox")?,
        socket_path: o.string("socketPath")?,
        pci_id: o.string("pciID")?,
    })
}

fn parse_ip(o: &Fields<'_>, n_interfaces: usize) -> CniResult<IpConfig> {
    let address = o
        .cidr("address")?
        .ok_or_else(|| o.error(format!("{} is missing", o.name("address"))))?;
    if let Some(fam) = o.string("version")? {
        let want = if address.is_ipv4() { "4" } else { "6" };
        if fam != want {
            return Err(o.error(format!(
                "{} is {fam:?} but address {address} is IPv{want}",
                o.name("version")
            )));
        }
    }
    let interface = match o.get("interface") {
        None => None,
        Some(Value::Number(n)) => {
            let i = n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < n_interfaces)
                .ok_or_else(|| {
                    o.error(format!(
                        "{} {n} does not name one of the {n_interfaces} interfaces",
                        o.name("interface")
                    ))
                })?;
            Some(i)
        }
        Some(v) => return Err(o.wrong("interface", "a number", v)),
    };
    Ok(IpConfig {
        address,
        gateway: o.ip("gateway")?,
        interface,
    })
}

fn parse_routes(f: &Fields<'_>, key: &str) -> CniResult<Vec<Route>> {
    each(f, key, |o| {
        let dst = o
            .cidr("dst")?
            .ok_or_else(|| o.error(format!("{} is missing", o.name("dst"))))?;
        Ok(Route {
            dst,
            gw: o.ip("gw")?,
            mtu: o.u32("mtu")?,
            advmss: o.u32("advmss")?,
            priority: o.u32("priority")?,
            table: o.u32("table")?,
            scope: o.u32("scope")?,
        })
    })
}

/// Parses each object of the array `key` in order (the first bad item is the one reported).
fn each<T>(
    f: &Fields<'_>,
    key: &str,
    mut parse: impl FnMut(&Fields<'_>) -> CniResult<T>,
) -> CniResult<Vec<T>> {
    let Some(items) = f.array(key)? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse(&object(v, &f.name(&format!("{key}[{i}]")))?))
        .collect()
}

/// Why [`parse_cidr`] refused a text; the message quotes it. (It borrows the text: an owned copy
/// costs host-local about half a kilobyte of code.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidrError<'a> {
    #[error("{0:?} is not in CIDR notation (address/prefix)")]
    NoPrefix(&'a str),
    #[error("{text:?}: {address:?} is not an IP address")]
    Address { text: &'a str, address: &'a str },
    #[error("{text:?}: {prefix:?} is not a valid prefix length")]
    Prefix { text: &'a str, prefix: &'a str },
}

/// Parses `addr/prefix`, keeping host bits; a bare address (no `/prefix`) is refused.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, CidrError<'_>> {
    let (addr, bits) = s.split_once('/').ok_or(CidrError::NoPrefix(s))?;
    let ip: IpAddr = addr.parse().map_err(|_| CidrError::Address {
        text: s,
        address: addr,
    })?;
    let bad_prefix = CidrError::Prefix {
        text: s,
        prefix: bits,
    };
    let prefix: u8 = bits
        .parse()
        .ok()
        .filter(|p| bits.bytes().all(|b| b.is_ascii_digit()) && *p <= if ip.is_ipv4() { 32 } else { 128 })
        .ok_or(bad_prefix)?;
    // Cannot fail: the length was checked against the family above.
    IpNetwork::new(ip, prefix).map_err(|_| bad_prefix)
}
