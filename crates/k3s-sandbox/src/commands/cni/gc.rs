//! `cni gc`: show the cached attachments of a network that `--valid` does not keep; with
//! `--apply` (or as `cnitool`), DEL them and send GC with the kept ones as valid attachments.

use cni_core::Attachment;
use serde_json::{Value, json};

use super::env::ifname;
use super::{Ctx, GcArgs, outcome};
use crate::cni::valid::Valid;
use crate::error::Result;
use crate::output::{self, outln, plural, say, shell_quote};

fn ids(list: &[Attachment]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
        .collect()
}

fn attachment(e: cni_runtime::cache::Entry) -> Attachment {
    Attachment {
        container_id: e.container_id,
        ifname: e.ifname,
    }
}

pub(super) fn gc(ctx: &Ctx, g: &GcArgs, apply: bool) -> Result<u8> {
    let list = ctx.network(&g.network)?;
    let valid = Valid::new(&g.valid);
    let cached: Vec<Attachment> = ctx
        .cache
        .entries(&list.name)
        .into_iter()
        .map(attachment)
        .collect();
    let (mut keep, doomed): (Vec<_>, Vec<_>) = cached
        .into_iter()
        .partition(|a| valid.keeps(&a.container_id, Some(&a.ifname)));
    let kept_cached = keep.clone();
    // A listed attachment without a cached result still goes to the plugins as valid, so their GC
    // keeps what it holds (an ID alone: on CNI_IFNAME, else eth0).
    for a in &g.valid {
        if !keep.iter().any(|k| k.container_id == a.id) {
            keep.push(Attachment {
                container_id: a.id.clone(),
                ifname: a.ifname.clone().unwrap_or_else(ifname),
            });
        }
    }
    if !apply {
        if ctx.json {
            output::print_json(&json!({
                "network": list.name, "cniVersion": list.cni_version, "dryRun": true,
                "release": ids(&doomed), "keep": ids(&kept_cached), "errors": [],
            }));
        } else {
            outln!(
                "network {}: {} to release, {} kept",
                list.name,
                plural(doomed.len() as u64, "cached attachment", "cached attachments"),
                kept_cached.len()
            );
            for a in &doomed {
                outln!("  release  {}/{}", a.container_id, a.ifname);
            }
        }
        let mut again = format!("k3s-sandbox cni gc {}", shell_quote(&list.name));
        for a in &g.valid {
            again.push_str(&format!(" --valid {}", shell_quote(&a.to_string())));
        }
        say(&format!(
            "dry run: nothing released. Release {} and send GC with: {again} --apply",
            if doomed.is_empty() {
                "nothing cached, but still"
            } else {
                "them"
            }
        ));
        return Ok(0);
    }
    let errors = ctx.runtime().gc(&list, &keep).err().unwrap_or_default();
    let kept: Vec<Attachment> = ctx
        .cache
        .entries(&list.name)
        .into_iter()
        .map(attachment)
        .collect();
    let released: Vec<Attachment> = doomed.into_iter().filter(|a| !kept.contains(a)).collect();
    if ctx.json {
        output::print_json(&json!({
            "network": list.name, "cniVersion": list.cni_version, "dryRun": false,
            "released": ids(&released), "kept": ids(&kept),
            "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }));
    } else {
        say(&format!(
            "gc {}: released {}, kept {}{}",
            list.name,
            plural(released.len() as u64, "cached attachment", "cached attachments"),
            kept.len(),
            if list.disable_gc {
                " (disableGC is set)"
            } else {
                ""
            }
        ));
    }
    outcome(errors, ctx.json)
}
