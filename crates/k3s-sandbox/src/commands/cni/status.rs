//! `cni status` and `cni version`: ask a network's plugins whether they are ready, and plugins for
//! their supported versions.

use cni_runtime::{runtime, version};
use serde_json::{Map, json};

use super::{Ctx, outcome, show_path};
use crate::cni::plugins;
use crate::error::{Failure, Result};
use crate::output::{outln, print_json, say};

pub(super) fn status(ctx: &Ctx, name: &str) -> Result<u8> {
    let list = ctx.network(name)?;
    let ran = ctx.runtime().status(&list)?;
    if ctx.json {
        print_json(
            &json!({"network": list.name, "cniVersion": list.cni_version, "ready": true, "asked": ran}),
        );
    } else if ran {
        say(&format!(
            "network {} is ready ({} answered STATUS)",
            list.name,
            crate::output::plural(list.plugins.len() as u64, "plugin", "plugins")
        ));
    } else {
        say(&format!(
            "network {} runs at cniVersion {:?}, before STATUS (1.1.0): nothing to ask, taken as ready",
            list.name, list.cni_version
        ));
    }
    Ok(0)
}

pub(super) fn versions(ctx: &Ctx, plugin: Option<&str>) -> Result<u8> {
    let r = ctx.runtime();
    let names: Vec<String> = match plugin {
        Some(p) => vec![p.to_string()],
        None => plugins::ALL
            .iter()
            .filter(|p| ctx.path.iter().any(|d| d.join(p).is_file()))
            .map(|p| p.to_string())
            .collect(),
    };
    if names.is_empty() {
        return Err(Failure::PluginMissing(format!(
            "none of the sandbox-cni plugins ({}) is in {}; name a plugin, or pick the plugin dir \
             with --cni-bin-dir (or CNI_PATH)",
            plugins::ALL.join(", "),
            show_path(&ctx.path)
        )));
    }
    let mut out = Map::new();
    let mut failed = Vec::new();
    for n in &names {
        match r.version(n) {
            Ok(v) => {
                if !ctx.json {
                    outln!("{n}: {}", runtime::supported_versions(&v).join(", "));
                }
                out.insert(n.clone(), v);
            }
            Err(e) => failed.push(e),
        }
    }
    if ctx.json {
        let errors: Vec<String> = failed.iter().map(ToString::to_string).collect();
        print_json(&json!({"runtime": version::CURRENT, "plugins": out, "errors": errors}));
    }
    outcome(failed, ctx.json)
}
