//! The k3s process of an instance: pid, pgid and argv files in the data
//! dir, liveness checks that survive pid reuse and zombies, the data-dir
//! lock, and stopping the process group.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Failure, Result};
use crate::k3s::flags::Profile;
use crate::paths::{self, StateFiles};

/// What the state files say about the started k3s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub pid: u32,
    pub pgid: u32,
    /// Program and arguments, as started.
    pub argv: Vec<String>,
    /// Process start time (clock ticks since boot, /proc/PID/stat field 22)
    /// recorded at start; detects a recycled pid.
    pub(crate) start_time: Option<u64>,
    pub(crate) profile: Option<RecordedProfile>,
    pub(crate) version: Option<String>,
    pub(crate) node_name: Option<String>,
}

impl Instance {
    /// The recorded profile when it is one this k3s-sandbox knows.
    pub(crate) fn known_profile(&self) -> Option<Profile> {
        self.profile.as_ref().and_then(RecordedProfile::known)
    }
}

/// The profile an instance record names: one of [`Profile`], or a name this k3s-sandbox does not
/// know (written by another version, or by hand), kept as written so that `status` shows it and
/// nothing takes it for a known profile. Stored as the bare name, e.g. `"agent"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordedProfile {
    Known(Profile),
    Other(String),
}

impl RecordedProfile {
    pub(crate) fn from_name(name: &str) -> RecordedProfile {
        match Profile::parse(name) {
            Some(p) => RecordedProfile::Known(p),
            None => RecordedProfile::Other(name.to_string()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            RecordedProfile::Known(p) => p.as_str(),
            RecordedProfile::Other(name) => name,
        }
    }

    pub(crate) fn known(&self) -> Option<Profile> {
        match self {
            RecordedProfile::Known(p) => Some(*p),
            RecordedProfile::Other(_) => None,
        }
    }
}

impl From<Profile> for RecordedProfile {
    fn from(p: Profile) -> Self {
        RecordedProfile::Known(p)
    }
}

impl Serialize for RecordedProfile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RecordedProfile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(|name| RecordedProfile::from_name(&name))
    }
}

/// `<data-dir>/k3s.meta.json`: what `up` knew about the k3s it started, besides the pid, pgid and
/// argv files. Every field may be missing or null when read (an older or hand-edited record); the
/// fields are in name order, the order the file has always had.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct InstanceRecord {
    /// Written for people and scripts that read the record; k3s-sandbox itself uses the paths of
    /// the data dir.
    pub(crate) kubeconfig: Option<PathBuf>,
    pub(crate) log: Option<PathBuf>,
    pub(crate) node_name: Option<String>,
    pub(crate) profile: Option<RecordedProfile>,
    pub(crate) start_time: Option<u64>,
    pub(crate) version: Option<String>,
}

/// Fields of /proc/PID/stat that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub(crate) state: char,
    pub(crate) pgrp: u32,
    pub(crate) start_time: u64,
}

/// Parse the text of /proc/PID/stat. The command name may contain spaces
/// and parentheses, so fields are counted after the last ')'.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// How the liveness of a recorded process is looked up; tests inject fakes.
pub trait ProcessTable {
    fn stat(&self, pid: u32) -> Option<ProcStat>;
}

pub struct LiveProcesses;

impl ProcessTable for LiveProcesses {
    fn stat(&self, pid: u32) -> Option<ProcStat> {
        proc_stat(pid)
    }
}

/// Running (not a zombie), and the same process that was recorded.
pub fn is_alive(table: &dyn ProcessTable, pid: u32, start_time: Option<u64>) -> bool {
    match table.stat(pid) {
        Some(st) => st.state != 'Z' && st.state != 'X' && start_time.is_none_or(|t| t == st.start_time),
        None => false,
    }
}

/// Live (non-zombie) members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|st| st.pgrp == pgid && st.state != 'Z' && st.state != 'X'))
        .collect()
}

