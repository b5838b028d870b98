use super::*;
use crate::host::probe::{Cgroups, good_agent_host};

fn levels(c: &[Check]) -> Vec<Level> {
    c.iter().map(|c| c.level).collect()
}

#[test]
fn a_good_host_is_all_ok() {
    let c = host_checks(&good_agent_host(), Some(Profile::Agent));
    assert!(c.iter().all(|c| c.level == Level::Ok), "{c:#?}");
}

#[test]
fn a_gvisor_like_host_warns_and_fails_only_for_the_agent() {
    let mut h = good_agent_host();
    h.is_root = false;
    h.root_fs = Ok(probe::MAGIC_9P);
    h.data_fs = Ok(probe::MAGIC_9P);
    h.kmsg = Err(io::Error::from_raw_os_error(2));
    h.cgroups = Cgroups::Missing("nothing mounted".into());
    h.netns = Err(probe::NetnsError::Refused(
        "unshare: unshare failed: Operation not permitted".into(),
    ));
    let cp = host_checks(&h, None);
    assert!(cp.iter().all(|c| c.level == Level::Warn), "{cp:#?}");
    assert!(cp.iter().all(|c| c.remedy.is_some()));
    let ag = host_checks(&h, Some(Profile::Agent));
    assert_eq!(
        levels(&ag),
        vec![
            Level::Fail,
            Level::Warn,
            Level::Warn,
            Level::Fail,
            Level::Warn,
            Level::Fail
        ]
    );
    let line = ag[3].to_string();
    assert!(line.starts_with("FAIL  /dev/kmsg: cannot open"), "{line}");
    assert!(line.contains(" -> "), "{line}");
}

#[test]
fn busy_ports_fail_unless_our_instance_holds_them() {
    let r = vec![
        (6443, Ok(())),
        (6444, Err(io::ErrorKind::AddrInUse.into())),
        (10250, Err(io::ErrorKind::AddrInUse.into())),
    ];
    assert_eq!(
        levels(&port_checks(&r, None, None)),
        vec![Level::Ok, Level::Fail, Level::Warn]
    );
    assert_eq!(
        levels(&port_checks(&r, None, Some(Profile::Agent))),
        vec![Level::Ok, Level::Fail, Level::Fail]
    );
    assert_eq!(
        levels(&port_checks(&r, Some(42), None)),
        vec![Level::Ok, Level::Ok, Level::Ok]
    );
}

#[test]
fn conflist_checks_name_containerds_pick() {
    let tmp = tempfile::tempdir().unwrap();
    let (c, _) = conflist_checks(&tmp.path().join("missing"), None);
    assert_eq!(c[0].level, Level::Warn);
    let (c, _) = conflist_checks(tmp.path(), Some(Profile::Agent));
    assert_eq!(c[0].level, Level::Fail);
    fs::write(tmp.path().join(conflist::FILE_NAME), conflist::TEMPLATE).unwrap();
    let (c, types) = conflist_checks(tmp.path(), None);
    assert_eq!(c[0].level, Level::Ok, "{c:#?}");
    assert_eq!(types, vec!["bridge", "host-local", "portmap"]);
    fs::write(
        tmp.path().join("05-other.conflist"),
        r#"{"cniVersion":"1.0.0","name":"o","plugins":[{"type":"ptp"}]}"#,
    )
    .unwrap();
    fs::write(tmp.path().join("10-flannel.conflist"), "{}").unwrap();
    let (c, types) = conflist_checks(tmp.path(), None);
    assert_eq!(levels(&c), vec![Level::Warn, Level::Warn]);
    assert!(
        c[0].detail.contains("would pick 05-other.conflist"),
        "{}",
        c[0].detail
    );
    assert_eq!(types, vec!["ptp"]);
    fs::write(tmp.path().join("01-broken.conf"), "{").unwrap();
    let (c, _) = conflist_checks(tmp.path(), None);
    assert_eq!(c[0].level, Level::Fail);
}

#[test]
fn missing_plugins_fail_unless_only_the_control_plane_is_wanted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = plugin_checks(tmp.path(), &["tuning".to_string(), "bridge".to_string()], None);
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "plugin loopback",
            "plugin bridge",
            "plugin host-local",
            "plugin portmap",
            "plugin tuning"
        ]
    );
    assert!(
        c.iter()
            .all(|c| c.level == Level::Fail && c.detail.ends_with(": missing")),
        "{c:#?}"
    );
    let c = plugin_checks(tmp.path(), &[], Some(Profile::ControlPlane));
    assert!(c.iter().all(|c| c.level == Level::Warn), "{c:#?}");
}

#[test]
fn k3s_line_depends_on_presence_and_version() {
    let p = std::path::PathBuf::from("/usr/local/bin/k3s");
    assert_eq!(
        k3s_check(Ok((
            p.clone(),
            "k3s version v1.31.2+k3s1 (x)".into(),
            K3sVersion::parse("v1.31.2")
        )))
        .level,
        Level::Ok
    );
    assert_eq!(
        k3s_check(Ok((
            p,
            "k3s version v1.24.1+k3s1".into(),
            K3sVersion::parse("v1.24.1")
        )))
        .level,
        Level::Warn
    );
    let missing = k3s_check(Err(Failure::NotFound("k3s was not found".into())));
    assert_eq!(missing.level, Level::Fail);
    assert_eq!(missing.remedy.as_deref(), Some("k3s was not found"));
}

#[test]
fn data_dir_check_reports_unwritable_places() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(data_dir_check(&tmp.path().join("new/dir")).level, Level::Ok);
    assert!(!tmp.path().join("new/dir").exists());
    let file = tmp.path().join("file");
    fs::write(&file, "").unwrap();
    assert_eq!(data_dir_check(&file.join("sub")).level, Level::Fail);
}
