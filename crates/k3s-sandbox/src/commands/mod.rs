//! The subcommands, one module each, every one with its clap `Args` and its `run`. Human-readable
//! progress goes to stderr (prefixed with `k3s-sandbox:`); only machine-readable results go to
//! stdout.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::Result;
use crate::paths::{Dirs, StateFiles};
use crate::util::shell_quote;

pub mod doctor;
pub mod down;
pub mod env;
pub mod logs;
pub mod pods_profile;
pub mod selftest;
pub mod status;
pub mod up;

/// How long a command waits for another one holding the data dir's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The options every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Instance directory: state files, log, kubeconfig and the k3s data dir
    /// [env: K3S_SANDBOX_DATA_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory with the CNI plugin executables [env: CNI_BIN_DIR] [default: /opt/cni/bin]
    #[arg(long, global = true, value_name = "DIR")]
    pub cni_bin_dir: Option<PathBuf>,
    /// Directory with the CNI network configs [env: CNI_CONF_DIR] [default: /etc/cni/net.d]
    #[arg(long, global = true, value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
}

fn say(msg: &str) {
    eprintln!("k3s-sandbox: {msg}");
}

/// A directory from the environment; empty counts as unset.
fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The directories of the command line: the flags, else the environment, else the defaults.
pub fn dirs(g: &GlobalArgs) -> Result<Dirs> {
    Dirs::resolve(
        g.data_dir.clone().or_else(|| env_dir("K3S_SANDBOX_DATA_DIR")),
        g.cni_bin_dir.clone().or_else(|| env_dir("CNI_BIN_DIR")),
        g.cni_conf_dir.clone().or_else(|| env_dir("CNI_CONF_DIR")),
    )
}

fn data_dir_flag(dirs: &Dirs) -> String {
    format!("--data-dir {}", shell_quote(&dirs.data_dir.to_string_lossy()))
}

fn print_export(state: &StateFiles) {
    println!(
        "export KUBECONFIG={}",
        shell_quote(&state.kubeconfig.to_string_lossy())
    );
}
