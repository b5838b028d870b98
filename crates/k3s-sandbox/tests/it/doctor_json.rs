//! `doctor --json` and the sandbox line, against the fake k3s fixture.
//! (Inside gVisor itself the sandbox line is checked by tests/gvisor/run.)
use std::sync::Mutex;

use crate::common::*;
use serde_json::Value;

/// doctor checks that k3s's ports are free by binding them for a moment, and other tests of this
/// binary start `up` (whose preflight does the same) or doctor at the same time: a port line can
/// differ between two doctor runs. The tests of this file take turns, and the comparison of a human
/// run with a JSON run is retried when the two disagree (at most five times).
static ONE_DOCTOR: Mutex<()> = Mutex::new(());

/// The lines of `doctor` and the objects of `doctor --json` describe the same checks.
fn same_report(human: &str, json: &str) -> Result<(), String> {
    let lines: Vec<&str> = human.lines().collect();
    let objs: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    if objs.len() != lines.len() {
        return Err(format!(
            "{} objects for {} lines:\n{json}",
            objs.len(),
            lines.len()
        ));
    }
    for (o, line) in objs.iter().zip(&lines) {
        let level = o["level"].as_str().unwrap();
        let label = match level {
            "ok" => "ok  ",
            "warn" => "warn",
            "fail" => "FAIL",
            other => panic!("level {other}"),
        };
        let name = o["name"].as_str().unwrap();
        let detail = o["detail"].as_str().unwrap();
        if !line.starts_with(&format!("{label}  {name}: {detail}")) {
            return Err(format!("{line} vs {o}"));
        }
        let remedy_ok = match o["remedy"].as_str() {
            Some(r) => line.ends_with(&format!(" -> {r}")),
            None => o["remedy"].is_null() && !line.contains(" -> "),
        };
        if !remedy_ok {
            return Err(format!("remedy of {line} vs {o}"));
        }
    }
    assert_eq!(objs[0]["name"], "sandbox", "the sandbox comes first");
    Ok(())
}

#[test]
fn doctor_json_has_one_object_per_human_line() {
    let _one = ONE_DOCTOR.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let mut last = String::new();
    for _ in 0..5 {
        let human = sb.run(&["doctor"]);
        let js = sb.run(&["doctor", "--json"]);
        match same_report(&human.stdout, &js.stdout) {
            Ok(()) => {
                assert_eq!(js.code, human.code, "same exit status");
                return;
            }
            Err(e) => last = e,
        }
    }
    panic!("doctor and doctor --json disagree: {last}");
}

#[test]
fn doctor_names_no_sandbox_on_a_normal_kernel() {
    let version = std::fs::read_to_string("/proc/version").unwrap();
    if version.starts_with("Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016") {
        return; // this test itself runs in gVisor; tests/gvisor/run covers that case
    }
    let _one = ONE_DOCTOR.lock().unwrap_or_else(|p| p.into_inner());
    let d = Sandbox::new().run(&["doctor"]);
    d.stdout_has("ok    sandbox: none detected (Linux ");
    assert!(!d.stdout.contains("gVisor (runsc)"), "{}", d.stdout);
}
