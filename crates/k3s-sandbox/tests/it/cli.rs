//! End-to-end tests of the CLI against the fake k3s fixture. No root, no
//! real k3s, everything under temp dirs; every test stops what it started.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::common::*;

fn expected_cp_args(sb: &Sandbox) -> Vec<String> {
    let d = sb.data.to_string_lossy();
    [
        "server".to_string(),
        "--disable-agent".into(),
        "--flannel-backend=none".into(),
        "--disable-network-policy".into(),
        "--disable-cloud-controller".into(),
        "--disable-kube-proxy".into(),
        "--disable-helm-controller".into(),
        "--disable=traefik,servicelb,metrics-server,local-storage,coredns".into(),
        "--bind-address=127.0.0.1".into(),
        "--https-listen-port=6443".into(),
        format!("--data-dir={d}/k3s"),
        format!("--write-kubeconfig={d}/kubeconfig.yaml"),
        "--write-kubeconfig-mode=0600".into(),
        "--cluster-cidr=10.42.0.0/16".into(),
        "--service-cidr=10.43.0.0/16".into(),
    ]
    .to_vec()
}

#[test]
fn up_status_env_logs_down_on_the_happy_path() {
    let sb = Sandbox::new();
    let up = sb.up_cp(&["--", "--tls-san=example.test"]);
    up.ok().stderr_has("k3s is ready");
    assert_eq!(
        up.stdout,
        format!("export KUBECONFIG={}\n", sb.kubeconfig().display())
    );

    // k3s got exactly the control-plane flags plus the extra argument.
    let servers = sb.servers();
    assert_eq!(servers.len(), 1);
    let mut want = expected_cp_args(&sb);
    want.push("--tls-san=example.test".into());
    assert_eq!(servers[0], want);

    // Plugins were installed (mode 0755, same bytes) and the conflist written.
    for p in PLUGINS {
        let t = sb.bin.join(p);
        assert_eq!(
            fs::metadata(&t).unwrap().permissions().mode() & 0o777,
            0o755,
            "{p}"
        );
        assert_eq!(fs::read(&t).unwrap(), fs::read(sb.plugin_src.join(p)).unwrap());
    }
    assert_eq!(
        fs::read_to_string(sb.conf.join("10-sandbox-cni.conflist")).unwrap(),
        repo_conflist()
    );

    // State files.
    let pid = sb.pid().expect("pid file");
    assert_eq!(
        fs::read_to_string(sb.data.join("k3s.pgid")).unwrap().trim(),
        pid.to_string()
    );
    let argv: Vec<String> =
        serde_json::from_str(&fs::read_to_string(sb.data.join("k3s.argv")).unwrap()).unwrap();
    assert_eq!(argv[0], fixture("fake-k3s.sh").to_string_lossy());
    assert_eq!(&argv[1..], &servers[0][..]);
    assert!(group_alive(pid));

    let st = sb.run(&["status"]);
    st.expect_code(0)
        .stdout_has("state: running, ready")
        .stdout_has(&format!("pid: {pid}"))
        .stdout_has("readyz: ok");

    sb.run(&["env"])
        .ok()
        .stdout_has(&format!("export KUBECONFIG={}", sb.kubeconfig().display()));
    sb.run(&["logs", "-n", "5"])
        .ok()
        .stdout_has("k3s is up and running");

    let down = sb.run(&["down", "--timeout", "5"]);
    down.ok().stderr_has("k3s stopped");
    assert!(wait_until(|| !group_alive(pid), Duration::from_secs(5)));
    for f in ["k3s.pid", "k3s.pgid", "k3s.argv", "k3s.meta.json"] {
        assert!(!sb.data.join(f).exists(), "{f} left behind");
    }
    sb.run(&["status"]).expect_code(1).stdout_has("state: stopped");
    // down is idempotent.
    sb.run(&["down"]).ok().stderr_has("not running");
}

