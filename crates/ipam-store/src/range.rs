//! Address ranges and range sets, with the reference host-local's defaults and checks (and a few more).
//!
//! A [`Range`] is a pool inside one subnet: `rangeStart..=rangeEnd`, with a gateway. A [`RangeSet`] is a
//! list of disjoint ranges of one family; each range set yields one address per attachment. Allocation
//! never hands out the network address, the IPv4 broadcast address or the range's gateway.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// An address as a number, for arithmetic (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` in the family of `like`.
pub fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from((n & u128::from(u32::MAX)) as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// Which configuration key of a range a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Subnet,
    RangeStart,
    RangeEnd,
    Gateway,
}

impl Field {
    /// The key's name in the configuration.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Field::Subnet => "subnet",
            Field::RangeStart => "rangeStart",
            Field::RangeEnd => "rangeEnd",
            Field::Gateway => "gateway",
        }
    }
}

/// A range that cannot be used, naming the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {msg}", field.key())]
pub struct RangeError {
    pub(crate) field: Field,
    pub(crate) msg: String,
}

fn bad(field: Field, msg: String) -> RangeError {
    RangeError { field, msg }
}

/// One pool of addresses inside a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet, host bits zero.
    pub subnet: IpNetwork,
    /// First candidate (inclusive).
    pub start: IpAddr,
    /// Last candidate (inclusive).
    pub end: IpAddr,
    /// The gateway, never handed out; always inside the subnet.
    pub gateway: IpAddr,
}

impl Range {
    /// Builds a range with the reference's defaults: gateway and rangeStart = network+1, rangeEnd = the
    /// last address (IPv4: the one before broadcast). Refuses what the reference refuses (host bits set,
    /// fewer than 2 host bits, start/end outside the subnet) and also a gateway outside the subnet,
    /// rangeStart after rangeEnd and ranges with no address that could ever be handed out.
    pub fn new(
        subnet: IpNetwork,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, RangeError> {
        let net = subnet.network();
        if net != subnet.ip() {
            return Err(bad(
                Field::Subnet,
                format!(
                    "{subnet} has host bits set: for a prefix length of {} the network address is {net}; use {net}/{}",
                    subnet.prefix(),
                    subnet.prefix()
                ),
            ));
        }
        let bits = if subnet.is_ipv4() { 32 } else { 128 };
        if bits - u32::from(subnet.prefix()) < 2 {
            return Err(bad(
                Field::Subnet,
                format!("network {subnet} is too small to allocate from: it needs at least 2 host bits"),
            ));
        }
        let lo = to_u128(net);
        let hi = to_u128(subnet.broadcast());
        let family_ok = |ip: IpAddr| ip.is_ipv4() == subnet.is_ipv4();
        let inside = |field: Field, ip: IpAddr| {
            if !family_ok(ip) || !subnet.contains(ip) {
                Err(bad(field, format!("{ip} is not inside the subnet {subnet}")))
            } else {
                Ok(ip)
            }
        };
        let gateway = match gateway {
            Some(g) => inside(Field::Gateway, g)?,
            None => from_u128(net, lo + 1),
        };
        let start = match start {
            Some(s) => inside(Field::RangeStart, s)?,
            None => from_u128(net, lo + 1),
        };
        let end = match end {
            Some(e) => inside(Field::RangeEnd, e)?,
            None if subnet.is_ipv4() => from_u128(net, hi - 1),
            None => from_u128(net, hi),
        };
        if to_u128(start) > to_u128(end) {
            return Err(bad(
                Field::RangeStart,
                format!("rangeStart {start} is after rangeEnd {end}"),
            ));
        }
        let range = Range {
            subnet: IpNetwork::new(net, subnet.prefix()).map_err(|e| bad(Field::Subnet, e.to_string()))?,
            start,
            end,
            gateway,
        };
        // At most three excluded addresses (network, broadcast, gateway): look at no more than four.
        let any = (to_u128(start)..=to_u128(end))
            .take(4)
            .any(|n| range.allocatable(from_u128(net, n)));
        if !any {
            return Err(bad(
                Field::RangeStart,
                format!(
                    "the range {start}-{end} holds no address that can be handed out (the network address, the IPv4 broadcast address and the gateway {gateway} never are)"
                ),
            ));
        }
        Ok(range)
    }

    /// Whether `ip` lies in `start..=end`.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Whether `ip` may be handed out: inside the range, not the network address, not the IPv4
    /// broadcast address, not the gateway.
    pub fn allocatable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && self.reserved_reason(ip).is_none()
    }

