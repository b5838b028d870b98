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
            &["cni-core", "serde", "serde_json", "base64", "rustix"],
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

/// The rules of host-local's domain each live in one place (issue 22): ipam-store's `config`
/// module is the one reader of host-local configuration (ranges, the legacy `subnet` form,
/// `ipRanges`, `dataDir`), and its `live` module the one rule of which reservations live
/// attachments keep (GC in the plugin, `ipam gc`, the leak counts of `doctor` and `status`, `cni
/// gc --valid`). Each had grown two to four copies that disagreed.
///
/// The scan reads every production source (as [`production_sources`] finds them), drops `//`
/// comments, removes all white space (so formatting cannot hide a match), and looks for the shapes
/// the earlier copies had:
/// - a host-local key read as a string literal (`"ipRanges"`, `"rangeStart"`, `"rangeEnd"`,
///   `"reclaimAfterReboot"`) anywhere but the config module and `range.rs` (which names a range's
///   keys in its messages); a literal followed by `:` is a key being written (`json!` output of
///   `ipam ls`), not read, and is allowed;
/// - a holder's container ID looked up in a set of live IDs (`contains(&….id)`, a
///   `binary_search_by` over `container_id`s);
/// - the "an ID alone or a legacy holder matches any interface" rule (`is_none() || … ifname` or
///   `is_none_or(|i| i == ifname)`);
/// - a decision about entries that are not regular files taken from the inspection's damage list
///   (`Damage::NotAFile`) outside ipam-store, instead of [`ipam_store::live::Entry`].
///
/// The patterns are checked against the copies that issue 22 removed, so the scan cannot silently
/// go blind. A new rule of this domain belongs in those two modules; if a pattern here flags code
/// that is not such a rule, narrow the pattern (and keep the self-check passing).
#[test]
fn host_local_config_and_liveness_rules_have_one_home() {
    /// What a line (comments dropped, white space removed) betrays, if anything.
    fn tell_tale(line: &str, path: &str) -> Option<&'static str> {
        let config_home = path.ends_with("crates/ipam-store/src/config.rs")
            || path.ends_with("crates/ipam-store/src/range.rs");
        let live_home = path.ends_with("crates/ipam-store/src/live.rs");
        let in_store = path.contains("crates/ipam-store/");
        for key in [
            "\"ipRanges\"",
            "\"rangeStart\"",
            "\"rangeEnd\"",
            "\"reclaimAfterReboot\"",
        ] {
            let read = line
                .match_indices(key)
                .any(|(i, _)| !line[i + key.len()..].starts_with(':'));
            if read && !config_home {
                return Some("reads a host-local config key: use ipam_store::config");
            }
        }
        if live_home {
            return None;
        }
        if line.contains("contains(&") && line.contains(".id)") {
            return Some("looks a holder's container ID up in a live set: use ipam_store::Live");
        }
        if line.contains("binary_search_by") && line.contains("container_id") {
            return Some("searches live attachments by container ID: use ipam_store::Live");
        }
        if (line.contains("is_none()||") && line.contains("ifname"))
            || line.contains("is_none_or(|i|i==ifname)")
        {
            return Some("matches interfaces of live attachments: use ipam_store::Live");
        }
        if line.contains("Damage::NotAFile") && !in_store {
            return Some(
                "decides from the damage list what is not a file: use Reservation::entry and live::fate",
            );
        }
        None
    }
    fn normalized(line: &str) -> String {
        let code = line.find("//").map_or(line, |i| &line[..i]);
        code.chars().filter(|c| !c.is_whitespace()).collect()
    }

    // The copies issue 22 removed, each of which the scan must flag.
    for (old, path) in [
        (
            r#"Range::new(subnet, ip("rangeStart")?, ip("rangeEnd")?, ip("gateway")?)"#,
            "crates/k3s-sandbox/src/commands/ipam/network.rs",
        ),
        (
            r#"    if let Some(list) = rc.array_ci("ipRanges")? {"#,
            "plugins/host_local/config.rs",
        ),
        (
            ".filter(|o| !live.contains(&o.id))",
            "crates/k3s-sandbox/src/commands/ipam/detect.rs",
        ),
        (
            ".binary_search_by(|a| a.container_id.as_str().cmp(o.id.as_str()))",
            "plugins/host_local/mod.rs",
        ),
        (
            ".any(|(_, i)| i.is_none() || ifname.is_none() || i.as_deref() == ifname)",
            "crates/k3s-sandbox/src/valid.rs",
        ),
        (
            "self.id == id && self.ifname.as_deref().is_none_or(|i| i == ifname)",
            "crates/ipam-store/src/owner.rs",
        ),
        (
            "inspect::Damage::NotAFile { ip, .. } => Some(*ip),",
            "crates/k3s-sandbox/src/commands/ipam/gc.rs",
        ),
    ] {
        assert!(
            tell_tale(&normalized(old), path).is_some(),
            "the scan misses {old:?}"
        );
    }
    // What must stay allowed: output keys, comments, the homes themselves.
    for (ok, path) in [
        (
            r#"json!({"rangeStart": u.range.start.to_string(),"#,
            "crates/k3s-sandbox/src/commands/ipam/ls.rs",
        ),
        (
            r#"// reads "ipRanges" from runtimeConfig"#,
            "plugins/host_local/config.rs",
        ),
        (
            r#"list_of_sets(runtime_config, "ipRanges", "runtimeConfig.ipRanges", &mut raw)?;"#,
            "crates/ipam-store/src/config.rs",
        ),
    ] {
        assert_eq!(tell_tale(&normalized(ok), path), None, "{ok:?}");
    }

    let mut files = Vec::new();
    production_sources(&repo().join("plugins"), &mut files);
    for krate in fs::read_dir(repo().join("crates")).unwrap() {
        production_sources(&krate.unwrap().path().join("src"), &mut files);
    }
    let mut found = Vec::new();
    for f in &files {
        let path = f.strip_prefix(repo()).unwrap().display().to_string();
        for (n, line) in fs::read_to_string(f).unwrap().lines().enumerate() {
            if let Some(why) = tell_tale(&normalized(line), &path) {
                found.push(format!("{path}:{}: {why}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a second copy of a host-local rule (see this test's doc comment):\n{}",
        found.join("\n")
    );
}
