//! One error type for the whole CLI: what went wrong, by kind, with a message meant for a person
//! and the process exit status to use. Every failure a user can see goes through here.
//!
//! Code that needs to react to a particular failure matches on its kind (for example
//! [`Failure::Ipv6Range`]); it never looks into the message text.
//!
//! Exit statuses follow sysexits.h where a kind has one (the table is in docs/cni-cli.md and
//! docs/k3s.md): 64 usage, 65 input the CNI commands refuse, 69 a plugin that is missing or cannot
//! start, 74 libcni's result cache, 76 a plugin reply that is not a CNI reply, 78 a network
//! configuration that cannot be used; 1 for everything else, a plugin's own CNI error included.

use std::path::{Path, PathBuf};

use cni_core::CniError;
use cni_runtime::{conf, runtime};

/// A failure reported to the user as `k3s-sandbox: error: <message>`, where the message is the
/// `Display` text.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Anything without a kind of its own (`Failure::new`, `From<String>`, `From<&str>`).
    #[error("{0}")]
    Other(String),
    /// Arguments that parse but cannot be used together, or refer to something unusable (a
    /// guarded k3s flag without `--force`, an empty directory option, an option that does not
    /// apply without another). Exits `USAGE_EXIT`, as clap's own syntax errors do.
    #[error("{0}")]
    Usage(String),
    /// A file-system call on a path failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, as a verb phrase: "write", "create the data dir".
        action: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A program or file the command needs is not there (k3s, a log, a kubeconfig).
    #[error("{0}")]
    NotFound(String),
    /// The CNI plugin executables cannot be installed or used.
    #[error("{0}")]
    Plugin(String),
    /// The CNI self-test through the installed plugins failed.
    #[error("{0}")]
    SelfTest(String),
    /// The k3s process or the instance recorded in the data dir is in a state the command cannot
    /// work with (exited, not ready, running with other arguments, an unreadable pid file).
    #[error("{0}")]
    Instance(String),
    /// Another k3s-sandbox command holds the data dir's lock.
    #[error("{0}")]
    Busy(String),
    /// A failure already reported on stdout (as the `errors` of a `--json` object): the process
    /// exits with its status without a second JSON error object.
    #[error("{0}")]
    Reported(Box<Failure>),
    /// A CNI plugin ran and failed with its own error object (code, msg, details; or, when it printed
    /// none, code 103 quoting what it printed). Exits 1, as cnitool does.
    #[error("{message}")]
    PluginFailed { message: String, error: CniError },
    /// A plugin the network needs is not in the plugin dirs or cannot be started. Exits
    /// `exit::UNAVAILABLE`.
    #[error("{0}")]
    PluginMissing(String),
    /// A plugin succeeded but printed something that is not a CNI reply (an ADD result that is not
    /// JSON or not a result of its version, a VERSION answer without `supportedVersions`). Exits
    /// `exit::PROTOCOL`.
    #[error("{0}")]
    PluginReply(String),
    /// A network configuration that cannot be read or used: an invalid conflist, a cniVersion that
    /// is not a version, a verb the list's version does not have (CHECK before 0.4.0), the file
    /// containerd would pick unreadable. Exits `exit::CONFIG`.
    #[error("{0}")]
    NetworkConfig(String),
    /// Input the CNI commands refuse: CNI_ARGS, CAP_ARGS, an interface name, container ID or
    /// network name libcni would refuse. Exits `exit::DATA`.
    #[error("{0}")]
    CniInput(String),
    /// libcni's result cache cannot be read or written, or holds an entry that cannot be used.
    /// Exits `exit::IO`.
    #[error("{0}")]
    Cache(String),
    /// A pod range that is IPv6: the default sandbox-cni network is IPv4-only. `up` only warns
    /// about it when it comes from a node's podCIDR.
    #[error(
        "pod range {subnet} is IPv6; the default sandbox-cni network is IPv4-only \
         (see cni-conf/dual-stack.conflist for a dual-stack example)"
    )]
    Ipv6Range { subnet: String },
}

/// Exit status of a command-line usage error found by the parser (EX_USAGE), kept apart from the
/// status codes of `status`.
pub(crate) const USAGE_EXIT: u8 = exit::USAGE;

