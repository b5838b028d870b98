//! The one internal result model (the 1.1.0 shape) and its conversion to and from every supported
//! version's wire layout (SPEC.md "Result"; libcni pkg/types/{020,040,100} and internal/convert.go).
//!
//! Plugins build a [`NetResult`] and never look at versions: [`NetResult::to_json`] lays it out for the
//! request's version when the reply is written, and [`NetResult::from_json`] reads a prevResult or a
//! delegated plugin's reply of any version into the model.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};
use crate::version::{Layout, Version};

/// An interface the attachment created or touched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// 1.1.0 only.
    pub mtu: Option<u32>,
    /// The CNI_NETNS path for interfaces inside the container; `None` on the host side.
    pub sandbox: Option<String>,
    /// 1.1.0 only.
    pub socket_path: Option<String>,
    /// 1.1.0 only.
    pub pci_id: Option<String>,
}

/// One address; `address` keeps its host bits (`10.1.0.5/16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; always valid when set.
    pub interface: Option<usize>,
}

/// A route; the fields after `gw` exist from 1.1.0 on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings, as in results and in the `dns` config key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Dns {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }

    /// Reads a `dns` object; `what` names it in error messages (e.g. "dns" or "prevResult.dns").
    pub fn from_json(v: &Value, what: &str) -> CniResult<Dns> {
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::decode(format!("{what} must be an object, got {}", kind(v))))?;
        Ok(Dns {
            nameservers: string_list(obj, "nameservers", what)?,
            domain: opt_string(obj, "domain", what)?,
            search: string_list(obj, "search", what)?,
            options: string_list(obj, "options", what)?,
        })
    }
}

/// The result of an attachment: what ADD prints, what an IPAM plugin returns, what prevResult holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---- wire layouts ---------------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireInterface<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mac: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sandbox: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_path: Option<&'a str>,
    #[serde(rename = "pciID", skip_serializing_if = "Option::is_none")]
    pci_id: Option<&'a str>,
}

#[derive(Serialize)]
struct WireIp {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
}

#[derive(Serialize)]
struct WireRoute {
    dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gw: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    advmss: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResult<'a> {
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<WireInterface<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    dns: &'a Dns,
}

#[derive(Serialize)]
struct WireLegacyIp {
    ip: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireLegacy<'a> {
    cni_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip4: Option<WireLegacyIp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip6: Option<WireLegacyIp>,
    dns: &'a Dns,
}

fn wire_route(r: &Route, full: bool) -> WireRoute {
    WireRoute {
        dst: r.dst.to_string(),
        gw: r.gw.map(|g| g.to_string()),
        mtu: r.mtu.filter(|_| full),
        advmss: r.advmss.filter(|_| full),
        priority: r.priority.filter(|_| full),
        table: r.table.filter(|_| full),
        scope: r.scope.filter(|_| full),
    }
}

impl NetResult {
    /// Lays the result out in `version`'s wire format, as compact JSON bytes.
    ///
    /// Conversion to 0.1.0/0.2.0 keeps the first address of each family and the routes of the families
    /// that have one; with no address at all it fails, as libcni does.
    pub fn to_json(&self, version: Version) -> CniResult<Vec<u8>> {
        let bytes = match version.layout() {
            Layout::Legacy => serde_json::to_vec(&self.legacy(version)?),
            Layout::V04 | Layout::V1 => serde_json::to_vec(&self.modern(version)),
        };
        bytes.map_err(|e| CniError::new(crate::error::code::INTERNAL, format!("cannot encode result: {e}")))
    }

