use std::cell::RefCell;
use std::path::{Path, PathBuf};

use super::*;

/// gVisor 2024's mount table before anything is mounted: sysfs, no cgroup.
const GVISOR: &str = "\
1 0 0:1 / / rw,relatime - overlay none rw\n\
2 1 0:2 / /proc rw - proc none rw\n\
3 1 0:3 / /sys ro - sysfs none ro\n";
/// A cgroup v2 host.
const V2: &str = "\
1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
/// A v1 host with some hierarchies, on a tmpfs at the root.
const V1_PARTIAL: &str = "\
1 0 0:1 / / rw - ext4 /dev/sda1 rw\n\
20 1 0:20 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
21 20 0:21 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
22 20 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";

#[derive(Default)]
struct FakeMounter {
    calls: RefCell<Vec<String>>,
    fail_unmount: Option<PathBuf>,
}

impl Mounter for FakeMounter {
    fn mount_tmpfs(&self, at: &Path) -> io::Result<()> {
        self.calls.borrow_mut().push(format!("tmpfs {}", at.display()));
        Ok(())
    }
    fn mount_cgroup(&self, controller: &str, at: &Path) -> io::Result<()> {
        self.calls
            .borrow_mut()
            .push(format!("cgroup {controller} {}", at.display()));
        Ok(())
    }
    fn unmount(&self, at: &Path) -> io::Result<()> {
        if self.fail_unmount.as_deref() == Some(at) {
            return Err(io::Error::from_raw_os_error(16));
        }
        self.calls.borrow_mut().push(format!("umount {}", at.display()));
        Ok(())
    }
}

#[test]
fn the_plan_follows_the_mount_table() {
    let root = Path::new(CGROUP_ROOT);
    assert_eq!(
        plan(root, GVISOR),
        Some(Plan {
            tmpfs: true,
            controllers: CGROUP_V1.to_vec(),
            stubs: vec!["freezer"],
        })
    );
    assert_eq!(plan(root, V2), None);
    let p = plan(root, V1_PARTIAL).unwrap();
    assert!(!p.tmpfs);
    assert_eq!(p.controllers, ["cpuset", "devices", "pids"]);
}

#[test]
fn apply_records_every_step_and_revert_undoes_exactly_that_in_reverse() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cgroup");
    fs::create_dir(&root).unwrap();
    fs::create_dir(root.join("cpuset")).unwrap(); // already there: not ours to remove
    let m = FakeMounter::default();
    let p = Plan {
        tmpfs: false,
        controllers: vec!["cpuset", "pids"],
        stubs: vec!["freezer"],
    };
    let mut record = Record::default();
    apply(&m, &root, &p, &mut record).unwrap();
    assert_eq!(record.mounted, [root.join("cpuset"), root.join("pids")]);
    assert_eq!(record.created_dirs, [root.join("pids"), root.join("freezer")]);
    assert!(root.join("freezer").is_dir());

    // Saved and loaded unchanged.
    let file = tmp.path().join(RECORD_FILE);
    record.save(&file).unwrap();
    assert_eq!(Record::load(&file).unwrap(), Some(record.clone()));

    m.calls.borrow_mut().clear();
    let (left, problems) = revert(&m, &record);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(left.mounted.is_empty() && left.created_dirs.is_empty() && left.written.is_empty());
    assert_eq!(
        *m.calls.borrow(),
        [
            format!("umount {}", root.join("pids").display()),
            format!("umount {}", root.join("cpuset").display())
        ]
    );
    assert!(root.join("cpuset").is_dir());
    assert!(!root.join("pids").exists() && !root.join("freezer").exists());
}

#[test]
fn a_busy_mount_stays_in_the_record() {
    let busy = PathBuf::from("/x/cgroup/memory");
    let m = FakeMounter {
        fail_unmount: Some(busy.clone()),
        ..FakeMounter::default()
    };
    let record = Record {
        mounted: vec![PathBuf::from("/x/cgroup"), busy.clone()],
        ..Record::default()
    };
    let (left, problems) = revert(&m, &record);
    assert_eq!(left.mounted, [busy]);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("cannot unmount /x/cgroup/memory"),
        "{problems:?}"
    );
}

