//! The k3s process of an instance: pid, pgid and argv files in the data
//! dir, liveness checks that survive pid reuse and zombies, the data-dir
//! lock, and stopping the process group.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::error::{Failure, Result};
use crate::paths::StateFiles;
use crate::util;

/// What the state files say about the started k3s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub pid: u32,
    pub pgid: u32,
    /// Program and arguments, as started.
    pub argv: Vec<String>,
    /// Process start time (clock ticks since boot, /proc/PID/stat field 22)
    /// recorded at start; detects a recycled pid.
    pub start_time: Option<u64>,
    pub profile: Option<String>,
    pub version: Option<String>,
    pub node_name: Option<String>,
}

/// Fields of /proc/PID/stat that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub pgrp: u32,
    pub start_time: u64,
}

/// Parse the text of /proc/PID/stat. The command name may contain spaces
/// and parentheses, so fields are counted after the last ')'.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
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
    let meta: Value = fs::read(&state.meta)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let s = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(Some(Instance {
        pid,
        pgid,
        argv,
        start_time: meta.get("start_time").and_then(Value::as_u64),
        profile: s("profile"),
        version: s("version"),
        node_name: s("node_name"),
    }))
}

/// Record a freshly started instance.
pub fn write_instance(state: &StateFiles, inst: &Instance) -> Result<()> {
    let w = |path: &PathBuf, text: String| {
        util::atomic_write(path, text.as_bytes(), 0o600).map_err(|e| Failure::io("write", path, &e))
    };
    w(&state.pid, format!("{}\n", inst.pid))?;
    w(&state.pgid, format!("{}\n", inst.pgid))?;
    w(
        &state.argv,
        serde_json::to_string_pretty(&inst.argv)
            .map_err(|e| Failure::new(format!("cannot encode argv: {e}")))?,
    )?;
    let meta = json!({
        "start_time": inst.start_time,
        "profile": inst.profile,
        "version": inst.version,
        "node_name": inst.node_name,
        "kubeconfig": state.kubeconfig,
        "log": state.log,
    });
    w(
        &state.meta,
        serde_json::to_string_pretty(&meta)
            .map_err(|e| Failure::new(format!("cannot encode the instance record: {e}")))?,
    )
}

