//! Allocation over any reservation backend: the reference's round-robin, plus idempotent ADD.
//!
//! [`assign`] gives an attachment one address per range set: the address it already holds in that
//! set (a repeated ADD returns the same result), else the requested one, else the first free
//! candidate after the set's cursor. On any failure, the addresses reserved by this call are released.
//! [`Reservations`] is implemented by the disk store and by [`MemStore`] (used by property tests).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::error::{StoreError, StoreResult};
use crate::owner::Owner;
use crate::range::{Range, RangeSet};

/// What the allocator needs from a store. Every call happens under the store's lock.
pub trait Reservations {
    /// Reserves `ip` for `owner`; `Ok(false)` when the address is already reserved.
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool>;
    /// Removes the reservation of `ip` if `owner` holds it; `Ok(false)` otherwise.
    fn release(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool>;
    /// Who holds `ip`; `None` when it is free or its holder cannot be read.
    fn owner_of(&mut self, ip: IpAddr) -> StoreResult<Option<Owner>>;
    /// Whether anything reserves `ip`.
    fn is_reserved(&mut self, ip: IpAddr) -> StoreResult<bool>;
    /// The cursor of range set `set` (the last address reserved from it), if any.
    fn last_reserved(&mut self, set: usize) -> StoreResult<Option<IpAddr>>;
    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> StoreResult<()>;
    /// The addresses held by exactly `owner` (a legacy owner matches legacy reservations only).
    fn held_by(&mut self, owner: &Owner) -> StoreResult<Vec<IpAddr>>;
}

/// One address given to an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    /// Index of the range set it came from.
    pub(crate) set: usize,
    pub ip: IpAddr,
    /// The range holding it (prefix and gateway of the result).
    pub range: Range,
    /// False when the attachment already held it before this call.
    pub(crate) new: bool,
}

/// Gives `owner` one address from every range set (see the module comment). `requested` addresses
/// are matched to the set whose ranges hold them; one per set.
pub fn assign<S: Reservations + ?Sized>(
    store: &mut S,
    sets: &[RangeSet],
    owner: &Owner,
    requested: &[IpAddr],
) -> StoreResult<Vec<Assigned>> {
    let mut want: Vec<Option<IpAddr>> = vec![None; sets.len()];
    let mut unmatched = Vec::new();
    for &ip in requested {
        match sets.iter().position(|s| s.range_of(ip).is_some()) {
            Some(i) if want[i].is_none() => want[i] = Some(ip),
            _ => unmatched.push(ip),
        }
    }
    if !unmatched.is_empty() {
        return Err(StoreError::Unmatched(unmatched));
    }
    let held = store.held_by(owner)?;
    let mut done: Vec<Assigned> = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        match assign_one(store, i, set, owner, &held, want[i]) {
            Ok(a) => done.push(a),
            Err(e) => {
                for a in done.iter().filter(|a| a.new) {
                    // Best effort: the error being reported matters more than a failed rollback.
                    let _ = store.release(a.ip, owner);
                }
                return Err(e);
            }
        }
    }
    Ok(done)
}

fn assign_one<S: Reservations + ?Sized>(
    store: &mut S,
    i: usize,
    set: &RangeSet,
    owner: &Owner,
    held: &[IpAddr],
    want: Option<IpAddr>,
) -> StoreResult<Assigned> {
    if let Some((&ip, range)) = held.iter().find_map(|h| set.range_of(*h).map(|r| (h, r))) {
        if let Some(w) = want.filter(|w| *w != ip) {
            return Err(StoreError::HoldsOther {
                set: i,
                requested: w,
                held: ip,
            });
        }
        return Ok(Assigned {
            set: i,
            ip,
            range: range.clone(),
            new: false,
        });
    }
    if let Some(ip) = want {
        let Some(range) = set.range_of(ip) else {
            return Err(StoreError::Unmatched(vec![ip]));
        };
        if let Some(why) = range.reserved_reason(ip) {
            return Err(StoreError::NotAllocatable { set: i, ip, why });
        }
        if !store.reserve(ip, owner)? {
            let holder = store.owner_of(ip)?;
            return Err(StoreError::Taken {
                set: i,
                ip,
                ranges: set.to_string(),
                owner: holder,
            });
        }
        store.set_last_reserved(i, ip)?;
        return Ok(Assigned {
            set: i,
            ip,
            range: range.clone(),
            new: true,
        });
    }
    let cursor = store.last_reserved(i)?;
    for (r, ip) in set.candidates(cursor) {
        if store.reserve(ip, owner)? {
            store.set_last_reserved(i, ip)?;
            return Ok(Assigned {
                set: i,
                ip,
                range: set.ranges[r].clone(),
                new: true,
            });
        }
    }
    Err(StoreError::Exhausted {
        set: i,
        ranges: set.to_string(),
        size: set.size(),
    })
}

