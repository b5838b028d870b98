//! What can go wrong when the runtime runs a network: each failure by kind, with the plugin's own CNI
//! error when a plugin reported one. The texts are libcni's where libcni has one.

use std::io;
use std::path::PathBuf;

use cni_core::{Attachment, CniError, Command};

use crate::{cache, conf, version};

/// A failure of [`crate::Runtime`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin ran and failed: its own error object (code, msg, details), or, when it printed none,
    /// a code-103 error quoting what it printed.
    #[error("plugin type=\"{plugin}\" failed ({}): {}{}", verb(*command), error.msg, details(error))]
    Plugin {
        plugin: String,
        command: Command,
        error: CniError,
    },
    /// A plugin is not in the plugin dirs (or its `type` is not a file name, or CNI_PATH is empty).
    #[error("plugin type=\"{plugin}\" failed ({}): {}", verb(*command), error.msg)]
    PluginNotFound {
        plugin: String,
        command: Command,
        error: CniError,
    },
    /// A plugin could not be started.
    #[error("plugin type=\"{plugin}\" failed ({}): cannot run {}: {source}", verb(*command), exe.display())]
    Spawn {
        plugin: String,
        command: Command,
        exe: PathBuf,
        source: io::Error,
    },
    /// A plugin succeeded but printed something that is not a reply of its verb: an ADD result that
    /// is not JSON or not a result, a VERSION answer without a `supportedVersions` list.
    #[error("{}", bad_reply(plugin, *command, reason))]
    BadReply {
        plugin: String,
        command: Command,
        reason: String,
    },
    /// The list's cniVersion predates the verb ([`Command::min_version`]).
    #[error("configuration version {version:?} does not support the {} command", command.as_str())]
    Unsupported { command: Command, version: String },
    /// The list's cniVersion is not a version.
    #[error(transparent)]
    Version(#[from] version::Error),
    /// The container ID, network name or interface name is refused (libcni checks them first).
    #[error(transparent)]
    InvalidAttachment(io::Error),
    /// The result of a successful ADD could not be cached.
    #[error("failed to set network {network:?} cached result: {source}")]
    CacheWrite { network: String, source: io::Error },
    /// The cached result of an attachment could not be read.
    #[error("failed to get network {network:?} cached result: {source}")]
    CacheRead { network: String, source: cache::Error },
    /// The cached result could not be converted to the list's version.
    #[error("failed to get network {network:?} cached result: {source}")]
    CachedResult { network: String, source: CniError },
    /// GC's DEL of an attachment that is not valid failed.
    #[error(
        "failed to delete stale attachment {} {}: {source}",
        attachment.container_id,
        attachment.ifname
    )]
    StaleAttachment {
        attachment: Attachment,
        source: Box<Error>,
    },
    /// A network configuration that cannot be found, read or used.
    #[error(transparent)]
    Conf(#[from] conf::Error),
}

impl Error {
    /// The CNI error the plugin reported, when a plugin failed (also behind a stale attachment).
    #[cfg(test)]
    pub(crate) fn plugin_error(&self) -> Option<&CniError> {
        match self {
            Error::Plugin { error, .. } => Some(error),
            Error::StaleAttachment { source, .. } => source.plugin_error(),
            _ => None,
        }
    }

    /// The error itself, or the one a stale attachment's DEL met.
    pub fn cause(&self) -> &Error {
        match self {
            Error::StaleAttachment { source, .. } => source.cause(),
            other => other,
        }
    }
}

/// A verb as libcni's messages write it: "add", "del", ...
fn verb(c: Command) -> String {
    c.as_str().to_ascii_lowercase()
}

fn details(e: &CniError) -> String {
    e.details.as_deref().map(|d| format!("; {d}")).unwrap_or_default()
}

fn bad_reply(plugin: &str, command: Command, reason: &str) -> String {
    match command {
        Command::Version => format!("plugin {plugin:?} answered VERSION {reason}"),
        c => format!("plugin type=\"{plugin}\" failed ({}): {reason}", verb(c)),
    }
}
