//! Regression tests for the defects of issue 20 that are not shown elsewhere (the option probes in
//! `options`, the parser tests in `cli::tests`, the gc and ls tests of the root `cni_cli`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Out, built_plugins_dir, exe, repo_conflist};

/// A conf dir with the repository's network (its store in the temp dir) and a cache dir.
struct Cni {
    tmp: tempfile::TempDir,
}

impl Cni {
    fn new() -> Cni {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("net.d");
        fs::create_dir_all(&conf).unwrap();
        let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
        v["plugins"][0]["ipam"]["dataDir"] = tmp.path().join("networks").to_string_lossy().into();
        fs::write(conf.join("10-sandbox-cni.conflist"), v.to_string()).unwrap();
        Cni { tmp }
    }

    fn conf(&self) -> PathBuf {
        self.tmp.path().join("net.d")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(exe());
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("NETCONFPATH", self.conf())
            .env("CNI_PATH", built_plugins_dir())
            .env("CNI_CACHE_DIR", self.tmp.path().join("cache"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd(args).output().unwrap())
    }

    fn netns(&self, n: &str) -> String {
        self.tmp.path().join(n).to_string_lossy().into_owned()
    }
}

#[test]
fn inapplicable_options_are_usage_errors() {
    let c = Cni::new();
    c.run(&[
        "ipam",
        "release",
        "sandbox-cni",
        "--ip",
        "10.42.0.9",
        "--ifname",
        "eth1",
    ])
    .expect_code(64)
    .stderr_has("--ifname applies only with --container");
    c.run(&["ipam", "gc", "sandbox-cni", "--valid", "a", "--allow-empty"])
        .expect_code(64)
        .stderr_has("--allow-empty applies only with --from-cri");
    c.run(&[
        "ipam",
        "gc",
        "sandbox-cni",
        "--valid",
        "a",
        "--runtime-endpoint",
        "unix:///x",
    ])
    .expect_code(64)
    .stderr_has("--runtime-endpoint applies only with --from-cri");
    c.run(&["ipam", "gc", "sandbox-cni", "--valid", "a", "--data-dir", "/x"])
        .expect_code(64)
        .stderr_has("--data-dir applies only with --from-cri");
    c.run(&["ipam", "ls", "--data-dir", "/tmp/store"])
        .expect_code(64)
        .stderr_has("host-local's dataDir is --ipam-dir");
    c.run(&["cni", "add", "sandbox-cni", "/x", "--timeout", "0"])
        .expect_code(64);
}

#[test]
fn json_errors_are_objects_on_stdout_with_one_indentation() {
    let c = Cni::new();
    for args in [
        &["cni", "status", "nope", "--json"][..],
        &["cni", "gc", "nope", "--json"],
        &["ipam", "gc", "nope", "--valid", "a", "--json"],
        &["ipam", "release", "nope", "--ip", "10.0.0.1", "--json"],
        &["ipam", "ls", "nope", "--json"],
    ] {
        let out = c.run(args);
        out.expect_code(1);
        let v: Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout));
        assert!(
            v["error"]["message"].as_str().unwrap().contains("nope"),
            "{args:?}: {v}"
        );
        assert_eq!(v["error"]["exitCode"], 1);
        assert!(
            out.stdout.starts_with("{\n    \"error\": {\n        "),
            "{args:?}: {}",
            out.stdout
        );
    }
    // The same four-space indentation for data: `ipam ls --json` was indented by two.
    let out = c.run(&["ipam", "ls", "--json"]);
    assert!(
        out.ok().stdout.starts_with("{\n    \"networks\": ["),
        "{}",
        out.stdout
    );
}