/// The exit statuses of failures (sysexits.h values where one fits); `status` reports its states
/// with 0 to 3 and never through a failure.
pub(crate) mod exit {
    /// Any failure without a status of its own, a plugin's own CNI error included.
    pub(crate) const FAILURE: u8 = 1;
    /// EX_USAGE: [`super::Failure::Usage`] and clap's syntax errors.
    pub(crate) const USAGE: u8 = 64;
    /// EX_DATAERR: [`super::Failure::CniInput`].
    pub(crate) const DATA: u8 = 65;
    /// EX_UNAVAILABLE: [`super::Failure::PluginMissing`].
    pub(crate) const UNAVAILABLE: u8 = 69;
    /// EX_IOERR: [`super::Failure::Cache`].
    pub(crate) const IO: u8 = 74;
    /// EX_PROTOCOL: [`super::Failure::PluginReply`].
    pub(crate) const PROTOCOL: u8 = 76;
    /// EX_CONFIG: [`super::Failure::NetworkConfig`].
    pub(crate) const CONFIG: u8 = 78;
}

impl Failure {
    /// A failure without a kind of its own (exit status 1).
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure::Other(message.into())
    }

    /// An I/O error with the action and the path it concerned.
    pub(crate) fn io(action: &str, path: &Path, err: &std::io::Error) -> Self {
        Failure::Io {
            action: action.to_string(),
            path: path.to_path_buf(),
            // io::Error is not Clone; a copy with the same kind and text says the same.
            source: copy_io_error(err),
        }
    }

    /// The text shown after `k3s-sandbox: error: `.
    pub(crate) fn message(&self) -> String {
        self.to_string()
    }

    /// The process exit status for this failure (see [`exit`]); `status` reports its states with
    /// its own codes and never through a failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => exit::USAGE,
            Failure::Reported(f) => f.exit_code(),
            Failure::CniInput(_) => exit::DATA,
            Failure::PluginMissing(_) => exit::UNAVAILABLE,
            Failure::Cache(_) => exit::IO,
            Failure::PluginReply(_) => exit::PROTOCOL,
            Failure::NetworkConfig(_) => exit::CONFIG,
            Failure::Other(_)
            | Failure::PluginFailed { .. }
            | Failure::Io { .. }
            | Failure::NotFound(_)
            | Failure::Plugin(_)
            | Failure::SelfTest(_)
            | Failure::Instance(_)
            | Failure::Busy(_)
            | Failure::Ipv6Range { .. } => exit::FAILURE,
        }
    }

    /// The same failure, already reported on stdout.
    pub(crate) fn reported(self) -> Failure {
        match self {
            r @ Failure::Reported(_) => r,
            f => Failure::Reported(Box::new(f)),
        }
    }

    /// The same kind (and exit status) with `note` appended to the message.
    pub(crate) fn with_note(self, note: &str) -> Failure {
        match self {
            Failure::Other(m) => Failure::Other(m + note),
            Failure::Usage(m) => Failure::Usage(m + note),
            Failure::NotFound(m) => Failure::NotFound(m + note),
            Failure::Plugin(m) => Failure::Plugin(m + note),
            Failure::SelfTest(m) => Failure::SelfTest(m + note),
            Failure::Instance(m) => Failure::Instance(m + note),
            Failure::Busy(m) => Failure::Busy(m + note),
            Failure::PluginFailed { message, error } => Failure::PluginFailed {
                message: message + note,
                error,
            },
            Failure::PluginMissing(m) => Failure::PluginMissing(m + note),
            Failure::PluginReply(m) => Failure::PluginReply(m + note),
            Failure::NetworkConfig(m) => Failure::NetworkConfig(m + note),
            Failure::CniInput(m) => Failure::CniInput(m + note),
            Failure::Cache(m) => Failure::Cache(m + note),
            Failure::Reported(f) => Failure::Reported(Box::new(f.with_note(note))),
            f @ (Failure::Io { .. } | Failure::Ipv6Range { .. }) => Failure::Other(format!("{f}{note}")),
        }
    }
}

fn copy_io_error(err: &std::io::Error) -> std::io::Error {
    match err.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(err.kind(), err.to_string()),
    }
}

/// The runtime's failures by kind; a stale attachment's takes the kind of what its DEL met.
impl From<runtime::Error> for Failure {
    fn from(e: runtime::Error) -> Failure {
        use runtime::Error as E;
        let message = e.to_string();
        match e.cause() {
            E::Plugin { error, .. } => Failure::PluginFailed {
                message,
                error: error.clone(),
            },
            E::PluginNotFound { .. } | E::Spawn { .. } => Failure::PluginMissing(message),
            E::BadReply { .. } => Failure::PluginReply(message),
            E::Unsupported { .. } | E::Version(_) => Failure::NetworkConfig(message),
            E::Conf(c) => conf_kind(c)(message),
            E::InvalidAttachment(_) => Failure::CniInput(message),
            E::CacheWrite { .. } | E::CacheRead { .. } | E::CachedResult { .. } => Failure::Cache(message),
            E::StaleAttachment { .. } => Failure::Other(message),
        }
    }
}

