//! The subcommands. Human-readable progress goes to stderr (prefixed with
//! `k3s-sandbox:`); only machine-readable results go to stdout.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cni_runtime::NetworkList;
use cni_runtime::runner::ProcessRunner;

use crate::conflist::{self, WriteOutcome};
use crate::doctor::{self, Level};
use crate::error::{Failure, Result};
use crate::flags::{self, FlagInput, Profile};
use crate::paths::{Dirs, StateFiles};
use crate::plugins::{self, WrittenFiles};
use crate::probe::{self, HostFacts};
use crate::process::{self, Instance, LiveProcesses, Liveness};
use crate::ready::{self, Outcome, Probe, SystemClock};
use crate::sandbox::{self, SandboxFacts};
use crate::selftest;
use crate::util::{self, shell_quote};
use crate::{DoctorArgs, DownArgs, GlobalArgs, LogsArgs, SelftestArgs, UpArgs, hints};

const LOCK_WAIT: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 40;

fn say(msg: &str) {
    eprintln!("k3s-sandbox: {msg}");
}

/// A directory from the environment; empty counts as unset.
fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub(crate) fn dirs(g: &GlobalArgs) -> Result<Dirs> {
    Dirs::resolve(
        g.data_dir.clone().or_else(|| env_dir("K3S_SANDBOX_DATA_DIR")),
        g.cni_bin_dir.clone().or_else(|| env_dir("CNI_BIN_DIR")),
        g.cni_conf_dir.clone().or_else(|| env_dir("CNI_CONF_DIR")),
    )
}

fn data_dir_flag(dirs: &Dirs) -> String {
    format!("--data-dir {}", shell_quote(&dirs.data_dir.to_string_lossy()))
}

// ---------------------------------------------------------------- doctor

pub fn doctor(g: &GlobalArgs, a: &DoctorArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    let facts = HostFacts::probe(&dirs.data_dir);
    let mut checks = sandbox::checks(&SandboxFacts::probe(), &facts.root_fs, a.profile);
    checks.extend(doctor::host_checks(&facts, a.profile));
    checks.push(doctor::data_dir_check(&dirs.data_dir));

    let (ours, agent_running) = match process::liveness(&state, &LiveProcesses) {
        Liveness::Running(inst) => (Some(inst.pid), inst.profile.as_deref() == Some("agent")),
        _ => (None, false),
    };
    let ports: Vec<(u16, std::result::Result<(), String>)> = [6443, 6444, 10250]
        .into_iter()
        .map(|p| (p, probe::port_free(p)))
        .collect();
    checks.extend(doctor::port_checks(&ports, ours, a.profile));

    let (conf_checks, types) = doctor::conflist_checks(&dirs.cni_conf_dir, a.profile);
    checks.extend(doctor::plugin_checks(&dirs.cni_bin_dir, &types, a.profile));
    checks.extend(conf_checks);
    // Leaked reservations: compared with the live pods when this data dir's agent runs.
    let live = agent_running.then(|| crate::ipam_cmd::live_ids(&dirs)).flatten();
    checks.extend(doctor::ipam_checks(&crate::ipam_cmd::detect(
        &dirs,
        live.as_ref(),
    )));

    let k3s = k3s_found();
    checks.push(doctor::k3s_check(k3s));

    for c in &checks {
        if a.json {
            println!("{}", c.to_json());
        } else {
            println!("{c}");
        }
    }
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warns = checks.iter().filter(|c| c.level == Level::Warn).count();
    let (profile, why) = flags::choose_profile(a.profile, &facts);
    say(&format!(
        "{} checks: {fails} failed, {warns} warnings; `up` would use {why}",
        checks.len()
    ));
    let _ = profile;
    Ok(if fails > 0 { 1 } else { 0 })
}

fn k3s_found() -> std::result::Result<(PathBuf, String, Option<flags::K3sVersion>), String> {
    let path = crate::k3s::locate_from_env().map_err(|e| e.message)?;
    let (line, v) = crate::k3s::version(&path).map_err(|e| e.message)?;
    Ok((path, line, v))
}

// -------------------------------------------------------------- selftest

