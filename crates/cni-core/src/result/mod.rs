//! The one internal result model (the 1.1.0 shape) and its conversion to and from every supported
//! version's wire layout (SPEC.md "Result"; libcni pkg/types/{020,040,100} and internal/convert.go).
//!
//! Plugins build a [`NetResult`] and never look at versions: [`NetResult::to_json`] lays it out for the
//! request's version when the reply is written, and [`NetResult::from_json`] reads a prevResult or a
//! delegated plugin's reply of any version into the model.

mod parse;
mod wire;

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::Serialize;

pub use crate::fields::kind;
pub use parse::{CidrError, parse_cidr};

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
}

/// The result of an attachment: what ADD prints, what an IPAM plugin returns, what prevResult holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}