#[test]
fn second_up_is_a_no_op_and_different_arguments_are_refused() {
    let sb = Sandbox::new();
    sb.up_cp(&[]).ok();
    let pid = sb.pid().unwrap();
    let again = sb.up_cp(&[]);
    again.ok().stderr_has("already running");
    assert_eq!(
        again.stdout,
        format!("export KUBECONFIG={}\n", sb.kubeconfig().display())
    );
    assert_eq!(sb.pid(), Some(pid));
    assert_eq!(sb.servers().len(), 1, "k3s must not be started twice");

    let other = sb.up_cp(&["--", "--tls-san=other.test"]);
    other
        .expect_code(1)
        .stderr_has("different arguments")
        .stderr_has("--tls-san=other.test")
        .stderr_has("k3s-sandbox down");
    assert_eq!(other.stdout, "");
    assert_eq!(sb.servers().len(), 1);
    assert_eq!(sb.pid(), Some(pid));
    sb.run(&["down"]).ok();
}

#[test]
fn a_crash_prints_the_log_tail_and_a_hint() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_MODE", "crash");
    let up = sb.up_cp(&[]);
    up.expect_code(1)
        .stderr_has("failed to find host-local")
        .stderr_has("hint:")
        .stderr_has("--flannel-backend=none")
        .stderr_has("k3s exited with status 1");
    assert_eq!(up.stdout, "");
    assert!(sb.pid().is_none(), "no pid file after a crash");
    sb.run(&["status"]).expect_code(1);
    // The log stays for inspection.
    sb.run(&["logs"]).ok().stdout_has("level=fatal");
}

#[test]
fn other_known_failures_get_their_hints() {
    for (message, hint) in [
        (
            "listen tcp 127.0.0.1:6444: bind: address already in use",
            "--https-listen-port",
        ),
        (
            "must run as root unless --disable-agent is specified",
            "--profile control-plane",
        ),
    ] {
        let mut sb = Sandbox::new();
        sb.set_env("FAKE_K3S_MODE", "crash");
        sb.set_env("FAKE_K3S_CRASH_MESSAGE", message);
        sb.up_cp(&[]).expect_code(1).stderr_has(message).stderr_has(hint);
    }
}

#[test]
fn never_ready_times_out_and_leaves_a_not_ready_instance() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_MODE", "never-ready");
    let src = sb.plugin_src.to_string_lossy().into_owned();
    let up = sb.run(&[
        "up",
        "--profile",
        "control-plane",
        "--timeout",
        "2",
        "--plugins-from",
        &src,
    ]);
    up.expect_code(1)
        .stderr_has("did not become ready within 2s")
        .stderr_has("still running")
        .stderr_has("k3s.log");
    assert_eq!(up.stdout, "");
    let pid = sb.pid().expect("instance is kept");
    assert!(group_alive(pid));
    let st = sb.run(&["status"]);
    st.expect_code(2)
        .stdout_has("running, not ready")
        .stdout_has("readyz: ");
    sb.run(&["down", "--timeout", "5"]).ok();
    assert!(wait_until(|| !group_alive(pid), Duration::from_secs(5)));
    sb.run(&["status"]).expect_code(1);
}

#[test]
fn slow_start_is_waited_for() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_MODE", "slow");
    sb.set_env("FAKE_K3S_DELAY", "2");
    sb.up_cp(&[]).ok().stdout_has("export KUBECONFIG=");
    sb.run(&["status"]).expect_code(0);
    sb.run(&["down"]).ok();
}

#[test]
fn down_escalates_to_sigkill_when_k3s_ignores_sigterm() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_MODE", "ignore-term");
    sb.up_cp(&[]).ok();
    let pid = sb.pid().unwrap();
    let down = sb.run(&["down", "--timeout", "1"]);
    down.ok().stderr_has("SIGKILL");
    assert!(wait_until(|| !group_alive(pid), Duration::from_secs(5)));
    assert!(sb.pid().is_none());
}

