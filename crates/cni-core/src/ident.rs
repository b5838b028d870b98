//! Deterministic names and MAC addresses derived from sha256, so results are byte-for-byte repeatable.

use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// A locally administered unicast MAC address (`x2:…`), stable for the same `parts`.
pub fn mac_from(parts: &[&str]) -> String {
    let d = digest(parts);
    let b0 = (d[0] & 0xfe) | 0x02;
    format!(
        "{b0:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        d[1], d[2], d[3], d[4], d[5]
    )
}

/// `n` lowercase hex digits (n <= 64) of sha256 over `parts`.
pub fn hex_id(parts: &[&str], n: usize) -> String {
    let d = digest(parts);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    hex[..n.min(64)].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_stable_unicast_and_local() {
        let a = mac_from(&["net", "ctr", "eth0"]);
        assert_eq!(a, mac_from(&["net", "ctr", "eth0"]));
        assert_ne!(a, mac_from(&["net", "ctr", "eth1"]));
        // Separators matter: ("ab","c") and ("a","bc") differ.
        assert_ne!(mac_from(&["ab", "c"]), mac_from(&["a", "bc"]));
        let first = u8::from_str_radix(&a[..2], 16).unwrap();
        assert_eq!(first & 0x01, 0, "unicast");
        assert_eq!(first & 0x02, 0x02, "locally administered");
        assert_eq!(a.len(), 17);
    }

    #[test]
    fn hex_ids_have_the_requested_length() {
        assert_eq!(hex_id(&["x"], 8).len(), 8);
        assert!(hex_id(&["x"], 8).bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
