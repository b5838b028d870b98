//! The CNI_* environment (SPEC.md "Parameters"; libcni pkg/skel and pkg/utils rules).
//!
//! The dispatcher receives the environment as a map, so tests never touch the process environment. An
//! empty value counts as unset, as libcni exports all six variables, empty ones included.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{CniError, CniResult};
use crate::version::Version;

/// The process environment as the dispatcher sees it.
pub type EnvMap = BTreeMap<OsString, OsString>;

pub(crate) const CNI_COMMAND: &str = "CNI_COMMAND";
pub(crate) const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
pub(crate) const CNI_NETNS: &str = "CNI_NETNS";
pub(crate) const CNI_IFNAME: &str = "CNI_IFNAME";
pub(crate) const CNI_ARGS: &str = "CNI_ARGS";
pub(crate) const CNI_PATH: &str = "CNI_PATH";

/// The six verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Gc,
    Status,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }

    /// The first spec version that has the verb: CHECK came with 0.4.0, GC and STATUS with 1.1.0; the
    /// others are in every version. A runtime does not send a verb to a list older than its floor.
    pub fn min_version(self) -> Version {
        match self {
            Command::Add | Command::Del | Command::Version => Version::V0_1_0,
            Command::Check => Version::V0_4_0,
            Command::Gc | Command::Status => Version::V1_1_0,
        }
    }

    /// Whether the verb concerns one attachment (and so needs its identifying variables).
    fn per_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// The validated CNI_* variables of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    /// Empty for VERSION, GC and STATUS.
    pub container_id: String,
    /// May be empty for DEL (and for VERSION, GC, STATUS).
    pub netns: String,
    pub ifname: String,
    pub args: String,
    pub path: Vec<PathBuf>,
}

/// Reads a variable as UTF-8; empty counts as absent.
fn var(vars: &EnvMap, name: &str) -> CniResult<Option<String>> {
    match vars.get(std::ffi::OsStr::new(name)) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| CniError::invalid_env(format!("{name} is not valid UTF-8"))),
    }
}

/// The command named by CNI_COMMAND: `Ok(None)` when unset (the binary was run by hand).
pub(crate) fn command(vars: &EnvMap) -> CniResult<Option<Command>> {
    match var(vars, CNI_COMMAND)? {
        None => Ok(None),
        Some(c) => Command::parse(&c).map(Some).ok_or_else(|| {
            CniError::invalid_env(format!(
                "unknown CNI_COMMAND {c:?}: expected ADD, DEL, CHECK, VERSION, GC or STATUS"
            ))
        }),
    }
}

/// Why [`validate_ifname`] refused an interface name; the message quotes it. (It borrows the name,
/// as [`crate::result::CidrError`] does its text: the plugins pay for every owned copy in code.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IfnameError<'a> {
    #[error("interface name {0:?} is too long: at most 15 bytes")]
    TooLong(&'a str),
    /// `.` or `..`.
    #[error("interface name {0:?} is not allowed")]
    Dots(&'a str),
    #[error("interface name {name:?} contains {found:?}: '/', ':' and white space are not allowed")]
    Forbidden { name: &'a str, found: char },
}

/// Checks an interface name the way libcni does: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or space.
pub fn validate_ifname(name: &str) -> Result<(), IfnameError<'_>> {
    if name.len() > 15 {
        return Err(IfnameError::TooLong(name));
    }
    if name == "." || name == ".." {
        return Err(IfnameError::Dots(name));
    }
    if let Some(found) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace()) {
        return Err(IfnameError::Forbidden { name, found });
    }
    Ok(())
}

