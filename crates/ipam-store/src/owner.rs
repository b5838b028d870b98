//! Who holds a reservation: the body of a reservation file.

use std::fmt;

/// The holder of a reservation: a container ID and an interface name. Reservation files written by
/// reference plugins before v0.8.0 hold only the container ID (`ifname` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub id: String,
    pub ifname: Option<String>,
}

impl Owner {
    pub fn new(id: impl Into<String>, ifname: impl Into<String>) -> Owner {
        Owner {
            id: id.into().trim().to_owned(),
            ifname: Some(ifname.into()),
        }
    }

    /// The id-only owner the reference's legacy files name.
    pub fn legacy(id: impl Into<String>) -> Owner {
        Owner {
            id: id.into().trim().to_owned(),
            ifname: None,
        }
    }

    /// The exact bytes of a reservation file: `id\r\nifname` (no trailing newline), or `id` for legacy.
    pub(crate) fn body(&self) -> String {
        match &self.ifname {
            Some(i) => format!("{}\r\n{i}", self.id),
            None => self.id.clone(),
        }
    }

    /// Reads a reservation file body the way the reference compares it (surrounding white space
    /// trimmed). `None` for an empty or unreadable body: such a file reserves its address for nobody.
    pub fn parse_body(body: &[u8]) -> Option<Owner> {
        let text = std::str::from_utf8(body).ok()?.trim();
        if text.is_empty() {
            return None;
        }
        match text.split_once("\r\n") {
            Some((id, ifname)) if !id.is_empty() && !ifname.is_empty() && !ifname.contains(['\r', '\n']) => {
                Some(Owner {
                    id: id.to_owned(),
                    ifname: Some(ifname.to_owned()),
                })
            }
            Some(_) => None,
            None if !text.contains(char::is_whitespace) => Some(Owner::legacy(text)),
            None => None,
        }
    }
}

use cni_core::safefs::printable;

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ifname {
            Some(i) => write!(
                f,
                "container {} (interface {})",
                printable(&self.id),
                printable(i)
            ),
            None => write!(f, "container {} (no interface recorded)", printable(&self.id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_round_trips_and_matches_the_reference_bytes() {
        let o = Owner::new("ctr-a", "eth0");
        assert_eq!(o.body().as_bytes(), b"ctr-a\r\neth0");
        assert_eq!(Owner::parse_body(b"ctr-a\r\neth0"), Some(o.clone()));
        assert_eq!(Owner::parse_body(b"  ctr-a\r\neth0\n"), Some(o));
        assert_eq!(Owner::parse_body(b"ctr-old"), Some(Owner::legacy("ctr-old")));
        assert_eq!(Owner::parse_body(b""), None);
        assert_eq!(Owner::parse_body(b"  \n"), None);
        assert_eq!(Owner::parse_body(b"sandbox-cni owner index v1\n"), None);
        assert_eq!(Owner::parse_body(b"\xff\xfe"), None);
    }
}