#[test]
fn errors_name_the_fix() {
    let c = Cni::new();
    // An unknown network lists the known ones, with a "did you mean".
    c.run(&["cni", "add", "sandbox-cnii", &c.netns("a")])
        .expect_code(1)
        .stderr_has("did you mean \"sandbox-cni\"?")
        .stderr_has("known networks: sandbox-cni");
    c.run(&["ipam", "ls", "sandbox-cnj"])
        .expect_code(1)
        .stderr_has("did you mean \"sandbox-cni\"?")
        .stderr_has("known host-local networks: sandbox-cni");
    // CHECK without an ADD.
    c.run(&["cni", "check", "sandbox-cni", &c.netns("a")])
        .expect_code(1)
        .stderr_has("no cached result for")
        .stderr_has("k3s-sandbox cni add sandbox-cni");
    // A typo'd plugin type.
    let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
    v["name"] = "typo".into();
    v["plugins"][0]["type"] = "brige".into();
    fs::write(c.conf().join("20-typo.conflist"), v.to_string()).unwrap();
    c.run(&["cni", "add", "typo", &c.netns("a")])
        .expect_code(69)
        .stderr_has("plugin \"brige\" is not in")
        .stderr_has("did you mean \"bridge\"?");
    // An ADD that fails part-way (the second plugin's arguments are refused after the bridge
    // reserved an address) suggests the DEL that releases it.
    let out = c
        .cmd(&["cni", "add", "sandbox-cni", &c.netns("b")])
        .env("CAP_ARGS", r#"{"portMappings":"not a list"}"#)
        .output()
        .unwrap();
    Out::from(out).expect_code(1).stderr_has(&format!(
        "release it with `k3s-sandbox cni del sandbox-cni {}`",
        c.netns("b")
    ));
}

/// Each kind of `cni` failure has its exit status (docs/cni-cli.md, "Exit statuses"); a plugin's
/// own error keeps 1, as cnitool's.
#[test]
fn cni_failures_exit_with_the_status_of_their_kind() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cni::new();
    // 65: input the runtime refuses.
    let out = c
        .cmd(&["cni", "add", "sandbox-cni", &c.netns("a")])
        .env("CNI_ARGS", "A")
        .output()
        .unwrap();
    Out::from(out).expect_code(65).stderr_has("invalid CNI_ARGS pair");
    let out = c
        .cmd(&["cni", "del", "sandbox-cni", &c.netns("a")])
        .env("CNI_IFNAME", "a/b")
        .output()
        .unwrap();
    Out::from(out).expect_code(65).stderr_has("interface name");
    // 1: the plugin's own error (portmap refuses the argument).
    let out = c
        .cmd(&["cni", "add", "sandbox-cni", &c.netns("b")])
        .env("CAP_ARGS", r#"{"portMappings":"not a list"}"#)
        .output()
        .unwrap();
    Out::from(out)
        .expect_code(1)
        .stderr_has("plugin type=\"portmap\" failed (add)");
    // 78: a verb the list's version does not have, and an unreadable conflist.
    let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
    v["name"] = "old".into();
    v["cniVersion"] = "0.3.1".into();
    v.as_object_mut().unwrap().remove("cniVersions");
    fs::write(c.conf().join("20-old.conflist"), v.to_string()).unwrap();
    c.run(&["cni", "check", "old", &c.netns("a")])
        .expect_code(78)
        .stderr_has("does not support the CHECK command");
    // 76: a plugin that answers something that is not a CNI reply.
    let bin = c.tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let junk = bin.join("junk");
    fs::write(&junk, "#!/bin/sh\ncat >/dev/null\necho hello\n").unwrap();
    fs::set_permissions(&junk, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        c.conf().join("30-junk.conflist"),
        r#"{"cniVersion":"1.0.0","name":"junk","plugins":[{"type":"junk"}]}"#,
    )
    .unwrap();
    let run_junk = |args: &[&str]| {
        let out = c.cmd(args).env("CNI_PATH", &bin).output().unwrap();
        Out::from(out)
    };
    run_junk(&["cni", "add", "junk", &c.netns("a")])
        .expect_code(76)
        .stderr_has("its result is not JSON");
    let out = run_junk(&["cni", "version", "junk", "--json"]);
    out.expect_code(76).stderr_has("answered VERSION");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "{v}");
    // 74: libcni's result cache cannot be read (its results dir is a symbolic link).
    let cache = c.tmp.path().join("cache");
    fs::create_dir_all(&cache).unwrap();
    std::os::unix::fs::symlink(c.tmp.path(), cache.join("results")).unwrap();
    c.run(&["cni", "check", "sandbox-cni", &c.netns("a")])
        .expect_code(74)
        .stderr_has("failed to get network \"sandbox-cni\" cached result");
    // 78 again, for the file containerd would pick, with the same status in the JSON error.
    fs::write(c.conf().join("00-broken.conflist"), "{").unwrap();
    let out = c.run(&["cni", "ls", "--json"]);
    out.expect_code(78).stderr_has("containerd fails to load it");
    c.run(&["cni", "add", "sandbox-cni", &c.netns("a")])
        .expect_code(78)
        .stderr_has("00-broken.conflist");
    let out = c.run(&["cni", "status", "sandbox-cni", "--json"]);
    out.expect_code(78);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["error"]["exitCode"], 78, "{v}");
}

#[test]
fn ls_flags_what_containerd_would_trip_on_in_aligned_columns() {
    let c = Cni::new();
    let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
    fs::write(c.conf().join("20-dup.conflist"), v.to_string()).unwrap();
    v["name"] = "other".into();
    v["plugins"][0]["type"] = "nosuch".into();
    fs::write(c.conf().join("30-other.conflist"), v.to_string()).unwrap();
    let out = c.run(&["cni", "ls"]);
    out.ok()
        .stdout_has("duplicate name: 10-sandbox-cni.conflist already names \"sandbox-cni\"")
        .stdout_has("plugin nosuch is not in");
    // Problems go on lines of their own under their row; rows stay aligned within 100 columns.
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("   ! ") && !l.starts_with('('))
        .collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    let col = |l: &str| l.find("  sandbox-cni  ").or_else(|| l.find("  other  ")).unwrap() + 2;
    assert_eq!(col(lines[1]), col(lines[2]), "{}", out.stdout);
    assert_eq!(col(lines[1]), col(lines[3]), "{}", out.stdout);
    assert_eq!(lines[0].find("NETWORK"), Some(col(lines[1])), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .all(|l| l.starts_with("   ! ") || l.chars().count() <= 100)
    );
}

