//! Result conversion across every spec version, two ways:
//! - mode byte even: the rest is JSON read with `NetResult::from_json` under every default version (as a
//!   prevResult or a delegated plugin's reply would be);
//! - mode byte odd: the rest drives a generator of arbitrary (valid) result models.
//!
//! Every readable result must convert to every version and read back (see `check_conversions`).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use cni_core::error::code;
use cni_core::{Dns, Interface, IpConfig, NetResult, Route, Version};
use ipnetwork::IpNetwork;
use libfuzzer_sys::fuzz_target;
use sandbox_cni_fuzz::check_conversions;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn ip(u: &mut Unstructured) -> arbitrary::Result<IpAddr> {
    Ok(if bool::arbitrary(u)? {
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?))
    } else {
        IpAddr::V6(Ipv6Addr::from(u128::arbitrary(u)?))
    })
}

fn net(u: &mut Unstructured) -> arbitrary::Result<IpNetwork> {
    let addr = ip(u)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = u.int_in_range(0..=max)?;
    IpNetwork::new(addr, prefix).map_err(|_| arbitrary::Error::IncorrectFormat)
}

fn model(u: &mut Unstructured) -> arbitrary::Result<NetResult> {
    let mut r = NetResult::default();
    for _ in 0..u.int_in_range(0..=3)? {
        r.interfaces.push(Interface {
            name: String::arbitrary(u)?,
            mac: Option::arbitrary(u)?,
            mtu: Option::arbitrary(u)?,
            sandbox: Option::arbitrary(u)?,
            socket_path: Option::arbitrary(u)?,
            pci_id: Option::arbitrary(u)?,
        });
    }
    for _ in 0..u.int_in_range(0..=5)? {
        let interface = if r.interfaces.is_empty() || bool::arbitrary(u)? {
            None
        } else {
            Some(u.choose_index(r.interfaces.len())?)
        };
        let gateway = if bool::arbitrary(u)? { Some(ip(u)?) } else { None };
        r.ips.push(IpConfig {
            address: net(u)?,
            gateway,
            interface,
        });
    }
    for _ in 0..u.int_in_range(0..=4)? {
        let gw = if bool::arbitrary(u)? { Some(ip(u)?) } else { None };
        r.routes.push(Route {
            mtu: Option::arbitrary(u)?,
            advmss: Option::arbitrary(u)?,
            priority: Option::arbitrary(u)?,
            table: Option::arbitrary(u)?,
            scope: Option::arbitrary(u)?,
            ..Route::new(net(u)?, gw)
        });
    }
    r.dns = Dns {
        nameservers: Vec::arbitrary(u)?,
        domain: Option::arbitrary(u)?,
        search: Vec::arbitrary(u)?,
        options: Vec::arbitrary(u)?,
    };
    Ok(r)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        if let Ok(r) = model(&mut Unstructured::new(rest)) {
            check_conversions(&r);
        }
        return;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    for default in Version::ALL {
        match NetResult::from_json(&v, default, "prevResult") {
            Ok(r) => check_conversions(&r),
            Err(e) => {
                assert!(
                    [code::INCOMPATIBLE_VERSION, code::DECODE_FAILURE].contains(&e.code),
                    "reading a result failed with code {}: {}",
                    e.code,
                    e.msg
                );
                assert!(
                    e.msg.starts_with("prevResult"),
                    "the message must name the object: {}",
                    e.msg
                );
            }
        }
    }
});
