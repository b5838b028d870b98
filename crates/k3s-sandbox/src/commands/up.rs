//! `up`: install or verify the plugins, write the conflist, start k3s and wait until it is ready.
//!
//! Written as four phases, each a function of its own: [`prepare`] (settle the k3s command line,
//! deal with an instance already recorded, plugins, conflist and self-test), [`start()`] (in
//! `up/start.rs`: k3s in its own process group, recorded in the data dir), [`wait`] (until the API
//! server is ready) and [`finish`] (the podCIDR sync of the agent profile, the KUBECONFIG line).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use super::{BinDirOpt, ConfDirOpt, InstanceOpt, LOCK_WAIT, data_dir_flag, dirs, print_export, say};
use crate::cni::conflist;
use crate::error::{Failure, Result};
use crate::host::probe::HostFacts;
use crate::k3s::flags::{self, FlagInput, K3sCommand, K3sVersion, Profile};
use crate::k3s::gvisor_pods::agent::Pods;
use crate::k3s::hints;
use crate::k3s::process::{self, Instance, LiveProcesses, Liveness};
use crate::k3s::ready::{self, Outcome, Watched};
use crate::output::shell_quote;
use crate::paths::{Dirs, StateFiles};

mod gvisor;
mod network;
mod preflight;
mod start;
#[cfg(test)]
mod tests;

use network::{install_network, sync_pod_cidr};
use preflight::preflight;
use start::{Started, start};

#[derive(Args, Debug)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    /// control-plane: API server only, no root needed; agent: also kubelet and containerd
    /// [default: agent when running as root, / is not 9p, and /dev/kmsg, network namespaces and
    /// cgroups are usable; else control-plane]
    #[arg(long, value_enum)]
    pub(crate) profile: Option<Profile>,
    /// Seconds to wait for the API server to answer /readyz
    #[arg(long, default_value_t = 180, value_name = "SECS")]
    pub(crate) timeout: u64,
    /// Install missing plugins from DIR [default: the directory of this executable, if it
    /// holds the plugins]
    #[arg(long, value_name = "DIR")]
    pub(crate) plugins_from: Option<PathBuf>,
    /// Replace plugin files k3s-sandbox did not install, and allow extra arguments that
    /// replace guarded k3s flags
    #[arg(long)]
    pub(crate) force: bool,
    /// Do not run the CNI self-test before starting the agent profile
    #[arg(long)]
    pub(crate) skip_selftest: bool,
    /// Extra k3s server arguments, after `--`
    #[arg(last = true, value_name = "K3S_ARGS")]
    pub(crate) extra: Vec<String>,
}

pub(crate) fn run(a: &UpArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), Some(&a.bin), Some(&a.conf))?;
    let state = dirs.state();
    ensure_data_dir(&state.dir)?;
    let lock = process::lock(&state.lock, LOCK_WAIT)?;
    let (lock_file, pid_file) = (state.lock.clone(), state.pid.clone());
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let result = Up::settle(dirs, state, deadline, a).and_then(|up| {
        match prepare(&up, a)? {
            Prepared::AlreadyRunning(inst) => wait(&up, Waited::Running(&inst), a)?,
            Prepared::ToStart => wait(&up, Waited::Started(start(&up)?), a)?,
        }
        finish(&up)
    });
    // A failed start records no instance: leave no lock file behind either (removed while held).
    if result.is_err() && !pid_file.exists() {
        let _ = fs::remove_file(&lock_file);
    }
    drop(lock);
    result
}

/// What `up` works with once the k3s command line is settled.
struct Up {
    dirs: Dirs,
    state: StateFiles,
    /// The end of the `--timeout` that started with this command.
    deadline: Instant,
    k3s: PathBuf,
    version_line: String,
    version: Option<K3sVersion>,
    facts: HostFacts,
    profile: Profile,
    /// Why this profile (a sentence for the user).
    why: String,
    cmd: K3sCommand,
    /// The agent's profile for pods in gVisor, when it applies.
    pods: Option<Pods>,
    /// The k3s executable and `cmd.args`, as recorded in the data dir.
    argv: Vec<String>,
}

