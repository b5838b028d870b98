//! `cni ls`: the networks in NETCONFPATH, their plugin chains and the file containerd would pick.

use cni_runtime::conf::{self, NetworkList};
use serde_json::{Value, json};

use super::{Ctx, print_json};
use crate::error::{Failure, Result};

pub(super) fn ls(ctx: &Ctx) -> Result<u8> {
    let files =
        conf::config_files(&ctx.conf_dir).map_err(|e| Failure::io("read the conf dir", &ctx.conf_dir, &e))?;
    let mut rows = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = match NetworkList::load_file(f) {
            Ok(l) => json!({
                "file": file,
                "name": l.name,
                "cniVersion": l.cni_version,
                "plugins": l.chain(),
                "containerdDefault": i == 0,
            }),
            Err(e) => json!({"file": file, "error": e, "containerdDefault": i == 0}),
        };
        rows.push(row);
    }
    if ctx.json {
        return print_json(&Value::Array(rows)).map(|()| 0);
    }
    if rows.is_empty() {
        eprintln!(
            "k3s-sandbox: no .conf, .conflist or .json files in {}",
            ctx.conf_dir.display()
        );
    }
    for r in &rows {
        let mark = if r["containerdDefault"] == true { "*" } else { " " };
        let file = r["file"].as_str().unwrap_or_default();
        match r.get("error").and_then(Value::as_str) {
            Some(e) => println!("{mark} {file}  INVALID: {e}"),
            None => println!(
                "{mark} {file}  {}  cniVersion {}  {}",
                r["name"].as_str().unwrap_or_default(),
                r["cniVersion"]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .unwrap_or("(none)"),
                r["plugins"]
                    .as_array()
                    .map(|p| p
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" -> "))
                    .unwrap_or_default()
            ),
        }
    }
    if !rows.is_empty() {
        println!("(* = the file containerd picks as the default network)");
    }
    Ok(0)
}
