//! `pods-profile`: what pods inside gVisor need, from the one place `up` applies it from
//! ([`crate::k3s::gvisor_pods`]): the cgroup set, the runtime, the containerd settings, and the mounts
//! themselves (`mount`/`unmount` with a record, as `up`/`down` do them).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Failure, Result};
use crate::k3s::gvisor_pods::{self as gp, ConfigVersion, Record};
use crate::output::{out, outln, say};

#[derive(Args, Debug)]
pub(crate) struct PodsProfileArgs {
    #[command(subcommand)]
    pub(crate) what: What,
}

#[derive(Subcommand, Debug)]
pub(crate) enum What {
    /// The cgroup v1 hierarchies pods need, one line
    Cgroups,
    /// The runtime's name and the crun binary found where k3s looks (exit 1 if none)
    Runtime,
    /// The containerd 2.x settings (config version 3) as a file containerd imports
    ContainerdV3,
    /// The containerd 1.7 settings (config version 2) as a file containerd imports
    ContainerdV2,
    /// Mount the missing cgroup v1 hierarchies and record them in FILE
    Mount {
        #[arg(long, value_name = "FILE")]
        record: PathBuf,
    },
    /// Unmount exactly what `mount` recorded in FILE, then remove FILE
    Unmount {
        #[arg(long, value_name = "FILE")]
        record: PathBuf,
    },
    /// Measure what doctor reports (JSON): prctl(PR_SET_CHILD_SUBREAPER), the cgroup mounts
    /// (tried only with --private-mounts, under `unshare -m`), a trivial crun container. Internal:
    /// doctor runs it as a child in a mount namespace of its own, so it is not listed in --help.
    #[command(hide = true)]
    Measure {
        /// This process runs in a mount namespace of its own: try the cgroup mounts
        #[arg(long)]
        private_mounts: bool,
    },
}

pub(crate) fn run(a: &PodsProfileArgs) -> Result<u8> {
    match &a.what {
        What::Cgroups => outln!("{}", gp::CGROUP_V1.join(" ")),
        What::Runtime => outln!("{} {}", gp::RUNTIME, crun()?.display()),
        What::ContainerdV3 => out!("{}", gp::containerd_fragment(ConfigVersion::V3, &crun()?)),
        What::ContainerdV2 => out!("{}", gp::containerd_fragment(ConfigVersion::V2, &crun()?)),
        What::Mount { record } => mount(record)?,
        What::Unmount { record } => unmount(record)?,
        What::Measure { private_mounts } => {
            let exe = std::env::current_exe()
                .map_err(|e| Failure::new(format!("cannot find this executable: {e}")))?;
            let m = gp::measure::measure_here(*private_mounts, &exe);
            outln!(
                "{}",
                serde_json::to_string(&m).map_err(|e| Failure::new(e.to_string()))?
            );
        }
    }
    Ok(0)
}

fn crun() -> Result<PathBuf> {
    gp::find_crun(Path::new("/")).ok_or_else(|| {
        Failure::NotFound(format!(
            "crun is not installed in any of /{} (where k3s looks for it): install it (apt-get install crun)",
            gp::CRUN_DIRS.join(", /")
        ))
    })
}

fn mount(record_file: &Path) -> Result<()> {
    let mut record = Record::load(record_file)?.unwrap_or_default();
    let root = Path::new(gp::CGROUP_ROOT);
    let Some(plan) = gp::plan(root, &gp::mount::mountinfo()) else {
        say(&format!(
            "cgroup v2 is mounted at {}; nothing to mount",
            root.display()
        ));
        return Ok(());
    };
    let result = gp::apply(&*gp::mount::from_env(), root, &plan, &mut record);
    record.save(record_file)?;
    result?;
    for p in &record.mounted {
        say(&format!("mounted {}", p.display()));
    }
    Ok(())
}

fn unmount(record_file: &Path) -> Result<()> {
    let Some(record) = Record::load(record_file)? else {
        return Err(Failure::NotFound(format!(
            "no record at {}",
            record_file.display()
        )));
    };
    let (left, problems) = gp::revert(&*gp::mount::from_env(), &record);
    if !problems.is_empty() {
        left.save(record_file)?;
        return Err(Failure::new(problems.join("; ")));
    }
    std::fs::remove_file(record_file).map_err(|e| Failure::io("remove", record_file, &e))
}
