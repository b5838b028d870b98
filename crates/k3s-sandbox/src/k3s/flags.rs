//! The k3s command line for each profile. Pure: facts in, argv out.

use std::fmt;
use std::path::Path;

use crate::host::probe::HostFacts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Profile {
    /// API server, controllers and scheduler only (`--disable-agent`): no
    /// kubelet, no containerd, no root needed.
    ControlPlane,
    /// Server plus agent (kubelet and containerd) with the fake CNI plugins.
    Agent,
}

impl Profile {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Profile::ControlPlane => "control-plane",
            Profile::Agent => "agent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Profile> {
        match s {
            "control-plane" => Some(Profile::ControlPlane),
            "agent" => Some(Profile::Agent),
            _ => None,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pick the profile: the requested one, else `agent` when nothing blocks it,
/// else `control-plane`. The string explains the choice.
pub(crate) fn choose_profile(requested: Option<Profile>, facts: &HostFacts) -> (Profile, String) {
    if let Some(p) = requested {
        return (p, format!("profile {p} (requested)"));
    }
    let blockers = facts.agent_blockers();
    if blockers.is_empty() {
        (
            Profile::Agent,
            "profile agent (chosen: root, /dev/kmsg, network namespaces and cgroups are available)"
                .to_string(),
        )
    } else {
        (
            Profile::ControlPlane,
            format!("profile control-plane (chosen because {})", blockers.join("; ")),
        )
    }
}

/// A k3s version as printed by `k3s --version` (`v1.30.4+k3s1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct K3sVersion {
    pub(crate) major: u32,
    pub(crate) minor: u32,
    pub(crate) patch: u32,
}

impl K3sVersion {
    /// Find the first `vX.Y.Z` token in `k3s --version` output.
    pub(crate) fn parse(text: &str) -> Option<K3sVersion> {
        text.split_whitespace().find_map(|tok| {
            let rest = tok.strip_prefix('v')?;
            let core = rest.split(['+', '-']).next()?;
            let mut parts = core.split('.');
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next()?.parse().ok()?;
            parts
                .next()
                .is_none()
                .then_some(K3sVersion { major, minor, patch })
        })
    }

    pub(crate) fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for K3sVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Inputs of the flag builder.
#[derive(Debug, Clone)]
pub(crate) struct FlagInput<'a> {
    pub(crate) profile: Profile,
    pub(crate) k3s_data_dir: &'a Path,
    pub(crate) kubeconfig: &'a Path,
    pub(crate) version: Option<K3sVersion>,
    pub(crate) overlay_usable: bool,
    pub(crate) cgroups_usable: bool,
    /// Node name to use unless the extra arguments set one.
    pub(crate) default_node_name: &'a str,
    /// Arguments given after `--`, appended as they are.
    pub(crate) extra: &'a [String],
    /// Allow extra arguments to replace guarded flags.
    pub(crate) force: bool,
}

/// The argv (without the k3s program itself) and the node name it uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct K3sCommand {
    pub(crate) args: Vec<String>,
    pub(crate) node_name: Option<String>,
}

pub(crate) const CLUSTER_CIDR: &str = "10.42.0.0/16";
pub(crate) const SERVICE_CIDR: &str = "10.43.0.0/16";

/// Flags k3s-sandbox always decides itself: the kubeconfig path and data dir
/// are how it finds the instance again.
const FIXED: &[&str] = &["data-dir", "write-kubeconfig"];
/// Flags that keep k3s away from kernel networking; replacing them needs --force.
const GUARDED: &[&str] = &["flannel-backend", "write-kubeconfig-mode"];
/// Flags whose value from the extra arguments simply replaces ours.
const OVERRIDABLE: &[&str] = &[
    "node-name",
    "cluster-cidr",
    "service-cidr",
    "snapshotter",
    "https-listen-port",
    "bind-address",
];

/// Canonical flag name of a command-line word: `--name=value`, `--name`,
/// `-name` (Go style) and the short aliases `-d`/`-o`. `None` for values.
fn flag_name(arg: &str) -> Option<String> {
    let stripped = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    let name = stripped.split('=').next().unwrap_or(stripped);
    if name.is_empty() {
        return None;
    }
    Some(
        match name {
            "d" => "data-dir",
            "o" => "write-kubeconfig",
            other => other,
        }
        .to_string(),
    )
}

/// Value of flag `name` in `args` (last occurrence wins, like k3s).
fn flag_value(args: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        if flag_name(&args[i]).as_deref() == Some(name) {
            if let Some((_, v)) = args[i].split_once('=') {
                found = Some(v.to_string());
            } else if let Some(next) = args.get(i + 1).filter(|n| !n.starts_with('-')) {
                found = Some(next.clone());
                i += 1;
            }
        }
        i += 1;
    }
    found
}

fn flag(name: &str, value: Option<&str>) -> (String, Option<String>) {
    (name.to_string(), value.map(str::to_string))
}

