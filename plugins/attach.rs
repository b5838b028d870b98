//! What the bridge and the chained plugins share about an attachment: the CNI_ARGS keys the suite
//! understands, the MAC address an attachment asks for (and MAC parsing), and type checks of plugin keys.

use cni_core::args::CniArgs;
use cni_core::{CniError, CniResult, Fields, Request};

/// CNI_ARGS keys the plugins of this suite understand (others need `IgnoreUnknown=1`, as in libcni).
/// `IP` is host-local's: accepting it here lets `CNI_ARGS=IP=...` reach the IPAM through the bridge.
pub(crate) const KNOWN_ARGS: [&str; 2] = ["MAC", "IP"];

/// Parses a MAC address given as six hex octets separated by `:` or `-`, or as three dot-separated
/// groups of four hex digits (`0a58.0a2a.0007`); returns it as lowercase `aa:bb:cc:dd:ee:ff`.
///
/// `what` names the source in the error (code 7), e.g. `runtimeConfig.mac`.
pub(crate) fn parse_mac(s: &str, what: &str) -> CniResult<String> {
    let bad = |why: &str| {
        CniError::invalid_config(format!("{what}: {s:?} is not a usable MAC address: {why}"))
            .with_details("write it as six hex octets separated by colons, e.g. \"0a:58:0a:2a:00:07\"")
    };
    let hex_ok = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let digits: String = if s.contains(':') || s.contains('-') {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        if parts.len() != 6 || !parts.iter().all(|p| hex_ok(p, 2)) {
            return Err(bad("expected six two-digit hex octets"));
        }
        parts.concat()
    } else if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() != 3 || !parts.iter().all(|p| hex_ok(p, 4)) {
            return Err(bad("expected three four-digit hex groups"));
        }
        parts.concat()
    } else {
        return Err(bad("expected octets separated by ':' or '-'"));
    };
    let lower = digits.to_ascii_lowercase();
    let first = u8::from_str_radix(&lower[..2], 16).map_err(|_| bad("not hexadecimal"))?;
    if first & 0x01 != 0 {
        return Err(bad("it is a multicast address, which an interface cannot use"));
    }
    if lower.bytes().all(|b| b == b'0') {
        return Err(bad("the all-zero address cannot be assigned to an interface"));
    }
    let octets: Vec<&str> = (0..6).map(|i| &lower[2 * i..2 * i + 2]).collect();
    Ok(octets.join(":"))
}

/// The MAC an attachment asks for, in the reference bridge's order (later wins): CNI_ARGS `MAC`,
/// then `args.cni.mac`, then `runtimeConfig.mac`. Also validates CNI_ARGS (libcni rules).
pub(crate) fn requested_mac(req: &Request) -> CniResult<Option<String>> {
    let args = CniArgs::parse(&req.env.args, &KNOWN_ARGS)?;
    let mut mac = args
        .get("MAC")
        .filter(|m| !m.is_empty())
        .map(|m| parse_mac(m, "CNI_ARGS MAC"))
        .transpose()?;
    if let Some(cni) = req.conf.args_cni()?
        && let Some(m) = cni.string("mac")?.filter(|m| !m.is_empty())
    {
        mac = Some(parse_mac(&m, &cni.name("mac"))?);
    }
    let rc = req.conf.runtime_config()?;
    if let Some(m) = rc.string_ci("mac")?.filter(|m| !m.is_empty()) {
        mac = Some(parse_mac(&m, "runtimeConfig.mac")?);
    }
    Ok(mac)
}

/// Checks that each listed key, when present, is `true` or `false`.
pub(crate) fn bools(f: &Fields, keys: &[&str]) -> CniResult<()> {
    for k in keys {
        f.bool(k)?;
    }
    Ok(())
}

/// Checks that each listed key, when present, is a string.
pub(crate) fn strings(f: &Fields, keys: &[&str]) -> CniResult<()> {
    for k in keys {
        f.string(k)?;
    }
    Ok(())
}

/// A string key restricted to `allowed` values (the empty string counts as unset).
pub(crate) fn one_of(f: &Fields, key: &str, allowed: &[&str]) -> CniResult<Option<String>> {
    match f.string(key)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
        Some(s) => Err(CniError::invalid_config(format!(
            "{} {s:?} is not supported: use one of {}",
            f.name(key),
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_normalised_and_bad_ones_refused() {
        assert_eq!(parse_mac("0A:58:0a:2a:00:07", "m").unwrap(), "0a:58:0a:2a:00:07");
        assert_eq!(parse_mac("0a-58-0a-2a-00-07", "m").unwrap(), "0a:58:0a:2a:00:07");
        assert_eq!(parse_mac("0a58.0a2a.0007", "m").unwrap(), "0a:58:0a:2a:00:07");
        for bad in [
            "",
            "0a:58:0a:2a:00",
            "0a:58:0a:2a:00:07:08",
            "0a:58:0a:2a:00:7",
            "zz:58:0a:2a:00:07",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "0a:58-0a:2a:00:07",
            "0a580a2a0007",
        ] {
            let e = parse_mac(bad, "runtimeConfig.mac").unwrap_err();
            assert_eq!(e.code, 7, "{bad}");
            assert!(e.msg.contains("runtimeConfig.mac"), "{}", e.msg);
        }
    }

    fn mac_of(conf: serde_json::Value, cni_args: &str) -> CniResult<Option<String>> {
        let stdin = conf.to_string();
        let req = Request {
            env: cni_core::Env {
                command: cni_core::Command::Add,
                container_id: "c".into(),
                netns: "/n".into(),
                ifname: "eth0".into(),
                args: cni_args.into(),
                path: Vec::new(),
            },
            conf: cni_core::NetConf::parse(stdin.as_bytes())?,
            stdin: stdin.as_bytes(),
            vars: &cni_core::EnvMap::new(),
        };
        requested_mac(&req)
    }

    #[test]
    fn the_requested_mac_comes_from_cni_args_then_args_cni_then_runtime_config() {
        let base = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"});
        let with = |extra: serde_json::Value| {
            let mut c = base.clone();
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert_eq!(mac_of(base.clone(), "").unwrap(), None);
        let args = with(serde_json::json!({"args": {"cni": {"mac": "0A:58:00:00:00:02"}}}));
        assert_eq!(
            mac_of(args.clone(), "MAC=0a:58:00:00:00:01").unwrap().unwrap(),
            "0a:58:00:00:00:02"
        );
        assert_eq!(
            mac_of(base.clone(), "MAC=0a:58:00:00:00:01").unwrap().unwrap(),
            "0a:58:00:00:00:01"
        );
        let mut rc = args.clone();
        rc["runtimeConfig"] = serde_json::json!({"mac": "0a:58:00:00:00:03"});
        assert_eq!(mac_of(rc, "").unwrap().unwrap(), "0a:58:00:00:00:03");
        // args.cni is read with its type checks: each wrong level is named.
        for (extra, named) in [
            (serde_json::json!({"args": "x"}), "args must be an object"),
            (
                serde_json::json!({"args": {"cni": 5}}),
                "args.cni must be an object",
            ),
            (
                serde_json::json!({"args": {"cni": {"mac": true}}}),
                "args.cni.mac must be a string",
            ),
        ] {
            let e = mac_of(with(extra), "").unwrap_err();
            assert_eq!(e.code, 7);
            assert!(e.msg.starts_with(named), "{}", e.msg);
        }
        assert_eq!(
            mac_of(with(serde_json::json!({"args": {"other": 1}})), "").unwrap(),
            None
        );
    }
}