#[test]
fn the_fragment_carries_the_gvisor_settings_for_each_schema() {
    let v3 = containerd_fragment(ConfigVersion::V3, Path::new("/usr/bin/crun"));
    for want in [
        "version = 3",
        "[plugins.'io.containerd.cri.v1.runtime']\n  enable_unprivileged_ports = false\n  enable_unprivileged_icmp = false",
        "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  default_runtime_name = \"crun\"",
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]\n  BinaryName = \"/usr/bin/crun\"",
        "[plugins.'io.containerd.nri.v1.nri']\n  disable = true",
    ] {
        assert!(v3.contains(want), "{want:?} missing from\n{v3}");
    }
    let v2 = containerd_fragment(ConfigVersion::V2, Path::new("/usr/sbin/crun"));
    assert!(v2.contains("version = 2"));
    assert!(v2.contains("[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_unprivileged_ports = false"));
    assert!(v2.contains("BinaryName = \"/usr/sbin/crun\""));
    assert!(!v2.contains("cri.v1"));
}

#[test]
fn the_template_imports_the_fragment_before_k3s_base() {
    let t = k3s_template(Path::new("/data/containerd-gvisor-v3.toml"));
    assert!(t.starts_with("# Written by k3s-sandbox up"));
    assert!(
        t.contains("imports = [\"/data/containerd-gvisor-v3.toml\"]\n{{ template \"base\" . }}\n"),
        "{t}"
    );
    assert_eq!(ConfigVersion::V3.template(), "config-v3.toml.tmpl");
    assert_eq!(ConfigVersion::V2.template(), "config.toml.tmpl");
}

#[test]
fn crun_is_found_where_k3s_looks_in_its_order() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(find_crun(tmp.path()), None);
    for d in ["usr/local/bin", "usr/bin"] {
        fs::create_dir_all(tmp.path().join(d)).unwrap();
        fs::write(tmp.path().join(d).join("crun"), "").unwrap();
    }
    assert_eq!(find_crun(tmp.path()), Some(tmp.path().join("usr/bin/crun")));
}

#[test]
fn mountinfo_escapes_are_read() {
    let text = "5 1 0:5 / /sys/fs/cgroup/a\\040b rw - cgroup cgroup rw,pids\n";
    let m = mount::cgroup_mounts(text);
    assert_eq!(m[0].point, Path::new("/sys/fs/cgroup/a b"));
    assert_eq!(m[0].options, ["pids"]);
    assert!(mount::is_mount_point(text, Path::new("/sys/fs/cgroup/a b")));
}

mod verdict_lines {
    use super::super::measure::{CrunTrialFailed, MeasureError, Measured};
    use super::super::verdict::checks;
    use crate::host::doctor::Level;
    use crate::host::probe;
    use crate::k3s::flags::Profile;
    use std::path::PathBuf;

    fn runsc_2024() -> Measured {
        Measured {
            subreaper_error: None,
            cgroups_missing: vec!["cpu".into(), "pids".into()],
            cgroups_tried: true,
            cgroups_error: None,
            crun: Some(PathBuf::from("/usr/bin/crun")),
            container: Some(Ok(())),
        }
    }