    fn modern(&self, version: Version) -> WireResult<'_> {
        let full = version >= Version::V1_1_0;
        let v04 = version.layout() == Layout::V04;
        WireResult {
            cni_version: version.as_str(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| WireInterface {
                    name: &i.name,
                    mac: i.mac.as_deref(),
                    mtu: i.mtu.filter(|_| full),
                    sandbox: i.sandbox.as_deref(),
                    socket_path: i.socket_path.as_deref().filter(|_| full),
                    pci_id: i.pci_id.as_deref().filter(|_| full),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: v04.then_some(if ip.address.is_ipv4() { "4" } else { "6" }),
                    // Never emit an index that does not name an interface of this result.
                    interface: ip.interface.filter(|&i| i < self.interfaces.len()),
                    address: ip.address.to_string(),
                    gateway: ip.gateway.map(|g| g.to_string()),
                })
                .collect(),
            routes: self.routes.iter().map(|r| wire_route(r, full)).collect(),
            dns: &self.dns,
        }
    }

    fn legacy(&self, version: Version) -> CniResult<WireLegacy<'_>> {
        let pick = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.address.is_ipv4() == v4)
                .map(|ip| WireLegacyIp {
                    ip: ip.address.to_string(),
                    gateway: ip.gateway.map(|g| g.to_string()),
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.is_ipv4() == v4)
                        .map(|r| wire_route(r, false))
                        .collect(),
                })
        };
        let (ip4, ip6) = (pick(true), pick(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(CniError::incompatible_version(format!(
                "cannot express this result in CNI version {version}: it has no IP address, and 0.1.0/0.2.0 results consist of addresses"
            ))
            .with_details("use cniVersion 0.3.0 or later for attachments without IP addresses"));
        }
        Ok(WireLegacy {
            cni_version: version.as_str(),
            ip4,
            ip6,
            dns: &self.dns,
        })
    }

    /// Reads a result of any supported version (a prevResult, or a delegated plugin's reply).
    ///
    /// `default_version` applies when the object has no `cniVersion`. `what` names the object in errors.
    pub fn from_json(v: &Value, default_version: Version, what: &str) -> CniResult<NetResult> {
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::decode(format!("{what} must be a JSON object, got {}", kind(v))))?;
        let version = match obj.get("cniVersion") {
            None | Some(Value::Null) => default_version,
            Some(Value::String(s)) => Version::parse(s).ok_or_else(|| {
                CniError::incompatible_version(format!("{what} has unsupported cniVersion {s:?}"))
                    .with_details(format!("supported: {}", crate::version::SUPPORTED.join(", ")))
            })?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "{what}.cniVersion must be a string, got {}",
                    kind(other)
                )));
            }
        };
        let dns = match obj.get("dns") {
            None | Some(Value::Null) => Dns::default(),
            Some(d) => Dns::from_json(d, &format!("{what}.dns"))?,
        };
        if version.layout() == Layout::Legacy {
            let mut res = NetResult {
                dns,
                ..NetResult::default()
            };
            let mut routes6 = Vec::new();
            for (key, v4) in [("ip4", true), ("ip6", false)] {
                let Some(ipv) = obj.get(key).filter(|v| !v.is_null()) else {
                    continue;
                };
                let w = format!("{what}.{key}");
                let o = ipv
                    .as_object()
                    .ok_or_else(|| CniError::decode(format!("{w} must be an object, got {}", kind(ipv))))?;
                let address =
                    cidr_field(o, "ip", &w)?.ok_or_else(|| CniError::decode(format!("{w}.ip is missing")))?;
                if address.is_ipv4() != v4 {
                    return Err(CniError::decode(format!(
                        "{w}.ip {address} is not an IPv{} address",
                        if v4 { 4 } else { 6 }
                    )));
                }
                res.ips.push(IpConfig {
                    address,
                    gateway: ip_field(o, "gateway", &w)?,
                    interface: None,
                });
                let routes = parse_routes(o.get("routes"), &format!("{w}.routes"))?;
                if v4 {
                    res.routes.extend(routes)
                } else {
                    routes6 = routes
                }
            }
            res.routes.extend(routes6);
            return Ok(res);
        }
        let interfaces = match obj.get("interfaces") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| parse_interface(v, &format!("{what}.interfaces[{i}]")))
                .collect::<CniResult<_>>()?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "{what}.interfaces must be an array, got {}",
                    kind(other)
                )));
            }
        };
        let ips = match obj.get("ips") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| parse_ip(v, &format!("{what}.ips[{i}]"), interfaces.len()))
                .collect::<CniResult<_>>()?,
            Some(other) => {
                return Err(CniError::decode(format!(
                    "{what}.ips must be an array, got {}",
                    kind(other)
                )));
            }
        };
        let routes = parse_routes(obj.get("routes"), &format!("{what}.routes"))?;
        Ok(NetResult {
            interfaces,
            ips,
            routes,
            dns,
        })
    }
}

fn parse_interface(v: &Value, what: &str) -> CniResult<Interface> {
    let o = v
        .as_object()
        .ok_or_else(|| CniError::decode(format!("{what} must be an object, got {}", kind(v))))?;
    Ok(Interface {
        name: opt_string(o, "name", what)?.unwrap_or_default(),
        mac: opt_string(o, "mac", what)?,
        mtu: opt_u32(o, "mtu", what)?,
        sandbox: opt_string(o, "sandbox", what)?,
        socket_path: opt_string(o, "socketPath", what)?,
        pci_id: opt_string(o, "pciID", what)?,
    })
}

