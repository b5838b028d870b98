//! Environment probes. Each probe returns plain data (`HostFacts`); every
//! decision taken from them (doctor lines, profile choice, snapshotter,
//! kubelet flags) is a pure function of that data, so the decisions are unit
//! tested with made-up facts.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::paths;

pub(crate) const MAGIC_9P: u64 = 0x0102_1997;
pub(crate) const MAGIC_OVERLAY: u64 = 0x794c_7630;
pub(crate) const MAGIC_TMPFS: u64 = 0x0102_1994;
pub(crate) const MAGIC_EXT: u64 = 0xef53;
pub(crate) const MAGIC_XFS: u64 = 0x5846_5342;
pub(crate) const MAGIC_BTRFS: u64 = 0x9123_683e;
pub(crate) const MAGIC_ZFS: u64 = 0x2fc1_2fc1;
pub(crate) const MAGIC_NFS: u64 = 0x6969;
pub(crate) const MAGIC_FUSE: u64 = 0x6573_5546;
pub(crate) const MAGIC_RAMFS: u64 = 0x8584_58f6;

/// Human name of a filesystem magic number (from statfs f_type).
pub(crate) fn fs_name(magic: u64) -> String {
    match magic {
        MAGIC_9P => "9p".into(),
        MAGIC_OVERLAY => "overlay".into(),
        MAGIC_TMPFS => "tmpfs".into(),
        MAGIC_EXT => "ext2/3/4".into(),
        MAGIC_XFS => "xfs".into(),
        MAGIC_BTRFS => "btrfs".into(),
        MAGIC_ZFS => "zfs".into(),
        MAGIC_NFS => "nfs".into(),
        MAGIC_FUSE => "fuse".into(),
        MAGIC_RAMFS => "ramfs".into(),
        other => format!("type 0x{other:x}"),
    }
}

/// Why the type of a filesystem is unknown: statfs(2) failed with this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("statfs failed: {0}")]
pub(crate) struct StatfsError(pub(crate) rustix::io::Errno);

/// Why no network namespace could be created (the agent profile needs one per pod).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetnsError {
    #[error("the unshare tool (util-linux) is not on PATH")]
    NoUnshare,
    #[error("cannot run unshare: {0}")]
    Run(#[source] io::Error),
    /// unshare failed: its stderr.
    #[error("{0}")]
    Refused(String),
    /// unshare failed and said nothing: how it ended ("exited with status 1").
    #[error("unshare {0}")]
    Ended(String),
}

/// Filesystem type of `path`, or of its nearest existing ancestor when
/// `path` does not exist yet. Returns the path actually examined.
pub(crate) fn statfs_magic(path: &Path) -> (PathBuf, Result<u64, StatfsError>) {
    let mut probe = path.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => break,
        }
    }
    let result = rustix::fs::statfs(&probe)
        .map(|s| s.f_type as u64)
        .map_err(StatfsError);
    (probe, result)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cgroups {
    /// Unified hierarchy with the controllers listed in cgroup.controllers.
    V2 { controllers: Vec<String> },
    /// Legacy hierarchies: the enabled controllers from /proc/cgroups.
    V1 { controllers: Vec<String> },
    /// Nothing usable was found; the string says what was looked at.
    Missing(String),
}

impl Cgroups {
    pub(crate) fn has_kubelet_controllers(&self) -> bool {
        let list = match self {
            Cgroups::V2 { controllers } | Cgroups::V1 { controllers } => controllers,
            Cgroups::Missing(_) => return false,
        };
        ["cpu", "memory", "pids"]
            .iter()
            .all(|c| list.iter().any(|x| x == c))
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Cgroups::V2 { controllers } => format!("cgroup v2, controllers: {}", join_or_none(controllers)),
            Cgroups::V1 { controllers } => format!("cgroup v1, controllers: {}", join_or_none(controllers)),
            Cgroups::Missing(why) => format!("no usable cgroup hierarchy ({why})"),
        }
    }
}

fn join_or_none(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(" ")
    }
}

