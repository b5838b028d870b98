//! `cni gc`: DEL every cached attachment of a network not listed with --valid, then GC.

use serde_json::{Value, json};

use super::env::ifname;
use super::{Ctx, GcArgs, print_json};
use crate::error::{Failure, Result};

pub(super) fn gc(ctx: &Ctx, g: &GcArgs) -> Result<u8> {
    let list = ctx.network(&g.network)?;
    let default_if = ifname();
    let valid: Vec<(String, String)> = g
        .valid
        .iter()
        .map(|v| match v.split_once('/') {
            Some((id, i)) => (id.to_string(), i.to_string()),
            None => (v.clone(), default_if.clone()),
        })
        .collect();
    let before = ctx.cache.entries(&list.name);
    let outcome = ctx.runtime().gc(&list, &valid);
    let after = ctx.cache.entries(&list.name);
    let released: Vec<Value> = before
        .iter()
        .filter(|e| {
            !after
                .iter()
                .any(|a| a.container_id == e.container_id && a.ifname == e.ifname)
        })
        .map(|e| json!({"containerID": e.container_id, "ifname": e.ifname}))
        .collect();
    let errors: Vec<String> = outcome
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect();
    if ctx.json {
        print_json(&json!({
            "network": list.name,
            "cniVersion": list.cni_version,
            "released": released,
            "kept": after.iter().map(|e| json!({"containerID": e.container_id, "ifname": e.ifname})).collect::<Vec<_>>(),
            "errors": errors,
        }))?;
    } else {
        eprintln!(
            "k3s-sandbox: gc {}: released {} cached attachment(s), kept {}{}",
            list.name,
            released.len(),
            after.len(),
            if list.disable_gc {
                " (disableGC is set)"
            } else {
                ""
            }
        );
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure::new(errors.join("\n")))
    }
}
