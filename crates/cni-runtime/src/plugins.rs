//! The one list of sandbox-cni's plugins.

/// Every plugin binary sandbox-cni builds, in the order the docs list them.
pub const ALL: [&str; 7] = [
    "loopback",
    "host-local",
    "bridge",
    "portmap",
    "bandwidth",
    "firewall",
    "tuning",
];

/// The plugins containerd needs for the default network: loopback for `lo`, and the three types of
/// cni-conf/10-sandbox-cni.conflist.
pub const DEFAULT_NETWORK: [&str; 4] = ["loopback", "bridge", "host-local", "portmap"];
