//! `doctor`'s lines about pods in gVisor, from what [`super::measure`] measured: the generation of
//! gVisor, crun, the cgroup v1 hierarchies, a trivial crun container, and the verdict for the
//! agent profile, each missing piece with its remedy. "Pods stop at the shim" is said only when
//! `prctl(PR_SET_CHILD_SUBREAPER)` was measured to fail.

use super::measure::{MeasureError, Measured};
use super::{CGROUP_V1, CRUN_DIRS};
use crate::host::doctor::{Check, Level};
use crate::host::probe;
use crate::k3s::flags::Profile;

/// For the agent's line when the shim cannot start.
pub(crate) const SHIM_REMEDY: &str = "use runsc 2024 or later (pods run there with crun and the cgroup v1 \
hierarchies; see docs/k3s.md, \"Pods in gVisor\"), or --profile control-plane here and pods on a node \
outside gVisor";

fn check(level: Level, name: &str, detail: String, remedy: Option<String>) -> Check {
    Check {
        level,
        name: name.into(),
        detail,
        remedy,
    }
}

/// The lines, in gVisor. `measured` is the child's answer (or why there is none).
pub(crate) fn checks(
    measured: &Result<Measured, MeasureError>,
    boot_id: bool,
    root_fs: &Result<u64, probe::StatfsError>,
    profile: Option<Profile>,
) -> Vec<Check> {
    let bad = if profile == Some(Profile::Agent) {
        Level::Fail
    } else {
        Level::Warn
    };
    let m = match measured {
        Ok(m) => m,
        Err(e) => {
            return vec![check(
                bad,
                "profile agent",
                format!("whether pods can run here was not measured: {e}"),
                Some("run `k3s-sandbox pods-profile measure` to see the trials' errors".into()),
            )];
        }
    };
    let root = match root_fs {
        Ok(magic) => probe::fs_name(*magic),
        Err(_) => "of unknown type".into(),
    };
    let subreaper = match &m.subreaper_error {
        None => "prctl(PR_SET_CHILD_SUBREAPER) works".to_string(),
        Some(e) => format!("prctl(PR_SET_CHILD_SUBREAPER) fails with {e}"),
    };
    let boot = if boot_id { "boot_id present" } else { "no boot_id" };
    let generation = match (&m.subreaper_error, boot_id) {
        (None, true) => "2024 or later",
        (Some(_), false) => "2022 or older",
        _ => "unknown",
    };
    let mut out = vec![check(
        Level::Ok,
        "gvisor generation",
        format!("{generation}: {subreaper}, {boot}, / is {root} (measured)"),
        None,
    )];

    let mut missing: Vec<String> = Vec::new();
    let mut remedies: Vec<String> = Vec::new();
    match &m.crun {
        Some(p) => out.push(check(
            Level::Ok,
            "pods: crun",
            format!(
                "{} (k3s finds it there; `up` makes it the default runtime)",
                p.display()
            ),
            None,
        )),
        None => {
            let remedy = format!("apt-get install crun (k3s looks in /{})", CRUN_DIRS.join(", /"));
            out.push(check(
                bad,
                "pods: crun",
                "crun is not installed (runc cannot start containers in gVisor)".into(),
                Some(remedy.clone()),
            ));
            missing.push("crun".into());
            remedies.push(remedy);
        }
    }
    let set = CGROUP_V1.join(", ");
    match (m.cgroups_missing.is_empty(), m.cgroups_tried, &m.cgroups_error) {
        (true, _, _) => out.push(check(Level::Ok, "pods: cgroup v1", format!("{set} mounted"), None)),
        (false, true, None) => out.push(check(
            Level::Ok,
            "pods: cgroup v1",
            format!(
                "{} missing and mountable here (tried in a private mount namespace); `up` mounts them, `down` unmounts them",
                m.cgroups_missing.join(", ")
            ),
            None,
        )),
        (false, true, Some(e)) => {
            let remedy = "run as root, inside runsc 2024 or later".to_string();
            out.push(check(bad, "pods: cgroup v1", e.clone(), Some(remedy.clone())));
            missing.push("the cgroup v1 hierarchies".into());
            remedies.push(remedy);
        }
        (false, false, _) => {
            let remedy = "run doctor as root where `unshare -m` works, to try the mounts".to_string();
            out.push(check(
                bad,
                "pods: cgroup v1",
                format!("{} missing; mounting them was not tried (no private mount namespace)", m.cgroups_missing.join(", ")),
                Some(remedy.clone()),
            ));
            missing.push("the cgroup v1 hierarchies (not measured)".into());
            remedies.push(remedy);
        }
    }
    match &m.container {
        Some(Ok(())) => out.push(check(
            Level::Ok,
            "pods: crun container",
            "a trivial crun container started and exited 0 (measured)".into(),
            None,
        )),
        Some(Err(e)) => {
            out.push(check(
                bad,
                "pods: crun container",
                format!("a trivial crun container failed: {e}"),
                None,
            ));
            missing.push("a working crun container".into());
        }
        None => {}
    }

    let agent = if let Some(e) = &m.subreaper_error {
        check(
            bad,
            "profile agent",
            format!(
                "pods stop at the shim here: containerd-shim-runc-v2 needs prctl(PR_SET_CHILD_SUBREAPER), \
                 which fails with {e} (measured); containerd runs the CNI ADDs, then DELs them again"
            ),
            Some(SHIM_REMEDY.into()),
        )
    } else if missing.is_empty() && m.container == Some(Ok(())) {
        check(
            Level::Ok,
            "profile agent",
            "pods can run here (measured: crun, the cgroup v1 hierarchies, a crun container); \
             `up --profile agent` sets crun, the containerd settings and the mounts up; kubelet itself \
             is untested in gVisor"
                .into(),
            None,
        )
    } else {
        check(
            bad,
            "profile agent",
            format!("pods cannot run here yet: missing {}", missing.join(", ")),
            (!remedies.is_empty()).then(|| remedies.join("; ")),
        )
    };
    out.push(agent);
    out
}
