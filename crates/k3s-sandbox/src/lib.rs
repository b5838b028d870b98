//! `k3s-sandbox`: check a sandbox, wire the sandbox-cni plugins and run k3s. See docs/k3s.md.
//!
//! The library holds everything but the command-line entry point (src/main.rs), so the
//! integration tests use the same code as the binary. Each subcommand is a module of
//! [`commands`] (or `*_cmd`) with its clap `Args` and a `run`.

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