/// Everything the profile choice and the doctor need to know about the host.
#[derive(Debug)]
pub(crate) struct HostFacts {
    pub(crate) is_root: bool,
    pub(crate) root_fs: Result<u64, StatfsError>,
    pub(crate) data_fs_path: PathBuf,
    pub(crate) data_fs: Result<u64, StatfsError>,
    /// Opening /dev/kmsg.
    pub(crate) kmsg: io::Result<()>,
    pub(crate) cgroups: Cgroups,
    pub(crate) netns: Result<(), NetnsError>,
    /// "overlay" is listed in /proc/filesystems.
    pub(crate) overlay_in_kernel: bool,
}

impl HostFacts {
    /// Probe the real machine.
    pub(crate) fn probe(data_dir: &Path) -> HostFacts {
        let is_root = rustix::process::geteuid().is_root();
        let (_, root_fs) = statfs_magic(Path::new("/"));
        let (data_fs_path, data_fs) = statfs_magic(data_dir);
        HostFacts {
            is_root,
            root_fs,
            data_fs_path,
            data_fs,
            kmsg: probe_kmsg(),
            cgroups: probe_cgroups(),
            netns: probe_netns(is_root),
            overlay_in_kernel: fs::read_to_string("/proc/filesystems")
                .map(|t| t.lines().any(|l| l.split_whitespace().last() == Some("overlay")))
                .unwrap_or(false),
        }
    }

    pub(crate) fn root_is_9p(&self) -> bool {
        self.root_fs == Ok(MAGIC_9P)
    }

    /// Whether the containerd overlayfs snapshotter can work on the data
    /// dir: the kernel must know overlay, and the upper dir must sit on a
    /// filesystem overlay accepts as upper (9p, overlay, NFS, FUSE, ZFS
    /// do not work for k3s's test mount in practice).
    pub(crate) fn overlay_usable(&self) -> bool {
        self.overlay_in_kernel
            && matches!(
                self.data_fs,
                Ok(MAGIC_EXT | MAGIC_XFS | MAGIC_BTRFS | MAGIC_TMPFS)
            )
    }

    /// Reasons the agent profile cannot work here; empty when it can.
    pub(crate) fn agent_blockers(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.is_root {
            out.push("not running as root (k3s's agent needs root)".to_string());
        }
        if self.root_is_9p() {
            out.push("/ is a 9p filesystem (gVisor-style sandbox: runc cannot start containers)".to_string());
        }
        if let Err(e) = &self.kmsg {
            out.push(format!("/dev/kmsg is not usable ({e})"));
        }
        if let Err(e) = &self.netns {
            out.push(format!("cannot create a network namespace ({e})"));
        }
        if !self.cgroups.has_kubelet_controllers() {
            out.push(format!(
                "cgroup controllers cpu, memory and pids are not all available ({})",
                self.cgroups.describe()
            ));
        }
        out
    }
}

fn probe_kmsg() -> io::Result<()> {
    fs::File::open("/dev/kmsg").map(|_| ())
}

fn probe_cgroups() -> Cgroups {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    if let Ok(text) = fs::read_to_string(v2) {
        return Cgroups::V2 {
            controllers: text.split_whitespace().map(str::to_string).collect(),
        };
    }
    match fs::read_to_string("/proc/cgroups") {
        Ok(text) => {
            let controllers = parse_proc_cgroups(&text);
            let mounted = fs::read_to_string("/proc/self/mounts")
                .map(|m| m.lines().any(|l| l.split_whitespace().nth(2) == Some("cgroup")))
                .unwrap_or(false);
            if mounted {
                Cgroups::V1 { controllers }
            } else {
                Cgroups::Missing(
                    "no cgroup v2 at /sys/fs/cgroup and no cgroup v1 hierarchy mounted".to_string(),
                )
            }
        }
        Err(e) => Cgroups::Missing(format!("cannot read /proc/cgroups: {e}")),
    }
}

/// Enabled controllers from the text of /proc/cgroups
/// (`#subsys_name hierarchy num_cgroups enabled`).
pub(crate) fn parse_proc_cgroups(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then(|| f[0].to_string())
        })
        .collect()
}

