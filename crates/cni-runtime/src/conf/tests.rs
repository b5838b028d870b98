use super::*;

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn missing_cni_version_stays_empty() {
    // Drift bug: a list without cniVersion was run at 0.3.1; libcni passes "" (read as 0.1.0).
    let l = NetworkList::from_list_bytes(br#"{"name":"n","plugins":[{"type":"loopback"}]}"#).unwrap();
    assert_eq!(l.cni_version, "");
    let c = NetworkList::from_conf_bytes(br#"{"name":"n","type":"bridge"}"#).unwrap();
    assert_eq!(c.cni_version, "");
}

#[test]
fn cni_versions_pick_the_highest_known() {
    // Drift bug: cniVersions was ignored.
    let l = NetworkList::from_list_bytes(
        br#"{"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(l.cni_version, "1.1.0");
    assert_eq!(l.declared_version, "1.0.0");
}

#[test]
fn list_errors_name_the_problem() {
    for (text, want) in [
        (r#"{"plugins":[{"type":"x"}]}"#, "no name"),
        (r#"{"name":"n"}"#, "no 'plugins'"),
        (r#"{"name":"n","plugins":[]}"#, "no plugins"),
        (r#"{"name":"n","plugins":[{"a":1}]}"#, "no 'type'"),
        (
            r#"{"name":"n","cniVersion":1,"plugins":[{"type":"x"}]}"#,
            "cniVersion",
        ),
        (
            r#"{"name":"n","disableCheck":3,"plugins":[{"type":"x"}]}"#,
            "disableCheck",
        ),
        ("[", "parsing"),
    ] {
        let e = NetworkList::from_list_bytes(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
    let l = NetworkList::from_list_bytes(
        br#"{"name":"n","disableCheck":"true","disableGC":true,"plugins":[{"type":"x"}]}"#,
    )
    .unwrap();
    assert!(l.disable_check && l.disable_gc);
}

#[test]
fn lookup_follows_libcni() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "20-b.conflist",
        r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}"#,
    );
    write(
        d,
        "10-a.conflist",
        r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}"#,
    );
    write(
        d,
        "05-single.conf",
        r#"{"cniVersion":"0.4.0","name":"single","type":"bridge"}"#,
    );
    write(
        d,
        "01-other.json",
        r#"{"cniVersion":"0.4.0","name":"net","type":"conf-loses"}"#,
    );
    write(d, "README", "not json");
    assert_eq!(find(d, "net").unwrap().chain(), ["first"]);
    let s = find(d, "single").unwrap();
    assert_eq!(s.chain(), ["bridge"]);
    assert_eq!(s.cni_version, "0.4.0");
    let wrapped: Value = serde_json::from_slice(&s.bytes).unwrap();
    assert_eq!(wrapped["plugins"][0]["name"], "single");
    assert!(
        find(d, "nope")
            .unwrap_err()
            .to_string()
            .contains("no net configuration")
    );
    let (first, _) = default_network(d).unwrap().unwrap();
    assert!(first.ends_with("01-other.json"));
    // One broken conflist aborts the lookup, naming the file.
    write(d, "00-broken.conflist", "{");
    assert!(
        find(d, "net")
            .unwrap_err()
            .to_string()
            .contains("00-broken.conflist")
    );
    // A path is read directly.
    let p = d.join("20-b.conflist");
    assert_eq!(find(d, p.to_str().unwrap()).unwrap().chain(), ["second"]);
}

#[test]
fn loopback_and_plugin_types() {
    let l = NetworkList::loopback();
    assert_eq!(l.chain(), ["loopback"]);
    assert_eq!(l.cni_version, "0.3.1");
    let t = NetworkList::from_list_bytes(
        br#"{"name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"portmap"},{"type":"bridge"}]}"#,
    )
    .unwrap();
    assert_eq!(t.plugin_types(), ["bridge", "host-local", "portmap"]);
    let mut t = t;
    t.set_ipam_data_dir(Path::new("/tmp/x"));
    assert_eq!(t.plugins[0]["ipam"]["dataDir"], "/tmp/x");
    assert!(t.plugins[1].get("ipam").is_none());
    let bytes: Value = serde_json::from_slice(&t.bytes).unwrap();
    assert_eq!(bytes["plugins"][0]["ipam"]["dataDir"], "/tmp/x");
}