fn read_u32(path: &Path) -> Result<Option<u32>> {
    match fs::read_to_string(path) {
        Ok(t) => t.trim().parse::<u32>().map(Some).map_err(|_| {
            Failure::Instance(format!(
                "{} does not hold a process id ({:?}); remove it or run `k3s-sandbox down`",
                path.display(),
                t.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::io("read", path, &e)),
    }
}

/// Read the instance recorded in the data dir; `None` when no pid file.
pub fn read_instance(state: &StateFiles) -> Result<Option<Instance>> {
    let Some(pid) = read_u32(&state.pid)? else {
        return Ok(None);
    };
    let pgid = read_u32(&state.pgid)?.unwrap_or(pid);
    let argv: Vec<String> = fs::read(&state.argv)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let meta: InstanceRecord = fs::read(&state.meta)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(Some(Instance {
        pid,
        pgid,
        argv,
        start_time: meta.start_time,
        profile: meta.profile,
        version: meta.version,
        node_name: meta.node_name,
    }))
}

/// Record a freshly started instance.
pub(crate) fn write_instance(state: &StateFiles, inst: &Instance) -> Result<()> {
    let w = |path: &PathBuf, text: String| {
        paths::atomic_write(path, text.as_bytes(), 0o600).map_err(|e| Failure::io("write", path, &e))
    };
    w(&state.pid, format!("{}\n", inst.pid))?;
    w(&state.pgid, format!("{}\n", inst.pgid))?;
    w(
        &state.argv,
        serde_json::to_string_pretty(&inst.argv)
            .map_err(|e| Failure::new(format!("cannot encode argv: {e}")))?,
    )?;
    let meta = InstanceRecord {
        kubeconfig: Some(state.kubeconfig.clone()),
        log: Some(state.log.clone()),
        node_name: inst.node_name.clone(),
        profile: inst.profile.clone(),
        start_time: inst.start_time,
        version: inst.version.clone(),
    };
    w(
        &state.meta,
        serde_json::to_string_pretty(&meta)
            .map_err(|e| Failure::new(format!("cannot encode the instance record: {e}")))?,
    )
}

pub(crate) fn remove_process_files(state: &StateFiles) -> Result<()> {
    for f in state.process_files() {
        match fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::io("remove", f, &e)),
        }
    }
    Ok(())
}

/// State of an instance as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No pid file.
    Stopped,
    /// A pid file whose process is gone (or is another process now).
    Stale(Instance),
    Running(Instance),
    /// A pid file that cannot be read or parsed; the text says why.
    Corrupt(String),
}

pub(crate) fn liveness(state: &StateFiles, table: &dyn ProcessTable) -> Liveness {
    match read_instance(state) {
        Ok(None) => Liveness::Stopped,
        Ok(Some(inst)) if is_alive(table, inst.pid, inst.start_time) => Liveness::Running(inst),
        Ok(Some(inst)) => Liveness::Stale(inst),
        Err(e) => Liveness::Corrupt(e.to_string()),
    }
}

/// Stop what is left in the process group of a k3s whose main process is
/// gone (the kernel does not reuse a pid as a group id while the group has
/// members, so they belong to that k3s). Returns how many were found.
pub(crate) fn stop_leftovers(inst: &Instance, timeout: Duration) -> usize {
    let left = group_members(inst.pgid);
    if !left.is_empty() {
        cni_runtime::runner::kill_group(inst.pgid, rustix::process::Signal::TERM);
        if !wait_for(|| group_members(inst.pgid).is_empty(), timeout) {
            cni_runtime::runner::kill_group(inst.pgid, rustix::process::Signal::KILL);
            wait_for(|| group_members(inst.pgid).is_empty(), Duration::from_secs(5));
        }
    }
    left.len()
}

/// An exclusive flock on `<data-dir>/lock`, released on drop.
pub(crate) struct DirLock {
    _file: fs::File,
}

/// Take the lock, waiting up to `timeout` for another k3s-sandbox command.
pub(crate) fn lock(path: &Path, timeout: Duration) -> Result<DirLock> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Failure::io("open the lock file", path, &e))?;
    let deadline = Instant::now() + timeout;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(DirLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(100))
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Failure::Busy(format!(
                    "another k3s-sandbox command holds {} (an `up` still waiting for k3s?); wait \
                     for it to finish or stop it, then retry",
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Failure::io("lock", path, &e)),
        }
    }
}

/// How stopping went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StopOutcome {
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL after the timeout.
    Killed,
}

/// SIGTERM the process group, wait up to `timeout` for the main process to
/// go, then SIGKILL the group. Stragglers left in the group get SIGKILL too.
pub(crate) fn stop(inst: &Instance, timeout: Duration) -> Result<StopOutcome> {
    let table = LiveProcesses;
    let alive = || is_alive(&table, inst.pid, inst.start_time);
    cni_runtime::runner::kill_group(inst.pgid, rustix::process::Signal::TERM);
    if wait_for(|| !alive(), timeout) {
        kill_stragglers(inst.pgid);
        return Ok(StopOutcome::Terminated);
    }
    cni_runtime::runner::kill_group(inst.pgid, rustix::process::Signal::KILL);
    if wait_for(|| !alive(), Duration::from_secs(10)) {
        kill_stragglers(inst.pgid);
        return Ok(StopOutcome::Killed);
    }
    Err(Failure::Instance(format!(
        "k3s (pid {}) is still running after SIGKILL; it may be stuck in the kernel (check `ps -o \
         pid,stat,wchan -p {}`)",
        inst.pid, inst.pid
    )))
}

fn kill_stragglers(pgid: u32) {
    if !group_members(pgid).is_empty() {
        cni_runtime::runner::kill_group(pgid, rustix::process::Signal::KILL);
        wait_for(|| group_members(pgid).is_empty(), Duration::from_secs(5));
    }
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests;
