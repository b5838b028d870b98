//! `doctor`: probe the environment, one ok/warn/FAIL line per check.

use std::path::PathBuf;

use clap::Args;

use super::{BinDirOpt, ConfDirOpt, InstanceOpt, dirs, say};
use crate::error::Result;
use crate::host::doctor::{self, Level};
use crate::host::probe::{self, HostFacts};
use crate::host::sandbox::{self, SandboxFacts};
use crate::k3s::flags::{self, Profile};
use crate::k3s::process::{self, LiveProcesses, Liveness};
use crate::output::{outln, plural};

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    /// Judge the checks for this profile (agent-only requirements FAIL instead of warn)
    #[arg(long, value_enum)]
    pub(crate) profile: Option<Profile>,
    /// Print each check as one JSON object per line: {"name", "level" (ok, warn, fail),
    /// "detail", "remedy" (null when none)}
    #[arg(long)]
    pub(crate) json: bool,
}

/// In gVisor (or with K3S_SANDBOX_PODS_PROFILE=gvisor): what pods there need, measured.
fn gvisor_pods_checks(s: &SandboxFacts, facts: &HostFacts, profile: Option<Profile>) -> Vec<doctor::Check> {
    let in_gvisor = matches!(s.detect(), sandbox::Sandbox::Gvisor { .. });
    if crate::k3s::gvisor_pods::agent::Pods::wanted(in_gvisor).is_none() {
        return Vec::new();
    }
    let measured = std::env::current_exe()
        .map_err(crate::k3s::gvisor_pods::measure::MeasureError::NoExe)
        .and_then(|exe| crate::k3s::gvisor_pods::measure::measure_in_child(&exe));
    crate::k3s::gvisor_pods::verdict::checks(&measured, s.boot_id_exists, &facts.root_fs, profile)
}

pub(crate) fn run(a: &DoctorArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), Some(&a.bin), Some(&a.conf))?;
    let state = dirs.state();
    let facts = HostFacts::probe(&dirs.data_dir);
    let sandbox_facts = SandboxFacts::probe();
    let mut checks = sandbox::checks(&sandbox_facts, &facts.root_fs);
    checks.extend(gvisor_pods_checks(&sandbox_facts, &facts, a.profile));
    checks.extend(doctor::host_checks(&facts, a.profile));
    checks.push(doctor::data_dir_check(&dirs.data_dir));

    let (ours, agent_running) = match process::liveness(&state, &LiveProcesses) {
        Liveness::Running(inst) => (Some(inst.pid), inst.known_profile() == Some(Profile::Agent)),
        _ => (None, false),
    };
    let ports: Vec<(u16, std::io::Result<()>)> = [6443, 6444, 10250]
        .into_iter()
        .map(|p| (p, probe::port_free(p)))
        .collect();
    checks.extend(doctor::port_checks(&ports, ours, a.profile));

    let (conf_checks, types) = doctor::conflist_checks(&dirs.cni_conf_dir, a.profile);
    checks.extend(doctor::plugin_checks(&dirs.cni_bin_dir, &types, a.profile));
    checks.extend(conf_checks);
    // Leaked reservations: compared with the live pods when this data dir's agent runs.
    let live = agent_running
        .then(|| crate::commands::ipam::live_ids(&dirs))
        .flatten();
    checks.extend(doctor::ipam_checks(&crate::commands::ipam::detect(
        &dirs,
        live.as_ref(),
    )));

    checks.push(doctor::k3s_check(k3s_found()));

    for c in &checks {
        if a.json {
            outln!("{}", c.to_json());
        } else {
            outln!("{c}");
        }
    }
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warns = checks.iter().filter(|c| c.level == Level::Warn).count();
    let (profile, why) = flags::choose_profile(a.profile, &facts);
    say(&format!(
        "{}: {fails} failed, {}; `up` would use {why}",
        plural(checks.len() as u64, "check", "checks"),
        plural(warns as u64, "warning", "warnings")
    ));
    let _ = profile;
    Ok(if fails > 0 { 1 } else { 0 })
}

fn k3s_found() -> Result<(PathBuf, String, Option<flags::K3sVersion>)> {
    let path = crate::k3s::locate_from_env()?;
    let (line, v) = crate::k3s::version(&path)?;
    Ok((path, line, v))
}