/// An extra k3s argument `up` refuses: `arg` as given, `name` its flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ExtraArgError {
    /// A flag that decides where the instance lives.
    #[error(
        "the extra k3s argument `{arg}` is not allowed: k3s-sandbox sets --{name} itself (use \
         `k3s-sandbox up --data-dir DIR` to choose where the instance lives; the kubeconfig is \
         always <data-dir>/kubeconfig.yaml)"
    )]
    Fixed { arg: String, name: String },
    /// A flag that keeps k3s away from kernel networking, without --force.
    #[error(
        "the extra k3s argument `{arg}` replaces --{name}, which k3s-sandbox sets to keep k3s away \
         from kernel networking; pass --force to replace it anyway"
    )]
    Guarded { arg: String, name: String },
}

/// Build `server ...` for the profile. Errors name the offending extra flag
/// and what to do instead.
pub(crate) fn build_k3s_args(input: &FlagInput<'_>) -> Result<K3sCommand, ExtraArgError> {
    let data_dir = input.k3s_data_dir.to_string_lossy();
    let kubeconfig = input.kubeconfig.to_string_lossy();
    let mut ours: Vec<(String, Option<String>)> = Vec::new();
    match input.profile {
        Profile::ControlPlane => {
            ours.push(flag("disable-agent", None));
            ours.push(flag("flannel-backend", Some("none")));
            ours.push(flag("disable-network-policy", None));
            ours.push(flag("disable-cloud-controller", None));
            ours.push(flag("disable-kube-proxy", None));
            ours.push(flag("disable-helm-controller", None));
            ours.push(flag(
                "disable",
                Some("traefik,servicelb,metrics-server,local-storage,coredns"),
            ));
            ours.push(flag("bind-address", Some("127.0.0.1")));
            ours.push(flag("https-listen-port", Some("6443")));
        }
        Profile::Agent => {
            ours.push(flag("flannel-backend", Some("none")));
            ours.push(flag("disable-network-policy", None));
            ours.push(flag("disable-kube-proxy", None));
            ours.push(flag("disable", Some("traefik,servicelb,metrics-server")));
        }
    }
    ours.push(flag("data-dir", Some(&data_dir)));
    ours.push(flag("write-kubeconfig", Some(&kubeconfig)));
    ours.push(flag("write-kubeconfig-mode", Some("0600")));
    ours.push(flag("cluster-cidr", Some(CLUSTER_CIDR)));
    ours.push(flag("service-cidr", Some(SERVICE_CIDR)));
    if input.profile == Profile::Agent {
        ours.push(flag("node-name", Some(input.default_node_name)));
        let snapshotter = if input.overlay_usable {
            "overlayfs"
        } else {
            "native"
        };
        ours.push(flag("snapshotter", Some(snapshotter)));
        for kubelet in kubelet_args(input.version, input.cgroups_usable) {
            ours.push(flag("kubelet-arg", Some(&kubelet)));
        }
    }

    // Reconcile with the extra arguments.
    for arg in input.extra {
        let Some(name) = flag_name(arg) else { continue };
        if FIXED.contains(&name.as_str()) {
            return Err(ExtraArgError::Fixed {
                arg: arg.clone(),
                name,
            });
        }
        if GUARDED.contains(&name.as_str()) {
            if !input.force {
                return Err(ExtraArgError::Guarded {
                    arg: arg.clone(),
                    name,
                });
            }
            ours.retain(|(n, _)| *n != name);
        }
        if OVERRIDABLE.contains(&name.as_str()) {
            ours.retain(|(n, _)| *n != name);
        }
    }

    let mut args = vec!["server".to_string()];
    args.extend(ours.into_iter().map(|(n, v)| match v {
        Some(v) => format!("--{n}={v}"),
        None => format!("--{n}"),
    }));
    args.extend(input.extra.iter().cloned());
    let node_name = match input.profile {
        Profile::Agent => flag_value(&args, "node-name"),
        Profile::ControlPlane => None,
    };
    Ok(K3sCommand { args, node_name })
}

/// Kubelet settings for restricted environments (agent profile).
pub(crate) fn kubelet_args(version: Option<K3sVersion>, cgroups_usable: bool) -> Vec<String> {
    let mut out = Vec::new();
    // The flag exists since Kubernetes 1.25; older kubelets need the gate.
    // An unknown version is treated as current.
    match version {
        Some(v) if !v.at_least(1, 25) => {
            out.push("feature-gates=LocalStorageCapacityIsolation=false".to_string())
        }
        _ => out.push("local-storage-capacity-isolation=false".to_string()),
    }
    out.push("image-gc-high-threshold=100".to_string());
    out.push("image-gc-low-threshold=99".to_string());
    out.push("eviction-hard=imagefs.available<0%,nodefs.available<0%,nodefs.inodesFree<0%".to_string());
    out.push("fail-swap-on=false".to_string());
    if !cgroups_usable {
        out.push("cgroups-per-qos=false".to_string());
        out.push("enforce-node-allocatable=".to_string());
    }
    out
}

/// Node name k3s would use by default: the host name, lower-cased.
pub(crate) fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sandbox".to_string())
}

#[cfg(test)]
mod tests;
