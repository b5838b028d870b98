//! `trace on|off|status|clear` and the printed calls of the real plugins.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{Net, run_plugin};
use crate::common::{Out, exe};

/// Runs `k3s-sandbox trace ...` with the trace directory `dir`.
fn trace(dir: &Path, args: &[&str]) -> Out {
    let mut c = Command::new(exe());
    c.arg("trace")
        .args(args)
        .env("SANDBOX_CNI_TRACE_DIR", dir)
        .env_remove("NO_COLOR");
    Out::from(c.output().unwrap())
}

#[test]
fn trace_switches_and_prints_the_calls_of_the_real_plugins() {
    let n = Net::new("10.87.0.0/29");
    let dir = n.sb.tmp.path().join("run/sandbox-cni/trace");
    let env = [("SANDBOX_CNI_TRACE_DIR", dir.to_str().unwrap())];
    let conf = n.plugin_conf();

    trace(&dir, &["status"]).expect_code(1).stdout_has("trace: off");
    trace(&dir, &[]).expect_code(1).stderr_has("k3s-sandbox trace on");
    // Off: nothing is created.
    run_plugin("bridge", "ADD", "ctr-off", &conf, &env);
    assert!(!dir.exists());

    // A directory other than the default: `on` says what the plugins need to write there
    // (issue 20: it promised they would, and they never did).
    trace(&dir, &["on"])
        .ok()
        .stderr_has("trace on in")
        .stderr_has(&format!("SANDBOX_CNI_TRACE_DIR={}", dir.display()));
    // No rotated file: status does not claim one.
    let st = trace(&dir, &["status"]);
    st.ok().stdout_has("trace: on").stdout_has("size: 0 bytes\n");
    assert!(!st.stdout.contains("trace.jsonl.1"), "{}", st.stdout);
    let js: Value = serde_json::from_str(&trace(&dir, &["status", "--json"]).stdout).unwrap();
    assert_eq!(js["on"], true);
    let ok = run_plugin("bridge", "ADD", "ctr-on", &conf, &env);
    assert!(ok.contains("10.87.0."), "{ok}");
    // Exhaust the /29 (5 addresses, one taken above by ctr-off and one by ctr-on).
    for i in 0..3 {
        run_plugin("bridge", "ADD", &format!("fill-{i}"), &conf, &env);
    }
    let err = run_plugin("bridge", "ADD", "ctr-full", &conf, &env);
    assert!(err.contains("\"code\":100"), "{err}");
    run_plugin("bridge", "DEL", "ctr-on", &conf, &env);

    let out = trace(&dir, &[]);
    out.ok()
        .stdout_has("TIME (UTC)")
        .stdout_has("bridge>host-local")
        .stdout_has("ERROR 100\n    failed to allocate for range 0: no IP addresses available in range set")
        .stdout_has("ctr-on");
    let lines: Vec<&str> = out.stdout.lines().collect();
    // Header, then ADD (host-local, bridge) x 4, failed ADD x 2 (each with its message under
    // it), DEL x 2; every line within 100 columns, IDs shortened to 13 characters (issue 20).
    assert_eq!(lines.len(), 1 + 8 + 2 * 2 + 2, "{}", out.stdout);
    assert!(lines.iter().all(|l| l.chars().count() <= 100), "{}", out.stdout);
    assert!(
        lines[1].contains("bridge>host-local") && lines[1].contains(" ADD "),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("bridge ") && lines[2].contains("10.87.0."),
        "{}",
        lines[2]
    );

    let out = trace(&dir, &["--json"]);
    let recs: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 12);
    let hl = &recs[0];
    assert_eq!(hl["plugin"], "host-local");
    assert_eq!(hl["parent"], "bridge");
    assert_eq!(hl["verb"], "ADD");
    assert_eq!(hl["network"], "sandbox-cni");
    assert_eq!(hl["cniVersion"], "1.0.0");
    assert_eq!(hl["containerID"], "ctr-on");
    assert_eq!(hl["ifname"], "eth0");
    assert_eq!(hl["netns"], "/var/run/netns/ctr-on");
    assert!(
        hl["reply"]["ips"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("10.87.0.")
    );
    assert!(hl["time"].as_f64().unwrap() > 1.7e9);
    assert!(hl["durationUs"].as_u64().is_some());
    let br = &recs[1];
    assert_eq!(br["plugin"], "bridge");
    assert_eq!(br["parent"], "");
    // The delegated call names its caller's pid.
    assert_eq!(hl["ppid"], br["pid"]);
    let failed = recs
        .iter()
        .find(|r| r["reply"]["code"] == 100 && r["plugin"] == "bridge")
        .unwrap();
    assert!(
        failed["reply"]["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available")
    );
    // DEL answers nothing.
    assert_eq!(recs[11]["verb"], "DEL");
    assert_eq!(recs[11]["reply"], Value::Null);

    // --since: everything is from the last hour; nothing from the last 0 seconds.
    assert_eq!(
        trace(&dir, &["--since", "1h", "--json"]).stdout.lines().count(),
        12
    );
    assert_eq!(
        trace(&dir, &["--since", "0s", "--json"]).stdout.lines().count(),
        0
    );
    // Only older records: said so, not "no calls recorded".
    trace(&dir, &["--since", "0s"])
        .ok()
        .stderr_has("no calls in the last 0s (12 older calls)");
    // --no-trunc: whole IDs and the PID column.
    trace(&dir, &["--no-trunc"]).ok().stdout_has("PID  RESULT");

    // Off keeps the records readable; calls are no longer recorded.
    trace(&dir, &["off"]).ok();
    run_plugin("bridge", "DEL", "fill-0", &conf, &env);
    let out = trace(&dir, &["--json"]);
    out.ok().stderr_has("the trace is off");
    assert_eq!(out.stdout.lines().count(), 12);
    // On again continues the same records.
    trace(&dir, &["on"]).ok();
    run_plugin("bridge", "DEL", "fill-1", &conf, &env);
    assert_eq!(trace(&dir, &["--json"]).stdout.lines().count(), 14);
    trace(&dir, &["clear"]).ok();
    assert_eq!(trace(&dir, &["--json"]).stdout.lines().count(), 0);
}
