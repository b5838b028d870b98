//! Pass-through `tuning`: validates the reference tuning plugin's keys (sysctl, mac, mtu, promisc,
//! allmulti, txQLen, from the config, `args.cni` or the `mac` capability), changes nothing, and returns
//! prevResult unchanged.

use cni_core::{CniError, CniResult, Fields, Request};

use crate::attach;
use crate::pass_through::PassThrough;

pub const PLUGIN: PassThrough = PassThrough {
    name: "tuning",
    about: "accepts interface tuning (sysctls, MAC, MTU, flags) for a chained attachment and passes the previous result through; changes nothing",
    validate,
};

/// Checks one sysctl key: it must stay inside the network subsystem, like the reference requires.
fn sysctl_key(f: &Fields, key: &str) -> CniResult<()> {
    // A key with '/' is a path (dots may be part of an interface name, as in eth0.100); otherwise dots
    // separate the components.
    let path = if key.contains('/') {
        key.to_owned()
    } else {
        key.replace('.', "/")
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let escapes = parts.iter().any(|p| *p == ".." || *p == ".");
    if parts.first() != Some(&"net") || parts.len() < 2 || escapes {
        return Err(CniError::invalid_config(format!(
            "invalid net sysctl key {key:?} in {}: only keys under net. (e.g. \"net.core.somaxconn\") may be set",
            f.name("sysctl")
        )));
    }
    Ok(())
}

/// Validates one set of tuning keys (the config's top level, or `args.cni`).
fn tuning_keys(f: &Fields) -> CniResult<()> {
    if let Some(sysctl) = f.object("sysctl")? {
        for key in sysctl.obj.keys() {
            sysctl.string(key)?;
            sysctl_key(f, key)?;
        }
    }
    if let Some(mac) = f.string("mac")?.filter(|m| !m.is_empty()) {
        attach::parse_mac(&mac, &f.name("mac"))?;
    }
    attach::bools(f, &["promisc", "allmulti"])?;
    if let Some(m) = f.int("mtu", 0, 65535)?
        && (1..68).contains(&m)
    {
        return Err(CniError::invalid_config(format!(
            "{} must be 0 (unchanged) or from 68 to 65535, got {m}",
            f.name("mtu")
        )));
    }
    f.int("txQLen", 0, i64::from(u32::MAX))?;
    Ok(())
}

fn validate(req: &Request) -> CniResult<()> {
    let f = req.conf.fields();
    tuning_keys(&f)?;
    attach::strings(&f, &["dataDir"])?;
    if let Some(cni) = req.conf.args_cni()? {
        tuning_keys(&cni)?;
    }
    // CNI_ARGS MAC and runtimeConfig.mac, validated the same way as the bridge's.
    attach::requested_mac(req)?;
    Ok(())
}
