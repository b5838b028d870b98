//! Mounting, behind a trait so `up`/`down` can be tested without it: [`SystemMounter`] makes the
//! calls, [`LogMounter`] only appends what it would do to a file (selected with
//! `K3S_SANDBOX_MOUNT_LOG`, for the tests against the fake k3s).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// The three operations pods in gVisor need.
pub(crate) trait Mounter {
    fn mount_tmpfs(&self, at: &Path) -> io::Result<()>;
    fn mount_cgroup(&self, controller: &str, at: &Path) -> io::Result<()>;
    fn unmount(&self, at: &Path) -> io::Result<()>;
}

/// The real mount(2) and umount2(2).
pub(crate) struct SystemMounter;

impl Mounter for SystemMounter {
    fn mount_tmpfs(&self, at: &Path) -> io::Result<()> {
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        rustix::mount::mount("tmpfs", at, "tmpfs", flags, c"mode=755").map_err(io::Error::from)
    }

    fn mount_cgroup(&self, controller: &str, at: &Path) -> io::Result<()> {
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        let data =
            std::ffi::CString::new(controller).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        rustix::mount::mount("cgroup", at, "cgroup", flags, data.as_c_str()).map_err(io::Error::from)
    }

    fn unmount(&self, at: &Path) -> io::Result<()> {
        rustix::mount::unmount(at, UnmountFlags::empty()).map_err(io::Error::from)
    }
}

/// Appends `mount tmpfs AT`, `mount cgroup CONTROLLER AT` and `umount AT` lines to a file.
pub(crate) struct LogMounter(pub(crate) PathBuf);

impl LogMounter {
    fn log(&self, line: String) -> io::Result<()> {
        let mut f = OpenOptions::new().create(true).append(true).open(&self.0)?;
        writeln!(f, "{line}")
    }
}

impl Mounter for LogMounter {
    fn mount_tmpfs(&self, at: &Path) -> io::Result<()> {
        self.log(format!("mount tmpfs {}", at.display()))
    }

    fn mount_cgroup(&self, controller: &str, at: &Path) -> io::Result<()> {
        self.log(format!("mount cgroup {controller} {}", at.display()))
    }

    fn unmount(&self, at: &Path) -> io::Result<()> {
        self.log(format!("umount {}", at.display()))
    }
}

/// The mounter `up` and `down` use: the log of `K3S_SANDBOX_MOUNT_LOG` if set, else the system.
pub(crate) fn from_env() -> Box<dyn Mounter> {
    match std::env::var_os("K3S_SANDBOX_MOUNT_LOG").filter(|v| !v.is_empty()) {
        Some(file) => Box::new(LogMounter(PathBuf::from(file))),
        None => Box::new(SystemMounter),
    }
}

/// One cgroup mount of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    pub(crate) point: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    pub(crate) fstype: String,
    /// The super options without rw/ro: the controllers of a v1 hierarchy.
    pub(crate) options: Vec<String>,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text.
pub(crate) fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let options = r.nth(1).unwrap_or("");
            Some(CgroupMount {
                point: PathBuf::from(unescape(point)),
                fstype: fstype.to_string(),
                options: options
                    .split(',')
                    .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Whether something is mounted exactly at `point`.
pub(crate) fn is_mount_point(mountinfo: &str, point: &Path) -> bool {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(&unescape(p)) == point)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v =
                u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The current mount table (empty when it cannot be read).
pub(crate) fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}