    /// The child's answer is read by the `doctor` of the same binary only, but its JSON stays as it
    /// was when the container's outcome was a `Result<(), String>`.
    #[test]
    fn the_measured_answer_keeps_its_json() {
        let ok = serde_json::to_string(&runsc_2024()).unwrap();
        assert_eq!(
            ok,
            r#"{"subreaper_error":null,"cgroups_missing":["cpu","pids"],"cgroups_tried":true,"cgroups_error":null,"crun":"/usr/bin/crun","container":{"Ok":null}}"#
        );
        let failed = Measured {
            container: Some(Err(CrunTrialFailed("crun exited Some(1)".into()))),
            ..runsc_2024()
        };
        let text = serde_json::to_string(&failed).unwrap();
        assert!(
            text.ends_with(r#""container":{"Err":"crun exited Some(1)"}}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Measured>(&text).unwrap(), failed);
        let untried = Measured {
            container: None,
            ..runsc_2024()
        };
        let text = serde_json::to_string(&untried).unwrap();
        assert!(text.ends_with(r#""container":null}"#), "{text}");
    }

    fn line<'a>(c: &'a [crate::host::doctor::Check], name: &str) -> &'a crate::host::doctor::Check {
        c.iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} line in {c:?}"))
    }

    #[test]
    fn runsc_2024_with_crun_can_run_pods() {
        let c = checks(
            &Ok(runsc_2024()),
            true,
            &Ok(probe::MAGIC_OVERLAY),
            Some(Profile::Agent),
        );
        assert!(line(&c, "gvisor generation").detail.starts_with(
            "2024 or later: prctl(PR_SET_CHILD_SUBREAPER) works, boot_id present, / is overlay"
        ));
        let agent = line(&c, "profile agent");
        assert_eq!(agent.level, Level::Ok);
        assert!(agent.detail.starts_with("pods can run here"), "{}", agent.detail);
        assert!(c.iter().all(|c| c.level == Level::Ok), "{c:?}");
        assert!(!c.iter().any(|c| c.detail.contains("shim")));
    }

    #[test]
    fn the_shim_line_only_where_the_subreaper_was_measured_to_fail() {
        let m = Measured {
            subreaper_error: Some("EINVAL (errno 22)".into()),
            crun: None,
            container: None,
            ..runsc_2024()
        };
        let c = checks(&Ok(m), false, &Ok(probe::MAGIC_9P), Some(Profile::Agent));
        assert!(line(&c, "gvisor generation").detail.starts_with("2022 or older"));
        let agent = line(&c, "profile agent");
        assert_eq!(agent.level, Level::Fail);
        assert!(
            agent.detail.starts_with("pods stop at the shim here"),
            "{}",
            agent.detail
        );
        assert!(agent.detail.contains("EINVAL"));
        assert!(agent.remedy.as_deref().unwrap_or_default().contains("runsc 2024"));
        let crun = line(&c, "pods: crun");
        assert_eq!(crun.level, Level::Fail);
        assert!(
            crun.remedy
                .as_deref()
                .unwrap_or_default()
                .starts_with("apt-get install crun")
        );
        // Without --profile agent the same facts warn.
        let c = checks(
            &Ok(runsc_2024_without_crun()),
            true,
            &Ok(probe::MAGIC_OVERLAY),
            None,
        );
        assert_eq!(line(&c, "profile agent").level, Level::Warn);
    }

    fn runsc_2024_without_crun() -> Measured {
        Measured {
            crun: None,
            container: None,
            ..runsc_2024()
        }
    }

    #[test]
    fn each_missing_piece_has_its_remedy() {
        let c = checks(
            &Ok(runsc_2024_without_crun()),
            true,
            &Ok(probe::MAGIC_OVERLAY),
            Some(Profile::Agent),
        );
        let agent = line(&c, "profile agent");
        assert_eq!(agent.detail, "pods cannot run here yet: missing crun");
        assert!(
            agent
                .remedy
                .as_deref()
                .unwrap_or_default()
                .starts_with("apt-get install crun")
        );

        let m = Measured {
            cgroups_error: Some("cannot mount the cgroup v1 hierarchy cpu: EPERM".into()),
            container: None,
            ..runsc_2024()
        };
        let c = checks(&Ok(m), true, &Ok(probe::MAGIC_OVERLAY), Some(Profile::Agent));
        assert_eq!(line(&c, "pods: cgroup v1").level, Level::Fail);
        assert!(
            line(&c, "profile agent")
                .remedy
                .as_deref()
                .unwrap_or_default()
                .contains("run as root")
        );

        let m = Measured {
            container: Some(Err(CrunTrialFailed("could not join cgroup".into()))),
            ..runsc_2024()
        };
        let c = checks(&Ok(m), true, &Ok(probe::MAGIC_OVERLAY), None);
        assert!(
            line(&c, "pods: crun container")
                .detail
                .contains("could not join cgroup")
        );
        assert_eq!(line(&c, "profile agent").level, Level::Warn);

        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let c = checks(
            &Err(MeasureError::Run(timed_out)),
            true,
            &Ok(probe::MAGIC_OVERLAY),
            None,
        );
        assert_eq!(c.len(), 1);
        assert!(c[0].detail.contains("not measured: timed out"));
    }
}
