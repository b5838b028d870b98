//! CNI error objects (SPEC.md "Error"; codes 0-99 are the spec's, 100+ are ours).
//!
//! Every failure a plugin reports is a [`CniError`] with a code, a short `msg` a user can act on and an
//! optional longer `details`. It is printed on stdout as one JSON object with a non-zero exit status.

use serde::{Deserialize, Serialize};

/// Spec error codes, plus sandbox-cni's own codes from 100 up (the table is in docs/protocol.md).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration; the message names key and value.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Invalid or missing environment variables; the message names them.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub(crate) const IO_FAILURE: u32 = 5;
    /// Failed to decode content (bad JSON, bad version string).
    pub const DECODE_FAILURE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (transient).
    pub(crate) const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADD requests.
    pub(crate) const NOT_AVAILABLE: u32 = 50;
    /// host-local: no free address left in a range set.
    pub const ADDRESS_POOL_EXHAUSTED: u32 = 100;
    /// host-local: a requested address cannot be reserved (taken, the gateway, or outside every range).
    pub const ADDRESS_UNAVAILABLE: u32 = 101;
    /// CHECK found a difference between what was reported and what exists.
    pub const CHECK_MISMATCH: u32 = 102;
    /// A delegated plugin could not be run, or answered something that is not a CNI reply.
    pub const DELEGATE_FAILED: u32 = 103;
    /// An internal error (a bug): only the panic hook uses it.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: code, short message, optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{msg}")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self::with_msg(code, msg.into())
    }

    /// The non-generic body of [`CniError::new`]: one out-of-line copy for every call site.
    #[cold]
    #[inline(never)]
    fn with_msg(code: u32, msg: String) -> Self {
        CniError {
            code,
            msg,
            details: None,
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    pub fn incompatible_version(msg: impl Into<String>) -> Self {
        Self::new(code::INCOMPATIBLE_VERSION, msg)
    }
    pub(crate) fn unsupported_field(msg: impl Into<String>) -> Self {
        Self::new(code::UNSUPPORTED_FIELD, msg)
    }
    pub(crate) fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_ENVIRONMENT, msg)
    }
    pub fn io(msg: impl Into<String>) -> Self {
        Self::new(code::IO_FAILURE, msg)
    }
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(code::DECODE_FAILURE, msg)
    }
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(code::INVALID_CONFIG, msg)
    }
    pub fn try_again(msg: impl Into<String>) -> Self {
        Self::new(code::TRY_AGAIN_LATER, msg)
    }
    pub fn not_available(msg: impl Into<String>) -> Self {
        Self::new(code::NOT_AVAILABLE, msg)
    }

    /// Prefixes the message with context, keeping the code and details.
    pub fn context(mut self, ctx: impl std::fmt::Display) -> Self {
        self.msg = format!("{ctx}: {}", self.msg);
        self
    }
}

/// A result whose error is a [`CniError`].
pub type CniResult<T> = Result<T, CniError>;