impl Env {
    /// Validates the environment for `command`: every missing variable is named at once (code 4).
    pub fn from_vars(command: Command, vars: &EnvMap) -> CniResult<Env> {
        let container_id = var(vars, CNI_CONTAINERID)?;
        let netns = var(vars, CNI_NETNS)?;
        let ifname = var(vars, CNI_IFNAME)?;
        let args = var(vars, CNI_ARGS)?;
        let path = var(vars, CNI_PATH)?;
        if command.per_attachment() {
            let mut missing = Vec::new();
            if container_id.is_none() {
                missing.push(CNI_CONTAINERID);
            }
            if netns.is_none() && command != Command::Del {
                missing.push(CNI_NETNS);
            }
            if ifname.is_none() {
                missing.push(CNI_IFNAME);
            }
            if !missing.is_empty() {
                return Err(CniError::invalid_env(format!(
                    "required env variables [{}] missing",
                    missing.join(",")
                ))
                .with_details(format!(
                    "{} needs CNI_CONTAINERID, CNI_IFNAME and (except for DEL) CNI_NETNS",
                    command.as_str()
                )));
            }
            let id = container_id.as_deref().unwrap_or_default();
            if !crate::config::valid_identifier(id) {
                return Err(CniError::invalid_env(format!(
                    "invalid characters in containerID {id:?}: it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
                )));
            }
            validate_ifname(ifname.as_deref().unwrap_or_default())
                .map_err(|e| CniError::invalid_env(e.to_string()))?;
        }
        let keep = command.per_attachment();
        Ok(Env {
            command,
            container_id: container_id.filter(|_| keep).unwrap_or_default(),
            netns: netns.filter(|_| keep).unwrap_or_default(),
            ifname: ifname.filter(|_| keep).unwrap_or_default(),
            args: args.filter(|_| keep).unwrap_or_default(),
            path: path
                .map(|p| {
                    p.split(':')
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> EnvMap {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn add_names_every_missing_variable() {
        let e = Env::from_vars(Command::Add, &vars(&[])).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(
            e.msg.contains("CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn del_does_not_need_netns() {
        let e = Env::from_vars(
            Command::Del,
            &vars(&[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]),
        )
        .unwrap();
        assert_eq!(e.netns, "");
    }

    #[test]
    fn gc_and_status_ignore_empty_attachment_vars() {
        let v = vars(&[
            ("CNI_CONTAINERID", ""),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", ""),
            ("CNI_ARGS", ""),
            ("CNI_PATH", "/a:/b"),
        ]);
        for c in [Command::Gc, Command::Status, Command::Version] {
            let e = Env::from_vars(c, &v).unwrap();
            assert_eq!(e.path, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        }
    }

    #[test]
    fn bad_ifnames_and_ids_are_code_4() {
        for bad in ["0123456789abcdef", ".", "..", "a/b", "a:b", "a b"] {
            let v = vars(&[("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/n"), ("CNI_IFNAME", bad)]);
            assert_eq!(Env::from_vars(Command::Add, &v).unwrap_err().code, 4, "{bad}");
        }
        for bad in ["-x", "a b", "a/b", "_a"] {
            let v = vars(&[
                ("CNI_CONTAINERID", bad),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "eth0"),
            ]);
            assert_eq!(Env::from_vars(Command::Add, &v).unwrap_err().code, 4, "{bad}");
        }
    }

    #[test]
    fn ifname_refusals_say_why() {
        let msg = |name: &str| validate_ifname(name).unwrap_err().to_string();
        assert_eq!(
            msg("0123456789abcdef"),
            r#"interface name "0123456789abcdef" is too long: at most 15 bytes"#
        );
        assert_eq!(msg(".."), r#"interface name ".." is not allowed"#);
        assert_eq!(
            msg("a b"),
            r#"interface name "a b" contains ' ': '/', ':' and white space are not allowed"#
        );
        let e = Env::from_vars(
            Command::Add,
            &vars(&[
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/n"),
                ("CNI_IFNAME", "a:b"),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            r#"interface name "a:b" contains ':': '/', ':' and white space are not allowed"#
        );
    }

    #[test]
    fn invalid_utf8_is_code_4() {
        use std::os::unix::ffi::OsStringExt;
        let mut v = vars(&[("CNI_NETNS", "/n"), ("CNI_IFNAME", "eth0")]);
        v.insert(
            OsString::from("CNI_CONTAINERID"),
            OsString::from_vec(vec![0xff, 0xfe]),
        );
        let e = Env::from_vars(Command::Add, &v).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("CNI_CONTAINERID"));
    }

    #[test]
    fn verb_floors_follow_the_spec() {
        assert_eq!(Command::Check.min_version(), Version::V0_4_0);
        assert_eq!(Command::Gc.min_version(), Version::V1_1_0);
        assert_eq!(Command::Status.min_version(), Version::V1_1_0);
        for c in [Command::Add, Command::Del, Command::Version] {
            assert_eq!(c.min_version(), Version::V0_1_0, "{c:?}");
        }
    }
}