/// Releases everything the attachment `(id, ifname)` holds; when it holds nothing, falls back to the
/// reference's legacy id-only reservations of `id`. Returns the released addresses. Keeps going after
/// a failure and reports the first one at the end.
pub fn release_attachment<S: Reservations + ?Sized>(
    store: &mut S,
    id: &str,
    ifname: &str,
) -> StoreResult<Vec<IpAddr>> {
    let mut owner = Owner::new(id, ifname);
    let mut ips = store.held_by(&owner)?;
    if ips.is_empty() {
        owner = Owner::legacy(id);
        ips = store.held_by(&owner)?;
    }
    let mut released = Vec::with_capacity(ips.len());
    let mut first_error = None;
    for ip in ips {
        match store.release(ip, &owner) {
            Ok(true) => released.push(ip),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(released),
    }
}

/// The addresses the attachment holds (legacy id-only reservations when it holds none).
pub fn attachment_addresses<S: Reservations + ?Sized>(
    store: &mut S,
    id: &str,
    ifname: &str,
) -> StoreResult<Vec<IpAddr>> {
    let ips = store.held_by(&Owner::new(id, ifname))?;
    if ips.is_empty() {
        return store.held_by(&Owner::legacy(id));
    }
    Ok(ips)
}

/// The first free candidate of `set` in allocation order, without reserving it.
pub fn first_free<S: Reservations + ?Sized>(
    store: &mut S,
    set_index: usize,
    set: &RangeSet,
) -> StoreResult<Option<IpAddr>> {
    let cursor = store.last_reserved(set_index)?;
    for (_, ip) in set.candidates(cursor) {
        if !store.is_reserved(ip)? {
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

/// An in-memory store with the same semantics as the disk store, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    pub reserved: BTreeMap<IpAddr, Option<Owner>>,
    pub(crate) cursors: HashMap<usize, IpAddr>,
}

impl Reservations for MemStore {
    fn reserve(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        if self.reserved.contains_key(&ip) {
            return Ok(false);
        }
        self.reserved.insert(ip, Some(owner.clone()));
        Ok(true)
    }

    fn release(&mut self, ip: IpAddr, owner: &Owner) -> StoreResult<bool> {
        if self.reserved.get(&ip) == Some(&Some(owner.clone())) {
            self.reserved.remove(&ip);
            return Ok(true);
        }
        Ok(false)
    }

    fn owner_of(&mut self, ip: IpAddr) -> StoreResult<Option<Owner>> {
        Ok(self.reserved.get(&ip).cloned().flatten())
    }

    fn is_reserved(&mut self, ip: IpAddr) -> StoreResult<bool> {
        Ok(self.reserved.contains_key(&ip))
    }

    fn last_reserved(&mut self, set: usize) -> StoreResult<Option<IpAddr>> {
        Ok(self.cursors.get(&set).copied())
    }

    fn set_last_reserved(&mut self, set: usize, ip: IpAddr) -> StoreResult<()> {
        self.cursors.insert(set, ip);
        Ok(())
    }

    fn held_by(&mut self, owner: &Owner) -> StoreResult<Vec<IpAddr>> {
        Ok(self
            .reserved
            .iter()
            .filter(|(_, o)| o.as_ref() == Some(owner))
            .map(|(ip, _)| *ip)
            .collect())
    }
}
