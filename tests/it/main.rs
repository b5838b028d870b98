//! The integration tests of the plugins, as one test binary with a module per area (`cargo test --test
//! it`; a filter such as `bridge::` runs one area). `harness` is the one way every module calls a
//! plugin: as a process of this build's binary, as a bounded process, or in this process through the
//! dispatcher.

// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod bad_input;
mod bad_input_store;
mod bridge;
mod chain;
mod cni_cli;
mod conflists;
mod host_local;
mod host_local_compat;
mod host_local_stress;
mod house;
mod install;
mod interop;
mod loopback;
mod protocol;
mod trace;
mod trace_attacks;
