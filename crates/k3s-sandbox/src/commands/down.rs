//! `down`: stop k3s (SIGTERM to its process group, SIGKILL after the timeout), and with `--purge`
//! remove what k3s-sandbox wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{BinDirOpt, ConfDirOpt, InstanceOpt, LOCK_WAIT, data_dir_flag, dirs, say};
use crate::cni::conflist;
use crate::cni::plugins::WrittenFiles;
use crate::error::{Failure, Result};
use crate::k3s::flags::Profile;
use crate::k3s::gvisor_pods;
use crate::k3s::process::{self, LiveProcesses, Liveness};
use crate::paths::{Dirs, StateFiles};

#[derive(Args, Debug)]
pub(crate) struct DownArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    /// Seconds to wait after SIGTERM before sending SIGKILL
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub(crate) timeout: u64,
    /// Also delete the data dir and the conflist, but only files k3s-sandbox wrote
    #[arg(long)]
    pub(crate) purge: bool,
    /// Print what would be stopped, unmounted and removed, and do none of it
    #[arg(long)]
    pub(crate) dry_run: bool,
}

pub(crate) fn run(a: &DownArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), Some(&a.bin), Some(&a.conf))?;
    let state = dirs.state();
    if !state.dir.is_dir() {
        say(&format!("nothing to do: {} does not exist", state.dir.display()));
        return Ok(0);
    }
    let lock = process::lock(&state.lock, LOCK_WAIT)?;
    if a.dry_run {
        return dry_run(&dirs, &state, a);
    }
    match process::liveness(&state, &LiveProcesses) {
        Liveness::Running(inst) => {
            say(&format!(
                "stopping k3s (pid {}, process group {})",
                inst.pid, inst.pgid
            ));
            match process::stop(&inst, Duration::from_secs(a.timeout))? {
                process::StopOutcome::Terminated => say("k3s stopped"),
                process::StopOutcome::Killed => say(&format!(
                    "k3s ignored SIGTERM for {}s and was killed with SIGKILL",
                    a.timeout
                )),
            }
            if inst.known_profile() == Some(Profile::Agent) {
                say(
                    "note: containers started by the agent (containerd-shim processes) and mounts under /run/k3s \
                     and /var/lib/kubelet are not cleaned up by `down`; k3s-killall.sh from the k3s install \
                     script does that",
                );
            }
        }
        Liveness::Stale(inst) => {
            say(&format!(
                "k3s (pid {}) was not running; cleaning up the stale pid file",
                inst.pid
            ));
            let n = process::stop_leftovers(&inst, Duration::from_secs(a.timeout));
            if n > 0 {
                say(&format!(
                    "stopped {} of its process group",
                    crate::output::plural(n as u64, "leftover process", "leftover processes")
                ));
            }
        }
        Liveness::Corrupt(why) => say(&format!("removing an unusable pid file: {why}")),
        Liveness::Stopped => say(&format!("k3s is not running from {}", state.dir.display())),
    }
    process::remove_process_files(&state)?;
    for line in gvisor_pods::agent::teardown(&state.dir, &*gvisor_pods::mount::from_env())? {
        say(&line);
    }
    if a.purge {
        purge(&dirs, &state)?;
        drop(lock);
        finish_purge(&state)?;
    }
    Ok(0)
}