impl Up {
    /// Finds k3s and its version, probes the host, chooses the profile and builds the arguments.
    fn settle(dirs: Dirs, state: StateFiles, deadline: Instant, a: &UpArgs) -> Result<Up> {
        let k3s = crate::k3s::locate_from_env()?;
        let (version_line, version) = crate::k3s::version(&k3s)?;
        let facts = HostFacts::probe(&state.dir);
        let (profile, why) = flags::choose_profile(a.profile, &facts);
        let default_node = flags::default_node_name();
        let mut cmd = flags::build_k3s_args(&FlagInput {
            profile,
            k3s_data_dir: &state.k3s_data,
            kubeconfig: &state.kubeconfig,
            version,
            overlay_usable: facts.overlay_usable(),
            cgroups_usable: facts.cgroups.has_kubelet_controllers(),
            default_node_name: &default_node,
            extra: &a.extra,
            force: a.force,
        })
        .map_err(|e| Failure::Usage(e.to_string()))?;
        let pods = gvisor::pods(profile, version);
        if let Some(flag) = pods.as_ref().and_then(|p| p.default_runtime_flag(&a.extra)) {
            cmd.args.push(flag);
        }
        let mut argv = vec![k3s.to_string_lossy().into_owned()];
        argv.extend(cmd.args.iter().cloned());
        Ok(Up {
            dirs,
            state,
            deadline,
            k3s,
            version_line,
            version,
            facts,
            profile,
            why,
            cmd,
            pods,
            argv,
        })
    }
}

/// How `prepare` left things.
enum Prepared {
    /// The same k3s runs already: nothing to start, only to wait for.
    AlreadyRunning(Instance),
    /// Plugins, conflist and self-test are in place; k3s is to be started.
    ToStart,
}

/// Phase 1: an instance already recorded in the data dir (the same one is kept, one with other
/// arguments refused, a stale one cleaned up); then preflight warnings, plugins, conflist and the
/// self-test.
fn prepare(up: &Up, a: &UpArgs) -> Result<Prepared> {
    let state = &up.state;
    match process::liveness(state, &LiveProcesses) {
        Liveness::Running(inst) if inst.argv == up.argv => {
            say(&format!(
                "k3s is already running from {} (pid {}) with the same arguments; nothing to start",
                state.dir.display(),
                inst.pid
            ));
            return Ok(Prepared::AlreadyRunning(inst));
        }
        Liveness::Running(inst) => {
            return Err(Failure::Instance(format!(
                "k3s is already running from {} (pid {}) with different arguments:{}\nStop it first with \
                 `k3s-sandbox down {}`, then run `up` again.",
                state.dir.display(),
                inst.pid,
                describe_argv_change(&inst.argv, &up.argv),
                data_dir_flag(&up.dirs)
            )));
        }
        Liveness::Stale(inst) => {
            say(&format!(
                "removing the stale pid file (pid {} is no longer running)",
                inst.pid
            ));
            let n = process::stop_leftovers(&inst, Duration::from_secs(10));
            if n > 0 {
                say(&format!(
                    "stopped {} of the old k3s process group",
                    crate::output::plural(n as u64, "leftover process", "leftover processes")
                ));
            }
            process::remove_process_files(state)?;
        }
        Liveness::Corrupt(why) => {
            say(&format!("removing an unusable pid file: {why}"));
            process::remove_process_files(state)?;
        }
        Liveness::Stopped => {}
    }

    say(&format!("{} ({})", up.version_line, up.k3s.display()));
    say(&up.why);
    preflight(&up.facts, up.profile, &up.dirs);
    install_network(up, a)?;
    gvisor::setup(up)?;
    if up.profile == Profile::Agent {
        if let Ok(files) = cni_runtime::conf::config_files(&up.dirs.cni_conf_dir)
            && let Some(first) = files
                .first()
                .filter(|f| f.file_name().is_some_and(|n| n != conflist::FILE_NAME))
        {
            say(&format!(
                "warning: containerd will use {} (it sorts before {}); remove or rename it to use the sandbox-cni network",
                first.display(),
                conflist::FILE_NAME
            ));
        }
        if !a.skip_selftest {
            let report = super::selftest::run_selftest(&up.dirs, None)?;
            say(&format!(
                "self-test passed (pod IP {})",
                report.pod_ip().unwrap_or("?")
            ));
        }
    }
    Ok(Prepared::ToStart)
}

/// The k3s that phase 3 waits for.
enum Waited<'a> {
    /// Started by this command.
    Started(Started),
    /// Already running with the same arguments.
    Running(&'a Instance),
}