    /// Why an address of the subnet may never be handed out, if it may not.
    pub(crate) fn reserved_reason(&self, ip: IpAddr) -> Option<&'static str> {
        if ip == self.gateway {
            Some("subnet's gateway")
        } else if ip == self.subnet.network() {
            Some("subnet's network address")
        } else if self.subnet.is_ipv4() && ip == self.subnet.broadcast() {
            Some("subnet's broadcast address")
        } else {
            None
        }
    }

    /// Number of addresses in `start..=end` (saturating for a whole IPv6 space).
    pub(crate) fn size(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A problem with a range set as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("a range set needs at least one range")]
    Empty,
    #[error("mixed address families: range {0} is not of the same family as range 0")]
    MixedFamilies(usize),
    #[error("ranges {0} and {1} overlap ({2} and {3})")]
    Overlap(usize, usize, String, String),
}

/// Disjoint ranges of one family; one address per attachment comes from each set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    pub ranges: Vec<Range>,
}

impl RangeSet {
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, SetError> {
        let Some(first) = ranges.first() else {
            return Err(SetError::Empty);
        };
        let v4 = first.subnet.is_ipv4();
        if let Some(i) = ranges.iter().position(|r| r.subnet.is_ipv4() != v4) {
            return Err(SetError::MixedFamilies(i));
        }
        for (i, a) in ranges.iter().enumerate() {
            for (j, b) in ranges.iter().enumerate().skip(i + 1) {
                if a.overlaps(b) {
                    return Err(SetError::Overlap(i, j, a.to_string(), b.to_string()));
                }
            }
        }
        Ok(RangeSet { ranges })
    }

    pub fn is_ipv4(&self) -> bool {
        self.ranges.first().is_some_and(|r| r.subnet.is_ipv4())
    }

    /// The range whose `start..=end` holds `ip`.
    pub fn range_of(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether any range of `self` overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges
            .iter()
            .any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// Total number of addresses in the set's ranges (saturating).
    pub fn size(&self) -> u128 {
        self.ranges
            .iter()
            .fold(0u128, |acc, r| acc.saturating_add(r.size()))
    }

    /// The candidates in round-robin order: after `cursor` when it lies in the set (wrapping round),
    /// otherwise from the first range's start; each address once; excluded addresses skipped.
    pub fn candidates(&self, cursor: Option<IpAddr>) -> Candidates<'_> {
        let (range, next) =
            match cursor.and_then(|c| self.ranges.iter().position(|r| r.contains(c)).map(|i| (i, c))) {
                Some((i, c)) if c != self.ranges[i].end => (i, to_u128(c) + 1),
                Some((i, _)) => {
                    let j = (i + 1) % self.ranges.len();
                    (j, to_u128(self.ranges[j].start))
                }
                None => (0, self.ranges.first().map_or(0, |r| to_u128(r.start))),
            };
        Candidates {
            set: self,
            range,
            next,
            left: self.size(),
        }
    }
}

impl fmt::Display for RangeSet {
    /// `S-E[,S-E...]`, as in the reference's messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Iterator over a range set's candidates; see [`RangeSet::candidates`].
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    set: &'a RangeSet,
    range: usize,
    next: u128,
    left: u128,
}

impl Iterator for Candidates<'_> {
    /// (index of the range in the set, address).
    type Item = (usize, IpAddr);

    fn next(&mut self) -> Option<(usize, IpAddr)> {
        while self.left > 0 {
            let r = self.set.ranges.get(self.range)?;
            let ip = from_u128(r.start, self.next);
            let idx = self.range;
            self.left -= 1;
            if self.next >= to_u128(r.end) {
                self.range = (self.range + 1) % self.set.ranges.len();
                self.next = self.set.ranges.get(self.range).map_or(0, |r| to_u128(r.start));
            } else {
                self.next += 1;
            }
            if r.reserved_reason(ip).is_none() {
                return Some((idx, ip));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