#[test]
fn a_stale_pid_file_is_reported_and_recovered_from() {
    let sb = Sandbox::new();
    sb.up_cp(&[]).ok();
    let pid = sb.pid().unwrap();
    // Simulate a crash behind k3s-sandbox's back.
    rustix::process::kill_process_group(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(wait_until(|| !group_alive(pid), Duration::from_secs(5)));
    sb.run(&["status"]).expect_code(3).stdout_has("stale");

    let up = sb.up_cp(&[]);
    up.ok().stderr_has("stale pid file");
    let new_pid = sb.pid().unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(sb.servers().len(), 2);
    sb.run(&["down"]).ok();

    // A stale pid file alone: down cleans it up.
    fs::write(sb.data.join("k3s.pid"), format!("{pid}\n")).unwrap();
    sb.run(&["status"]).expect_code(3);
    sb.run(&["down"]).ok().stderr_has("stale");
    sb.run(&["status"]).expect_code(1);
}

#[test]
fn missing_k3s_gives_instructions() {
    let mut sb = Sandbox::new();
    sb.unset_env("K3S_BIN");
    let empty = sb.tmp.path().join("empty-path");
    fs::create_dir_all(&empty).unwrap();
    let up = sb
        .cmd(&["up", "--profile", "control-plane", "--timeout", "2"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    let up = Out::from(up);
    up.expect_code(1)
        .stderr_has("k3s was not found")
        .stderr_has("https://github.com/k3s-io/k3s/releases")
        .stderr_has("K3S_BIN");
    assert!(sb.pid().is_none());
    // Issue 20: a failed `up` leaves no lock file behind.
    assert!(!sb.state().lock.exists(), "{}", sb.state().lock.display());

    sb.set_env("K3S_BIN", &sb.tmp.path().join("nope").to_string_lossy());
    sb.run(&["up", "--timeout", "2"])
        .expect_code(1)
        .stderr_has("K3S_BIN=")
        .stderr_has("not an executable");
}

#[test]
fn k3s_is_found_on_path() {
    let mut sb = Sandbox::new();
    sb.unset_env("K3S_BIN");
    let bindir = sb.tmp.path().join("path-bin");
    fs::create_dir_all(&bindir).unwrap();
    std::os::unix::fs::symlink(fixture("fake-k3s.sh"), bindir.join("k3s")).unwrap();
    let path = format!("{}:/usr/bin:/bin", bindir.display());
    let up = Out::from(sb.up_cp_cmd(&[]).env("PATH", &path).output().unwrap());
    up.ok();
    let argv = sb.instance().unwrap().argv;
    assert_eq!(argv[0], bindir.join("k3s").to_string_lossy());
    Out::from(sb.cmd(&["status"]).env("PATH", &path).output().unwrap()).expect_code(0);
    sb.run(&["down"]).ok();
}

#[test]
fn extra_arguments_cannot_move_instance_files() {
    let sb = Sandbox::new();
    let up = sb.up_cp(&["--", "--data-dir=/somewhere/else"]);
    up.expect_code(64)
        .stderr_has("k3s-sandbox sets --data-dir itself");
    assert!(
        sb.invocations()
            .iter()
            .all(|a| a.first().map(String::as_str) != Some("server"))
    );
    sb.up_cp(&["--", "--flannel-backend=vxlan"])
        .expect_code(64)
        .stderr_has("--force");
}

#[test]
fn down_dry_run_lists_every_step_and_takes_none() {
    let sb = Sandbox::new();
    sb.up_cp(&[]).ok();
    let conf = sb.conf.join("10-sandbox-cni.conflist");
    let before: Vec<_> = fs::read_dir(&sb.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let dry = sb.run(&["down", "--purge", "--dry-run"]);
    dry.ok()
        .stderr_has("dry run: `down` would")
        .stderr_has("stop k3s (pid ")
        .stderr_has(&format!("remove {}", conf.display()))
        .stderr_has(&format!(
            "remove {} and everything in it",
            sb.data.join("k3s").display()
        ))
        .stderr_has("nothing was done");
    // k3s still runs, and every file is still there.
    sb.run(&["status"]).ok();
    assert!(conf.exists());
    let after: Vec<_> = fs::read_dir(&sb.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    sb.run(&["down", "--purge"]).ok();
    sb.run(&["down", "--dry-run"]).ok().stderr_has("nothing to do");
}

#[test]
fn purge_removes_only_what_k3s_sandbox_wrote() {
    let sb = Sandbox::new();
    fs::create_dir_all(&sb.conf).unwrap();
    fs::write(sb.conf.join("99-foreign.conflist"), "{}").unwrap();
    sb.up_cp(&[]).ok();
    assert!(sb.data.join("k3s/fake-ready").exists());
    fs::write(sb.data.join("notes.txt"), "mine").unwrap();

    let down = sb.run(&["down", "--purge"]);
    down.ok().stderr_has("notes.txt").stderr_has("did not write");
    assert!(!sb.conf.join("10-sandbox-cni.conflist").exists());
    assert!(sb.conf.join("99-foreign.conflist").exists());
    assert!(sb.bin.join("bridge").exists(), "plugins are shared and kept");
    let left: Vec<String> = fs::read_dir(&sb.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["notes.txt"]);

    // Without foreign files the data dir itself goes; a conflist changed by
    // someone else stays.
    fs::remove_file(sb.data.join("notes.txt")).unwrap();
    sb.up_cp(&[]).ok();
    let conf = sb.conf.join("10-sandbox-cni.conflist");
    let edited = fs::read_to_string(&conf).unwrap().replace("cni0", "cni9");
    fs::write(&conf, &edited).unwrap();
    sb.run(&["down", "--purge"]).ok().stderr_has("kept");
    assert!(!sb.data.exists());
    assert_eq!(fs::read_to_string(&conf).unwrap(), edited);

    // An identical conflist installed by someone else (install.sh) is not
    // claimed, so purge keeps it.
    fs::write(&conf, repo_conflist()).unwrap();
    sb.up_cp(&[]).ok().stderr_has("is up to date");
    sb.run(&["down", "--purge"]).ok();
    assert_eq!(fs::read_to_string(&conf).unwrap(), repo_conflist());
}

#[test]
fn agent_profile_flags_and_pod_cidr_follow_the_node() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_POD_CIDR", "10.42.7.0/24");
    let up = sb.up_agent("10", &["--", "--node-name=worker-7"]);
    up.ok().stderr_has("podCIDR 10.42.7.0/24");
    let args = &sb.servers()[0];
    assert!(!args.contains(&"--disable-agent".to_string()));
    for want in [
        "--flannel-backend=none",
        "--kubelet-arg=local-storage-capacity-isolation=false",
        "--kubelet-arg=fail-swap-on=false",
        "--node-name=worker-7",
    ] {
        assert!(args.contains(&want.to_string()), "{want} missing from {args:?}");
    }
    assert_eq!(
        args.iter().filter(|a| a.starts_with("--node-name")).count(),
        1,
        "{args:?}"
    );
    assert!(args.iter().any(|a| a.starts_with("--snapshotter=")));
    // The podCIDR lookup asked about our node.
    assert!(
        sb.invocations()
            .iter()
            .any(|a| a.contains(&"node".to_string()) && a.contains(&"worker-7".to_string()))
    );
    let conf: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(sb.conf.join("10-sandbox-cni.conflist")).unwrap()).unwrap();
    assert_eq!(
        conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
        "10.42.7.0/24"
    );
    assert_eq!(
        fs::read_to_string(sb.data.join("pod-cidr")).unwrap().trim(),
        "10.42.7.0/24"
    );
    sb.run(&["status"])
        .expect_code(0)
        .stdout_has("profile: agent")
        .stdout_has("node: worker-7");
    sb.run(&["down"]).ok();
    // The next start writes the node's range right away.
    sb.set_env("FAKE_K3S_POD_CIDR", "");
    sb.up_agent("5", &["--", "--node-name=worker-7"])
        .ok()
        .stderr_has("pod range 10.42.7.0/24")
        .stderr_has("no podCIDR yet");
    sb.run(&["down"]).ok();
}

#[test]
fn an_ipv6_pod_cidr_of_the_node_is_a_warning_and_the_conflist_keeps_its_range() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_POD_CIDR", "fd00:42::/64");
    sb.up_agent("10", &[])
        .ok()
        .stderr_has(
            "warning: pod range fd00:42::/64 is IPv6; the default sandbox-cni network is IPv4-only \
         (see cni-conf/dual-stack.conflist for a dual-stack example); the conflist keeps 10.42.0.0/24",
        )
        .stdout_has("export KUBECONFIG=");
    let conf = sb.conf.join("10-sandbox-cni.conflist");
    assert_eq!(fs::read_to_string(conf).unwrap(), repo_conflist());
    assert!(!sb.data.join("pod-cidr").exists());
    sb.run(&["down"]).ok();
}

#[test]
fn control_plane_starts_even_without_plugins() {
    let sb = Sandbox::new();
    let empty = sb.tmp.path().join("no-plugins");
    fs::create_dir_all(&empty).unwrap();
    let up = Out::from(sb.up_cp_from(&empty, &[]).output().unwrap());
    up.ok()
        .stderr_has("warning (the control-plane profile does not need this)")
        .stderr_has("./install.sh");
    sb.run(&["down"]).ok();
}

#[test]
fn agent_profile_refuses_to_start_without_plugins() {
    let sb = Sandbox::new();
    let empty = sb.tmp.path().join("no-plugins");
    fs::create_dir_all(&empty).unwrap();
    let up = sb.run(&[
        "up",
        "--profile",
        "agent",
        "--timeout",
        "5",
        "--plugins-from",
        &empty.to_string_lossy(),
    ]);
    up.expect_code(1)
        .stderr_has("the CNI plugins are not ready")
        .stderr_has("./install.sh");
    assert!(sb.servers().is_empty());
}

#[test]
fn doctor_reports_plugins_conflist_and_k3s() {
    let sb = Sandbox::new();
    let d = sb.run(&["doctor"]);
    d.expect_code(1)
        .stdout_has("FAIL  plugin loopback:")
        .stdout_has("-> install sandbox-cni (install.sh of the source tree or release tarball, or the .deb)")
        .stdout_has("ok    k3s: k3s version v1.30.4+k3s1 (fake)");
    for line in d.stdout.lines() {
        assert!(
            line.starts_with("ok    ") || line.starts_with("warn  ") || line.starts_with("FAIL  "),
            "{line}"
        );
        if !line.starts_with("ok") {
            assert!(line.contains(" -> "), "no remedy: {line}");
        }
    }
    for name in [
        "root:",
        "root filesystem:",
        "data dir filesystem:",
        "/dev/kmsg:",
        "cgroups:",
        "network namespace:",
        "port 6443:",
        "port 6444:",
        "port 10250:",
        "CNI config:",
    ] {
        assert!(d.stdout.contains(name), "no {name} line:\n{}", d.stdout);
    }

    // After an up, plugins and conflist are fine.
    sb.up_cp(&[]).ok();
    let d = sb.run(&["doctor"]);
    for p in PLUGINS {
        d.stdout_has(&format!("ok    plugin {p}:"));
    }
    d.stdout_has("ok    CNI config: containerd would pick 10-sandbox-cni.conflist");
    // (The fake k3s listens on no port, so the port lines do not change.)
    let fails = d.stdout.lines().filter(|l| l.starts_with("FAIL")).count();
    assert_eq!(d.code, Some(if fails > 0 { 1 } else { 0 }), "{}", d.stdout);
    sb.run(&["down"]).ok();

    // Without k3s: FAIL with instructions.
    let mut sb2 = Sandbox::new();
    sb2.unset_env("K3S_BIN");
    let d = Out::from(sb2.cmd(&["doctor"]).env("PATH", "/nonexistent").output().unwrap());
    d.expect_code(1)
        .stdout_has("FAIL  k3s: not found -> k3s was not found");
}

#[test]
fn every_subcommand_has_help_and_bad_usage_is_exit_64() {
    // Each subcommand lists the directory options it uses, and only those (issue 20).
    for (sub, data, bin, conf) in [
        ("doctor", true, true, true),
        ("selftest", false, true, true),
        ("up", true, true, true),
        ("down", true, true, true),
        ("status", true, false, true),
        ("env", true, false, false),
        ("logs", true, false, false),
        ("trace", false, false, false),
    ] {
        let out = Out::from(
            std::process::Command::new(exe())
                .args([sub, "--help"])
                .output()
                .unwrap(),
        );
        let out = out.ok();
        out.stdout_has("Usage: k3s-sandbox");
        for (opt, listed) in [
            ("--data-dir", data),
            ("--cni-bin-dir", bin),
            ("--cni-conf-dir", conf),
        ] {
            assert_eq!(
                out.stdout.contains(opt),
                listed,
                "{sub} --help and {opt}:\n{}",
                out.stdout
            );
        }
    }
    Out::from(std::process::Command::new(exe()).arg("--help").output().unwrap())
        .ok()
        .stdout_has("K3S_BIN");
    Out::from(
        std::process::Command::new(exe())
            .args(["up", "--profile", "bogus"])
            .output()
            .unwrap(),
    )
    .expect_code(64);
    Out::from(
        std::process::Command::new(exe())
            .arg("frobnicate")
            .output()
            .unwrap(),
    )
    .expect_code(64);
}

#[test]
fn env_and_logs_explain_what_is_missing() {
    let sb = Sandbox::new();
    sb.run(&["env"])
        .expect_code(1)
        .stderr_has("no kubeconfig")
        .stderr_has("k3s-sandbox up");
    sb.run(&["logs"]).expect_code(1).stderr_has("never started");
    sb.run(&["status"]).expect_code(1);
    sb.run(&["down"]).ok().stderr_has("nothing to do");
}

#[test]
fn selftest_reports_a_plugin_that_cannot_do_add() {
    let sb = Sandbox::new();
    // The fake plugins only answer VERSION: the self-test must say which
    // step failed and why.
    let out = Out::from(
        sb.cmd(&["selftest"])
            .env("CNI_BIN_DIR", &sb.plugin_src)
            .output()
            .unwrap(),
    );
    out.expect_code(1)
        .stderr_has("type=\"loopback\" failed (add)")
        .stderr_has("only answers VERSION");
    assert_eq!(out.stdout, "");
    let out = sb.run(&["selftest"]);
    out.expect_code(1)
        .stderr_has("failed to find plugin \"loopback\"");
}

#[test]
fn leftovers_of_a_dead_k3s_are_stopped_and_a_corrupt_pid_file_is_stale() {
    let mut sb = Sandbox::new();
    sb.set_env("FAKE_K3S_HELPER", "1");
    sb.up_cp(&[]).ok();
    let pid = sb.pid().unwrap();
    // The main process dies, its helper child stays in the group.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    // kill(2) returns before the process is gone: wait until it is (a zombie counts as gone).
    let table = k3s_sandbox::k3s::process::LiveProcesses;
    assert!(wait_until(
        || !k3s_sandbox::k3s::process::is_alive(&table, pid, None),
        Duration::from_secs(5)
    ));
    sb.run(&["status"]).expect_code(3);
    assert!(group_alive(pid), "the helper should still run");
    sb.run(&["down", "--timeout", "5"])
        .ok()
        .stderr_has(" leftover process")
        .stderr_has(" of its process group");
    assert!(wait_until(|| !group_alive(pid), Duration::from_secs(5)));

    fs::write(sb.data.join("k3s.pid"), "garbage\n").unwrap();
    sb.run(&["status"])
        .expect_code(3)
        .stdout_has("does not hold a process id");
    sb.run(&["down"]).ok().stderr_has("unusable pid file");
    sb.run(&["status"]).expect_code(1);
}

#[test]
fn directories_come_from_flags_then_environment_and_empty_means_unset() {
    let sb = Sandbox::new();
    // From the environment (Sandbox sets CNI_BIN_DIR and CNI_CONF_DIR).
    let d = sb.run(&["doctor"]);
    d.stdout_has(&format!("{}/loopback", sb.bin.display()));
    // A flag wins over the environment.
    let other = sb.tmp.path().join("other-bin");
    let d = sb.run(&["doctor", "--cni-bin-dir", &other.to_string_lossy()]);
    d.stdout_has(&format!("{}/loopback", other.display()));
    // Empty variables fall back to the defaults.
    let d = Out::from(
        sb.cmd(&["doctor"])
            .env("CNI_BIN_DIR", "")
            .env("CNI_CONF_DIR", "")
            .output()
            .unwrap(),
    );
    d.stdout_has("/opt/cni/bin/loopback");
    // The data dir from the environment.
    let dd = sb.tmp.path().join("env-data");
    let out = Out::from(
        std::process::Command::new(exe())
            .arg("status")
            .env("K3S_SANDBOX_DATA_DIR", &dd)
            .output()
            .unwrap(),
    );
    out.expect_code(1)
        .stdout_has(&format!("data dir: {}", dd.display()));
}
