//! The only place that writes to stdout and picks the exit status.
//!
//! A reply is exactly one JSON document (result, version information or error) or nothing; errors go
//! to stdout too, with exit status 1, because that is where libcni reads them.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::error::{CniError, code};
use crate::version::{SUPPORTED, Version};

/// What an invocation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub exit: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorReply<'a> {
    cni_version: &'static str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionReply {
    cni_version: &'static str,
    supported_versions: [&'static str; 7],
}

/// Encodes an error reply; `version` is the request's when it was understood.
pub(crate) fn error_json(e: &CniError, version: Option<Version>) -> Vec<u8> {
    let reply = ErrorReply {
        cni_version: version.unwrap_or(Version::V1_1_0).as_str(),
        code: e.code,
        msg: &e.msg,
        details: e.details.as_deref(),
    };
    // Serialising this struct of strings and integers cannot fail; fall back to a fixed text anyway.
    serde_json::to_vec(&reply).unwrap_or_else(|_| br#"{"code":999,"msg":"cannot encode error"}"#.to_vec())
}

impl Outcome {
    pub(crate) fn result(json: Vec<u8>) -> Self {
        Outcome {
            stdout: json,
            stderr: String::new(),
            exit: 0,
        }
    }

    pub(crate) fn nothing() -> Self {
        Outcome {
            stdout: Vec::new(),
            stderr: String::new(),
            exit: 0,
        }
    }

    pub(crate) fn about(text: String) -> Self {
        Outcome {
            stdout: Vec::new(),
            stderr: text,
            exit: 0,
        }
    }

    pub(crate) fn version(version: Version) -> Self {
        let reply = VersionReply {
            cni_version: version.as_str(),
            supported_versions: SUPPORTED,
        };
        Outcome::result(serde_json::to_vec(&reply).unwrap_or_default())
    }

    pub(crate) fn error(e: &CniError, version: Option<Version>) -> Self {
        Outcome {
            stdout: error_json(e, version),
            stderr: String::new(),
            exit: 1,
        }
    }
}

/// Writes the outcome and returns the exit status.
#[allow(clippy::print_stderr, clippy::disallowed_methods)]
pub(crate) fn emit(outcome: &Outcome) -> ExitCode {
    if !outcome.stderr.is_empty() {
        eprint!("{}", outcome.stderr);
    }
    let mut out = std::io::stdout().lock();
    if !outcome.stdout.is_empty() && (out.write_all(&outcome.stdout).is_err() || out.flush().is_err()) {
        // The reader went away; nothing more can be said to it.
        return ExitCode::from(1);
    }
    ExitCode::from(outcome.exit)
}

/// Turns any panic into an error reply (code 999) with exit status 1, never Rust's exit 101 text.
#[allow(clippy::disallowed_methods)]
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let e = CniError::new(
            code::INTERNAL,
            "internal error in sandbox-cni (a bug: please report it)",
        )
        .with_details(info.to_string());
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&error_json(&e, None));
        let _ = out.flush();
        std::process::exit(1);
    }));
}
