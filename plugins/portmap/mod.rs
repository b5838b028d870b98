//! Pass-through `portmap`: validates the reference portmap's configuration and the `portMappings`
//! capability (camelCase or containerd's Capitalised keys) the way the reference rejects bad input,
//! installs no DNAT rule, and returns prevResult unchanged.

use cni_core::{CniError, CniResult, Request};

use crate::attach;
use crate::pass_through::PassThrough;

pub const PLUGIN: PassThrough = PassThrough {
    name: "portmap",
    about: "accepts port mappings for a chained attachment and passes the previous result through; installs no NAT rules",
    validate,
};

fn validate(req: &Request) -> CniResult<()> {
    let f = req.conf.fields();
    attach::bools(&f, &["snat", "masqAll"])?;
    let mark_bit = f.int("markMasqBit", 0, 31)?;
    let external = f.string("externalSetMarkChain")?;
    if mark_bit.is_some() && external.is_some() {
        return Err(CniError::invalid_config(
            "cannot specify externalSetMarkChain and markMasqBit together: pick one way to mark masqueraded traffic",
        ));
    }
    f.strings("conditionsV4")?;
    f.strings("conditionsV6")?;
    attach::one_of(&f, "backend", &["iptables", "nftables"])?;
    let rc = req.conf.runtime_config()?;
    for m in rc.objects_ci("portMappings")? {
        for key in ["hostPort", "containerPort"] {
            if m.int_ci(key, 1, 65535)?.is_none() {
                return Err(CniError::invalid_config(format!(
                    "{} is missing: every port mapping needs hostPort and containerPort (1-65535)",
                    m.name(key)
                )));
            }
        }
        if let Some(proto) = m.string_ci("protocol")?
            && !proto.is_empty()
            && !["tcp", "udp", "sctp"].contains(&proto.to_ascii_lowercase().as_str())
        {
            return Err(CniError::invalid_config(format!(
                "{}protocol {proto:?} is not supported: use tcp, udp or sctp",
                m.name("")
            )));
        }
        if let Some(ip) = m.string_ci("hostIP")?
            && !ip.is_empty()
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            return Err(CniError::invalid_config(format!(
                "{}hostIP {ip:?} is not an IP address (leave it empty to listen on every address)",
                m.name("")
            )));
        }
    }
    Ok(())
}
