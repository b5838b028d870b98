//! Generates `k3s_sandbox::cni::plugins::ALL` from plugins/list.txt, the project's one plugin list: the
//! one reader of that file on the Rust side (the root package's tests take the list from here too).
//!
//! The format, as plugins/list.sh and plugins/plugin_list.py read it as well: one plugin name per
//! line (lowercase letters, digits, '-'), surrounding white space ignored, blank lines and lines
//! starting with `#` skipped.

use std::env;
use std::fs;
use std::path::Path;

fn main() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/list.txt");
    println!("cargo::rerun-if-changed={}", list.display());
    let text = match fs::read_to_string(&list) {
        Ok(text) => text,
        Err(e) => {
            println!("cargo::error=cannot read the plugin list {}: {e}", list.display());
            return;
        }
    };
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if let Some(bad) = names.iter().find(|n| {
        !n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }) {
        println!(
            "cargo::error={}: {bad:?} is not a plugin name (lowercase letters, digits, '-')",
            list.display()
        );
        return;
    }
    if names.is_empty() {
        println!("cargo::error={} names no plugin", list.display());
        return;
    }
    let items: String = names.iter().map(|n| format!("    {n:?},\n")).collect();
    let code = format!(
        "/// Every plugin binary sandbox-cni builds, in the order the docs list them (from plugins/list.txt).\n\
         pub const ALL: [&str; {}] = [\n{items}];\n",
        names.len()
    );
    let out = Path::new(&env::var_os("OUT_DIR").unwrap_or_default()).join("plugin_list.rs");
    if let Err(e) = fs::write(&out, code) {
        println!("cargo::error=cannot write {}: {e}", out.display());
    }
}
