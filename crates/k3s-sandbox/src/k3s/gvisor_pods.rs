//! Pods inside gVisor: the one place that says what they need.
//!
//! Measured inside runsc 2024 with containerd 2.1 (docs/k3s.md, "Pods in gVisor"): pods run with
//! crun as the runtime and the cgroup v1 hierarchies of [`CGROUP_V1`] mounted inside the sandbox,
//! and containerd's CRI plugin loads only with unprivileged ports and ICMP off (gVisor reports
//! kernel 4.4.0); NRI is off (runsc 2022 refuses its socket). `up` applies exactly this
//! (the `--default-runtime` flag, k3s's containerd config templates, the mounts), `down` reverses
//! it, and the gVisor stage of the tests (tests/gvisor/pods2024.py) takes the same values from
//! `k3s-sandbox pods-profile`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Failure, Result};

pub(crate) mod agent;
pub(crate) mod measure;
pub(crate) mod mount;
#[cfg(test)]
mod tests;
pub(crate) mod verdict;

pub(crate) use mount::{Mounter, SystemMounter};

/// The cgroup v1 hierarchies crun (and kubelet) need, each mounted at `/sys/fs/cgroup/<name>`.
pub const CGROUP_V1: [&str; 6] = ["cpu", "cpuacct", "cpuset", "devices", "memory", "pids"];
/// Hierarchies gVisor does not offer but crun looks at: `crun exec` statfs()s the freezer
/// hierarchy to see whether the container is paused, and an empty directory satisfies it.
pub(crate) const CGROUP_V1_STUBS: [&str; 1] = ["freezer"];
/// Where cgroup hierarchies are mounted.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The OCI runtime that works in gVisor (runc 1.3 refuses gVisor's procfs).
pub(crate) const RUNTIME: &str = "crun";
/// Where k3s looks for crun, in its order (pkg/agent/containerd/runtimes.go).
pub(crate) const CRUN_DIRS: [&str; 4] = ["usr/sbin", "usr/bin", "usr/local/bin", "usr/local/sbin"];
/// k3s's template for containerd 2.x (config version 3); k3s reads it first.
pub(crate) const TEMPLATE_V3: &str = "config-v3.toml.tmpl";
/// k3s's template for containerd 1.7 (config version 2).
pub(crate) const TEMPLATE_V2: &str = "config.toml.tmpl";
/// The record of what `up` mounted, in the data dir.
pub const RECORD_FILE: &str = "gvisor-pods.json";

/// containerd's config schema: 3 for containerd 2.x, 2 for 1.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVersion {
    V2,
    V3,
}

impl ConfigVersion {
    /// The k3s template file that carries this schema.
    pub fn template(self) -> &'static str {
        match self {
            ConfigVersion::V3 => TEMPLATE_V3,
            ConfigVersion::V2 => TEMPLATE_V2,
        }
    }

    /// The fragment file `up` writes for this schema, in the data dir.
    pub fn fragment_file(self) -> &'static str {
        match self {
            ConfigVersion::V3 => "containerd-gvisor-v3.toml",
            ConfigVersion::V2 => "containerd-gvisor-v2.toml",
        }
    }
}

/// crun where k3s looks for it, under `root` (`/` outside tests).
pub(crate) fn find_crun(root: &Path) -> Option<PathBuf> {
    CRUN_DIRS
        .iter()
        .map(|d| root.join(d).join(RUNTIME))
        .find(|p| p.is_file())
}

/// The containerd settings pods in gVisor need, as a config file containerd imports: crun as the
/// default runtime (binary `crun`), unprivileged ports and ICMP off, NRI off.
pub fn containerd_fragment(version: ConfigVersion, crun: &Path) -> String {
    let (cri, runtime_table, n) = match version {
        ConfigVersion::V3 => (
            "'io.containerd.cri.v1.runtime'",
            "'io.containerd.cri.v1.runtime'.containerd",
            3,
        ),
        ConfigVersion::V2 => (
            "\"io.containerd.grpc.v1.cri\"",
            "\"io.containerd.grpc.v1.cri\".containerd",
            2,
        ),
    };
    let nri = match version {
        ConfigVersion::V3 => "'io.containerd.nri.v1.nri'",
        ConfigVersion::V2 => "\"io.containerd.nri.v1.nri\"",
    };
    let crun = toml_string(&crun.to_string_lossy());
    format!(
        "# Written by k3s-sandbox (pods-profile containerd-v{n}): what pods inside gVisor need.\n\
         version = {n}\n\n\
         # gVisor reports kernel 4.4.0: the CRI plugin refuses to load with these on.\n\
         [plugins.{cri}]\n  enable_unprivileged_ports = false\n  enable_unprivileged_icmp = false\n\n\
         # runc refuses gVisor's procfs; crun runs there with the cgroup v1 hierarchies mounted.\n\
         [plugins.{runtime_table}]\n  default_runtime_name = \"{RUNTIME}\"\n\n\
         [plugins.{runtime_table}.runtimes.{RUNTIME}]\n  runtime_type = \"io.containerd.runc.v2\"\n\n\
         [plugins.{runtime_table}.runtimes.{RUNTIME}.options]\n  BinaryName = {crun}\n\n\
         # runsc 2022 refuses NRI's socket.\n\
         [plugins.{nri}]\n  disable = true\n"
    )
}

