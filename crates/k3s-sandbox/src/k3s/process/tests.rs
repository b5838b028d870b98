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
    let text =
        "4242 (k3s (server) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 12 0 987654 1000 100 1844";
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
        profile: Some(Profile::Agent.into()),
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

/// `sh -c script` as the leader of a new process group, once the group has `members` processes,
/// and the instance record `up` would have written for it.
fn group_of(script: &str, members: usize) -> (std::process::Child, Instance) {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new("/bin/sh")
        .args(["-c", script])
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(wait_for(
        || group_members(pid).len() >= members,
        Duration::from_secs(5)
    ));
    let inst = Instance {
        pid,
        pgid: pid,
        argv: vec![],
        start_time: proc_stat(pid).map(|s| s.start_time),
        profile: None,
        version: None,
        node_name: None,
    };
    (child, inst)
}

#[test]
fn stop_terminates_a_process_group() {
    let (mut child, inst) = group_of("sleep 60 & sleep 60; wait", 2);
    let pid = inst.pid;
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
    let (mut child, inst) = group_of("trap '' TERM; while :; do sleep 1; done", 2);
    let reaper = thread::spawn(move || child.wait());
    assert_eq!(
        stop(&inst, Duration::from_millis(300)).unwrap(),
        StopOutcome::Killed
    );
    reaper.join().unwrap().unwrap();
}

#[test]
fn leftovers_of_a_dead_leader_are_stopped() {
    let (mut child, inst) = group_of("sleep 60 & sleep 60", 3);
    let pid = inst.pid;
    // Only the leader dies; its two sleeps stay in the group.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!is_alive(&LiveProcesses, pid, inst.start_time));
    assert_eq!(stop_leftovers(&inst, Duration::from_secs(5)), 2);
    assert!(group_members(pid).is_empty());
    assert_eq!(stop_leftovers(&inst, Duration::from_secs(1)), 0);
}

/// A record as the `json!`-built writer of earlier releases left it (keys in name order, pretty,
/// no final newline), with its pid and argv files.
fn write_old_format(state: &StateFiles) -> String {
    let d = state.dir.display();
    let meta = format!(
        "{{\n  \"kubeconfig\": \"{d}/kubeconfig.yaml\",\n  \"log\": \"{d}/k3s.log\",\n  \
         \"node_name\": \"box\",\n  \"profile\": \"agent\",\n  \"start_time\": 5,\n  \
         \"version\": \"v1.30.4\"\n}}"
    );
    fs::write(&state.pid, "77\n").unwrap();
    fs::write(&state.pgid, "78\n").unwrap();
    fs::write(&state.argv, "[\n  \"/bin/k3s\",\n  \"server\"\n]").unwrap();
    fs::write(&state.meta, &meta).unwrap();
    meta
}

#[test]
fn a_record_in_the_earlier_format_reads_and_is_written_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateFiles::new(tmp.path());
    let old_meta = write_old_format(&state);
    let inst = read_instance(&state).unwrap().unwrap();
    let want = Instance {
        pid: 77,
        pgid: 78,
        argv: vec!["/bin/k3s".into(), "server".into()],
        start_time: Some(5),
        profile: Some(Profile::Agent.into()),
        version: Some("v1.30.4".into()),
        node_name: Some("box".into()),
    };
    assert_eq!(inst, want);
    // Writing it again gives the same bytes.
    remove_process_files(&state).unwrap();
    write_instance(&state, &want).unwrap();
    assert_eq!(fs::read_to_string(&state.meta).unwrap(), old_meta);
}

#[test]
fn missing_null_or_unknown_record_fields_read_as_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateFiles::new(tmp.path());
    fs::write(&state.pid, "77\n").unwrap();
    let blank = Instance {
        pid: 77,
        pgid: 77,
        argv: vec![],
        start_time: None,
        profile: None,
        version: None,
        node_name: None,
    };
    // No meta file and no argv file (a record cut short).
    assert_eq!(read_instance(&state).unwrap(), Some(blank.clone()));
    for meta in [
        "{}",
        r#"{"profile": null, "start_time": null}"#,
        r#"{"future_field": [1, 2]}"#,
        "not json",
    ] {
        fs::write(&state.meta, meta).unwrap();
        assert_eq!(read_instance(&state).unwrap(), Some(blank.clone()), "{meta}");
    }
    fs::write(&state.meta, r#"{"profile": "agent", "extra": 1}"#).unwrap();
    let got = read_instance(&state).unwrap().unwrap();
    assert_eq!(got.profile, Some(RecordedProfile::Known(Profile::Agent)));
    assert_eq!(got.known_profile(), Some(Profile::Agent));
    fs::write(&state.meta, r#"{"profile": "control-plane"}"#).unwrap();
    let got = read_instance(&state).unwrap().unwrap();
    assert_eq!(got.known_profile(), Some(Profile::ControlPlane));
}

#[test]
fn a_profile_this_version_does_not_know_is_kept_as_written_and_never_taken_for_a_known_one() {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateFiles::new(tmp.path());
    fs::write(&state.pid, "77\n").unwrap();
    // A later release's profile, and names that only look like known ones.
    for name in ["agent-gvisor", "Agent", " agent", ""] {
        let meta = format!("{{\"profile\": {name:?}, \"node_name\": \"box\"}}");
        fs::write(&state.meta, &meta).unwrap();
        let got = read_instance(&state).unwrap().unwrap();
        assert_eq!(
            got.profile,
            Some(RecordedProfile::Other(name.to_string())),
            "{meta}"
        );
        assert_eq!(got.known_profile(), None, "{meta}");
        assert_eq!(got.profile.as_ref().map(RecordedProfile::as_str), Some(name));
        // The other fields still read.
        assert_eq!(got.node_name.as_deref(), Some("box"));
    }
    // Written back as it was read.
    let inst = read_instance(&state).unwrap().unwrap();
    write_instance(&state, &inst).unwrap();
    let text = fs::read_to_string(&state.meta).unwrap();
    assert!(text.contains("\"profile\": \"\","), "{text}");
    // A profile that is not a string makes the record unreadable, as before: every field unknown.
    fs::write(&state.meta, r#"{"profile": 1, "node_name": "box"}"#).unwrap();
    let got = read_instance(&state).unwrap().unwrap();
    assert_eq!((got.profile, got.node_name), (None, None));
}
