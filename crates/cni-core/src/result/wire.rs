//! The wire layouts of every supported version, and the conversion of the model into them.

use serde::Serialize;

use super::{Dns, NetResult, Route};
use crate::error::{CniError, CniResult};
use crate::version::{Layout, Version};

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
}
