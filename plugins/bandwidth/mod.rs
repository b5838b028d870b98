//! Pass-through `bandwidth`: validates rate/burst limits from the config or the `bandwidth` capability
//! (camelCase or containerd's Capitalised keys) like the reference, shapes nothing, and returns prevResult
//! unchanged. Without prevResult it fails cleanly (the reference crashes there).

use cni_core::result::parse_cidr;
use cni_core::{CniError, CniResult, Fields, Request};

use crate::pass_through::PassThrough;

pub const PLUGIN: PassThrough = PassThrough {
    name: "bandwidth",
    about: "accepts traffic-shaping limits for a chained attachment and passes the previous result through; shapes nothing",
    validate,
};

/// The reference refuses bursts whose byte count does not fit in 32 bits.
const MAX_BURST_BITS: i64 = (u32::MAX as i64) * 8;

/// Validates one set of limits (top-level keys, or the `runtimeConfig.bandwidth` object).
fn limits(f: &Fields, ci: bool) -> CniResult<()> {
    let read = |k: &str| {
        if ci {
            f.int_ci(k, 0, i64::MAX)
        } else {
            f.int(k, 0, i64::MAX)
        }
    };
    // The key as the caller spelled it, for messages.
    let shown = |k: &str| match f.get_ci(k) {
        Some((actual, _)) if ci => f.name(actual),
        _ => f.name(k),
    };
    for dir in ["ingress", "egress"] {
        let (rate_key, burst_key) = (format!("{dir}Rate"), format!("{dir}Burst"));
        let rate = read(&rate_key)?.unwrap_or(0);
        let burst = read(&burst_key)?.unwrap_or(0);
        if rate > 0 && burst == 0 {
            return Err(CniError::invalid_config(format!(
                "{} is set but {} is not: set both (rate in bits/s, burst in bits) or neither",
                shown(&rate_key),
                shown(&burst_key)
            )));
        }
        if burst > 0 && rate == 0 {
            return Err(CniError::invalid_config(format!(
                "{} is set but {} is not: set both (rate in bits/s, burst in bits) or neither",
                shown(&burst_key),
                shown(&rate_key)
            )));
        }
        if burst >= MAX_BURST_BITS {
            return Err(CniError::invalid_config(format!(
                "{} cannot be more than 4GB: got {burst} bits",
                shown(&burst_key)
            )));
        }
    }
    let list = |k: &str| -> CniResult<Vec<String>> {
        if ci {
            let Some(a) = f.array_ci(k)? else {
                return Ok(Vec::new());
            };
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        CniError::invalid_config(format!("{}[{i}] must be a string", f.name(k)))
                    })
                })
                .collect()
        } else {
            f.strings(k)
        }
    };
    let unshaped = list("unshapedSubnets")?;
    let shaped = list("shapedSubnets")?;
    if !unshaped.is_empty() && !shaped.is_empty() {
        return Err(CniError::invalid_config(format!(
            "{} and {} cannot both be specified",
            f.name("unshapedSubnets"),
            f.name("shapedSubnets")
        )));
    }
    for (k, nets) in [("unshapedSubnets", &unshaped), ("shapedSubnets", &shaped)] {
        for (i, s) in nets.iter().enumerate() {
            parse_cidr(s).map_err(|e| CniError::invalid_config(format!("{}[{i}]: {e}", f.name(k))))?;
        }
    }
    Ok(())
}

fn validate(req: &Request) -> CniResult<()> {
    limits(&req.conf.fields(), false)?;
    if let Some(bw) = req.conf.runtime_config()?.object_ci("bandwidth")? {
        limits(&bw, true)?;
    }
    Ok(())
}
