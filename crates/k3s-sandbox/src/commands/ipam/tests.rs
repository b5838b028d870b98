use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use cni_core::Version;
use ipam_store::Owner;
use ipam_store::config::ConfigError;
use ipam_store::inspect::{self, Inspection, Reservation};
use serde_json::json;

use super::detect::detect;
use super::gc::plan;
use super::network::read_plugin;
use crate::cni::valid::{Valid, parse};
use crate::paths::Dirs;

fn res(ip: &str, id: Option<&str>, ifname: &str, age: u64) -> Reservation {
    Reservation {
        ip: ip.parse().unwrap(),
        file: true,
        owner: id.map(|i| Owner::new(i, ifname)),
        age: Some(Duration::from_secs(age)),
    }
}

#[test]
fn valid_attachments_keep_their_holders() {
    let v = Valid::new(&[parse("a").unwrap(), parse("b/eth1").unwrap()]);
    let keeps = |o: Owner| v.keeps(&o.id, o.ifname.as_deref());
    assert!(keeps(Owner::new("a", "eth0")));
    assert!(keeps(Owner::new("a", "net1")));
    assert!(keeps(Owner::new("b", "eth1")));
    assert!(!keeps(Owner::new("b", "eth0")));
    assert!(keeps(Owner::legacy("b")));
    assert!(!keeps(Owner::new("c", "eth0")));
    assert!(parse("/eth0").is_err());
    assert!(parse("x/").is_err());
}

#[test]
fn plan_frees_only_old_reservations_of_dead_attachments() {
    let found = Inspection {
        reservations: vec![
            res("10.0.0.2", Some("live"), "eth0", 9999),
            res("10.0.0.3", Some("dead"), "eth0", 9999),
            res("10.0.0.4", Some("new"), "eth0", 3),
            res("10.0.0.5", None, "", 9999),
            Reservation {
                file: false,
                ..res("10.0.0.6", None, "", 9999)
            },
        ],
        ..Inspection::default()
    };
    let v = Valid::new(&[parse("live").unwrap()]);
    let p = plan(&found, &v.live, Duration::from_secs(60));
    assert_eq!(p.live, 1);
    assert_eq!(p.young, 1);
    let freed: Vec<String> = p.free.iter().map(|d| d.ip.to_string()).collect();
    assert_eq!(freed, vec!["10.0.0.3", "10.0.0.5"]);
    assert_eq!(p.blocked, ["10.0.0.6".parse::<std::net::IpAddr>().unwrap()]);
}

#[test]
fn detection_counts_holders_that_are_not_live_sandboxes() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("net.d");
    let store = tmp.path().join("networks");
    fs::create_dir_all(&conf).unwrap();
    fs::create_dir_all(store.join("n")).unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge",
        "ipam": {"type": "host-local", "dataDir": store, "ranges": [[{"subnet": "10.5.0.0/24"}]]}}]});
    fs::write(conf.join("10-n.conflist"), list.to_string()).unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for (ip, id) in [
        ("10.5.0.2", "live"),
        ("10.5.0.3", "gone-1"),
        ("10.5.0.4", "gone-2"),
    ] {
        let f = store.join("n").join(ip);
        fs::write(&f, format!("{id}\r\neth0")).unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    // A fresh reservation of a pod the runtime does not list yet is not a leak.
    fs::write(store.join("n").join("10.5.0.5"), "starting\r\neth0").unwrap();
    let dirs = Dirs {
        data_dir: tmp.path().join("data"),
        cni_bin_dir: tmp.path().join("bin"),
        cni_conf_dir: conf.clone(),
    };
    let live: BTreeSet<String> = ["live".to_string()].into();
    let f = detect(&dirs, Some(&live));
    assert_eq!(f.len(), 1);
    let (what, cmd) = f[0].problem.clone().unwrap();
    let cmd = cmd.to_string();
    assert!(
        what.contains("4 reservations held by 4 containers, but only 1 live pod sandbox: 2 holders are gone"),
        "{what}"
    );
    assert!(cmd.starts_with("k3s-sandbox ipam gc n --cni-conf-dir "), "{cmd}");
    assert!(
        cmd.contains(" --from-cri --data-dir ") && cmd.ends_with(" --apply"),
        "{cmd}"
    );
    // No live sandbox at all: the command needs --allow-empty.
    let (_, cmd) = detect(&dirs, Some(&BTreeSet::new()))[0].problem.clone().unwrap();
    let cmd = cmd.to_string();
    assert!(cmd.ends_with("--apply --allow-empty"), "{cmd}");
    // Without the runtime's answer, and with room in the range: no problem.
    let f = detect(&dirs, None);
    assert!(f[0].problem.is_none());
    assert_eq!(
        f[0].summary.split(" (").next(),
        Some("4 of 253 addresses used in 10.5.0.0/24")
    );
}

