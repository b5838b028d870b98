//! k3s-sandbox's integration tests: one test binary, one module per area. They run the built CLI
//! (and, where named, the workspace's plugin binaries) under temp dirs against the fake k3s fixture;
//! nothing needs root or a real k3s, and every test stops what it started.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;

mod cli;
mod defects;
mod docs;
mod doctor_json;
mod gvisor_pods;
mod ipam;
mod options;
mod real_plugins;
