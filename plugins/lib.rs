//! sandbox-cni's plugins as a library: a module per plugin, each exposing the value its binary runs
//! with `cni_core::skel::run` (`plugins/<name>/main.rs` holds nothing else).
//!
//! - [`loopback::Loopback`] and [`host_local::HostLocal`];
//! - [`bridge::Bridge`], which delegates addressing to its IPAM plugin through a `cni_core::exec::Exec`
//!   ([`bridge::BRIDGE`] runs it as a process, as the binary does);
//! - the pass-through chained plugins [`portmap::PLUGIN`], [`bandwidth::PLUGIN`], [`firewall::PLUGIN`]
//!   and [`tuning::PLUGIN`] (all `pass_through::PassThrough`);
//! - `inproc::InProcess` (with the `testing` feature, for tests only): an `Exec` that runs these plugins
//!   through `cni_core::skel::dispatch` inside the calling process, so a bridge and its IPAM can be
//!   tested without starting a process.

mod attach;
pub mod bandwidth;
pub mod bridge;
pub mod firewall;
pub mod host_local;
#[cfg(any(test, feature = "testing"))]
pub mod inproc;
pub mod loopback;
pub(crate) mod pass_through;
pub mod portmap;
pub mod tuning;