/// A network that is not there is a plain failure (exit 1); one that cannot be read or used is
/// [`Failure::NetworkConfig`].
fn conf_kind(e: &conf::Error) -> fn(String) -> Failure {
    match e {
        conf::Error::NotFound { .. } => Failure::Other,
        _ => Failure::NetworkConfig,
    }
}

impl From<conf::Error> for Failure {
    fn from(e: conf::Error) -> Failure {
        conf_kind(&e)(e.to_string())
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::new(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::new(message)
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_read_as_before() {
        let err = std::io::Error::from_raw_os_error(13);
        let f = Failure::io("write", Path::new("/x/y"), &err);
        assert_eq!(
            f.to_string(),
            "cannot write /x/y: Permission denied (os error 13)"
        );
        assert!(
            matches!(&f, Failure::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
        );
        let custom = std::io::Error::other("disk on fire");
        assert_eq!(
            Failure::io("read", Path::new("a"), &custom).message(),
            "cannot read a: disk on fire"
        );
        assert_eq!(f.exit_code(), 1);
    }

    #[test]
    fn plain_messages_keep_their_text() {
        assert_eq!(Failure::from("x y").to_string(), "x y");
        assert_eq!(Failure::from(String::from("z")).message(), "z");
        assert!(matches!(Failure::new("m"), Failure::Other(m) if m == "m"));
        let v6 = Failure::Ipv6Range {
            subnet: "fd00::/64".into(),
        };
        assert!(v6.to_string().starts_with("pod range fd00::/64 is IPv6;"));
        assert_eq!(v6.exit_code(), 1);
    }

    #[test]
    fn runtime_failures_get_their_kinds_and_statuses() {
        use cni_core::Command;
        let plugin = runtime::Error::Plugin {
            plugin: "bridge".into(),
            command: Command::Add,
            error: CniError::new(11, "busy").with_details("later"),
        };
        let f = Failure::from(plugin);
        assert_eq!(f.to_string(), "plugin type=\"bridge\" failed (add): busy; later");
        assert!(matches!(&f, Failure::PluginFailed { error, .. } if error.code == 11));
        assert_eq!(f.exit_code(), 1);
        let missing = runtime::Error::PluginNotFound {
            plugin: "brige".into(),
            command: Command::Del,
            error: CniError::invalid_config("failed to find plugin \"brige\""),
        };
        let stale = runtime::Error::StaleAttachment {
            attachment: cni_core::Attachment {
                container_id: "c".into(),
                ifname: "eth0".into(),
            },
            source: Box::new(missing),
        };
        let f = Failure::from(stale).with_note(" (note)");
        assert!(matches!(f, Failure::PluginMissing(_)), "{f:?}");
        assert_eq!(f.exit_code(), exit::UNAVAILABLE);
        assert!(
            f.to_string()
                .starts_with("failed to delete stale attachment c eth0: ")
        );
        assert!(f.to_string().ends_with(" (note)"));
        let old = runtime::Error::Unsupported {
            command: Command::Check,
            version: "0.3.1".into(),
        };
        assert_eq!(Failure::from(old).exit_code(), exit::CONFIG);
        let bad_name = runtime::Error::InvalidAttachment(std::io::Error::other("invalid network name"));
        assert_eq!(Failure::from(bad_name).exit_code(), exit::DATA);
        let reply = runtime::Error::BadReply {
            plugin: "x".into(),
            command: Command::Version,
            reason: "with something that is not JSON: x".into(),
        };
        let f = Failure::from(reply).reported();
        assert_eq!(f.exit_code(), exit::PROTOCOL);
        assert_eq!(
            f.to_string(),
            "plugin \"x\" answered VERSION with something that is not JSON: x"
        );
        let gone = conf::Error::NotFound {
            name: "n".into(),
            dir: "/d".into(),
        };
        assert_eq!(Failure::from(gone).exit_code(), 1);
        assert_eq!(
            Failure::from(conf::Error::List("no name".into())).exit_code(),
            exit::CONFIG
        );
    }
}
