//! sandbox-cni's CNI protocol core: everything a plugin needs except its own behaviour.
//!
//! - [`config`]: the request configuration; `fields`: typed access to the keys of a JSON object
//!   (plugin keys, and results read back);
//! - [`result`]: the one result model and its conversion to and from every spec version;
//! - [`skel`]: the dispatcher ([`skel::dispatch`] for tests, [`skel::run`] for `main`);
//! - [`env`], [`args`]: the CNI_* environment and CNI_ARGS;
//! - [`exec`]: the exec seam (find on CNI_PATH, explicit environment, error replies);
//! - [`delegate`]: running the IPAM plugin;
//! - [`output`]: the only writer of stdout; [`error`]: coded errors; [`ident`]: deterministic names;
//! - [`trace`]: the opt-in invocation trace;
//! - [`oflags`]: per-architecture `open` flags and errno values that `std` does not name.

pub mod args;
pub mod config;
pub mod delegate;
pub mod env;
pub mod error;
pub mod exec;
pub(crate) mod fields;
pub mod ident;
pub mod oflags;
pub mod output;
pub mod result;
pub mod safefs;
pub mod skel;
pub mod trace;
pub mod version;

pub use config::{Attachment, Fields, NetConf};
pub use env::{Command, Env, EnvMap};
pub use error::{CniError, CniResult};
pub use result::{Dns, Interface, IpConfig, NetResult, Route};
pub use skel::{Plugin, Request};
pub use version::Version;