/// The network containerd would use: the first config of the conf dir, or
/// the built-in default when the conf dir has none.
fn network_to_test(dirs: &Dirs, explicit: Option<&Path>) -> Result<(NetworkList, String)> {
    if let Some(f) = explicit {
        return Ok((NetworkList::load_file(f)?, f.display().to_string()));
    }
    let first = match cni_runtime::conf::default_network(&dirs.cni_conf_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure::io("list", &dirs.cni_conf_dir, &e)),
    };
    match first {
        Some((f, list)) => Ok((list?, f.display().to_string())),
        None => Ok((
            NetworkList::from_list_bytes(conflist::TEMPLATE.as_bytes())
                .map_err(|e| Failure::new(format!("built-in conflist: {e}")))?,
            format!(
                "built-in {} (no config in {})",
                conflist::FILE_NAME,
                dirs.cni_conf_dir.display()
            ),
        )),
    }
}

fn run_selftest(dirs: &Dirs, explicit: Option<&Path>) -> Result<selftest::Report> {
    let (list, origin) = network_to_test(dirs, explicit)?;
    say(&format!(
        "self-test: plugins from {}, network {origin}",
        dirs.cni_bin_dir.display()
    ));
    let (plan, work) = selftest::plan_in(&std::env::temp_dir(), list, &dirs.cni_bin_dir)?;
    let runner = ProcessRunner {
        timeout: Duration::from_secs(30),
        pass_stderr: false,
    };
    let result = selftest::run(&runner, &plan, &mut |line| say(&format!("  {line}")));
    let _ = fs::remove_dir_all(&work);
    result.map_err(|e| Failure::new(format!("CNI self-test failed: {}", e.message)))
}

pub fn selftest(g: &GlobalArgs, a: &SelftestArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let report = run_selftest(&dirs, a.conflist.as_deref())?;
    let ip = report
        .pod_ip()
        .ok_or_else(|| Failure::new("the self-test found no pod IP"))?
        .to_string();
    say(&format!(
        "self-test passed: pod IP {ip} (all eth0 addresses: {})",
        report.pod_ips.join(", ")
    ));
    println!("{ip}");
    Ok(0)
}

// -------------------------------------------------------------------- up

fn ensure_data_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Failure::io("create the data dir", dir, &e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::io("set permissions on", dir, &e))
}

fn print_export(state: &StateFiles) {
    println!(
        "export KUBECONFIG={}",
        shell_quote(&state.kubeconfig.to_string_lossy())
    );
}

/// The pod range for the conflist: the node's podCIDR recorded earlier, else
/// the default of the repository conflist.
fn current_subnet(state: &StateFiles) -> Result<String> {
    match fs::read_to_string(&state.pod_cidr) {
        Ok(t) if cni_runtime::parse_cidr(t.trim()).is_ok() => Ok(t.trim().to_string()),
        _ => conflist::default_subnet(),
    }
}

