//! Property tests of the allocator: against the in-memory store (many cases) and the disk store.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipam_store::alloc::attachment_addresses;
use ipam_store::{
    DiskOptions, DiskStore, MemStore, Owner, Range, RangeSet, Reservations, StoreError, assign,
    release_attachment,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Del(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![3 => (0u8..24).prop_map(Op::Add), 2 => (0u8..24).prop_map(Op::Del)],
        1..80,
    )
}

/// A small IPv4 range set, sometimes two ranges, with a gateway possibly inside the range.
fn sets() -> impl Strategy<Value = Vec<RangeSet>> {
    (27u8..=30, 0u32..4, 0u32..6, any::<bool>(), any::<bool>()).prop_map(|(prefix, s, gw, two, v6)| {
        let net: ipnetwork::IpNetwork = format!("10.7.0.0/{prefix}").parse().unwrap();
        let start: IpAddr = format!("10.7.0.{s}").parse().unwrap();
        let gateway: IpAddr = format!("10.7.0.{}", gw.min((1 << (32 - prefix)) - 1))
            .parse()
            .unwrap();
        let first = Range::new(net, Some(start), None, Some(gateway))
            .or_else(|_| Range::new(net, None, None, None))
            .unwrap();
        let mut ranges = vec![first];
        if two {
            ranges.push(Range::new("10.8.0.0/29".parse().unwrap(), None, None, None).unwrap());
        }
        let mut out = vec![RangeSet::new(ranges).unwrap()];
        if v6 {
            out.push(
                RangeSet::new(vec![
                    Range::new("fd00::/125".parse().unwrap(), None, None, None).unwrap(),
                ])
                .unwrap(),
            );
        }
        out
    })
}

/// Runs `ops` against `store`, checking every invariant after each step.
fn check<S: Reservations>(
    store: &mut S,
    sets: &[RangeSet],
    ops: &[Op],
    list: impl Fn(&mut S) -> BTreeMap<IpAddr, Owner>,
) {
    let mut model: BTreeMap<u8, Vec<IpAddr>> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Add(k) => {
                let owner = Owner::new(format!("c{k}"), "eth0");
                match assign(store, sets, &owner, &[]) {
                    Ok(got) => {
                        assert_eq!(got.len(), sets.len());
                        let ips: Vec<IpAddr> = got.iter().map(|a| a.ip).collect();
                        for (a, set) in got.iter().zip(sets) {
                            let r = set.range_of(a.ip).expect("address inside its set");
                            assert!(r.allocatable(a.ip), "{} is network, broadcast or gateway", a.ip);
                            assert_eq!(r, &a.range);
                        }
                        if let Some(before) = model.get(k) {
                            assert_eq!(before, &ips, "repeated ADD must return the same addresses");
                        }
                        model.insert(*k, ips);
                    }
                    Err(StoreError::Exhausted { set, .. }) => {
                        assert!(!model.contains_key(k), "a holder is never refused");
                        // Exhausted means every allocatable address of that set is really taken.
                        let taken: BTreeSet<IpAddr> = list(store).keys().copied().collect();
                        for (_, ip) in sets[set].candidates(None) {
                            assert!(
                                taken.contains(&ip),
                                "{ip} was free but the set was reported exhausted"
                            );
                        }
                    }
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            Op::Del(k) => {
                let freed = release_attachment(store, &format!("c{k}"), "eth0").unwrap();
                let mut want = model.remove(k).unwrap_or_default();
                want.sort();
                let mut freed = freed;
                freed.sort();
                assert_eq!(freed, want, "release frees exactly what the attachment held");
            }
        }
        // No duplicates, and the store holds exactly what the model says.
        let on_store = list(store);
        let mut expected = BTreeMap::new();
        for (k, ips) in &model {
            for ip in ips {
                assert!(
                    expected
                        .insert(*ip, Owner::new(format!("c{k}"), "eth0"))
                        .is_none(),
                    "{ip} given twice"
                );
            }
        }
        assert_eq!(on_store, expected);
        for (k, ips) in &model {
            let mut held = attachment_addresses(store, &format!("c{k}"), "eth0").unwrap();
            held.sort();
            let mut ips = ips.clone();
            ips.sort();
            assert_eq!(held, ips);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn allocator_invariants_in_memory(sets in sets(), ops in ops()) {
        let mut store = MemStore::default();
        check(&mut store, &sets, &ops, |s| s.reserved.iter().map(|(ip, o)| (*ip, o.clone().unwrap())).collect());
    }

    #[test]
    fn round_robin_never_returns_a_just_freed_address_while_others_are_free(
        prefix in 26u8..=29, n in 1usize..5
    ) {
        let sets = vec![RangeSet::new(vec![Range::new(format!("10.7.0.0/{prefix}").parse().unwrap(), None, None, None).unwrap()]).unwrap()];
        let mut store = MemStore::default();
        for i in 0..n {
            assign(&mut store, &sets, &Owner::new(format!("c{i}"), "eth0"), &[]).unwrap();
        }
        let freed = release_attachment(&mut store, "c0", "eth0").unwrap();
        let next = assign(&mut store, &sets, &Owner::new("new", "eth0"), &[]).unwrap();
        prop_assert_ne!(next[0].ip, freed[0]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn allocator_invariants_on_disk(sets in sets(), ops in ops()) {
        let t = tempfile::tempdir().unwrap();
        let boot = t.path().join("boot");
        std::fs::write(&boot, "b1").unwrap();
        let opts = DiskOptions { lock_timeout: Duration::from_secs(5), reclaim_after_reboot: false, boot_id_path: boot, flat_limit: 3 };
        let data = t.path().join("data");
        // A fresh open per step, as every plugin call is a new process.
        struct Reopen { data: std::path::PathBuf, opts: DiskOptions }
        impl Reservations for Reopen {
            fn reserve(&mut self, ip: IpAddr, o: &Owner) -> ipam_store::StoreResult<bool> { self.s()?.reserve(ip, o) }
            fn release(&mut self, ip: IpAddr, o: &Owner) -> ipam_store::StoreResult<bool> { self.s()?.release(ip, o) }
            fn owner_of(&mut self, ip: IpAddr) -> ipam_store::StoreResult<Option<Owner>> { self.s()?.owner_of(ip) }
            fn is_reserved(&mut self, ip: IpAddr) -> ipam_store::StoreResult<bool> { self.s()?.is_reserved(ip) }
            fn last_reserved(&mut self, set: usize) -> ipam_store::StoreResult<Option<IpAddr>> { self.s()?.last_reserved(set) }
            fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> ipam_store::StoreResult<()> { self.s()?.set_last_reserved(set, ip) }
            fn held_by(&mut self, o: &Owner) -> ipam_store::StoreResult<Vec<IpAddr>> { self.s()?.held_by(o) }
        }
        impl Reopen {
            fn s(&self) -> ipam_store::StoreResult<DiskStore> { DiskStore::open(&self.data, "net", &self.opts) }
        }
        let mut store = Reopen { data, opts };
        check(&mut store, &sets, &ops, |s| {
            s.s().unwrap().list().unwrap().into_iter().map(|(ip, o)| (ip, o.expect("readable body"))).collect()
        });
        // The index agrees with a full rebuild.
        let st = store.s().unwrap();
        prop_assert!(!st.report().rebuilt);
    }
}
