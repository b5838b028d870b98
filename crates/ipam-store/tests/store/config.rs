//! The one reader of host-local configuration: range sets, the legacy form, `ipRanges`, `dataDir`,
//! and its typed errors (whose text is the plugin's message).

use std::path::PathBuf;

use cni_core::{CniError, Fields, Version};
use ipam_store::config::{ConfigError, RangeSets, StoreSettings, ipam, range_sets, store_settings};
use serde_json::{Value, json};

fn object(v: &Value) -> &serde_json::Map<String, Value> {
    v.as_object().unwrap()
}

fn sets(conf: Value, rc: Value) -> Result<RangeSets, ConfigError> {
    let conf_fields = Fields::new(object(&conf), "");
    let ipam = ipam(&conf_fields)?;
    range_sets(
        &ipam,
        &Fields::new(object(&rc), "runtimeConfig."),
        Version::V1_0_0,
    )
}

#[test]
fn range_sets_come_from_ip_ranges_then_subnet_then_ranges() {
    let got = sets(
        json!({"ipam": {"subnet": "10.1.0.0/24", "ranges": [[{"Subnet": "10.2.0.0/24"}]]}}),
        json!({"ipRanges": [[{"subnet": "10.3.0.0/24"}]]}),
    )
    .unwrap();
    assert_eq!(
        got.labels,
        ["runtimeConfig.ipRanges[0]", "ipam", "ipam.ranges[0]"]
    );
    let subnets: Vec<String> = got.sets.iter().map(|s| s.ranges[0].subnet.to_string()).collect();
    assert_eq!(subnets, ["10.3.0.0/24", "10.1.0.0/24", "10.2.0.0/24"]);
}

#[test]
fn refusals_are_typed_and_worded_as_the_plugin_words_them() {
    let none = json!({});
    let err = |ipam: Value| sets(json!({ "ipam": ipam }), none.clone()).unwrap_err();
    assert_eq!(sets(json!({}), none.clone()).unwrap_err(), ConfigError::NoIpam);
    assert_eq!(err(json!({})), ConfigError::NoRanges);
    let e = err(json!({"ranges": [[{"subnet": "10.1.0.0/24", "RangeEnd": 5}]]}));
    assert_eq!(
        e.to_string(),
        "ipam.ranges[0][0].RangeEnd must be a string, got a number (5)"
    );
    assert!(matches!(e, ConfigError::NotAString { .. }));
    let e = err(json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.128/25"}]]}));
    assert!(
        matches!(
            e,
            ConfigError::SetsOverlap {
                first: 0,
                second: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        err(json!({"ranges": [[{"rangeStart": "10.1.0.5"}]]})).to_string(),
        "ipam.ranges[0][0].subnet is missing: every range needs a subnet"
    );
    assert_eq!(
        err(json!({"ranges": "10.1.0.0/24"})),
        ConfigError::Field(CniError::invalid_config(
            "ipam.ranges must be a list, got a string (\"10.1.0.0/24\")"
        ))
    );
    assert!(matches!(
        err(json!({"subnet": "10.1.0.0/24", "gateway": "10.2.0.1"})),
        ConfigError::BadRange { .. }
    ));
}

#[test]
fn data_dir_may_not_leave_its_directory() {
    let settings = |ipam: Value| store_settings(&Fields::new(object(&ipam), "ipam."));
    assert_eq!(
        settings(json!({"dataDir": "", "reclaimAfterReboot": true})).unwrap(),
        StoreSettings {
            data_dir: PathBuf::from("/var/lib/cni/networks"),
            reclaim_after_reboot: true
        }
    );
    let e = settings(json!({"dataDir": "/var/lib/cni/../../etc"})).unwrap_err();
    assert_eq!(e, ConfigError::DataDirParent("/var/lib/cni/../../etc".into()));
    assert_eq!(
        e.to_string(),
        "ipam.dataDir \"/var/lib/cni/../../etc\" must not contain '..': give the directory's plain path"
    );
}
