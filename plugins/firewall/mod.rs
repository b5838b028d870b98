//! Pass-through `firewall`: validates the reference firewall plugin's keys, adds no rule, and returns
//! prevResult unchanged.

use cni_core::{CniError, CniResult, Request};

use crate::attach;
use crate::pass_through::PassThrough;

pub const PLUGIN: PassThrough = PassThrough {
    name: "firewall",
    about: "accepts firewall settings for a chained attachment and passes the previous result through; adds no rules",
    validate,
};

/// iptables chain names are at most 28 characters.
const MAX_CHAIN: usize = 28;

fn validate(req: &Request) -> CniResult<()> {
    let f = req.conf.fields();
    attach::one_of(&f, "backend", &["iptables", "firewalld", "nftables"])?;
    attach::one_of(&f, "ingressPolicy", &["open", "same-bridge", "isolated"])?;
    attach::strings(&f, &["firewalldZone"])?;
    attach::bools(&f, &["allowPublishedPorts"])?;
    if let Some(chain) = f.string("iptablesAdminChainName")?
        && (chain.chars().count() > MAX_CHAIN || chain.chars().any(char::is_whitespace))
    {
        return Err(CniError::invalid_config(format!(
            "iptablesAdminChainName {chain:?} is not a valid iptables chain name: at most {MAX_CHAIN} characters, no white space"
        )));
    }
    Ok(())
}
