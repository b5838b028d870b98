use super::*;

/// A shell-script "plugin" that answers VERSION with `versions`.
fn fake_plugin(path: &Path, versions: &str) {
    fs::write(
        path,
        format!(
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = VERSION ] || exit 1\nprintf '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[{versions}]}}'\n"
        ),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn all_fake(dir: &Path, versions: &str) {
    fs::create_dir_all(dir).unwrap();
    for p in REQUIRED {
        fake_plugin(&dir.join(p), versions);
    }
}

const GOOD: &str = r#""0.3.1","0.4.0","1.0.0""#;

#[test]
fn check_plugin_reports_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bridge");
    assert_eq!(check_plugin(&p), PluginState::Missing);
    fake_plugin(&p, GOOD);
    assert!(check_plugin(&p).is_ok());
    fake_plugin(&p, r#""0.3.1""#);
    assert!(matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("not 1.0.0")));
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("not executable")));
    fs::write(&p, "#!/bin/sh\necho '{\"code\":4,\"msg\":\"nope\"}'; exit 1\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("VERSION") && w.contains("nope"))
    );
    let d = dir.path().join("dir");
    fs::create_dir(&d).unwrap();
    assert!(matches!(check_plugin(&d), PluginState::Broken(w) if w.contains("regular")));
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();
    assert!(
        matches!(check_plugin(&dir.path().join("dangling")), PluginState::Broken(w) if w.contains("dangling"))
    );
}

#[test]
fn installs_missing_plugins_and_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let bin = tmp.path().join("bin");
    all_fake(&src, GOOD);
    let source = Source { dir: src.clone() };
    let mut written = WrittenFiles::default();
    let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
    assert_eq!(report.len(), 4);
    assert!(report.iter().all(|l| l.starts_with("installed")), "{report:?}");
    for p in REQUIRED {
        let t = bin.join(p);
        assert_eq!(fs::metadata(&t).unwrap().permissions().mode() & 0o777, 0o755);
        assert!(written.is_ours(&t));
    }
    // Second run: nothing to do.
    let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
    assert!(report.iter().all(|l| l.starts_with("ok")), "{report:?}");
    // A rebuilt source replaces our own copies.
    fake_plugin(&src.join("bridge"), r#""0.3.1","1.0.0","1.1.0""#);
    let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("updated") && l.contains("bridge")),
        "{report:?}"
    );
    assert_eq!(
        fs::read(bin.join("bridge")).unwrap(),
        fs::read(src.join("bridge")).unwrap()
    );
}

#[test]
fn never_overwrites_foreign_files_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let bin = tmp.path().join("bin");
    all_fake(&src, GOOD);
    all_fake(&bin, r#""0.3.1","1.0.0","0.4.0""#);
    fs::write(bin.join("portmap"), "not a plugin").unwrap();
    let source = Source { dir: src.clone() };
    let mut written = WrittenFiles::default();
    let err = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap_err();
    assert!(
        err.message().contains("portmap") && err.message().contains("--force"),
        "{}",
        err.message()
    );
    assert_eq!(fs::read(bin.join("portmap")).unwrap(), b"not a plugin");
    // Working foreign plugins are kept, the broken one is replaced with --force.
    let report = ensure_plugins(&bin, Some(&source), &mut written, true).unwrap();
    assert!(
        report
            .iter()
            .any(|l| l.contains("portmap") && l.starts_with("installed")),
        "{report:?}"
    );
    assert_eq!(
        fs::read(bin.join("portmap")).unwrap(),
        fs::read(src.join("portmap")).unwrap()
    );
}

#[test]
fn missing_plugins_without_a_source_point_to_install_sh() {
    let tmp = tempfile::tempdir().unwrap();
    let mut written = WrittenFiles::default();
    let err = ensure_plugins(&tmp.path().join("bin"), None, &mut written, false).unwrap_err();
    assert!(err.message().contains("./install.sh"), "{}", err.message());
    assert!(err.message().contains("loopback: missing"), "{}", err.message());
}

#[test]
fn source_defaults_to_the_executable_dir_only_when_it_has_plugins() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(find_source(None, Some(tmp.path())).unwrap().is_none());
    fake_plugin(&tmp.path().join("bridge"), GOOD);
    let s = find_source(None, Some(tmp.path())).unwrap().unwrap();
    assert_eq!(s.dir, tmp.path());
    assert!(find_source(Some(&tmp.path().join("nope")), None).is_err());
}

#[test]
fn written_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("a");
    fs::write(&f, "x").unwrap();
    let mut w = WrittenFiles::default();
    w.note(&f, sha256_hex(b"x"));
    let rec = tmp.path().join("rec.json");
    w.save(&rec).unwrap();
    let back = WrittenFiles::load(&rec);
    assert_eq!(back, w);
    assert!(back.is_ours(&f));
    fs::write(&f, "changed").unwrap();
    assert!(!back.is_ours(&f));
}

#[test]
fn a_ledger_in_the_earlier_format_reads_and_is_written_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("written-files.json");
    // As the Value-built writer of earlier releases left it: keys in order, pretty, no newline.
    let old = "{\n  \"/etc/cni/net.d/10-sandbox-cni.conflist\": \"ab12\",\n  \
               \"/opt/cni/bin/bridge\": \"cd34\"\n}";
    fs::write(&path, old).unwrap();
    let w = WrittenFiles::load(&path);
    assert_eq!(w.files.len(), 2);
    assert_eq!(w.files["/opt/cni/bin/bridge"], "cd34");
    fs::remove_file(&path).unwrap();
    w.save(&path).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), old);
    assert_eq!(WrittenFiles::load(&path), w);
}

#[test]
fn an_unreadable_ledger_claims_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("written-files.json");
    assert_eq!(WrittenFiles::load(&path), WrittenFiles::default());
    for bad in ["", "not json", "[]", "{\"/a\": 1}", "null"] {
        fs::write(&path, bad).unwrap();
        assert!(WrittenFiles::load(&path).files.is_empty(), "{bad}");
    }
    fs::write(&path, "{}").unwrap();
    assert!(!WrittenFiles::load(&path).is_ours(&tmp.path().join("x")));
}

/// Cargo cannot read plugins/list.txt, so the root Cargo.toml names each plugin binary itself: the
/// two agree.
#[test]
fn every_listed_plugin_is_a_binary_of_the_root_package_and_no_other_is() {
    let manifest = include_str!("../../../../../Cargo.toml");
    let mut section = "";
    let mut bins: Vec<&str> = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[[bin]]"
            && let Some(name) = line.strip_prefix("name = \"").and_then(|l| l.strip_suffix('"'))
        {
            bins.push(name);
        }
    }
    let mut want: Vec<&str> = ALL.to_vec();
    want.sort_unstable();
    let mut got = bins.clone();
    got.sort_unstable();
    assert_eq!(
        got, want,
        "plugins/list.txt and the [[bin]] entries of Cargo.toml differ"
    );
}

#[test]
fn the_default_network_uses_listed_plugins() {
    for p in REQUIRED {
        assert!(ALL.contains(&p), "{p} is not in plugins/list.txt");
    }
}