#[test]
fn ipam_ls_of_a_missing_conf_dir_says_so_and_tables_fit_100_columns() {
    let c = Cni::new();
    c.run(&["ipam", "ls", "--cni-conf-dir", "/nonexistent/net.d"])
        .expect_code(1)
        .stderr_has("/nonexistent/net.d does not exist");
    c.run(&["cni", "add", "sandbox-cni", &c.netns("a")]).ok();
    // A reservation with LF instead of CRLF is malformed, not "empty or unreadable" (issue 20).
    let store = c.tmp.path().join("networks/sandbox-cni");
    fs::write(store.join("10.42.0.77"), "ctr-x\neth0").unwrap();
    fs::write(store.join("10.42.0.78"), "").unwrap();
    let out = c.run(&["ipam", "ls"]);
    out.ok()
        .stdout_has("reservation 10.42.0.77 is malformed (10 bytes)")
        .stdout_has("reservation 10.42.0.78 is empty or unreadable");
    let js: Value = serde_json::from_str(&c.run(&["ipam", "ls", "--json"]).stdout).unwrap();
    let kinds: Vec<&str> = js["networks"][0]["damage"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"malformed") && kinds.contains(&"no-holder"),
        "{kinds:?}"
    );
    // The table (indented rows) fits; the header names the store's and config's paths.
    let rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ADDRESS") || l.starts_with("  10."))
        .collect();
    assert_eq!(rows.len(), 4, "{}", out.stdout);
    assert!(rows.iter().all(|l| l.chars().count() <= 100), "{}", out.stdout);
    assert!(out.stdout.contains("cnitool-"), "{}", out.stdout);
}

#[test]
fn colour_follows_no_color_and_clicolor() {
    let c = Cni::new();
    let trace = c.tmp.path().join("trace");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = c.cmd(args);
        cmd.env("SANDBOX_CNI_TRACE_DIR", &trace);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Out::from(cmd.output().unwrap())
    };
    run(&[], &["trace", "on"]).ok();
    run(&[], &["cni", "add", "nope-net", "/x"]);
    let mut v: Value = serde_json::from_str(&repo_conflist()).unwrap();
    v["plugins"][0]["ipam"]["ranges"] = serde_json::json!([[{"subnet": "10.99.0.0/30"}]]);
    v["name"] = "tiny".into();
    v["plugins"][0]["ipam"]["dataDir"] = c.tmp.path().join("networks").to_string_lossy().into();
    fs::write(c.conf().join("20-tiny.conflist"), v.to_string()).unwrap();
    run(&[], &["cni", "add", "tiny", &c.netns("t1")]);
    run(&[], &["cni", "add", "tiny", &c.netns("t2")]); // the /30 is full: an error row
    let red = |env: &[(&str, &str)]| run(env, &["trace"]).stdout.contains("\x1b[");
    assert!(red(&[("CLICOLOR_FORCE", "1")]));
    // no-color.org: only a non-empty NO_COLOR turns colour off.
    assert!(red(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]));
    assert!(!red(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    // Not a terminal: no colour.
    assert!(!red(&[]));
    assert!(!red(&[("CLICOLOR", "0")]));
}

#[test]
fn completions_and_the_manual_page_cover_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Out::from(Command::new(exe()).args(["completions", shell]).output().unwrap());
        out.ok();
        for sub in ["doctor", "ipam", "valid", "ipam-dir", "no-trunc"] {
            assert!(out.stdout.contains(sub), "{shell}: {sub}");
        }
    }
    let man = Out::from(Command::new(exe()).arg("man").output().unwrap());
    man.ok()
        .stdout_has(".TH k3s-sandbox 1")
        .stdout_has(".SH \"K3S-SANDBOX IPAM GC\"")
        .stdout_has("\\-\\-valid");
    assert!(Path::new(&exe()).exists());
}

/// libcni passes a plugin's stderr through to its caller's: `cni add` does too (through the
/// output module's stderr writer; cni-runtime never writes to the process's streams itself), and
/// the plugin's stdout stays the result.
#[test]
fn a_plugins_stderr_reaches_cni_adds_stderr() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cni::new();
    let bin = c.tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let chatty = bin.join("chatty");
    fs::write(
        &chatty,
        "#!/bin/sh\ncat >/dev/null\necho 'chatty: a note on stderr' >&2\n\
         echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.1.2.3/24\"}]}'\n",
    )
    .unwrap();
    fs::set_permissions(&chatty, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        c.conf().join("40-chatty.conflist"),
        r#"{"cniVersion":"1.0.0","name":"chatty","plugins":[{"type":"chatty"}]}"#,
    )
    .unwrap();
    let out = c
        .cmd(&["cni", "add", "chatty", &c.netns("a")])
        .env("CNI_PATH", &bin)
        .output()
        .unwrap();
    let out = Out::from(out);
    out.expect_code(0).stderr_has("chatty: a note on stderr");
    assert!(out.stdout.contains("10.1.2.3/24"), "{}", out.stdout);
    assert!(!out.stdout.contains("chatty:"), "{}", out.stdout);
}
