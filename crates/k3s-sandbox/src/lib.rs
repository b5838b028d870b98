//! `k3s-sandbox`: check a sandbox, wire the sandbox-cni plugins and run k3s. See docs/k3s.md.
//!
//! The library holds everything but the command-line entry point (src/main.rs), so the
//! integration tests use the same code as the binary. Each subcommand is a module of
//! [`commands`] with its clap `Args` and a `run`; the logic they share is grouped by domain in
//! [`k3s`] (the k3s lifecycle), `host` (host checks) and [`cni`] (CNI operations). Only what the
//! binary, the integration tests and the fuzz targets use is `pub`.

pub mod cli;
pub mod cni;
pub mod commands;
pub(crate) mod duration;
pub mod error;
pub(crate) mod host;
pub mod k3s;
pub(crate) mod output;
pub mod paths;
pub(crate) mod suggest;
