//! The house rules of docs/development.md ("Map of the house"), checked so they cannot drift: which
//! crate may depend on what (the plugin binaries above all), one plugin list read one way, and no
//! production source file over 400 lines.

use std::collections::BTreeSet;
use std::fs;
use std::ops::Range;
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

/// Every file below `dir` that may hold code or configuration: sources, scripts and manifests, not
/// prose (`*.md`), recorded outputs (`tests/golden/`) or build output (`target/`, `dist/`,
/// `bench/out/`, hidden directories).
fn code_files(dir: &Path, out: &mut Vec<PathBuf>) {
    const EXTENSIONS: [&str; 11] = [
        "rs", "py", "sh", "toml", "yaml", "yml", "json", "conflist", "c", "in", "txt",
    ];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = path.strip_prefix(repo()).unwrap();
        if path.is_dir() {
            let skip = name.starts_with('.')
                || ["target", "dist", "__pycache__", "corpus", "artifacts"].contains(&name.as_str())
                || [Path::new("tests/golden"), Path::new("bench/out")].contains(&rel);
            if !skip {
                code_files(&path, out);
            }
        } else if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            if EXTENSIONS.contains(&ext) {
                out.push(path);
            }
        } else if fs::read(&path).is_ok_and(|b| b.starts_with(b"#!")) {
            out.push(path);
        }
    }
}

/// The lines (1-based) of `text` where a copy of the plugin list `names` starts: a run of plugin
/// names, quoted or bare, separated only by white space, commas and brackets, that names every
/// plugin of the list but at most one (and at least three). A name is a whole word (`bridge`, not
/// `sandbox-cni-bridge`), and any other character ends a run (`/` in `/opt/cni/bin/bridge`).
fn plugin_list_copies(text: &str, names: &[&str]) -> Vec<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let is_sep = |c: char| c.is_whitespace() || ",\"'`[]()".contains(c);
    let mut found = Vec::new();
    // The run being read: the line it starts on and the distinct names in it.
    let mut run: Option<(usize, Vec<&str>)> = None;
    let mut flush = |run: &mut Option<(usize, Vec<&str>)>| {
        if let Some((line, seen)) = run.take()
            && seen.len() >= 3
            && seen.len() + 1 >= names.len()
        {
            found.push(line);
        }
    };
    let mut line = 1;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if is_word(c) {
            let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            match names.iter().find(|n| **n == &rest[..end]) {
                Some(name) => {
                    let (_, seen) = run.get_or_insert_with(|| (line, Vec::new()));
                    if !seen.contains(name) {
                        seen.push(name);
                    }
                }
                None => flush(&mut run),
            }
            rest = &rest[end..];
        } else {
            if c == '\n' {
                line += 1;
            }
            if !is_sep(c) {
                flush(&mut run);
            }
            rest = &rest[c.len_utf8()..];
        }
    }
    flush(&mut run);
    found
}

#[test]
fn a_copy_of_the_plugin_list_is_found_and_a_subset_is_not() {
    // Built from the list, so that this test holds no copy of its own.
    let names = k3s_sandbox::cni::plugins::ALL;
    let copies = |t: &str| plugin_list_copies(t, &names);
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    assert_eq!(copies(&format!("x\nPLUGINS = ({})\n", quoted.join(", "))), [2]);
    assert_eq!(copies(&format!("for p in {}; do", names[1..].join(" "))), [1]);
    let lines: String = names.iter().rev().map(|n| format!("  '{n}',\n")).collect();
    assert_eq!(copies(&format!("x = [\n{lines}]")), [2]);
    // Subsets with a meaning of their own, prose and paths are not copies.
    assert!(copies(&quoted[2..].join(", ")).is_empty());
    assert!(copies(&names.join(" and ")).is_empty());
    let paths: Vec<String> = names.iter().map(|n| format!("/a/{n}")).collect();
    assert!(copies(&paths.join(" ")).is_empty());
    let prefixed: Vec<String> = names.iter().map(|n| format!("x-{n}")).collect();
    assert!(copies(&prefixed.join(" ")).is_empty());
}