#[test]
fn dual_stack_figures_are_per_range_and_k3s_missing_gets_no_from_cri() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("net.d");
    let store = tmp.path().join("networks");
    fs::create_dir_all(&conf).unwrap();
    fs::create_dir_all(store.join("d")).unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": "d", "plugins": [{"type": "bridge",
        "ipam": {"type": "host-local", "dataDir": store,
                 "ranges": [[{"subnet": "10.6.0.0/30"}], [{"subnet": "fd00::/64"}]]}}]});
    fs::write(conf.join("10-d.conflist"), list.to_string()).unwrap();
    fs::write(store.join("d").join("10.6.0.2"), "gone\r\neth0").unwrap();
    fs::write(store.join("d").join("fd00::2"), "gone\r\neth0").unwrap();
    let dirs = Dirs {
        data_dir: tmp.path().join("data"),
        cni_bin_dir: tmp.path().join("bin"),
        cni_conf_dir: conf.clone(),
    };
    let f = detect(&dirs, None);
    // Issue 20: "2 of 18446744073709551867 addresses" summed IPv4 and IPv6.
    assert_eq!(
        f[0].summary.split(" (").next(),
        Some("1 of 1 address used in 10.6.0.0/30, 1 of 18446744073709551614 addresses used in fd00::/64")
    );
    // The /30 is full, and the runtime was not asked: the remedy names no --from-cri.
    let (what, fix) = f[0].problem.clone().unwrap();
    assert!(what.contains("is nearly full: 1 of 1 address"), "{what}");
    let remedy = fix.remedy();
    assert!(!remedy.contains("--from-cri"), "{remedy}");
    assert!(
        remedy.contains("k3s-sandbox ipam ls d --cni-conf-dir"),
        "{remedy}"
    );
    assert!(
        remedy.contains("ipam gc d --cni-conf-dir") && remedy.contains("--valid LIVE-ID"),
        "{remedy}"
    );
}

/// The sets of one plugin object `{"ipam": ipam}` at CNI 1.0.0.
fn sets_of(ipam: serde_json::Value) -> Result<Vec<ipam_store::RangeSet>, ConfigError> {
    let plugin = json!({ "type": "bridge", "ipam": ipam });
    read_plugin(plugin.as_object().unwrap(), Version::V1_0_0)?.1
}

/// The text of the error reading `{"ipam": ipam}`.
fn refusal(ipam: serde_json::Value) -> String {
    sets_of(ipam).unwrap_err().to_string()
}

#[test]
fn ranges_are_read_like_host_local() {
    let sets = sets_of(json!({"type": "host-local", "subnet": "10.1.0.0/24",
        "ranges": [[{"Subnet": "10.2.0.0/24", "rangeStart": "10.2.0.10", "rangeEnd": "10.2.0.19"}], [{"subnet": "fd00::/120"}]]}))
    .unwrap();
    assert_eq!(sets.len(), 3);
    assert_eq!(inspect::capacity(&sets[1].ranges[0]), 10);
    assert_eq!(
        refusal(json!({"ranges": [[{"subnet": "10.2.0.1/24"}]]})),
        "ipam.ranges[0][0].subnet: 10.2.0.1/24 has host bits set: for a prefix length of 24 the network address is 10.2.0.0; use 10.2.0.0/24"
    );
}

/// Issue 22: the CLI read host-local configs more laxly than the plugin (a subnet without a
/// prefix, overlapping range sets, a `..` in dataDir). It now refuses what the plugin refuses,
/// with the plugin's message.
#[test]
fn configs_the_plugin_refuses_are_refused_with_its_message() {
    assert_eq!(
        refusal(json!({"subnet": "10.1.0.0"})),
        "ipam.subnet: \"10.1.0.0\" is not in CIDR notation (address/prefix)"
    );
    assert_eq!(
        refusal(json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/25"}]]})),
        "range set 0 (ipam.ranges[0]) overlaps with 1 (ipam.ranges[1]): range sets must not share addresses"
    );
    assert_eq!(
        refusal(json!({"dataDir": "/var/lib/../../etc", "subnet": "10.1.0.0/24"})),
        "ipam.dataDir \"/var/lib/../../etc\" must not contain '..': give the directory's plain path"
    );
    assert_eq!(
        refusal(json!({"dataDir": 7, "subnet": "10.1.0.0/24"})),
        "ipam.dataDir must be a string, got a number (7)"
    );
    // Two IPv4 sets need CNI 0.3.0 or later, as for the plugin.
    let plugin = json!({"ipam": {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}});
    let (_, sets) = read_plugin(plugin.as_object().unwrap(), Version::V0_2_0).unwrap();
    assert!(
        sets.unwrap_err()
            .to_string()
            .starts_with("CNI version 0.2.0 does not support more than 1 address per family")
    );
    // A networks_in conf dir: the refused config is a problem, and no store is read from it.
    let tmp = tempfile::tempdir().unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge",
        "ipam": {"type": "host-local", "dataDir": "/tmp/../etc", "subnet": "10.1.0.0/24"}}]});
    fs::write(tmp.path().join("10-n.conflist"), list.to_string()).unwrap();
    let (nets, problems) = super::network::networks_in(tmp.path());
    assert!(nets.is_empty(), "{nets:?}");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].ends_with("10-n.conflist: network n: ipam.dataDir \"/tmp/../etc\" must not contain '..': give the directory's plain path"),
        "{}",
        problems[0]
    );
}
