//! host-local range validation (`Range::new`, `RangeSet::new`) and candidate order, on arbitrary
//! subnets, starts, ends, gateways and cursors. An accepted range must be usable: its gateway in the
//! subnet, start <= end, and every candidate handed out allocatable, inside the set and never repeated.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use ipam_store::range::{from_u128, to_u128};
use ipam_store::{Range, RangeSet};
use ipnetwork::IpNetwork;
use libfuzzer_sys::fuzz_target;

fn ip(u: &mut Unstructured, v4: bool, near: Option<IpAddr>) -> arbitrary::Result<IpAddr> {
    // Mostly addresses close to the subnet, so that the interesting boundaries are hit.
    if let Some(base) = near.filter(|_| u.ratio(3, 4).unwrap_or(false)) {
        let delta = i16::arbitrary(u)? as i128;
        let n = (to_u128(base) as i128).wrapping_add(delta);
        let max = if v4 { u32::MAX as i128 } else { i128::MAX };
        return Ok(from_u128(base, n.clamp(0, max) as u128));
    }
    Ok(if v4 {
        IpAddr::V4(Ipv4Addr::from(u32::arbitrary(u)?))
    } else {
        IpAddr::V6(Ipv6Addr::from(u128::arbitrary(u)?))
    })
}

fn opt_ip(u: &mut Unstructured, v4: bool, near: IpAddr) -> arbitrary::Result<Option<IpAddr>> {
    Ok(if bool::arbitrary(u)? {
        Some(ip(u, v4, Some(near))?)
    } else {
        None
    })
}

fn range(u: &mut Unstructured, v4: bool) -> arbitrary::Result<Result<Range, String>> {
    let addr = ip(u, v4, None)?;
    let prefix = if v4 {
        u.int_in_range(20..=32)?
    } else {
        u.int_in_range(112..=128)?
    };
    let Ok(subnet) = IpNetwork::new(addr, prefix) else {
        return Ok(Err("bad prefix".into()));
    };
    // Usually a subnet without host bits, as real configurations have.
    let subnet = if u.ratio(7, 8)? {
        IpNetwork::new(subnet.network(), prefix).unwrap_or(subnet)
    } else {
        subnet
    };
    let near = subnet.network();
    let (start, end, gw) = (opt_ip(u, v4, near)?, opt_ip(u, v4, near)?, opt_ip(u, v4, near)?);
    Ok(Range::new(subnet, start, end, gw).map_err(|e| {
        assert!(!e.to_string().is_empty());
        e.to_string()
    }))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(v4) = bool::arbitrary(&mut u) else { return };
    let Ok(n) = u.int_in_range(1..=3) else { return };
    let mut ranges = Vec::new();
    for _ in 0..n {
        let mixed = u.ratio(1, 8).unwrap_or(false);
        if let Ok(Ok(r)) = range(&mut u, v4 != mixed) {
            ranges.push(r);
        }
    }
    for r in &ranges {
        assert_eq!(
            r.subnet.network(),
            r.subnet.ip(),
            "accepted subnet with host bits: {r:?}"
        );
        assert!(r.subnet.contains(r.gateway), "gateway outside the subnet: {r:?}");
        assert!(
            r.subnet.contains(r.start) && r.subnet.contains(r.end),
            "range outside the subnet: {r:?}"
        );
        assert!(to_u128(r.start) <= to_u128(r.end), "start after end: {r:?}");
    }
    let Ok(set) = RangeSet::new(ranges.clone()) else {
        return;
    };
    for (i, a) in set.ranges.iter().enumerate() {
        for b in &set.ranges[i + 1..] {
            let overlap = to_u128(a.start) <= to_u128(b.end) && to_u128(b.start) <= to_u128(a.end);
            assert!(!overlap, "accepted overlapping ranges {a} and {b}");
        }
    }
    let cursor = ip(&mut u, v4, Some(set.ranges[0].start)).ok();
    let mut seen = HashSet::new();
    for (r, cand) in set.candidates(cursor).take(600) {
        assert!(
            r < set.ranges.len(),
            "candidate from range {r} of {}",
            set.ranges.len()
        );
        assert!(
            set.ranges[r].allocatable(cand),
            "candidate {cand} not allocatable in {}",
            set.ranges[r]
        );
        assert!(
            seen.insert(cand),
            "candidate {cand} offered twice (cursor {cursor:?})"
        );
    }
    if set.size() <= 600 {
        let allocatable: usize = set
            .ranges
            .iter()
            .map(|r| {
                (to_u128(r.start)..=to_u128(r.end))
                    .filter(|n| r.allocatable(from_u128(r.start, *n)))
                    .count()
            })
            .sum();
        assert_eq!(
            seen.len(),
            allocatable,
            "candidates must cover every allocatable address once"
        );
    }
});
