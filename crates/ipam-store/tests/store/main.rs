//! The store's integration tests, one binary: the disk store against the reference's format, the
//! `.sandbox-cni` layout, inspection, and property tests of the allocator.
#![allow(clippy::unwrap_used)]

mod attacks;
mod common;
mod config;
mod disk;
mod inspect;
mod layout;
mod props;
