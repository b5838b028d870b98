//! go-cni's rules for the result of an ADD, applied to the raw JSON the last plugin printed:
//! which addresses become the pod IP, and what makes containerd fail or crash on a result.

use serde_json::Value;

use crate::error::{Failure, Result};

/// Indexes of interfaces named `name`.
fn interface_index(result: &Value, name: &str) -> Option<usize> {
    result
        .get("interfaces")?
        .as_array()?
        .iter()
        .position(|i| i.get("name").and_then(Value::as_str) == Some(name))
}

/// Apply go-cni's rules to the loopback result: an address without an
/// interface index is attributed to eth0 and would become the pod IP.
pub(crate) fn validate_loopback(result: &Value) -> Result<()> {
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let addr = ip.get("address").and_then(Value::as_str).unwrap_or("?");
        match ip.get("interface").and_then(Value::as_u64) {
            None => {
                return Err(Failure::new(format!(
                    "the loopback result lists {addr} without an interface index; containerd would \
                     take it as the pod IP"
                )));
            }
            Some(i) if i as usize >= ifaces => {
                return Err(Failure::new(format!(
                    "the loopback result gives {addr} interface index {i}, but has only {ifaces} \
                     interfaces"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The eth0 addresses of the final result, checked the way go-cni and
/// containerd use them.
pub(crate) fn pod_addresses(result: &Value, ifname: &str) -> Result<Vec<String>> {
    let ifaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let idx = interface_index(result, ifname);
    if let Some(i) = idx {
        let iface = &result["interfaces"][i];
        if iface
            .get("sandbox")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(Failure::new(format!(
                "interface {ifname} in the result has no `sandbox` (the netns path)"
            )));
        }
    }
    let mut v4 = Vec::new();
    let mut other = Vec::new();
    for ip in result.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let addr = ip
            .get("address")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::new(format!("an ips[] entry has no address: {ip}")))?;
        cni_core::result::parse_cidr(addr).map_err(|e| Failure::new(format!("ips[] address: {e}")))?;
        let on_pod_iface = match ip.get("interface") {
            None | Some(Value::Null) => true, // go-cni attributes it to eth0
            Some(i) => {
                let i = i.as_u64().ok_or_else(|| {
                    Failure::new(format!("ips[] entry {addr} has an invalid interface index {i}"))
                })? as usize;
                if i >= ifaces {
                    return Err(Failure::new(format!(
                        "ips[] entry {addr} points at interface {i}, but the result has only \
                         {ifaces} interfaces (go-cni would crash)"
                    )));
                }
                Some(i) == idx
            }
        };
        if on_pod_iface {
            if addr.contains(':') {
                other.push(addr.to_string())
            } else {
                v4.push(addr.to_string())
            }
        }
    }
    v4.extend(other);
    if v4.is_empty() {
        return Err(Failure::new(format!(
            "the result has no IP address on {ifname}; containerd would fail with \
             \"failed to find network info for sandbox\": {result}"
        )));
    }
    Ok(v4)
}
