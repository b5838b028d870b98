//! One error type for the whole CLI: a message meant for a person, and the
//! process exit status to use. Every failure a user can see goes through here.

use std::fmt;
use std::path::Path;

/// A failure reported to the user as `k3s-sandbox: error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    /// A failure with the generic exit status 1.
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            exit_code: 1,
        }
    }

    /// An I/O error with the action and the path it concerned.
    pub fn io(action: &str, path: &Path, err: &std::io::Error) -> Self {
        Failure::new(format!("cannot {action} {}: {err}", path.display()))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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
