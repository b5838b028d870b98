//! `selftest`: run ADD, CHECK and DEL through the installed plugins like containerd and print the
//! pod IP.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use cni_runtime::NetworkList;
use cni_runtime::runner::ProcessRunner;

use super::{BinDirOpt, ConfDirOpt, dirs, say};
use crate::cni::conflist;
use crate::cni::selftest;
use crate::error::{Failure, Result};
use crate::output::outln;
use crate::paths::Dirs;

#[derive(Args, Debug)]
pub(crate) struct SelftestArgs {
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    /// Network config to test [default: the file containerd would pick from the conf dir,
    /// else the built-in sandbox-cni conflist]
    #[arg(long, value_name = "FILE")]
    pub(crate) conflist: Option<PathBuf>,
    /// Print the pod addresses as one JSON object on stdout ({"podIP", "podIPs"})
    #[arg(long)]
    pub(crate) json: bool,
}

/// The network containerd would use: the first config of the conf dir, or
/// the built-in default when the conf dir has none.
fn network_to_test(dirs: &Dirs, explicit: Option<&Path>) -> Result<(NetworkList, String)> {
    if let Some(f) = explicit {
        return Ok((NetworkList::load_file(f)?, f.display().to_string()));
    }
    let first = match cni_runtime::conf::default_network(&dirs.cni_conf_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Failure::io("list", &dirs.cni_conf_dir, &e)),
    };
    match first {
        Some((f, list)) => Ok((list?, f.display().to_string())),
        None => Ok((
            NetworkList::from_list_bytes(conflist::TEMPLATE.as_bytes())
                .map_err(|e| Failure::new(format!("built-in conflist: {e}")))?,
            format!(
                "built-in {} (no config in {})",
                conflist::FILE_NAME,
                dirs.cni_conf_dir.display()
            ),
        )),
    }
}

pub(super) fn run_selftest(dirs: &Dirs, explicit: Option<&Path>) -> Result<selftest::Report> {
    let (list, origin) = network_to_test(dirs, explicit)?;
    say(&format!(
        "self-test: plugins from {}, network {origin}",
        dirs.cni_bin_dir.display()
    ));
    let (plan, work) = selftest::plan_in(&std::env::temp_dir(), list, &dirs.cni_bin_dir)?;
    let runner = ProcessRunner {
        timeout: Duration::from_secs(30),
        stderr: None,
    };
    let result = selftest::run(&runner, &plan, &mut |line| say(&format!("  {line}")));
    let _ = fs::remove_dir_all(&work);
    result.map_err(|e| Failure::SelfTest(format!("CNI self-test failed: {e}")))
}

pub(crate) fn run(a: &SelftestArgs) -> Result<u8> {
    let dirs = dirs(None, Some(&a.bin), Some(&a.conf))?;
    let report = run_selftest(&dirs, a.conflist.as_deref())?;
    let ip = report
        .pod_ip()
        .ok_or_else(|| Failure::new("the self-test found no pod IP"))?
        .to_string();
    say(&format!(
        "self-test passed: pod IP {ip} (all eth0 addresses: {})",
        report.pod_ips.join(", ")
    ));
    if a.json {
        crate::output::print_json(&serde_json::json!({"podIP": ip, "podIPs": report.pod_ips}));
    } else {
        outln!("{ip}");
    }
    Ok(0)
}