/// One list, read one way. The product's plugins are spelled out in one place, plugins/list.txt,
/// and read by one helper per language: plugins/list.sh (shell: install.sh, tests/run.sh,
/// bench/size-check), plugins/plugin_list.py (Python: bench/run.py, tests/gvisor/cni_suite.py,
/// tests/e2e/containerd-e2e) and crates/k3s-sandbox/build.rs (Rust: `k3s_sandbox::cni::plugins::ALL`,
/// which the root package's tests use too). No other source, script, manifest or configuration
/// carries a copy: a run of plugin names (quoted or bare, separated only by white space, commas and
/// brackets) naming all the listed plugins but at most one is a copy (see [`plugin_list_copies`]).
/// Subsets with a meaning of their own (the default network's plugins, the chained ones, those that
/// read prevResult) and prose (`*.md`) are not. The three readers must agree with each other.
#[test]
fn the_plugin_list_is_spelled_out_only_in_plugins_list_txt() {
    let names = &k3s_sandbox::cni::plugins::ALL[..];
    let mut files = Vec::new();
    code_files(repo(), &mut files);
    assert!(files.len() > 100, "only {} files found", files.len());
    let list = repo().join("plugins/list.txt");
    let copies: Vec<String> = files
        .iter()
        .filter(|f| **f != list)
        .filter_map(|f| {
            let text = fs::read_to_string(f).ok()?;
            let lines = plugin_list_copies(&text, names);
            let rel = f.strip_prefix(repo()).unwrap().display();
            (!lines.is_empty()).then(|| format!("{rel}:{lines:?}"))
        })
        .collect();
    assert!(
        copies.is_empty(),
        "a copy of the plugin list (plugins/list.txt is the one list; read it with \
         plugins/list.sh, plugins/plugin_list.py or k3s_sandbox::cni::plugins::ALL): {copies:?}"
    );

    // The shell and Python readers name the same plugins as the Rust one.
    let want = names.join(" ");
    let listed_by = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(repo())
            .output()?;
        let shown = format!("{program} {}", args.join(" "));
        assert!(
            out.status.success(),
            "{shown}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), want, "{shown}");
        std::io::Result::Ok(())
    };
    listed_by("sh", &["-c", ". plugins/list.sh && plugin_list plugins/list.txt"]).unwrap();
    if let Err(e) = listed_by("python3", &["plugins/plugin_list.py"]) {
        eprintln!("python3 cannot run ({e}): plugins/plugin_list.py not compared");
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

/// Skips the literal or comment that starts at `b[i]`, if one does: returns where it ends. Knows
/// `//` and nested `/* */` comments, strings with escapes, raw strings (`r#"..."#`, `br".."`), char
/// literals and lifetimes (`'a` is skipped by its quote alone).
fn skip_literal(b: &[u8], i: usize) -> Option<usize> {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let find = |from: usize, pat: &[u8]| {
        b[from.min(b.len())..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map_or(b.len(), |p| from + p + pat.len())
    };
    // `r"..."` (and `br`, `cr`) is a raw string only at the start of a token.
    let in_word = i > 0 && (at(i - 1).is_ascii_alphanumeric() || at(i - 1) == b'_');
    match at(i) {
        b'/' if at(i + 1) == b'/' => {
            let eol = b[i..].iter().position(|c| *c == b'\n');
            Some(eol.map_or(b.len(), |p| i + p))
        }
        b'/' if at(i + 1) == b'*' => {
            let (mut k, mut depth) = (i + 2, 1);
            while k < b.len() && depth > 0 {
                if b[k..].starts_with(b"/*") {
                    depth += 1;
                    k += 2;
                } else if b[k..].starts_with(b"*/") {
                    depth -= 1;
                    k += 2;
                } else {
                    k += 1;
                }
            }
            Some(k)
        }
        b'"' => {
            let mut k = i + 1;
            while k < b.len() && b[k] != b'"' {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            Some((k + 1).min(b.len()))
        }
        b'r' | b'b' | b'c' if !in_word => {
            let r = if at(i) == b'r' { i } else { i + 1 };
            if at(r) != b'r' {
                return None;
            }
            let hashes = b[r + 1..].iter().take_while(|c| **c == b'#').count();
            if at(r + 1 + hashes) != b'"' {
                return None;
            }
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            Some(find(r + 2 + hashes, &close))
        }
        b'\'' if at(i + 1) == b'\\' => {
            let mut k = i + 3;
            while k < b.len() && b[k] != b'\'' {
                k += 1;
            }
            Some((k + 1).min(b.len()))
        }
        b'\'' => {
            // A one-character literal ('}', 'é') or a lifetime ('a), which has no closing quote.
            let len = std::str::from_utf8(&b[i + 1..(i + 5).min(b.len())])
                .map_or_else(|e| e.valid_up_to(), |s| s.len())
                .min(4);
            let char_len = std::str::from_utf8(&b[i + 1..i + 1 + len])
                .ok()
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
            Some(if at(i + 1 + char_len) == b'\'' {
                i + 2 + char_len
            } else {
                i + 1
            })
        }
        _ => None,
    }
}

/// The end (exclusive) of what starts at `b[i]`: with `group`, the bracket there and everything up
/// to its matching close (an attribute's `[...]`); else the item starting there, up to its `;` or
/// its closing `}` at the item's own level. Literals and comments are skipped.
fn item_end(b: &[u8], mut i: usize, group: bool) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if let Some(k) = skip_literal(b, i) {
            i = k;
            continue;
        }
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 && (group || b[i] == b'}') {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The spans of `src` that are not code: literals and comments, attributes, and the items an
/// attribute `#[cfg(test)]` marks (a `mod tests { ... }` block, a test-only function, `use` or `mod
/// tests;`; an inner `#![cfg(test)]` makes the rest of the file test code). Each span with whether
/// it is such a test item, in order.
fn non_code_spans(src: &str) -> Vec<(Range<usize>, bool)> {
    let b = src.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if let Some(k) = skip_literal(b, i) {
            spans.push((i..k, false));
            i = k;
            continue;
        }
        let inner = b[i..].starts_with(b"#![");
        if b[i] == b'#' && (inner || b[i..].starts_with(b"#[")) {
            let open = if inner { i + 2 } else { i + 1 };
            let close = item_end(b, open, true);
            let attr: String = src[open..close].chars().filter(|c| !c.is_whitespace()).collect();
            let (end, test) = match (attr == "[cfg(test)]", inner) {
                (true, true) => (b.len(), true),
                (true, false) => (item_end(b, close, false), true),
                (false, _) => (close, false),
            };
            spans.push((i..end, test));
            i = end;
            continue;
        }
        i += 1;
    }
    spans
}

/// The lines of a Rust source the 400-line rule counts: every line outside the `#[cfg(test)]`
/// items of [`non_code_spans`], blank lines and comments included.
fn production_lines(src: &str) -> usize {
    let b = src.as_bytes();
    let line_of = |pos: usize| b[..pos.min(b.len())].iter().filter(|c| **c == b'\n').count();
    let test_lines: usize = non_code_spans(src)
        .into_iter()
        .filter(|(_, test)| *test)
        .map(|(span, _)| line_of(span.end.saturating_sub(1)) - line_of(span.start) + 1)
        .sum();
    src.lines().count().saturating_sub(test_lines)
}

#[test]
fn production_lines_leave_out_test_items_only() {
    let src = r##"//! A module.
fn f() -> [u8; 2] {
    let s = "} #[cfg(test)] {";
    let r = r#"}"#;
    let c = '}';
    let _ = (s, r, c);
    [1, 2]
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {}

#[cfg( test )]
mod tests {
    // } a brace in a comment
    /* { and /* nested */ } */
    fn g<'a>(x: &'a str) -> &'a str { "{" }

    #[test]
    fn t() { assert_eq!('{', '{'); }
}

#[cfg(test)]
use std::fmt;
#[cfg(test)]
mod more;
pub fn h() {}
"##;
    assert_eq!(src.lines().count(), 27);
    // Lines 13-21 (the test module), 23-24 (the use) and 25-26 (`mod more;`) are left out.
    assert_eq!(production_lines(src), 27 - 9 - 2 - 2);
    assert_eq!(production_lines("#![cfg(test)]\nfn a() {}\n"), 0);
    assert_eq!(production_lines("fn a() {}\n// #[cfg(test)]\nfn b() {}\n"), 3);
}

/// No production source file is over 400 lines: the lines [`production_lines`] counts, outside the
/// `#[cfg(test)]` items (so moving a file's tests out does not get it under), in every `.rs` file
/// below plugins/ and crates/*/src/ but `tests.rs` files and `tests/` directories.
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
            let n = production_lines(&fs::read_to_string(f).unwrap());
            (n > 400).then(|| {
                format!(
                    "{} ({n} production lines)",
                    f.strip_prefix(repo()).unwrap().display()
                )
            })
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
            "crates/k3s-sandbox/src/cni/valid.rs",
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

/// `src` as the compiler sees its production code: every span of [`non_code_spans`] (the
/// `#[cfg(test)]` items that [`production_lines`] leaves out, every other attribute, comments and
/// literals) is blanked (white space, newlines kept), so a scan of what is left sees code only, on
/// its own lines.
fn production_code(src: &str) -> String {
    let mut out = src.as_bytes().to_vec();
    for (span, _) in non_code_spans(src) {
        for c in &mut out[span] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines (1-based) of `code` (as [`production_code`] leaves it) where a `Result` whose error
/// type is `String` is spelled: `Result<T, String>` under any path (`std::result::Result`,
/// `core::result::Result`) and with any spacing, over several lines too, nested in other types
/// (`Vec<Result<(), String>>`, `Option<...>`) or in a turbofish (`collect::<Result<_, String>>()`);
/// `String` may be `std::string::String`. A `Result` with one argument (a crate's own alias
/// `Result<T>`) and other names ending in `Result` (`CniResult<..>`) are not matched.
fn string_error_results(code: &str) -> Vec<usize> {
    let b = code.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(p) = code[from..].find("Result") {
        let at = from + p;
        from = at + "Result".len();
        if (at > 0 && is_word(b[at - 1])) || b.get(from).is_some_and(|c| is_word(*c)) {
            continue;
        }
        let mut k = from;
        while b.get(k).is_some_and(u8::is_ascii_whitespace) {
            k += 1;
        }
        if b.get(k) != Some(&b'<') {
            continue;
        }
        // The generic arguments up to the matching `>`, split at the commas of this level.
        let (mut depth, mut args, mut arg_start) = (1usize, Vec::new(), k + 1);
        k += 1;
        while k < b.len() && depth > 0 {
            match b[k] {
                b'<' | b'(' | b'[' => depth += 1,
                b'>' if b[k - 1] == b'-' => {} // `->` of a fn type
                b'>' | b')' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        args.push(&code[arg_start..k]);
                    }
                }
                b',' if depth == 1 => {
                    args.push(&code[arg_start..k]);
                    arg_start = k + 1;
                }
                _ => {}
            }
            k += 1;
        }
        let args: Vec<String> = args
            .iter()
            .map(|a| a.chars().filter(|c| !c.is_whitespace()).collect::<String>())
            .filter(|a| !a.is_empty())
            .collect();
        let error = args.get(1).map(|e| e.trim_start_matches("::"));
        if args.len() == 2 && error.is_some_and(|e| ["String", "std::string::String"].contains(&e)) {
            found.push(code[..at].matches('\n').count() + 1);
        }
    }
    found
}

/// Failures are typed (issue 22): no library crate (crates/*/src, the plugins' library under
/// plugins/) returns or keeps a `Result<_, String>`. An error is a thiserror enum (or the
/// `std::io::Error` it is), whose message stays byte-identical to the text it replaced, so callers
/// can match on what went wrong and keep its cause; a message that crosses a process boundary as
/// JSON gets a type of its own too (`gvisor_pods::measure::CrunTrialFailed`). Where the String form
/// is spelled is found by [`string_error_results`] in the code [`production_code`] leaves of every
/// file [`production_sources`] lists: tests (`tests.rs`, `tests/`, `#[cfg(test)]` items), comments
/// and string literals may still say `Result<_, String>`. The scan is first checked against the
/// spellings it must flag and those it must not.
#[test]
fn no_library_code_has_a_string_error() {
    let flagged = |src: &str| string_error_results(&production_code(src));
    for (bad, line) in [
        ("fn f() -> Result<(), String> {}", 1),
        (
            "fn f()\n  -> std::result::Result<\n    Vec<u8>,\n    String,\n  > {}",
            2,
        ),
        (
            "struct S { r: Vec<(u16, core::result::Result<(), std::string::String>)> }",
            1,
        ),
        ("let v = x.collect::<Result<Vec<_>, String>>();", 1),
        ("type F = Option<Result<Box<dyn Fn(u8) -> u8>, String>>;", 1),
        ("#[derive(Debug)]\nstruct M { c: Option<Result<(), String>> }", 2),
    ] {
        assert_eq!(flagged(bad), [line], "the scan misses {bad:?}");
    }
    for ok in [
        "fn f() -> Result<String> {}",
        "fn f() -> io::Result<String> {}",
        "fn f() -> CniResult<Vec<String>> {}",
        "fn f() -> Result<String, Error> {}",
        "fn f() -> Result<(String, u8), Failure> {}",
        "// was Result<(), String>\nfn f() {}",
        "/// Not a `Result<_, String>`.\nfn f() {}",
        "const S: &str = \"Result<(), String>\";",
        "#[error(\"Result<(), String>\")]\nstruct E;",
        "#[cfg(test)]\nmod tests {\n    fn f() -> Result<(), String> { Ok(()) }\n}",
        "#[cfg(test)]\nfn f() -> Result<(), String> { Ok(()) }",
    ] {
        assert_eq!(flagged(ok), Vec::<usize>::new(), "{ok:?}");
    }

    let mut files = Vec::new();
    production_sources(&repo().join("plugins"), &mut files);
    for krate in fs::read_dir(repo().join("crates")).unwrap() {
        production_sources(&krate.unwrap().path().join("src"), &mut files);
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let mut found = Vec::new();
    for f in &files {
        let src = fs::read_to_string(f).unwrap();
        let path = f.strip_prefix(repo()).unwrap().display().to_string();
        for n in string_error_results(&production_code(&src)) {
            found.push(format!(
                "{path}:{n}: {}",
                src.lines().nth(n - 1).unwrap_or("").trim()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "a Result with a String error (give it a thiserror type, see this test's doc comment):\n{}",
        found.join("\n")
    );
}
