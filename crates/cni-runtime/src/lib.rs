//! The runtime half of CNI: what libcni (and so cnitool, containerd and CRI-O) does when it *runs*
//! plugins. Never linked into the plugin binaries; the plugins depend on cni-core only.
//!
//! - [`conf`]: finding a network in a conf dir and reading conflists (`cniVersions` included);
//! - [`runtime`]: per-plugin configs, ADD/CHECK/DEL/GC/STATUS/VERSION in libcni's order;
//! - [`cache`]: libcni's result cache (`<cacheDir>/results/<net>-<id>-<ifname>`);
//! - [`runner`]: the process runner (timeout, process-group kill), an [`cni_core::exec::Exec`], and
//!   the one way this project runs a child process with a deadline;
//! - `error`: what can go wrong, by kind, with the plugin's own CNI error;
//! - `testing` (feature `testing`): `FakeExec`, plugins in memory for tests;
//! - [`version`]: the one version ordering.

pub mod cache;
pub mod conf;
pub(crate) mod error;
pub mod json;
pub mod runner;
pub mod runtime;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod version;

pub use conf::NetworkList;
pub use error::Error;
pub use runtime::{Added, Runtime, RuntimeConf};
