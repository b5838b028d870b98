//! `--valid ID[/IFNAME]`: the one parser and the one meaning of the attachments a gc keeps, for
//! `cni gc` and `ipam gc`. `ID` alone keeps every interface of the container; `ID/IFNAME` keeps
//! that interface. One value per `--valid`; repeat the option for more.

use std::fmt;

/// One live attachment named on the command line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Attachment {
    pub(crate) id: String,
    /// `None`: every interface of the container.
    pub(crate) ifname: Option<String>,
}

impl fmt::Display for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ifname {
            Some(i) => write!(f, "{}/{i}", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// A container ID as the CNI spec allows it: letters, digits, `_`, `.` and `-`, starting with a
/// letter or digit.
pub(crate) fn valid_container_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An interface name as the CNI spec allows it: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
/// white space.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Why a `--valid` value is not `ID[/IFNAME]`; the value is quoted in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadAttachment {
    #[error(
        "{0:?} is not ID[/IFNAME]: the container ID must be letters, digits, '_', '.' or '-' \
         (starting with a letter or digit)"
    )]
    ContainerId(String),
    #[error(
        "{0:?} is not ID[/IFNAME]: after the '/' comes an interface name of 1 to 15 \
         characters without '/', ':' or spaces"
    )]
    Ifname(String),
}

/// Parses one `--valid` value (clap's value parser for every `--valid`).
pub(crate) fn parse(s: &str) -> Result<Attachment, BadAttachment> {
    let (id, ifname) = match s.split_once('/') {
        Some((id, i)) => (id, Some(i)),
        None => (s, None),
    };
    if !valid_container_id(id) {
        return Err(BadAttachment::ContainerId(s.to_string()));
    }
    if let Some(i) = ifname
        && !valid_ifname(i)
    {
        return Err(BadAttachment::Ifname(s.to_string()));
    }
    Ok(Attachment {
        id: id.to_string(),
        ifname: ifname.map(str::to_string),
    })
}

/// The live attachments of a gc.
#[derive(Debug, Clone, Default)]
pub(crate) struct Valid {
    pub(crate) live: ipam_store::Live,
}

impl Valid {
    pub(crate) fn new(list: &[Attachment]) -> Valid {
        Valid {
            live: ipam_store::Live::new(list.iter().map(|a| (a.id.clone(), a.ifname.clone())).collect()),
        }
    }

    /// Whether the attachment (container `id`, interface `ifname` when known) is live: ipam-store's
    /// one liveness rule ([`ipam_store::live`]).
    pub(crate) fn keeps(&self, id: &str, ifname: Option<&str>) -> bool {
        self.live.keeps(id, ifname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            "",
            "/eth0",
            "cnitool-46d052794837c3ef56a0/",
            "a//eth0",
            "a/eth0/x",
            "-a",
            "a b",
            "a/this-is-too-long-0",
            "a/..",
            "a/e:1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_id_alone_keeps_every_interface_of_its_container() {
        let v = Valid::new(&[parse("abc").unwrap(), parse("def/eth1").unwrap()]);
        assert!(v.keeps("abc", Some("eth0")) && v.keeps("abc", Some("net1")) && v.keeps("abc", None));
        assert!(v.keeps("def", Some("eth1")) && v.keeps("def", None));
        assert!(!v.keeps("def", Some("eth0")));
        assert!(!v.keeps("ab", Some("eth0")) && !v.keeps("abcd", None));
        assert_eq!(parse("def/eth1").unwrap().to_string(), "def/eth1");
    }
}
