//! The host-local address store: the reference plugin's on-disk layout, round-robin allocation,
//! locking, and an owner index that keeps DEL, CHECK and ADD independent of the store's size.
//!
//! - [`range`]: ranges and range sets (defaults, validation, candidate order);
//! - [`alloc`]: the allocator over any [`alloc::Reservations`] backend, and [`alloc::MemStore`];
//! - [`disk`]: [`disk::DiskStore`], the reference-compatible store;
//! - [`owner`]: reservation bodies; [`error`]: what can go wrong;
//! - [`inspect`]: read-only inspection of a store (`k3s-sandbox ipam ls`).

pub mod alloc;
pub mod disk;
pub mod error;
pub mod inspect;
pub mod owner;
pub mod range;

/// Sorts `v` by `cmp`, not stably. One instantiation of the standard sort (on indices, through a
/// `&dyn` comparison) serves every element type, which keeps the plugin binaries small; the lists
/// sorted here are short.
pub fn sort_by_dyn<T>(v: &mut Vec<T>, cmp: &dyn Fn(&T, &T) -> std::cmp::Ordering) {
    let order = sorted_order(v.len(), &|a, b| cmp(&v[a], &v[b]));
    let mut slots: Vec<Option<T>> = v.drain(..).map(Some).collect();
    v.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// The indices `0..n` ordered by `cmp`.
fn sorted_order(n: usize, cmp: &dyn Fn(usize, usize) -> std::cmp::Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|&a, &b| cmp(a, b));
    order
}

pub use alloc::{Assigned, MemStore, Reservations, assign, release_attachment};
pub use disk::{DiskOptions, DiskStore};
pub use error::{StoreError, StoreResult};
pub use owner::Owner;
pub use range::{Range, RangeSet};
