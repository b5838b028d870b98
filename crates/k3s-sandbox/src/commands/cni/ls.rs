//! `cni ls`: the networks of the conf dir, their plugin chains and the file containerd would pick,
//! with what is wrong with each (unreadable, a duplicate name, a plugin missing from the plugin
//! dirs). Exits 78 (EX_CONFIG) when containerd's pick is unusable.

use std::collections::BTreeMap;

use cni_runtime::conf::{self, NetworkList};
use serde_json::{Value, json};

use super::{Ctx, show_path};
use crate::error::{Failure, Result};
use crate::output::{self, outln, print_json, say};

pub(super) fn ls(ctx: &Ctx) -> Result<u8> {
    let files = conf::config_files(&ctx.conf_dir).map_err(|e| {
        Failure::io(
            "read the conf dir (pick another with --cni-conf-dir or NETCONFPATH)",
            &ctx.conf_dir,
            &e,
        )
    })?;
    let lists: Vec<(String, std::result::Result<NetworkList, conf::Error>)> = files
        .iter()
        .map(|f| {
            let file = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (file, NetworkList::load_file(f))
        })
        .collect();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut rows = Vec::new();
    for (i, (file, l)) in lists.iter().enumerate() {
        let row = match l {
            Ok(l) => {
                let mut problems = Vec::new();
                if let Some(first) = seen.get(&l.name) {
                    problems.push(format!(
                        "duplicate name: {first} already names {:?}, and wins",
                        l.name
                    ));
                } else {
                    seen.insert(l.name.clone(), file.clone());
                }
                for t in l.plugin_types() {
                    if !ctx.path.iter().any(|d| d.join(&t).is_file()) {
                        problems.push(format!("plugin {t} is not in {}", show_path(&ctx.path)));
                    }
                }
                json!({"file": file, "name": l.name, "cniVersion": l.cni_version, "plugins": l.chain(),
                       "containerdDefault": i == 0, "problems": problems})
            }
            Err(e) => json!({"file": file, "error": e.to_string(), "containerdDefault": i == 0,
                             "problems": [format!("invalid: {e}")]}),
        };
        rows.push(row);
    }
    let broken_default = rows.first().is_some_and(|r| r.get("error").is_some());
    if ctx.json {
        print_json(&Value::Array(rows));
    } else if rows.is_empty() {
        say(&format!(
            "no .conf, .conflist or .json files in {}",
            ctx.conf_dir.display()
        ));
    } else {
        print_table(&rows);
    }
    if broken_default {
        let file = lists.first().map(|(f, _)| f.as_str()).unwrap_or_default();
        return Err(Failure::NetworkConfig(format!(
            "{file}, the file containerd picks as its default network, cannot be read: containerd \
             fails to load it. Fix it, or remove it from {}",
            ctx.conf_dir.display()
        ))
        .reported());
    }
    Ok(0)
}

/// The table (fitted to 100 columns), each row's problems on lines of their own under it.
fn print_table(rows: &[Value]) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let chain = r["plugins"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" -> ")
                })
                .unwrap_or_default();
            let version = s(&r["cniVersion"]);
            vec![
                if r["containerdDefault"] == true { "*" } else { "" }.to_string(),
                s(&r["file"]),
                if r.get("error").is_some() {
                    "-".to_string()
                } else {
                    s(&r["name"])
                },
                if version.is_empty() {
                    "-".to_string()
                } else {
                    version
                },
                if chain.is_empty() { "-".to_string() } else { chain },
            ]
        })
        .collect();
    let lines = output::table(&["", "FILE", "NETWORK", "VERSION", "PLUGINS"], &cells, &[], false);
    let mut lines = lines.into_iter();
    if let Some(header) = lines.next() {
        outln!("{header}");
    }
    for (line, r) in lines.zip(rows) {
        outln!("{line}");
        for p in r["problems"].as_array().into_iter().flatten() {
            outln!("   ! {}", s(p));
        }
    }
    outln!("(* = the file containerd picks as its default network; ! = a problem)");
}