fn probe_netns(is_root: bool) -> Result<(), NetnsError> {
    let Some(unshare) = paths::find_in_path("unshare", std::env::var_os("PATH").as_deref()) else {
        return Err(NetnsError::NoUnshare);
    };
    let args: &[&str] = if is_root {
        &["--net", "true"]
    } else {
        &["--user", "--map-root-user", "--net", "true"]
    };
    match cni_runtime::runner::run(
        std::process::Command::new(&unshare).args(args),
        b"",
        Duration::from_secs(10),
    ) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => {
            let err = out.stderr_text();
            let err = err.trim();
            Err(if err.is_empty() {
                NetnsError::Ended(out.describe_end())
            } else {
                NetnsError::Refused(err.to_string())
            })
        }
        Err(e) => Err(NetnsError::Run(e)),
    }
}

/// Whether `port` on 127.0.0.1 can be bound right now.
pub(crate) fn port_free(port: u16) -> io::Result<()> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).map(drop)
}

/// Facts of a host where the agent profile works; tests change single fields.
#[cfg(test)]
pub(crate) fn good_agent_host() -> HostFacts {
    HostFacts {
        is_root: true,
        root_fs: Ok(MAGIC_EXT),
        data_fs_path: "/var/lib".into(),
        data_fs: Ok(MAGIC_EXT),
        kmsg: Ok(()),
        cgroups: Cgroups::V2 {
            controllers: vec![
                "cpuset".into(),
                "cpu".into(),
                "io".into(),
                "memory".into(),
                "pids".into(),
            ],
        },
        netns: Ok(()),
        overlay_in_kernel: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_blockers_name_each_problem() {
        assert!(good_agent_host().agent_blockers().is_empty());
        let mut h = good_agent_host();
        h.is_root = false;
        h.root_fs = Ok(MAGIC_9P);
        h.kmsg = Err(io::Error::from_raw_os_error(2));
        h.cgroups = Cgroups::V2 {
            controllers: vec!["cpu".into()],
        };
        let b = h.agent_blockers();
        assert_eq!(b.len(), 4, "{b:?}");
        assert!(b[0].contains("root"));
        assert!(b[1].contains("9p"));
        assert!(b[2].contains("/dev/kmsg"));
        assert!(b[3].contains("cgroup"));
    }

    #[test]
    fn overlay_needs_kernel_support_and_a_suitable_upper_filesystem() {
        let mut h = good_agent_host();
        assert!(h.overlay_usable());
        h.data_fs = Ok(MAGIC_9P);
        assert!(!h.overlay_usable());
        h.data_fs = Ok(MAGIC_OVERLAY);
        assert!(!h.overlay_usable());
        h.data_fs = Ok(MAGIC_TMPFS);
        assert!(h.overlay_usable());
        h.overlay_in_kernel = false;
        assert!(!h.overlay_usable());
        h.overlay_in_kernel = true;
        h.data_fs = Err(StatfsError(rustix::io::Errno::NOENT));
        assert!(!h.overlay_usable());
    }

    #[test]
    fn proc_cgroups_lists_enabled_controllers_only() {
        let text = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\ncpu\t0\t1\t1\nmemory\t0\t1\t0\npids\t0\t1\t1\n";
        assert_eq!(parse_proc_cgroups(text), vec!["cpuset", "cpu", "pids"]);
    }

    #[test]
    fn fs_names_cover_sandbox_filesystems() {
        assert_eq!(fs_name(MAGIC_9P), "9p");
        assert_eq!(fs_name(MAGIC_OVERLAY), "overlay");
        assert_eq!(fs_name(MAGIC_TMPFS), "tmpfs");
        assert_eq!(fs_name(0x1234), "type 0x1234");
    }

    #[test]
    fn statfs_walks_up_to_an_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/c");
        let (examined, res) = statfs_magic(&missing);
        assert_eq!(examined, dir.path());
        assert!(res.is_ok());
    }

    #[test]
    fn probe_errors_read_as_before() {
        assert_eq!(
            StatfsError(rustix::io::Errno::NOENT).to_string(),
            "statfs failed: No such file or directory (os error 2)"
        );
        let ended = NetnsError::Ended("exited with status 1".into());
        assert_eq!(ended.to_string(), "unshare exited with status 1");
        let h = HostFacts {
            netns: Err(NetnsError::NoUnshare),
            ..good_agent_host()
        };
        assert_eq!(
            h.agent_blockers(),
            ["cannot create a network namespace (the unshare tool (util-linux) is not on PATH)"]
        );
    }

    #[test]
    fn port_probe_sees_a_bound_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(port_free(port).is_err());
        drop(l);
    }
}
