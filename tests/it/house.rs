//! The house rules of docs/development.md ("Map of the house"), checked so they cannot drift: which
//! crate may depend on what (the plugin binaries above all), and no production source file over 400
//! lines.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The names under `[dependencies]` of a Cargo.toml (`name.workspace = true`, `name = ...`).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(manifest).unwrap();
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let key = line.split(['=', '.']).next().unwrap().trim();
            out.insert(key.to_string());
        }
    }
    out
}

#[test]
fn each_crate_depends_only_on_what_the_map_allows() {
    let allowed: [(&str, &[&str]); 5] = [
        (
            "crates/cni-core",
            &["serde", "serde_json", "ipnetwork", "thiserror", "sha2"],
        ),
        ("crates/ipam-store", &["cni-core", "ipnetwork", "thiserror"]),
        // The plugin binaries: only these reach a plugin (size budget, no clap, no runtime).
        (
            ".",
            &[
                "cni-core",
                "ipam-store",
                "serde",
                "serde_json",
                "ipnetwork",
                "thiserror",
                "sha2",
            ],
        ),
        (
            "crates/cni-runtime",
            &["cni-core", "serde", "serde_json", "thiserror", "base64", "rustix"],
        ),
        (
            "crates/k3s-sandbox",
            &[
                "cni-core",
                "cni-runtime",
                "ipam-store",
                "clap",
                "clap_complete",
                "clap_mangen",
                "anstream",
                "serde",
                "serde_json",
                "sha2",
                "thiserror",
                "ipnetwork",
                "rustix",
                "dlmalloc",
            ],
        ),
    ];
    for (dir, allow) in allowed {
        let deps = dependencies(&repo().join(dir).join("Cargo.toml"));
        assert!(
            !deps.is_empty(),
            "{dir}: no [dependencies] found (parser out of date?)"
        );
        let extra: Vec<&String> = deps.iter().filter(|d| !allow.contains(&d.as_str())).collect();
        assert!(
            extra.is_empty(),
            "{dir} depends on {extra:?}, which docs/development.md's map does not allow: \
             update the map (and this test) or move the code"
        );
    }
}

/// Every `.rs` file below `dir`, skipping test code (`tests/` directories, `tests.rs` files).
fn production_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "tests" {
                production_sources(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

#[test]
fn no_production_source_file_is_over_400_lines() {
    let mut files = Vec::new();
    production_sources(&repo().join("plugins"), &mut files);
    for krate in fs::read_dir(repo().join("crates")).unwrap() {
        production_sources(&krate.unwrap().path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = fs::read_to_string(f).unwrap().lines().count();
            (n > 400).then(|| format!("{} ({n} lines)", f.strip_prefix(repo()).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "split along its seams: {long:?}");
}
