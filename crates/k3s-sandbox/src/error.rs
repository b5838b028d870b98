//! One error type for the whole CLI: what went wrong, by kind, with a message meant for a person
//! and the process exit status to use. Every failure a user can see goes through here.
//!
//! Code that needs to react to a particular failure matches on its kind (for example
//! [`Failure::Ipv6Range`]); it never looks into the message text.

use std::path::{Path, PathBuf};

/// A failure reported to the user as `k3s-sandbox: error: <message>`, where the message is the
/// `Display` text.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Anything without a kind of its own ([`Failure::new`], `From<String>`, `From<&str>`).
    #[error("{0}")]
    Other(String),
    /// Arguments that parse but cannot be used together, or refer to something unusable (a
    /// guarded k3s flag without `--force`, an empty directory option, an option that does not
    /// apply without another). Exits [`USAGE_EXIT`], as clap's own syntax errors do.
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
    /// exits 1 without a second JSON error object.
    #[error("{0}")]
    Reported(String),
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
pub const USAGE_EXIT: u8 = 64;

impl Failure {
    /// A failure without a kind of its own (exit status 1).
    pub fn new(message: impl Into<String>) -> Self {
        Failure::Other(message.into())
    }

    /// An I/O error with the action and the path it concerned.
    pub fn io(action: &str, path: &Path, err: &std::io::Error) -> Self {
        Failure::Io {
            action: action.to_string(),
            path: path.to_path_buf(),
            // io::Error is not Clone; a copy with the same kind and text says the same.
            source: copy_io_error(err),
        }
    }

    /// The text shown after `k3s-sandbox: error: `.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The process exit status for this failure: [`USAGE_EXIT`] for a usage error, else 1;
    /// `status` reports its states with its own codes and never through a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE_EXIT,
            Failure::Other(_)
            | Failure::Reported(_)
            | Failure::Io { .. }
            | Failure::NotFound(_)
            | Failure::Plugin(_)
            | Failure::SelfTest(_)
            | Failure::Instance(_)
            | Failure::Busy(_)
            | Failure::Ipv6Range { .. } => 1,
        }
    }
}

fn copy_io_error(err: &std::io::Error) -> std::io::Error {
    match err.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(err.kind(), err.to_string()),
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
}
