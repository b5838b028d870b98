//! `doctor --json` and the sandbox line, against the fake k3s fixture.
//! (Inside gVisor itself the sandbox line is checked by tests/gvisor/run.)

mod common;

use std::sync::Mutex;

use common::*;
use serde_json::Value;

/// doctor checks that k3s's ports are free by binding them for a moment, so two doctors running at
/// once see each other's probe as "in use": the tests of this file run doctor one at a time.
static ONE_DOCTOR: Mutex<()> = Mutex::new(());

#[test]
fn doctor_json_has_one_object_per_human_line() {
    let _one = ONE_DOCTOR.lock().unwrap_or_else(|p| p.into_inner());
    let sb = Sandbox::new();
    let human = sb.run(&["doctor"]);
    let js = sb.run(&["doctor", "--json"]);
    assert_eq!(js.code, human.code, "same exit status");
    let lines: Vec<&str> = human.stdout.lines().collect();
    let objs: Vec<Value> = js
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(objs.len(), lines.len(), "{}", js.stdout);
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
        assert!(
            line.starts_with(&format!("{label}  {name}: {detail}")),
            "{line} vs {o}"
        );
        match o["remedy"].as_str() {
            Some(r) => assert!(line.ends_with(&format!(" -> {r}")), "{line}"),
            None => assert!(o["remedy"].is_null() && !line.contains(" -> "), "{line}"),
        }
    }
    assert_eq!(objs[0]["name"], "sandbox", "the sandbox comes first");
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