fn parse_ip(v: &Value, what: &str, n_interfaces: usize) -> CniResult<IpConfig> {
    let o = v
        .as_object()
        .ok_or_else(|| CniError::decode(format!("{what} must be an object, got {}", kind(v))))?;
    let address = cidr_field(o, "address", what)?
        .ok_or_else(|| CniError::decode(format!("{what}.address is missing")))?;
    if let Some(fam) = opt_string(o, "version", what)? {
        let want = if address.is_ipv4() { "4" } else { "6" };
        if fam != want {
            return Err(CniError::decode(format!(
                "{what}.version is {fam:?} but address {address} is IPv{want}"
            )));
        }
    }
    let interface = match o.get("interface") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            let i = n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < n_interfaces)
                .ok_or_else(|| {
                    CniError::decode(format!(
                        "{what}.interface {n} does not name one of the {n_interfaces} interfaces"
                    ))
                })?;
            Some(i)
        }
        Some(other) => {
            return Err(CniError::decode(format!(
                "{what}.interface must be a number, got {}",
                kind(other)
            )));
        }
    };
    Ok(IpConfig {
        address,
        gateway: ip_field(o, "gateway", what)?,
        interface,
    })
}

fn parse_routes(v: Option<&Value>, what: &str) -> CniResult<Vec<Route>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let w = format!("{what}[{i}]");
                let o = r
                    .as_object()
                    .ok_or_else(|| CniError::decode(format!("{w} must be an object, got {}", kind(r))))?;
                let dst = cidr_field(o, "dst", &w)?
                    .ok_or_else(|| CniError::decode(format!("{w}.dst is missing")))?;
                Ok(Route {
                    dst,
                    gw: ip_field(o, "gw", &w)?,
                    mtu: opt_u32(o, "mtu", &w)?,
                    advmss: opt_u32(o, "advmss", &w)?,
                    priority: opt_u32(o, "priority", &w)?,
                    table: opt_u32(o, "table", &w)?,
                    scope: opt_u32(o, "scope", &w)?,
                })
            })
            .collect(),
        Some(other) => Err(CniError::decode(format!(
            "{what} must be an array, got {}",
            kind(other)
        ))),
    }
}

// ---- small typed readers (decode errors, code 6) ------------------------------------------------------

/// The JSON type of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn opt_string(o: &Map<String, Value>, key: &str, what: &str) -> CniResult<Option<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CniError::decode(format!(
            "{what}.{key} must be a string, got {}",
            kind(other)
        ))),
    }
}

fn opt_u32(o: &Map<String, Value>, key: &str, what: &str) -> CniResult<Option<u32>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                CniError::decode(format!(
                    "{what}.{key} must be a whole number from 0 to 4294967295, got {n}"
                ))
            }),
        Some(other) => Err(CniError::decode(format!(
            "{what}.{key} must be a number, got {}",
            kind(other)
        ))),
    }
}

fn string_list(o: &Map<String, Value>, key: &str, what: &str) -> CniResult<Vec<String>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    CniError::decode(format!("{what}.{key} must hold strings, got {}", kind(v)))
                })
            })
            .collect(),
        Some(other) => Err(CniError::decode(format!(
            "{what}.{key} must be an array of strings, got {}",
            kind(other)
        ))),
    }
}

fn cidr_field(o: &Map<String, Value>, key: &str, what: &str) -> CniResult<Option<IpNetwork>> {
    opt_string(o, key, what)?
        .map(|s| parse_cidr(&s).map_err(|e| CniError::decode(format!("{what}.{key}: {e}"))))
        .transpose()
}

fn ip_field(o: &Map<String, Value>, key: &str, what: &str) -> CniResult<Option<IpAddr>> {
    opt_string(o, key, what)?
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| CniError::decode(format!("{what}.{key}: {s:?} is not an IP address")))
        })
        .transpose()
}

/// Parses `addr/prefix`, keeping host bits; a bare address (no `/prefix`) is refused.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    let (addr, prefix) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not in CIDR notation (address/prefix)"))?;
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{s:?}: {addr:?} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| prefix.bytes().all(|b| b.is_ascii_digit()) && *p <= if ip.is_ipv4() { 32 } else { 128 })
        .ok_or_else(|| format!("{s:?}: {prefix:?} is not a valid prefix length"))?;
    IpNetwork::new(ip, prefix).map_err(|e| format!("{s:?}: {e}"))
}