/// A k3s containerd config template: k3s's own config ("base") importing the fragment.
pub fn k3s_template(fragment: &Path) -> String {
    format!(
        "# Written by k3s-sandbox up (pods in gVisor); `k3s-sandbox down` removes it.\n\
         imports = [{}]\n\
         {{{{ template \"base\" . }}}}\n",
        toml_string(&fragment.to_string_lossy())
    )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

/// What `up` did for pods in gVisor, so `down` undoes exactly that.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// Mount points, in the order they were mounted.
    #[serde(default)]
    pub(crate) mounted: Vec<PathBuf>,
    /// Directories created for mount points (outside a tmpfs mounted here).
    #[serde(default)]
    pub(crate) created_dirs: Vec<PathBuf>,
    /// Files written (the templates and fragments).
    #[serde(default)]
    pub(crate) written: Vec<PathBuf>,
}

impl Record {
    pub(crate) fn load(path: &Path) -> Result<Option<Record>> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Failure::new(format!(
                    "{} is not a record of k3s-sandbox ({e}); unmount what it lists by hand and remove it",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::io("read", path, &e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Failure::new(e.to_string()))?;
        fs::write(path, text + "\n").map_err(|e| Failure::io("write", path, &e))
    }
}

/// What has to be mounted, from the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// A tmpfs at the cgroup root first (nothing is mounted there, and sysfs takes no mkdir).
    pub(crate) tmpfs: bool,
    /// The hierarchies still missing, in [`CGROUP_V1`]'s order.
    pub(crate) controllers: Vec<&'static str>,
    /// The directories of [`CGROUP_V1_STUBS`] that are not mounted hierarchies.
    pub(crate) stubs: Vec<&'static str>,
}

/// The plan for `root` given `/proc/self/mountinfo`: `None` when cgroup v2 is mounted at the root
/// (k3s uses it as it is).
pub(crate) fn plan(root: &Path, mountinfo: &str) -> Option<Plan> {
    let mounts = mount::cgroup_mounts(mountinfo);
    if mounts.iter().any(|m| m.point == root && m.fstype == "cgroup2") {
        return None;
    }
    let present: Vec<&str> = mounts
        .iter()
        .filter(|m| m.fstype == "cgroup" && m.point.starts_with(root))
        .flat_map(|m| m.options.iter().map(String::as_str))
        .collect();
    let controllers: Vec<&'static str> = CGROUP_V1
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    let stubs: Vec<&'static str> = CGROUP_V1_STUBS
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    let under_root = mounts.iter().any(|m| m.point.starts_with(root));
    let root_mounted = mount::is_mount_point(mountinfo, root);
    Some(Plan {
        tmpfs: !controllers.is_empty() && !under_root && !root_mounted,
        controllers,
        stubs,
    })
}

/// Carries out `plan` under `root`, recording every step in `record` as it goes (so a failure
/// half way leaves a record `revert` can undo).
pub(crate) fn apply(m: &dyn Mounter, root: &Path, plan: &Plan, record: &mut Record) -> Result<()> {
    if plan.tmpfs {
        m.mount_tmpfs(root)
            .map_err(|e| mount_failure("mount a tmpfs on", root, &e))?;
        record.mounted.push(root.to_path_buf());
    }
    for c in &plan.controllers {
        let point = root.join(c);
        if !point.is_dir() {
            fs::create_dir(&point).map_err(|e| mount_failure("create", &point, &e))?;
            if !plan.tmpfs {
                record.created_dirs.push(point.clone());
            }
        }
        m.mount_cgroup(c, &point)
            .map_err(|e| mount_failure(&format!("mount the cgroup v1 hierarchy {c} on"), &point, &e))?;
        record.mounted.push(point);
    }
    for stub in &plan.stubs {
        let dir = root.join(stub);
        if !dir.exists() {
            fs::create_dir(&dir).map_err(|e| mount_failure("create", &dir, &e))?;
            if !plan.tmpfs {
                record.created_dirs.push(dir);
            }
        }
    }
    Ok(())
}

fn mount_failure(action: &str, path: &Path, e: &io::Error) -> Failure {
    Failure::new(format!(
        "cannot {action} {}: {e}; pods in gVisor need the cgroup v1 hierarchies {} (run as root, \
         inside runsc 2024 or later)",
        path.display(),
        CGROUP_V1.join(", ")
    ))
}

/// Undoes `record`: unmounts its mount points in reverse order (one no longer mounted counts as
/// undone), removes the directories and files it lists. Returns what is left (a record) and one
/// sentence per problem; the rest is done anyway.
pub(crate) fn revert(m: &dyn Mounter, record: &Record) -> (Record, Vec<String>) {
    let mut left = Record::default();
    let mut problems = Vec::new();
    for point in record.mounted.iter().rev() {
        match m.unmount(point) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => {
                problems.push(format!("cannot unmount {}: {e}", point.display()));
                left.mounted.insert(0, point.clone());
            }
        }
    }
    for dir in record.created_dirs.iter().rev() {
        if let Err(e) = fs::remove_dir(dir)
            && e.kind() != io::ErrorKind::NotFound
        {
            problems.push(format!("cannot remove {}: {e}", dir.display()));
            left.created_dirs.insert(0, dir.clone());
        }
    }
    for file in &record.written {
        if let Err(e) = fs::remove_file(file)
            && e.kind() != io::ErrorKind::NotFound
        {
            problems.push(format!("cannot remove {}: {e}", file.display()));
            left.written.push(file.clone());
        }
    }
    (left, problems)
}
