use super::*;

fn entry() -> Entry {
    let mut caps = Map::new();
    caps.insert("portMappings".into(), serde_json::json!([{"hostPort": 8080}]));
    Entry {
        container_id: "c1".into(),
        config: br#"{"name":"n"}"#.to_vec(),
        ifname: "eth0".into(),
        network: "n".into(),
        netns: "/run/netns/x".into(),
        cni_args: vec![("K8S_POD_NAME".into(), "p".into())],
        capability_args: caps,
        result: Some(serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]})),
    }
}

#[test]
fn layout_and_field_order_follow_libcni() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Cache::new(tmp.path());
    let e = entry();
    let p = c.write(&e).unwrap();
    assert_eq!(p, tmp.path().join("results/n-c1-eth0"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.starts_with(r#"{"kind":"cniCacheV1","containerId":"c1","config":"eyJuYW1lIjoibiJ9","ifName":"eth0","networkName":"n","netns":"/run/netns/x","cniArgs":[["K8S_POD_NAME","p"]],"capabilityArgs""#), "{text}");
    assert_eq!(c.read("n", "c1", "eth0").unwrap().unwrap(), e);
    assert_eq!(c.entries("n"), vec![e.clone()]);
    assert!(c.entries("m").is_empty());
    c.remove("n", "c1", "eth0").unwrap();
    c.remove("n", "c1", "eth0").unwrap();
    assert_eq!(c.read("n", "c1", "eth0").unwrap(), None);
}

#[test]
fn empty_optional_fields_are_left_out() {
    let e = Entry {
        netns: String::new(),
        cni_args: vec![],
        capability_args: Map::new(),
        result: None,
        ..entry()
    };
    assert!(
        !e.to_json().contains("netns") && !e.to_json().contains("cniArgs") && !e.to_json().contains("result")
    );
    assert!(Entry::from_json(br#"{"kind":"other"}"#).is_err());
}

/// Files as the hand-written encoder before the serde one wrote them (and as libcni writes them):
/// they read the same and are written back byte for byte.
#[test]
fn entries_of_the_previous_encoder_read_and_rewrite_identically() {
    let full = br#"{"kind":"cniCacheV1","containerId":"c1","config":"eyJuYW1lIjoibiJ9","ifName":"eth0","networkName":"n","netns":"/run/netns/x","cniArgs":[["K8S_POD_NAME","p"]],"capabilityArgs":{"portMappings":[{"hostPort":8080}]},"result":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}"#;
    let e = Entry::from_json(full).unwrap();
    assert_eq!(e, entry());
    assert_eq!(e.to_json().as_bytes(), full);
    let minimal =
        br#"{"kind":"cniCacheV1","containerId":"c1","config":"","ifName":"eth0","networkName":"n"}"#;
    assert_eq!(Entry::from_json(minimal).unwrap().to_json().as_bytes(), minimal);
    // Go's nil bytes and maps (null), a malformed argument pair and fields of the wrong type count
    // as absent, as before.
    let lax = br#"{"kind":"cniCacheV1","containerId":"c1","config":null,"ifName":"eth0","networkName":"n","netns":7,"cniArgs":[["A","1"],["bad"]],"capabilityArgs":null,"result":null}"#;
    let e = Entry::from_json(lax).unwrap();
    assert_eq!(e.cni_args, vec![("A".to_string(), "1".to_string())]);
    assert_eq!(
        e.to_json(),
        r#"{"kind":"cniCacheV1","containerId":"c1","config":"","ifName":"eth0","networkName":"n","cniArgs":[["A","1"]]}"#
    );
    for (bad, why) in [
        (&b"["[..], "not JSON"),
        (b"[]", "not a JSON object"),
        (br#"{"containerId":"c1"}"#, r#"kind is "", not "cniCacheV1""#),
        (br#"{"kind":"cniCacheV1","config":"%%"}"#, "config is not base64"),
    ] {
        let e = Entry::from_json(bad).unwrap_err().to_string();
        assert!(e.starts_with(why), "{e}");
    }
}

#[test]
fn writes_never_follow_planted_temp_names_and_tighten_the_directory() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let c = Cache::new(tmp.path());
    let results = c.results_dir();
    fs::create_dir_all(&results).unwrap();
    fs::set_permissions(&results, fs::Permissions::from_mode(0o777)).unwrap();
    let victim = tmp.path().join("root-only");
    fs::write(&victim, "secret").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    // Symlinks planted under every temporary name the next writes of this process could use,
    // and under the old name scheme.
    for n in 0..4 {
        std::os::unix::fs::symlink(
            &victim,
            results.join(format!(".n-c1-eth0.{}.{n}.tmp", std::process::id())),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink(&victim, results.join(format!(".n-{}.tmp", std::process::id()))).unwrap();
    c.write(&entry()).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "secret");
    assert_eq!(c.read("n", "c1", "eth0").unwrap().unwrap(), entry());
    assert_eq!(
        fs::metadata(&results).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_symlinked_or_foreign_results_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let cache = tmp.path().join("cache");
    fs::create_dir(&cache).unwrap();
    std::os::unix::fs::symlink(&elsewhere, cache.join("results")).unwrap();
    let c = Cache::new(&cache);
    let e = c.write(&entry()).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert!(
        c.read("n", "c1", "eth0")
            .unwrap_err()
            .to_string()
            .contains("symbolic link")
    );
    assert!(c.remove("n", "c1", "eth0").is_err());
    assert!(fs::read_dir(&elsewhere).unwrap().next().is_none());
    if rustix::process::geteuid().is_root() {
        fs::remove_file(cache.join("results")).unwrap();
        fs::create_dir(cache.join("results")).unwrap();
        std::os::unix::fs::chown(cache.join("results"), Some(65534), None).unwrap();
        let e = c.write(&entry()).unwrap_err();
        assert!(e.to_string().contains("bad ownership"), "{e}");
    }
}
