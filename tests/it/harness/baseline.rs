//! Each plugin's valid baseline call: the bad-input cases start from these and break one thing, so a
//! refusal is the broken part's doing.

use std::path::Path;

use serde_json::{Value, json};

use super::NETNS;

/// Plugins whose ADD reads prevResult (host-local and bridge ignore it, as the reference does).
pub(crate) const READ_PREV: &[&str] = &["loopback", "portmap", "bandwidth", "firewall", "tuning"];
/// Plugins that read CNI_ARGS (the others ignore it, as the reference plugins do).
pub(crate) const READ_ARGS: &[&str] = &["host-local", "bridge", "tuning"];

/// The result the chained plugins receive as prevResult in their baseline.
pub(crate) fn prev_result() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "02:11:22:33:44:55"},
            {"name": "eth0", "mac": "02:11:22:33:44:66", "sandbox": NETNS}
        ],
        "ips": [{"interface": 1, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    })
}

/// A valid ADD configuration for `plugin`, keeping any host-local store under `data_dir`.
pub(crate) fn base_conf(plugin: &str, data_dir: &Path) -> Value {
    let ipam = json!({
        "type": "host-local",
        "ranges": [[{"subnet": "10.77.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": data_dir.display().to_string(),
    });
    let mut conf = json!({"cniVersion": "1.0.0", "name": "bad-input", "type": plugin});
    match plugin {
        "loopback" => {}
        "host-local" => conf["ipam"] = ipam,
        "bridge" => {
            conf["bridge"] = json!("cni0");
            conf["isGateway"] = json!(true);
            conf["ipam"] = ipam;
        }
        "portmap" => {
            conf["runtimeConfig"] =
                json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
            conf["prevResult"] = prev_result();
        }
        "bandwidth" => {
            conf["runtimeConfig"] = json!({"bandwidth": {"ingressRate": 1000000, "ingressBurst": 100000}});
            conf["prevResult"] = prev_result();
        }
        "firewall" => {
            conf["backend"] = json!("iptables");
            conf["prevResult"] = prev_result();
        }
        "tuning" => {
            conf["sysctl"] = json!({"net.core.somaxconn": "512"});
            conf["prevResult"] = prev_result();
        }
        other => panic!("no baseline for plugin {other}"),
    }
    conf
}
