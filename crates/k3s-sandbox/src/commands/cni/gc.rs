//! `cni gc`: show the cached attachments of a network that `--valid` does not keep; with
//! `--apply` (or as `cnitool`), DEL them and send GC with the kept ones as valid attachments.

use serde_json::{Value, json};

use super::env::ifname;
use super::{Ctx, GcArgs};
use crate::error::{Failure, Result};
use crate::output::{self, plural};
use crate::util::shell_quote;
use crate::valid::Valid;

fn ids(list: &[(String, String)]) -> Vec<Value> {
    list.iter()
        .map(|(id, i)| json!({"containerID": id, "ifname": i}))
        .collect()
}

pub(super) fn gc(ctx: &Ctx, g: &GcArgs, apply: bool) -> Result<u8> {
    let list = ctx.network(&g.network)?;
    let valid = Valid::new(&g.valid);
    let cached: Vec<(String, String)> = ctx
        .cache
        .entries(&list.name)
        .into_iter()
        .map(|e| (e.container_id, e.ifname))
        .collect();
    let (mut keep, doomed): (Vec<_>, Vec<_>) =
        cached.into_iter().partition(|(id, i)| valid.keeps(id, Some(i)));
    let kept_cached = keep.clone();
    // A listed attachment without a cached result still goes to the plugins as valid, so their GC
    // keeps what it holds (an ID alone: on CNI_IFNAME, else eth0).
    for a in &g.valid {
        if !keep.iter().any(|(id, _)| *id == a.id) {
            keep.push((a.id.clone(), a.ifname.clone().unwrap_or_else(ifname)));
        }
    }
    if !apply {
        if ctx.json {
            output::print_json(&json!({
                "network": list.name, "cniVersion": list.cni_version, "dryRun": true,
                "release": ids(&doomed), "keep": ids(&kept_cached), "errors": [],
            }));
        } else {
            println!(
                "network {}: {} to release, {} kept",
                list.name,
                plural(doomed.len() as u64, "cached attachment", "cached attachments"),
                kept_cached.len()
            );
            for (id, i) in &doomed {
                println!("  release  {id}/{i}");
            }
        }
        let mut again = format!("k3s-sandbox cni gc {}", shell_quote(&list.name));
        for a in &g.valid {
            again.push_str(&format!(" --valid {}", shell_quote(&a.to_string())));
        }
        eprintln!(
            "k3s-sandbox: dry run: nothing released. Release {} and send GC with: {again} --apply",
            if doomed.is_empty() {
                "nothing cached, but still"
            } else {
                "them"
            }
        );
        return Ok(0);
    }
    let outcome = ctx.runtime().gc(&list, &keep);
    let after = ctx.cache.entries(&list.name);
    let released: Vec<(String, String)> = doomed
        .into_iter()
        .filter(|(id, i)| !after.iter().any(|a| a.container_id == *id && a.ifname == *i))
        .collect();
    let kept: Vec<(String, String)> = after.into_iter().map(|e| (e.container_id, e.ifname)).collect();
    let errors: Vec<String> = outcome
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect();
    if ctx.json {
        output::print_json(&json!({
            "network": list.name, "cniVersion": list.cni_version, "dryRun": false,
            "released": ids(&released), "kept": ids(&kept), "errors": errors,
        }));
    } else {
        eprintln!(
            "k3s-sandbox: gc {}: released {}, kept {}{}",
            list.name,
            plural(released.len() as u64, "cached attachment", "cached attachments"),
            kept.len(),
            if list.disable_gc {
                " (disableGC is set)"
            } else {
                ""
            }
        );
    }
    if errors.is_empty() {
        Ok(0)
    } else if ctx.json {
        // The object above already carries the errors.
        Err(Failure::Reported(errors.join("\n")))
    } else {
        Err(Failure::new(errors.join("\n")))
    }
}