/// `down --dry-run`: the steps `down` (with `--purge`, if given) would take, in order; none taken.
fn dry_run(dirs: &Dirs, state: &StateFiles, a: &DownArgs) -> Result<u8> {
    let mut plan = Vec::new();
    match process::liveness(state, &LiveProcesses) {
        Liveness::Running(inst) => plan.push(format!(
            "stop k3s (pid {}, process group {}): SIGTERM, then SIGKILL after {}s",
            inst.pid, inst.pgid, a.timeout
        )),
        Liveness::Stale(inst) => plan.push(format!(
            "remove the stale pid file of k3s (pid {}) and stop what is left of its process group",
            inst.pid
        )),
        Liveness::Corrupt(why) => plan.push(format!("remove an unusable pid file: {why}")),
        Liveness::Stopped => {}
    }
    let record = gvisor_pods::Record::load(&state.dir.join(gvisor_pods::RECORD_FILE))?;
    if let Some(r) = &record {
        plan.extend(r.mounted.iter().rev().map(|p| format!("unmount {}", p.display())));
        plan.extend(r.written.iter().map(|p| format!("remove {}", p.display())));
    }
    if a.purge {
        let conf = dirs.cni_conf_dir.join(conflist::FILE_NAME);
        if WrittenFiles::load(&state.written).is_ours(&conf) && conf.exists() {
            plan.push(format!("remove {}", conf.display()));
        }
        if state.k3s_data.exists() {
            plan.push(format!(
                "remove {} and everything in it",
                state.k3s_data.display()
            ));
        }
        plan.extend(
            state
                .owned_files()
                .iter()
                .filter(|f| f.exists())
                .map(|f| format!("remove {}", f.display())),
        );
        plan.push(format!(
            "remove {} if nothing else is left in it",
            state.dir.display()
        ));
    } else {
        plan.extend(
            state
                .process_files()
                .iter()
                .filter(|f| f.exists())
                .map(|f| format!("remove {}", f.display())),
        );
    }
    if plan.is_empty() {
        say(&format!("dry run: nothing to do for {}", state.dir.display()));
    } else {
        say("dry run: `down` would, in this order:");
        for step in &plan {
            say(&format!("  {step}"));
        }
        say("nothing was done; run it again without --dry-run to do it");
    }
    Ok(0)
}

/// Mount points at or below `dir` (from /proc/self/mountinfo).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn remove_if_present(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::io("remove", path, &e)),
    }
}

fn purge(dirs: &Dirs, state: &StateFiles) -> Result<()> {
    let mounts = mounts_below(&state.dir);
    if !mounts.is_empty() {
        return Err(Failure::new(format!(
            "not purging {}: filesystems are still mounted below it ({}); unmount them (k3s-killall.sh \
             does) and run `k3s-sandbox down --purge {}` again",
            state.dir.display(),
            mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            data_dir_flag(dirs)
        )));
    }
    // The conflist, only while it still holds what k3s-sandbox wrote.
    let mut written = WrittenFiles::load(&state.written);
    let conf = dirs.cni_conf_dir.join(conflist::FILE_NAME);
    if written.is_ours(&conf) {
        remove_if_present(&conf)?;
        written.forget(&conf);
        say(&format!("removed {}", conf.display()));
    } else if conf.exists() {
        say(&format!(
            "kept {} (not written by k3s-sandbox, or changed since)",
            conf.display()
        ));
    }
    let plugin_files: Vec<&String> = written.files.keys().filter(|k| Path::new(k) != conf).collect();
    if !plugin_files.is_empty() {
        say(&format!(
            "kept the plugins installed in {} (other instances may use them)",
            dirs.cni_bin_dir.display()
        ));
    }
    if state.k3s_data.exists() {
        fs::remove_dir_all(&state.k3s_data).map_err(|e| Failure::io("remove", &state.k3s_data, &e))?;
    }
    for f in state.owned_files() {
        if f != state.lock.as_path() {
            remove_if_present(f)?;
        }
    }
    Ok(())
}

/// Last step of a purge, after the lock is released: the lock file and the
/// data dir itself when nothing else is left in it.
fn finish_purge(state: &StateFiles) -> Result<()> {
    remove_if_present(&state.lock)?;
    let left: Vec<String> = fs::read_dir(&state.dir)
        .map_err(|e| Failure::io("list", &state.dir, &e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if left.is_empty() {
        fs::remove_dir(&state.dir).map_err(|e| Failure::io("remove", &state.dir, &e))?;
        say(&format!("removed {}", state.dir.display()));
    } else {
        say(&format!(
            "left {} in place: it holds files k3s-sandbox did not write: {}",
            state.dir.display(),
            left.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_below_a_dir() {
        // The root filesystem is always mounted, and never below a temp dir.
        assert!(mounts_below(Path::new("/")).contains(&PathBuf::from("/")));
        let tmp = tempfile::tempdir().unwrap();
        assert!(mounts_below(tmp.path()).is_empty());
    }
}
