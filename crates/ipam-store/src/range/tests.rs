use super::*;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn defaults_follow_the_reference() {
    let r = Range::new(net("10.22.0.0/24"), None, None, None).unwrap();
    assert_eq!(
        (r.start, r.end, r.gateway),
        (ip("10.22.0.1"), ip("10.22.0.254"), ip("10.22.0.1"))
    );
    let r = Range::new(net("fd77::/126"), None, None, None).unwrap();
    assert_eq!((r.start, r.end), (ip("fd77::1"), ip("fd77::3")));
    assert_eq!(RangeSet::new(vec![r]).unwrap().to_string(), "fd77::1-fd77::3");
}

#[test]
fn invalid_ranges_name_the_field() {
    let e = Range::new(net("10.9.0.5/24"), None, None, None).unwrap_err();
    assert_eq!(e.field, Field::Subnet);
    assert!(e.msg.contains("10.9.0.0"), "{e}");
    assert_eq!(
        Range::new(net("10.0.0.0/31"), None, None, None)
            .unwrap_err()
            .field,
        Field::Subnet
    );
    assert_eq!(
        Range::new(net("fd00::/127"), None, None, None).unwrap_err().field,
        Field::Subnet
    );
    let e = Range::new(net("10.51.0.0/24"), None, None, Some(ip("192.168.1.1"))).unwrap_err();
    assert_eq!(e.field, Field::Gateway);
    let e = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.9")),
        Some(ip("10.0.0.8")),
        None,
    )
    .unwrap_err();
    assert_eq!(e.field, Field::RangeStart);
    let e = Range::new(net("10.0.0.0/24"), Some(ip("10.0.1.9")), None, None).unwrap_err();
    assert_eq!(e.field, Field::RangeStart);
    let e = Range::new(net("10.0.0.0/24"), None, Some(ip("fd00::1")), None).unwrap_err();
    assert_eq!(e.field, Field::RangeEnd);
    // Only the network address, or only the broadcast address, or only the gateway.
    for (s, e) in [
        ("10.0.0.0", "10.0.0.0"),
        ("10.0.0.255", "10.0.0.255"),
        ("10.0.0.1", "10.0.0.1"),
    ] {
        assert!(
            Range::new(net("10.0.0.0/24"), Some(ip(s)), Some(ip(e)), None).is_err(),
            "{s}-{e}"
        );
    }
    assert!(
        Range::new(
            net("10.0.0.0/24"),
            Some(ip("10.0.0.0")),
            Some(ip("10.0.0.2")),
            None
        )
        .is_ok()
    );
}

#[test]
fn sets_refuse_mixed_families_and_overlaps() {
    let a = Range::new(net("10.0.0.0/24"), None, None, None).unwrap();
    let b = Range::new(net("fd00::/64"), None, None, None).unwrap();
    assert_eq!(
        RangeSet::new(vec![a.clone(), b]).unwrap_err(),
        SetError::MixedFamilies(1)
    );
    let c = Range::new(net("10.0.0.0/16"), None, None, None).unwrap();
    assert!(matches!(
        RangeSet::new(vec![a.clone(), c]),
        Err(SetError::Overlap(0, 1, _, _))
    ));
    let lo = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.9")),
        Some(ip("10.0.0.10")),
        None,
    )
    .unwrap();
    let hi = Range::new(
        net("10.0.0.0/24"),
        Some(ip("10.0.0.100")),
        Some(ip("10.0.0.110")),
        None,
    )
    .unwrap();
    assert!(RangeSet::new(vec![lo, hi]).is_ok());
    assert_eq!(RangeSet::new(vec![]).unwrap_err(), SetError::Empty);
}

#[test]
fn candidates_are_round_robin_and_skip_excluded() {
    let r1 = Range::new(
        net("10.1.2.0/24"),
        Some(ip("10.1.2.9")),
        Some(ip("10.1.2.10")),
        None,
    )
    .unwrap();
    let r2 = Range::new(
        net("10.1.3.0/24"),
        Some(ip("10.1.3.100")),
        Some(ip("10.1.3.100")),
        Some(ip("10.1.3.254")),
    )
    .unwrap();
    let set = RangeSet::new(vec![r1, r2]).unwrap();
    let all: Vec<_> = set.candidates(None).map(|(_, ip)| ip.to_string()).collect();
    assert_eq!(all, ["10.1.2.9", "10.1.2.10", "10.1.3.100"]);
    let after: Vec<_> = set
        .candidates(Some(ip("10.1.2.10")))
        .map(|(_, ip)| ip.to_string())
        .collect();
    assert_eq!(after, ["10.1.3.100", "10.1.2.9", "10.1.2.10"]);
    let out: Vec<_> = set
        .candidates(Some(ip("192.0.2.1")))
        .map(|(_, ip)| ip.to_string())
        .collect();
    assert_eq!(out, all);
    let small = RangeSet::new(vec![
        Range::new(
            net("10.0.0.0/30"),
            Some(ip("10.0.0.0")),
            Some(ip("10.0.0.3")),
            None,
        )
        .unwrap(),
    ])
    .unwrap();
    let c: Vec<_> = small.candidates(None).map(|(_, ip)| ip.to_string()).collect();
    assert_eq!(c, ["10.0.0.2"]);
}
