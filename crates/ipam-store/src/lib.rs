//! The host-local address store: the reference plugin's on-disk layout, round-robin allocation,
//! locking, and an owner index that keeps DEL, CHECK and ADD independent of the store's size.
//!
//! - [`range`]: ranges and range sets (defaults, validation, candidate order);
//! - [`alloc`]: the allocator over any [`alloc::Reservations`] backend, and [`alloc::MemStore`];
//! - [`disk`]: [`disk::DiskStore`], the reference-compatible store;
//! - [`config`]: the one reader of host-local's configuration (ranges, `dataDir`);
//! - [`live`]: the one rule of which reservations live attachments keep (GC, leak counts);
//! - `owner`: reservation bodies; `error`: what can go wrong;
//! - [`inspect`]: read-only inspection of a store (`k3s-sandbox ipam ls`);
//! - `order`: the one sort the store and host-local use (kept monomorphic for size).

pub mod alloc;
pub mod config;
pub mod disk;
pub(crate) mod error;
pub mod inspect;
pub mod live;
pub(crate) mod order;
pub(crate) mod owner;
pub mod range;

pub use alloc::{Assigned, MemStore, Reservations, assign, release_attachment};
pub use disk::{DiskOptions, DiskStore};
pub use error::{StoreError, StoreResult};
pub use live::Live;
pub use owner::Owner;
pub use range::{Range, RangeSet};
