//! The documentation's examples run as tests (issue 20): `tests/cmd/*.trycmd` and `*.toml` hold
//! the commands of README.md and docs/*.md with their output, run by trycmd against this build,
//! in a copy of the case's `.in/` directory. `TRYCMD=overwrite cargo test -p k3s-sandbox --test it
//! docs` rewrites them after a deliberate change of output; review the diff and the docs.

use crate::common::{built_plugins_dir, exe};

#[test]
fn documented_examples_run() {
    let bin = built_plugins_dir();
    let t = trycmd::TestCases::new();
    t.register_bin("k3s-sandbox", exe());
    for p in ["bridge", "host-local", "loopback"] {
        t.register_bin(p, bin.join(p));
    }
    t.env("NETCONFPATH", "net.d")
        .env("CNI_PATH", bin.to_string_lossy().into_owned())
        .env("CNI_CACHE_DIR", "cache")
        .env("SANDBOX_CNI_TRACE_DIR", "trace")
        .env("HOME", "home")
        .env("NO_COLOR", "1");
    // Empty counts as unset for each of these.
    for v in [
        "CNI_CONF_DIR",
        "CNI_BIN_DIR",
        "K3S_SANDBOX_DATA_DIR",
        "CNI_ARGS",
        "CAP_ARGS",
        "CLICOLOR_FORCE",
    ] {
        t.env(v, "");
    }
    t.case("tests/cmd/*.trycmd").case("tests/cmd/*.toml");
}

/// The `k3s-sandbox` command lines of a Markdown file's code blocks: (line number, command, whether
/// the block is marked `<!-- needs k3s ... -->` on the line before it). Synopsis lines (with a
/// placeholder such as NETWORK, `[...]` or `…`) are left out.
fn documented_commands(text: &str) -> Vec<(usize, String, bool)> {
    let mut out = Vec::new();
    let (mut in_block, mut marked, mut prev) = (false, false, "");
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            if !in_block {
                marked = prev.contains("<!-- needs k3s");
            }
            in_block = !in_block;
            prev = line;
            continue;
        }
        prev = line;
        if !in_block {
            continue;
        }
        let mut l = line.trim().trim_start_matches("$ ");
        // Leading VAR=value assignments and `eval "$(`.
        while let Some((first, rest)) = l.split_once(' ')
            && first.contains('=')
            && first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        {
            l = rest;
        }
        l = l.trim_start_matches("eval \"$(");
        let Some(cmd) = l.strip_prefix("k3s-sandbox ") else {
            continue;
        };
        let cmd = cmd.split(" #").next().unwrap_or(cmd);
        let cmd = cmd
            .split(" | ")
            .next()
            .unwrap_or(cmd)
            .trim()
            .trim_end_matches(")\"");
        let cmd = format!(
            "k3s-sandbox {}",
            cmd.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        let placeholder = cmd.contains('[')
            || cmd.contains('…')
            || cmd.contains("...")
            || cmd
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w.len() >= 3 && w.chars().all(|c| c.is_ascii_uppercase()));
        if !placeholder {
            out.push((i + 1, cmd, marked));
        }
    }
    out
}

#[test]
fn every_documented_command_runs_as_a_test_or_needs_k3s() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut corpus = String::new();
    for e in std::fs::read_dir("tests/cmd").unwrap().filter_map(Result::ok) {
        if e.path().extension().is_some_and(|x| x == "trycmd") {
            corpus.push_str(&std::fs::read_to_string(e.path()).unwrap());
        }
    }
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let (mut run, mut marked, mut missing) = (0, 0, Vec::new());
    for f in &files {
        for (line, cmd, needs_k3s) in documented_commands(&std::fs::read_to_string(f).unwrap()) {
            if corpus.contains(&format!("$ {cmd}\n")) {
                run += 1;
            } else if needs_k3s {
                marked += 1;
            } else {
                missing.push(format!("{}:{line}: {cmd}", f.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented commands neither in tests/cmd/*.trycmd nor marked <!-- needs k3s -->:\n{}",
        missing.join("\n")
    );
    assert!(run >= 15 && marked >= 10, "{run} run, {marked} marked");
}

#[test]
fn the_scanner_finds_commands_and_skips_synopses() {
    let md = "text\n<!-- needs k3s -->\n```sh\neval \"$(k3s-sandbox up)\"   # start\n```\n```\n$ NETCONFPATH=x k3s-sandbox cni ls  # list\nk3s-sandbox cni add NETWORK NETNS\nk3s-sandbox trace --json | head -1\n```\n";
    assert_eq!(
        documented_commands(md),
        vec![
            (4, "k3s-sandbox up".to_string(), true),
            (7, "k3s-sandbox cni ls".to_string(), false),
            (9, "k3s-sandbox trace --json".to_string(), false),
        ]
    );
}
