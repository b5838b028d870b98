//! The host-local address store: the reference plugin's on-disk layout, round-robin allocation,
//! locking, and an owner index that keeps DEL, CHECK and ADD independent of the store's size.
//!
//! - [`range`]: ranges and range sets (defaults, validation, candidate order);
//! - [`alloc`]: the allocator over any [`alloc::Reservations`] backend, and [`alloc::MemStore`];
//! - [`disk`]: [`disk::DiskStore`], the reference-compatible store;
//! - [`owner`]: reservation bodies; [`error`]: what can go wrong;
//! - [`inspect`]: read-only inspection of a store (`k3s-sandbox ipam ls`);
//! - [`order`]: the one sort the store and host-local use (kept monomorphic for size).

pub mod alloc;
pub mod disk;
pub mod error;
pub mod inspect;
pub mod order;
pub mod owner;
pub mod range;

pub use alloc::{Assigned, MemStore, Reservations, assign, release_attachment};
pub use disk::{DiskOptions, DiskStore};
pub use error::{StoreError, StoreResult};
pub use owner::Owner;
pub use range::{Range, RangeSet};