/// Phase 3: wait for k3s ([`ready::wait_for_k3s`]) until its API server is ready, it exits, or
/// the deadline. The k3s this command started gets what is left of `--timeout`, one already
/// running the whole of it.
fn wait(up: &Up, mut waited: Waited<'_>, a: &UpArgs) -> Result<()> {
    let state = &up.state;
    let (watched, timeout) = match &mut waited {
        Waited::Started(s) => (
            Watched::Child(&mut s.child),
            up.deadline.saturating_duration_since(Instant::now()),
        ),
        Waited::Running(inst) => (Watched::Pid(inst), Duration::from_secs(a.timeout)),
    };
    let outcome = ready::wait_for_k3s(&up.k3s, &state.kubeconfig, watched, timeout, say);
    if !matches!(outcome, Outcome::Ready { .. }) {
        print_log_tail_and_hints(state);
    }
    match (outcome, waited) {
        (Outcome::Ready { after }, Waited::Started(_)) => {
            say(&format!(
                "k3s is ready (API /readyz ok after {}s)",
                after.as_secs()
            ));
            Ok(())
        }
        (Outcome::Ready { .. }, Waited::Running(_)) => Ok(()),
        (Outcome::Exited(why), Waited::Started(_)) => {
            process::remove_process_files(state)?;
            Err(Failure::Instance(format!(
                "{why} before it became ready; full log: {}",
                state.log.display()
            )))
        }
        (Outcome::Exited(why), Waited::Running(_)) => {
            Err(Failure::Instance(format!("{why}; see {}", state.log.display())))
        }
        (Outcome::TimedOut { last }, Waited::Started(started)) => Err(Failure::Instance(format!(
            "k3s did not become ready within {}s ({last}). It is still running (pid {}): watch it \
             with `k3s-sandbox status {dd}` and `k3s-sandbox logs {dd}`, stop it with `k3s-sandbox \
             down {dd}`, or use a longer --timeout.",
            a.timeout,
            started.pid,
            dd = data_dir_flag(&up.dirs)
        ))),
        (Outcome::TimedOut { last }, Waited::Running(inst)) => Err(Failure::Instance(format!(
            "k3s (pid {}) is running but not ready after {}s ({last}); check `k3s-sandbox status {}`",
            inst.pid,
            a.timeout,
            data_dir_flag(&up.dirs)
        ))),
    }
}

const LOG_TAIL_LINES: usize = 40;

/// When k3s did not get ready: the end of its log, and the hints that match it.
fn print_log_tail_and_hints(state: &StateFiles) {
    let text = hints::read_tail(&state.log, 256 * 1024).unwrap_or_default();
    let tail = hints::tail_lines(&text, LOG_TAIL_LINES);
    if tail.is_empty() {
        say(&format!("the k3s log {} is empty", state.log.display()));
    } else {
        say(&format!("last {} lines of {}:", tail.len(), state.log.display()));
        for l in &tail {
            crate::output::errln!("    {l}");
        }
    }
    for h in hints::match_hints(&text) {
        say(&format!("hint: {h}"));
    }
}

/// Phase 4, the end of a successful `up`: in the agent profile, make the conflist follow the
/// node's podCIDR; then print the KUBECONFIG line.
fn finish(up: &Up) -> Result<u8> {
    if let (Profile::Agent, Some(node)) = (up.profile, up.cmd.node_name.as_deref()) {
        sync_pod_cidr(
            &up.k3s,
            &up.dirs,
            node,
            up.deadline.max(Instant::now() + Duration::from_secs(5)),
        )?;
    }
    print_export(&up.state);
    Ok(0)
}

fn ensure_data_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Failure::io("create the data dir", dir, &e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::io("set permissions on", dir, &e))
}

fn describe_argv_change(running: &[String], wanted: &[String]) -> String {
    let only_running: Vec<&String> = running.iter().filter(|a| !wanted.contains(a)).collect();
    let only_wanted: Vec<&String> = wanted.iter().filter(|a| !running.contains(a)).collect();
    let mut s = String::new();
    if !only_running.is_empty() {
        s.push_str(&format!(
            "\n  running now, not requested: {}",
            join_args(&only_running)
        ));
    }
    if !only_wanted.is_empty() {
        s.push_str(&format!(
            "\n  requested, not running:     {}",
            join_args(&only_wanted)
        ));
    }
    if s.is_empty() {
        s.push_str("\n  (same arguments in a different order)");
    }
    s
}

fn join_args(a: &[&String]) -> String {
    a.iter().map(|x| shell_quote(x)).collect::<Vec<_>>().join(" ")
}