fn write_conflist(dirs: &Dirs, subnet: &str, written: &mut WrittenFiles) -> Result<(PathBuf, WriteOutcome)> {
    let content = conflist::render(conflist::TEMPLATE, subnet)?;
    let (path, outcome) = conflist::write_if_changed(&dirs.cni_conf_dir, &content)?;
    // An identical file someone else wrote (install.sh, say) stays theirs:
    // only a file this command wrote is recorded for `down --purge`.
    if outcome == WriteOutcome::Written {
        written.note(&path, util::sha256_hex(content.as_bytes()));
    }
    Ok((path, outcome))
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

fn print_log_tail_and_hints(state: &StateFiles) {
    let text = util::read_tail(&state.log, 256 * 1024).unwrap_or_default();
    let tail = util::tail_lines(&text, LOG_TAIL_LINES);
    if tail.is_empty() {
        say(&format!("the k3s log {} is empty", state.log.display()));
    } else {
        say(&format!("last {} lines of {}:", tail.len(), state.log.display()));
        for l in &tail {
            eprintln!("    {l}");
        }
    }
    for h in hints::match_hints(&text) {
        say(&format!("hint: {h}"));
    }
}

/// How the readiness probe learns whether k3s is still there.
enum Watched<'a> {
    Child(&'a mut Child),
    Pid(&'a Instance),
}

fn wait_ready(k3s: &Path, state: &StateFiles, mut watched: Watched<'_>, timeout: Duration) -> Outcome {
    let clock = SystemClock::new();
    let mut last_report = Duration::ZERO;
    ready::wait_until_ready(
        &clock,
        timeout,
        Duration::from_secs(1),
        || {
            let exited = match &mut watched {
                Watched::Child(c) => match c.try_wait() {
                    Ok(Some(s)) => Some(match s.code() {
                        Some(code) => format!("k3s exited with status {code}"),
                        None => format!("k3s was killed by a signal ({s})"),
                    }),
                    Ok(None) => None,
                    Err(e) => Some(format!("cannot watch k3s: {e}")),
                },
                Watched::Pid(inst) => (!process::is_alive(&LiveProcesses, inst.pid, inst.start_time))
                    .then(|| format!("k3s (pid {}) is no longer running", inst.pid)),
            };
            if let Some(why) = exited {
                return Probe::Exited(why);
            }
            if !state.kubeconfig.exists() {
                return Probe::NotYet(format!("k3s has not written {} yet", state.kubeconfig.display()));
            }
            match crate::k3s::readyz(k3s, &state.kubeconfig) {
                Ok(()) => Probe::Ready,
                Err(e) => Probe::NotYet(format!("API server not ready: {e}")),
            }
        },
        |elapsed, why| {
            if elapsed >= last_report + Duration::from_secs(10) {
                last_report = elapsed;
                say(&format!(
                    "waiting for k3s ({}s of {}s): {why}",
                    elapsed.as_secs(),
                    timeout.as_secs()
                ));
            }
        },
    )
}

/// Agent profile: once the node has a podCIDR, make the conflist's range
/// follow it, so nodes of one cluster never hand out the same addresses.
fn sync_pod_cidr(k3s: &Path, dirs: &Dirs, node: &str, deadline: Instant) -> Result<()> {
    let state = dirs.state();
    let mut last_err = String::new();
    let cidr = loop {
        match crate::k3s::node_pod_cidr(k3s, &state.kubeconfig, node) {
            Ok(Some(c)) => break Some(c),
            Ok(None) => last_err = "the node has no podCIDR yet".into(),
            Err(e) => last_err = e,
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    let current = current_subnet(&state)?;
    let Some(cidr) = cidr else {
        say(&format!(
            "warning: could not read spec.podCIDR of node {node} ({last_err}); the conflist keeps {current}. \
             Run the same `k3s-sandbox up` again later to re-sync."
        ));
        return Ok(());
    };
    if let Err(e) = cni_runtime::parse_cidr(&cidr) {
        say(&format!(
            "warning: node {node} has an unusable podCIDR: {e}; the conflist keeps {current}"
        ));
        return Ok(());
    }
    let mut written = WrittenFiles::load(&state.written);
    match write_conflist(dirs, &cidr, &mut written) {
        Ok((path, WriteOutcome::Written)) => {
            conflist::poke_watchers(&dirs.cni_conf_dir)?;
            say(&format!(
                "node {node} has podCIDR {cidr}: rewrote {} (was {current})",
                path.display()
            ));
        }
        Ok((_, WriteOutcome::Unchanged)) => say(&format!(
            "node {node} has podCIDR {cidr}: conflist already matches"
        )),
        Err(e) if e.message.contains("IPv6") => {
            say(&format!("warning: {}; the conflist keeps {current}", e.message));
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    written.save(&state.written)?;
    util::atomic_write(&state.pod_cidr, format!("{cidr}\n").as_bytes(), 0o644)
        .map_err(|e| Failure::io("write", &state.pod_cidr, &e))
}

fn preflight(facts: &HostFacts, profile: Profile, dirs: &Dirs) {
    let warn = |m: String| say(&format!("warning: {m}"));
    for (port, busy) in [6443u16, 6444].into_iter().map(|p| (p, probe::port_free(p))) {
        if let Err(e) = busy {
            warn(format!(
                "port {port} on 127.0.0.1 is in use ({e}); k3s will likely fail with `address already in use`"
            ));
        }
    }
    if profile == Profile::Agent {
        for b in facts.agent_blockers() {
            warn(format!("agent profile: {b}"));
        }
        if let Err(e) = probe::port_free(10250) {
            warn(format!("port 10250 (kubelet) is in use ({e})"));
        }
        if !dirs.uses_default_cni_dirs() {
            warn(format!(
                "k3s's containerd reads CNI plugins from {} and configs from {} when flannel is off; \
                 {} and {} are used for the plugins and conflist here, but pods will not see them",
                crate::paths::DEFAULT_CNI_BIN_DIR,
                crate::paths::DEFAULT_CNI_CONF_DIR,
                dirs.cni_bin_dir.display(),
                dirs.cni_conf_dir.display()
            ));
        }
    }
    if facts.data_fs == Ok(probe::MAGIC_9P) {
        warn(format!(
            "the data dir is on 9p ({}); if k3s is slow or its database fails, use --data-dir on a tmpfs",
            facts.data_fs_path.display()
        ));
    }
}

pub fn up(g: &GlobalArgs, a: &UpArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    ensure_data_dir(&state.dir)?;
    let _lock = process::lock(&state.lock, LOCK_WAIT)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.timeout);

    let k3s = crate::k3s::locate_from_env()?;
    let (version_line, version) = crate::k3s::version(&k3s)?;
    let facts = HostFacts::probe(&state.dir);
    let (profile, why) = flags::choose_profile(a.profile, &facts);
    let default_node = flags::default_node_name();
    let cmd = flags::build_k3s_args(&FlagInput {
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
    .map_err(Failure::new)?;
    let mut argv = vec![k3s.to_string_lossy().into_owned()];
    argv.extend(cmd.args.iter().cloned());

    match process::liveness(&state, &LiveProcesses) {
        Liveness::Running(inst) if inst.argv == argv => {
            say(&format!(
                "k3s is already running from {} (pid {}) with the same arguments; nothing to start",
                state.dir.display(),
                inst.pid
            ));
            match wait_ready(&k3s, &state, Watched::Pid(&inst), Duration::from_secs(a.timeout)) {
                Outcome::Ready { .. } => {}
                Outcome::Exited(why) => {
                    print_log_tail_and_hints(&state);
                    return Err(Failure::new(format!("{why}; see {}", state.log.display())));
                }
                Outcome::TimedOut { last } => {
                    print_log_tail_and_hints(&state);
                    return Err(Failure::new(format!(
                        "k3s (pid {}) is running but not ready after {}s ({last}); check `k3s-sandbox status {}`",
                        inst.pid,
                        a.timeout,
                        data_dir_flag(&dirs)
                    )));
                }
            }
            return finish_up(profile, cmd.node_name.as_deref(), &k3s, &dirs, deadline);
        }
        Liveness::Running(inst) => {
            return Err(Failure::new(format!(
                "k3s is already running from {} (pid {}) with different arguments:{}\nStop it first with \
                 `k3s-sandbox down {}`, then run `up` again.",
                state.dir.display(),
                inst.pid,
                describe_argv_change(&inst.argv, &argv),
                data_dir_flag(&dirs)
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
                    "stopped {n} leftover process(es) of the old k3s process group"
                ));
            }
            process::remove_process_files(&state)?;
        }
        Liveness::Corrupt(why) => {
            say(&format!("removing an unusable pid file: {why}"));
            process::remove_process_files(&state)?;
        }
        Liveness::Stopped => {}
    }

    say(&format!("{version_line} ({})", k3s.display()));
    say(&why);
    preflight(&facts, profile, &dirs);

    // Plugins and conflist: required for the agent, merely prepared for the
    // control plane (an agentless server with flannel off never runs them).
    let mut written = WrittenFiles::load(&state.written);
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let source = plugins::find_source(a.plugins_from.as_deref(), exe_dir.as_deref())?;
    let soft = |e: Failure| -> Result<()> {
        match profile {
            Profile::Agent => Err(e),
            Profile::ControlPlane => {
                say(&format!(
                    "warning (the control-plane profile does not need this): {}",
                    e.message
                ));
                Ok(())
            }
        }
    };
    match plugins::ensure_plugins(&dirs.cni_bin_dir, source.as_ref(), &mut written, a.force) {
        Ok(lines) => lines.iter().for_each(|l| say(&format!("plugin {l}"))),
        Err(e) => soft(e)?,
    }
    let subnet = current_subnet(&state)?;
    match write_conflist(&dirs, &subnet, &mut written) {
        Ok((path, WriteOutcome::Written)) => say(&format!("wrote {} (pod range {subnet})", path.display())),
        Ok((path, WriteOutcome::Unchanged)) => {
            say(&format!("{} is up to date (pod range {subnet})", path.display()))
        }
        Err(e) => soft(e)?,
    }
    written.save(&state.written)?;
    if profile == Profile::Agent {
        if let Ok(files) = cni_runtime::conf::config_files(&dirs.cni_conf_dir)
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
            let report = run_selftest(&dirs, None)?;
            say(&format!(
                "self-test passed (pod IP {})",
                report.pod_ip().unwrap_or("?")
            ));
        }
    }

    // Start k3s in its own process group, output to the log.
    if state.log.exists() {
        fs::rename(&state.log, &state.old_log).map_err(|e| Failure::io("rotate", &state.log, &e))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&state.log)
        .map_err(|e| Failure::io("open the log", &state.log, &e))?;
    let _ = fs::set_permissions(&state.log, fs::Permissions::from_mode(0o600));
    let log_err = log
        .try_clone()
        .map_err(|e| Failure::io("open the log", &state.log, &e))?;
    // A kubeconfig left from an earlier run must not count as "written".
    let _ = fs::remove_file(&state.kubeconfig);
    let mut child = Command::new(&k3s)
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .current_dir(&state.dir)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start {}: {e}", k3s.display())))?;
    let pid = child.id();
    let inst = Instance {
        pid,
        pgid: pid,
        argv: argv.clone(),
        start_time: process::proc_stat(pid).map(|s| s.start_time),
        profile: Some(profile.as_str().to_string()),
        version: version.map(|v| v.to_string()).or(Some(version_line.clone())),
        node_name: cmd.node_name.clone(),
    };
    if let Err(e) = process::write_instance(&state, &inst) {
        // Without its pid files nobody could find this k3s again.
        util::kill_group(pid, rustix::process::Signal::KILL);
        let _ = child.wait();
        let _ = process::remove_process_files(&state);
        return Err(e);
    }
    say(&format!("started k3s (pid {pid}), log: {}", state.log.display()));

    let remaining = deadline.saturating_duration_since(Instant::now());
    match wait_ready(&k3s, &state, Watched::Child(&mut child), remaining) {
        Outcome::Ready { after } => say(&format!(
            "k3s is ready (API /readyz ok after {}s)",
            after.as_secs()
        )),
        Outcome::Exited(why) => {
            print_log_tail_and_hints(&state);
            process::remove_process_files(&state)?;
            return Err(Failure::new(format!(
                "{why} before it became ready; full log: {}",
                state.log.display()
            )));
        }
        Outcome::TimedOut { last } => {
            print_log_tail_and_hints(&state);
            return Err(Failure::new(format!(
                "k3s did not become ready within {}s ({last}). It is still running (pid {pid}): watch it \
                 with `k3s-sandbox status {dd}` and `k3s-sandbox logs {dd}`, stop it with `k3s-sandbox \
                 down {dd}`, or use a longer --timeout.",
                a.timeout,
                dd = data_dir_flag(&dirs)
            )));
        }
    }
    finish_up(profile, cmd.node_name.as_deref(), &k3s, &dirs, deadline)
}

/// The end of a successful `up`: in the agent profile, make the conflist follow the node's podCIDR;
/// then print the KUBECONFIG line.
fn finish_up(profile: Profile, node: Option<&str>, k3s: &Path, dirs: &Dirs, deadline: Instant) -> Result<u8> {
    if let (Profile::Agent, Some(node)) = (profile, node) {
        sync_pod_cidr(
            k3s,
            dirs,
            node,
            deadline.max(Instant::now() + Duration::from_secs(5)),
        )?;
    }
    print_export(&dirs.state());
    Ok(0)
}

// ------------------------------------------------------------------ down

pub fn down(g: &GlobalArgs, a: &DownArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    if !state.dir.is_dir() {
        say(&format!("nothing to do: {} does not exist", state.dir.display()));
        return Ok(0);
    }
    let lock = process::lock(&state.lock, LOCK_WAIT)?;
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
            if inst.profile.as_deref() == Some("agent") {
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
                say(&format!("stopped {n} leftover process(es) of its process group"));
            }
        }
        Liveness::Corrupt(why) => say(&format!("removing an unusable pid file: {why}")),
        Liveness::Stopped => say(&format!("k3s is not running from {}", state.dir.display())),
    }
    process::remove_process_files(&state)?;
    if a.purge {
        purge(&dirs, &state)?;
        drop(lock);
        finish_purge(&state)?;
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

// ---------------------------------------------------------------- status

pub const STATUS_READY: u8 = 0;
pub const STATUS_STOPPED: u8 = 1;
pub const STATUS_NOT_READY: u8 = 2;
pub const STATUS_STALE: u8 = 3;

pub fn status(g: &GlobalArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    let live = if state.dir.is_dir() {
        process::liveness(&state, &LiveProcesses)
    } else {
        Liveness::Stopped
    };
    match live {
        Liveness::Stopped => {
            println!("state: stopped");
            println!("data dir: {}", state.dir.display());
            Ok(STATUS_STOPPED)
        }
        Liveness::Stale(inst) => {
            println!(
                "state: stale (pid file names pid {}, which is not running)",
                inst.pid
            );
            println!("data dir: {}", state.dir.display());
            println!("log: {}", state.log.display());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(STATUS_STALE)
        }
        Liveness::Corrupt(why) => {
            println!("state: stale ({why})");
            println!("data dir: {}", state.dir.display());
            say(&format!(
                "clean up with `k3s-sandbox down {}`",
                data_dir_flag(&dirs)
            ));
            Ok(STATUS_STALE)
        }
        Liveness::Running(inst) => {
            let k3s = inst
                .argv
                .first()
                .map(PathBuf::from)
                .filter(|p| util::is_executable_file(p))
                .map(Ok)
                .unwrap_or_else(crate::k3s::locate_from_env);
            let ready = match &k3s {
                Err(e) => Err(format!("cannot ask k3s: {}", e.message)),
                Ok(_) if !state.kubeconfig.exists() => {
                    Err(format!("{} not written yet", state.kubeconfig.display()))
                }
                Ok(k3s) => crate::k3s::readyz(k3s, &state.kubeconfig),
            };
            let k3s_name = k3s
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "?".into());
            println!(
                "state: {}",
                if ready.is_ok() {
                    "running, ready"
                } else {
                    "running, not ready"
                }
            );
            println!("pid: {} (process group {})", inst.pid, inst.pgid);
            println!("profile: {}", inst.profile.as_deref().unwrap_or("unknown"));
            println!("k3s: {k3s_name} {}", inst.version.as_deref().unwrap_or(""));
            if let Some(n) = &inst.node_name {
                println!("node: {n}");
            }
            println!("kubeconfig: {}", state.kubeconfig.display());
            println!("log: {}", state.log.display());
            if inst.profile.as_deref() == Some("agent") {
                crate::ipam_cmd::print_status(&dirs);
            }
            match ready {
                Ok(()) => {
                    println!("readyz: ok");
                    Ok(STATUS_READY)
                }
                Err(e) => {
                    println!("readyz: {e}");
                    Ok(STATUS_NOT_READY)
                }
            }
        }
    }
}

// ------------------------------------------------------------- env, logs

pub fn env(g: &GlobalArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    if !state.kubeconfig.exists() {
        return Err(Failure::new(format!(
            "there is no kubeconfig at {} yet; start k3s with `k3s-sandbox up {}`",
            state.kubeconfig.display(),
            data_dir_flag(&dirs)
        )));
    }
    print_export(&state);
    Ok(0)
}

pub fn logs(g: &GlobalArgs, a: &LogsArgs) -> Result<u8> {
    let dirs = dirs(g)?;
    let state = dirs.state();
    let text = match util::read_tail(&state.log, 8 * 1024 * 1024) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(format!(
                "there is no log at {}: k3s was never started from this data dir",
                state.log.display()
            )));
        }
        Err(e) => return Err(Failure::io("read", &state.log, &e)),
    };
    for l in util::tail_lines(&text, a.lines) {
        println!("{l}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_changes_are_spelled_out() {
        let a: Vec<String> = ["k3s", "server", "--disable-agent", "--x=1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let b: Vec<String> = ["k3s", "server", "--x=2"].iter().map(|s| s.to_string()).collect();
        let d = describe_argv_change(&a, &b);
        assert!(
            d.contains("running now, not requested: --disable-agent --x=1"),
            "{d}"
        );
        assert!(d.contains("requested, not running:     --x=2"), "{d}");
        let c: Vec<String> = ["k3s", "--x=1", "server", "--disable-agent"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(describe_argv_change(&a, &c).contains("different order"));
    }

    #[test]
    fn mountinfo_paths_below_a_dir() {
        // The root filesystem is always mounted, and never below a temp dir.
        assert!(mounts_below(Path::new("/")).contains(&PathBuf::from("/")));
        let tmp = tempfile::tempdir().unwrap();
        assert!(mounts_below(tmp.path()).is_empty());
    }
}
