//! What `doctor` measures about pods in gVisor, instead of reciting: the generation of gVisor
//! (does `prctl(PR_SET_CHILD_SUBREAPER)` work, is there a boot_id, is `/` overlay or 9p), and
//! whether pods can run (crun where k3s looks, the cgroup v1 hierarchies mountable, a trivial crun
//! container that starts). The trials run in a child, `k3s-sandbox pods-profile measure`, started
//! under `unshare -m` so the mounts it tries vanish with it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CGROUP_ROOT, SystemMounter, apply, find_crun, mount, plan};

/// How long the measuring child may take (the crun trial has half of it).
pub(crate) const LIMIT: Duration = Duration::from_secs(40);

/// Why the trivial crun container did not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CrunTrialError {
    /// Preparing its bundle, or starting crun.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("copy {}: {source}", exe.display())]
    CopyProbe { exe: PathBuf, source: std::io::Error },
    /// crun failed and said nothing on stderr.
    #[error("crun exited {0:?}")]
    Exit(Option<i32>),
    /// crun failed; its stderr.
    #[error("{0}")]
    Crun(String),
}

/// Why the trivial crun container failed, as the child's answer carries it: the text of the
/// child's [`CrunTrialError`] (a JSON string, so the answer reads as it always has).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(transparent)]
#[error("{0}")]
pub(crate) struct CrunTrialFailed(pub(crate) String);

impl From<CrunTrialError> for CrunTrialFailed {
    fn from(e: CrunTrialError) -> Self {
        CrunTrialFailed(e.to_string())
    }
}

/// Why there is no measurement.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MeasureError {
    #[error("cannot find this executable: {0}")]
    NoExe(std::io::Error),
    /// The measuring child could not be run (or ran out of time).
    #[error("{0}")]
    Run(std::io::Error),
    /// Its answer is not a measurement; with its stderr.
    #[error("{json}: {stderr}")]
    Answer { json: serde_json::Error, stderr: String },
}

/// The facts measured in the child.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Measured {
    /// The error of `prctl(PR_SET_CHILD_SUBREAPER)` in a process that is not PID 1 (None: works).
    pub(crate) subreaper_error: Option<String>,
    /// The hierarchies of the cgroup set that were not mounted.
    pub(crate) cgroups_missing: Vec<String>,
    /// Whether mounting the missing ones was tried (in a private mount namespace).
    pub(crate) cgroups_tried: bool,
    /// The error of that trial (None: all mounted, or none missing).
    pub(crate) cgroups_error: Option<String>,
    /// crun where k3s looks for it.
    pub(crate) crun: Option<PathBuf>,
    /// The outcome of a trivial crun container (None: not tried); in JSON `{"Ok": null}` or
    /// `{"Err": "<message>"}`.
    pub(crate) container: Option<Result<(), CrunTrialFailed>>,
}

/// Runs the trials in this process (the child): `private_mounts` says it runs in a mount
/// namespace of its own, where the cgroup mounts may be tried.
pub(crate) fn measure_here(private_mounts: bool, exe: &Path) -> Measured {
    let mut m = Measured {
        subreaper_error: subreaper_error(),
        crun: find_crun(Path::new("/")),
        ..Measured::default()
    };
    let root = Path::new(CGROUP_ROOT);
    if let Some(p) = plan(root, &mount::mountinfo()) {
        m.cgroups_missing = p.controllers.iter().map(|c| (*c).to_string()).collect();
        if private_mounts && !p.controllers.is_empty() {
            m.cgroups_tried = true;
            m.cgroups_error = apply(&SystemMounter, root, &p, &mut Default::default())
                .err()
                .map(|e| e.to_string());
        }
    }
    let cgroups_ready = m.cgroups_missing.is_empty() || (m.cgroups_tried && m.cgroups_error.is_none());
    if let (Some(crun), true) = (&m.crun, cgroups_ready) {
        m.container = Some(crun_container(crun, exe).map_err(CrunTrialFailed::from));
    }
    m
}

fn subreaper_error() -> Option<String> {
    match rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        Ok(()) => {
            let _ = rustix::process::set_child_subreaper(None);
            None
        }
        Err(e) => Some(format!("{} (errno {})", errno_name(e), e.raw_os_error())),
    }
}

fn errno_name(e: rustix::io::Errno) -> &'static str {
    use rustix::io::Errno;
    match e {
        Errno::INVAL => "EINVAL",
        Errno::PERM => "EPERM",
        Errno::NOSYS => "ENOSYS",
        _ => "error",
    }
}

/// A container whose root holds only a copy of this static binary, run with `--version`.
fn crun_container(crun: &Path, exe: &Path) -> Result<(), CrunTrialError> {
    let tmp = std::env::temp_dir().join(format!("k3s-sandbox-crun-probe-{}", std::process::id()));
    let result = (|| {
        let rootfs = tmp.join("bundle/rootfs");
        for d in ["proc", "dev", "sys", "etc", "tmp"] {
            fs::create_dir_all(rootfs.join(d))?;
        }
        fs::create_dir_all(tmp.join("state"))?;
        fs::copy(exe, rootfs.join("probe")).map_err(|source| CrunTrialError::CopyProbe {
            exe: exe.to_path_buf(),
            source,
        })?;
        let _ = fs::set_permissions(rootfs.join("probe"), fs::Permissions::from_mode(0o755));
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/probe", "--version"],
                        "env": ["PATH=/"], "cwd": "/"},
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "k3s-sandbox-probe",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
                      "cgroupsPath": format!("/k3s-sandbox-probe-{}", std::process::id())}
        });
        fs::write(tmp.join("bundle/config.json"), config.to_string())?;
        let state = tmp.join("state").to_string_lossy().into_owned();
        let bundle = tmp.join("bundle").to_string_lossy().into_owned();
        let id = format!("k3s-sandbox-probe-{}", std::process::id());
        let args = ["--root", &state, "run", "--bundle", &bundle, &id];
        let out = cni_runtime::runner::run(std::process::Command::new(crun).args(args), b"", LIMIT / 2)?;
        if out.success() && out.stdout_text().contains("k3s-sandbox") {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(if err.is_empty() {
                CrunTrialError::Exit(out.status.and_then(|s| s.code()))
            } else {
                CrunTrialError::Crun(err)
            })
        }
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// Runs `exe pods-profile measure` in a child, under `unshare -m --propagation private` when
/// that works (else without the mount trial), and reads its answer.
pub(crate) fn measure_in_child(exe: &Path) -> Result<Measured, MeasureError> {
    let exe_s = exe.to_string_lossy().into_owned();
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file());
    let attempt = |program: &Path, args: &[&str]| -> Result<Measured, MeasureError> {
        let out = cni_runtime::runner::run(std::process::Command::new(program).args(args), b"", LIMIT)
            .map_err(MeasureError::Run)?;
        serde_json::from_slice(&out.stdout).map_err(|json| MeasureError::Answer {
            json,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    };
    if let Some(u) = unshare
        && let Ok(m) = attempt(
            u,
            &[
                "-m",
                "--propagation",
                "private",
                &exe_s,
                "pods-profile",
                "measure",
                "--private-mounts",
            ],
        )
    {
        return Ok(m);
    }
    attempt(exe, &["pods-profile", "measure"])
}
