//! `up`/`down` of an agent with the pods-in-gVisor profile, against the fake k3s: the flag, the
//! templates, the mounts (logged instead of made) and their reversal. The gVisor stage
//! (tests/gvisor/pods2024.py) runs the same settings and mounts for real inside runsc 2024.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k3s_sandbox::k3s::gvisor_pods::{self, ConfigVersion, RECORD_FILE};

use crate::common::Sandbox;

/// A sandbox that forces the profile, with crun in a stand-in root and a mount log.
fn gvisor_sandbox() -> (Sandbox, std::path::PathBuf, std::path::PathBuf) {
    let mut sb = Sandbox::new();
    let root = sb.tmp.path().join("root");
    let crun = root.join("usr/bin/crun");
    fs::create_dir_all(crun.parent().unwrap()).unwrap();
    fs::write(&crun, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&crun, fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
    let log = sb.tmp.path().join("mounts.log");
    sb.set_env("K3S_SANDBOX_PODS_PROFILE", "gvisor");
    sb.set_env("K3S_SANDBOX_PODS_ROOT", &root.to_string_lossy());
    sb.set_env("K3S_SANDBOX_MOUNT_LOG", &log.to_string_lossy());
    (sb, root, log)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn up_applies_the_gvisor_pods_profile_and_down_reverses_exactly_that() {
    let (sb, root, log) = gvisor_sandbox();
    let cg = root.join("sys/fs/cgroup");
    sb.up_agent("10", &[])
        .ok()
        .stderr_has("pods in gVisor: runtime crun");
    let args = &sb.servers()[0];
    assert!(args.contains(&"--default-runtime=crun".to_string()), "{args:?}");

    // The mounts: a tmpfs on the empty cgroup root, then every hierarchy of the one list.
    let mut want = vec![format!("mount tmpfs {}", cg.display())];
    for c in gvisor_pods::CGROUP_V1 {
        want.push(format!("mount cgroup {c} {}", cg.join(c).display()));
    }
    assert_eq!(lines(&log), want);

    // The templates import the fragments, which say exactly what `pods-profile` prints.
    let etc = sb.data.join("k3s/agent/etc/containerd");
    for v in [ConfigVersion::V3, ConfigVersion::V2] {
        let fragment = sb.data.join(v.fragment_file());
        let template = fs::read_to_string(etc.join(v.template())).unwrap();
        assert_eq!(template, gvisor_pods::k3s_template(&fragment));
        assert!(template.contains("{{ template \"base\" . }}"), "{template}");
        assert_eq!(
            fs::read_to_string(&fragment).unwrap(),
            gvisor_pods::containerd_fragment(v, &root.join("usr/bin/crun"))
        );
    }
    let record = sb.data.join(RECORD_FILE);
    assert!(record.is_file());

    sb.run(&["down"]).ok().stderr_has("unmounted");
    let mut undo: Vec<String> = want[1..]
        .iter()
        .rev()
        .map(|l| format!("umount {}", l.rsplit(' ').next().unwrap()))
        .collect();
    undo.push(format!("umount {}", cg.display()));
    assert_eq!(lines(&log)[want.len()..], undo[..]);
    for v in [ConfigVersion::V3, ConfigVersion::V2] {
        assert!(!etc.join(v.template()).exists());
        assert!(!sb.data.join(v.fragment_file()).exists());
    }
    assert!(!record.exists());
    // A second down has nothing left to undo.
    sb.run(&["down"]).ok();
    assert_eq!(lines(&log).len(), want.len() + undo.len());
}

#[test]
fn a_template_of_the_user_is_kept_and_a_default_runtime_of_the_user_wins() {
    let (sb, _root, _log) = gvisor_sandbox();
    let etc = sb.data.join("k3s/agent/etc/containerd");
    fs::create_dir_all(&etc).unwrap();
    let mine = "version = 3\n# mine\n";
    fs::write(etc.join(ConfigVersion::V3.template()), mine).unwrap();
    sb.up_agent("10", &["--", "--default-runtime=runc"])
        .ok()
        .stderr_has("warning: kept your");
    let args = &sb.servers()[0];
    assert!(!args.contains(&"--default-runtime=crun".to_string()), "{args:?}");
    sb.run(&["down"]).ok();
    assert_eq!(
        fs::read_to_string(etc.join(ConfigVersion::V3.template())).unwrap(),
        mine
    );
    assert!(!etc.join(ConfigVersion::V2.template()).exists());
}

#[test]
fn without_crun_up_warns_and_still_mounts() {
    let (sb, root, log) = gvisor_sandbox();
    fs::remove_file(root.join("usr/bin/crun")).unwrap();
    sb.up_agent("10", &[]).ok().stderr_has("crun is not installed");
    assert!(!sb.servers()[0].iter().any(|a| a.starts_with("--default-runtime")));
    assert_eq!(lines(&log).len(), 1 + gvisor_pods::CGROUP_V1.len());
    sb.run(&["down"]).ok();
    assert_eq!(lines(&log).len(), 2 * (1 + gvisor_pods::CGROUP_V1.len()));
}

#[test]
fn pods_profile_prints_the_one_set() {
    let sb = Sandbox::new();
    sb.run(&["pods-profile", "cgroups"])
        .ok()
        .stdout_has("cpu cpuacct cpuset devices memory pids");
}

#[test]
fn an_old_k3s_gets_neither_the_flag_nor_templates_it_cannot_read() {
    let (mut sb, _root, log) = gvisor_sandbox();
    sb.set_env("FAKE_K3S_VERSION", "v1.27.4+k3s1");
    sb.up_agent("10", &[])
        .ok()
        .stderr_has("has no `base` containerd template");
    assert!(!sb.servers()[0].iter().any(|a| a.starts_with("--default-runtime")));
    let etc = sb.data.join("k3s/agent/etc/containerd");
    for v in [ConfigVersion::V3, ConfigVersion::V2] {
        assert!(!etc.join(v.template()).exists());
        assert!(
            sb.data.join(v.fragment_file()).is_file(),
            "the settings stay for a template of the user's"
        );
    }
    assert_eq!(lines(&log).len(), 1 + gvisor_pods::CGROUP_V1.len());
    sb.run(&["down"]).ok();
    assert!(!sb.data.join(ConfigVersion::V3.fragment_file()).exists());
}