pub fn remove_process_files(state: &StateFiles) -> Result<()> {
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
pub enum Liveness {
    /// No pid file.
    Stopped,
    /// A pid file whose process is gone (or is another process now).
    Stale(Instance),
    Running(Instance),
    /// A pid file that cannot be read or parsed; the text says why.
    Corrupt(String),
}

pub fn liveness(state: &StateFiles, table: &dyn ProcessTable) -> Liveness {
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
pub fn stop_leftovers(inst: &Instance, timeout: Duration) -> usize {
    let left = group_members(inst.pgid);
    if !left.is_empty() {
        util::kill_group(inst.pgid, rustix::process::Signal::TERM);
        if !wait_for(|| group_members(inst.pgid).is_empty(), timeout) {
            util::kill_group(inst.pgid, rustix::process::Signal::KILL);
            wait_for(|| group_members(inst.pgid).is_empty(), Duration::from_secs(5));
        }
    }
    left.len()
}

/// An exclusive flock on `<data-dir>/lock`, released on drop.
pub struct DirLock {
    _file: fs::File,
}

/// Take the lock, waiting up to `timeout` for another k3s-sandbox command.
pub fn lock(path: &Path, timeout: Duration) -> Result<DirLock> {
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
pub enum StopOutcome {
    /// Exited after SIGTERM.
    Terminated,
    /// Needed SIGKILL after the timeout.
    Killed,
}

/// SIGTERM the process group, wait up to `timeout` for the main process to
/// go, then SIGKILL the group. Stragglers left in the group get SIGKILL too.
pub fn stop(inst: &Instance, timeout: Duration) -> Result<StopOutcome> {
    let table = LiveProcesses;
    let alive = || is_alive(&table, inst.pid, inst.start_time);
    util::kill_group(inst.pgid, rustix::process::Signal::TERM);
    if wait_for(|| !alive(), timeout) {
        kill_stragglers(inst.pgid);
        return Ok(StopOutcome::Terminated);
    }
    util::kill_group(inst.pgid, rustix::process::Signal::KILL);
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
        util::kill_group(pgid, rustix::process::Signal::KILL);
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeTable(HashMap<u32, ProcStat>);

    impl ProcessTable for FakeTable {
        fn stat(&self, pid: u32) -> Option<ProcStat> {
            self.0.get(&pid).copied()
        }
    }

    fn st(state: char, start: u64) -> ProcStat {
        ProcStat {
            state,
            pgrp: 1,
            start_time: start,
        }
    }

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let text = "4242 (k3s (server) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 12 0 987654 1000 100 1844";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!(s.start_time, 987654);
        assert!(parse_stat("garbage").is_none());
        let me = proc_stat(std::process::id()).unwrap();
        assert_ne!(me.state, 'Z');
    }

    #[test]
    fn liveness_rejects_zombies_and_recycled_pids() {
        let t = FakeTable(HashMap::from([
            (10, st('S', 500)),
            (11, st('Z', 600)),
            (12, st('R', 999)),
        ]));
        assert!(is_alive(&t, 10, Some(500)));
        assert!(is_alive(&t, 10, None));
        assert!(!is_alive(&t, 11, Some(600)));
        assert!(!is_alive(&t, 12, Some(700)));
        assert!(!is_alive(&t, 13, None));
    }

    #[test]
    fn state_files_round_trip_and_classify() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateFiles::new(tmp.path());
        let t = FakeTable(HashMap::from([(77, st('S', 5))]));
        assert_eq!(liveness(&state, &t), Liveness::Stopped);
        let inst = Instance {
            pid: 77,
            pgid: 77,
            argv: vec!["/bin/k3s".into(), "server".into(), "--x=a b".into()],
            start_time: Some(5),
            profile: Some("agent".into()),
            version: Some("v1.30.4".into()),
            node_name: Some("box".into()),
        };
        write_instance(&state, &inst).unwrap();
        assert_eq!(read_instance(&state).unwrap(), Some(inst.clone()));
        assert_eq!(liveness(&state, &t), Liveness::Running(inst.clone()));
        let gone = FakeTable(HashMap::new());
        assert_eq!(liveness(&state, &gone), Liveness::Stale(inst));
        remove_process_files(&state).unwrap();
        assert_eq!(liveness(&state, &t), Liveness::Stopped);
        fs::write(&state.pid, "not a pid").unwrap();
        assert!(
            read_instance(&state)
                .unwrap_err()
                .message()
                .contains("does not hold a process id")
        );
        assert!(matches!(liveness(&state, &t), Liveness::Corrupt(m) if m.contains("does not hold")));
    }

    #[test]
    fn lock_is_exclusive_with_a_bounded_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("lock");
        let held = lock(&p, Duration::from_secs(1)).unwrap();
        let err = lock(&p, Duration::from_millis(200)).err().unwrap();
        assert!(
            err.message().contains("another k3s-sandbox command"),
            "{}",
            err.message()
        );
        drop(held);
        assert!(lock(&p, Duration::from_millis(200)).is_ok());
    }

    #[test]
    fn stop_terminates_a_process_group() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(wait_for(|| group_members(pid).len() >= 2, Duration::from_secs(5)));
        let inst = Instance {
            pid,
            pgid: pid,
            argv: vec![],
            start_time: proc_stat(pid).map(|s| s.start_time),
            profile: None,
            version: None,
            node_name: None,
        };
        // Reap in the background so the child does not stay a zombie.
        let reaper = thread::spawn(move || child.wait());
        assert_eq!(
            stop(&inst, Duration::from_secs(5)).unwrap(),
            StopOutcome::Terminated
        );
        reaper.join().unwrap().unwrap();
        assert!(wait_for(|| group_members(pid).is_empty(), Duration::from_secs(5)));
    }

    #[test]
    fn stop_escalates_to_sigkill() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "trap '' TERM; while :; do sleep 1; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(wait_for(|| group_members(pid).len() >= 2, Duration::from_secs(5)));
        let inst = Instance {
            pid,
            pgid: pid,
            argv: vec![],
            start_time: proc_stat(pid).map(|s| s.start_time),
            profile: None,
            version: None,
            node_name: None,
        };
        let reaper = thread::spawn(move || child.wait());
        assert_eq!(
            stop(&inst, Duration::from_millis(300)).unwrap(),
            StopOutcome::Killed
        );
        reaper.join().unwrap().unwrap();
    }

    #[test]
    fn leftovers_of_a_dead_leader_are_stopped() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 60 & sleep 60"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(wait_for(|| group_members(pid).len() >= 3, Duration::from_secs(5)));
        let inst = Instance {
            pid,
            pgid: pid,
            argv: vec![],
            start_time: proc_stat(pid).map(|s| s.start_time),
            profile: None,
            version: None,
            node_name: None,
        };
        // Only the leader dies; its two sleeps stay in the group.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_alive(&LiveProcesses, pid, inst.start_time));
        assert_eq!(stop_leftovers(&inst, Duration::from_secs(5)), 2);
        assert!(group_members(pid).is_empty());
        assert_eq!(stop_leftovers(&inst, Duration::from_secs(1)), 0);
    }
}
