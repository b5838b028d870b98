//! Fake loopback (mirrors the reference plugins/main/loopback/loopback.go without kernel work).
//!
//! ADD reports `lo` with 127.0.0.1/8 and ::1/128, both pointing at `lo` by index 0 so runtimes never take
//! 127.0.0.1 for the pod IP; sandbox is CNI_NETNS. With a prevResult (chained), that result is passed
//! through. The reply is laid out for the requested version by the output step (the reference stamps
//! the 1.0 shape with any version). DEL, CHECK, GC and STATUS succeed: there is nothing to undo or to
//! look at, and DEL must succeed even when the netns is gone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cni_core::{CniResult, Interface, IpConfig, NetResult, Plugin, Request};
use ipnetwork::IpNetwork;

pub struct Loopback;

fn lo_address(ip: IpAddr, prefix: u8) -> IpConfig {
    // Both prefixes are valid for their family, so `new` cannot fail; keep a safe fallback anyway.
    let address = IpNetwork::new(ip, prefix).unwrap_or_else(|_| IpNetwork::from(ip));
    IpConfig {
        address,
        gateway: None,
        interface: Some(0),
    }
}

impl Plugin for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn about(&self) -> &'static str {
        "reports the container's loopback interface (127.0.0.1/8, ::1/128) without touching the kernel"
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        if let Some(prev) = req.conf.prev_result()? {
            return Ok(prev);
        }
        Ok(NetResult {
            interfaces: vec![Interface {
                name: "lo".to_owned(),
                mac: Some("00:00:00:00:00:00".to_owned()),
                sandbox: Some(req.env.netns.clone()),
                ..Interface::default()
            }],
            ips: vec![
                lo_address(IpAddr::V4(Ipv4Addr::LOCALHOST), 8),
                lo_address(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            ],
            ..NetResult::default()
        })
    }

    fn del(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }

    fn check(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }

    fn gc(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }

    fn status(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
}
