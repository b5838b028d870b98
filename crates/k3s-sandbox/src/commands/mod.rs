//! The subcommands, one module each, every one with its clap `Args` and its `run`. Human-readable
//! progress goes to stderr (prefixed with `k3s-sandbox:`); only machine-readable results go to
//! stdout.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::Result;
use crate::output::{outln, say, shell_quote};
use crate::paths::{Dirs, StateFiles};

pub mod cni;
pub(crate) mod completions;
pub(crate) mod doctor;
pub(crate) mod down;
pub(crate) mod env;
pub(crate) mod ipam;
pub(crate) mod logs;
pub(crate) mod man;
pub(crate) mod pods_profile;
pub(crate) mod selftest;
pub(crate) mod status;
pub mod trace;
pub(crate) mod up;

/// How long a command waits for another one holding the data dir's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// `--data-dir`, for the commands that work on a k3s instance.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct InstanceOpt {
    /// k3s-sandbox's instance directory: state files, log, kubeconfig and k3s's own data (not
    /// host-local's dataDir) [env: K3S_SANDBOX_DATA_DIR] [default: /var/lib/k3s-sandbox for
    /// root, else $XDG_DATA_HOME/k3s-sandbox or ~/.local/share/k3s-sandbox]
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// `--cni-conf-dir`, for the commands that read network configs.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ConfDirOpt {
    /// Directory with the CNI network configs [env: NETCONFPATH, else CNI_CONF_DIR] [default:
    /// /etc/cni/net.d]
    #[arg(long, value_name = "DIR")]
    pub(crate) cni_conf_dir: Option<PathBuf>,
}

/// `--cni-bin-dir`, for the commands that run or install plugins.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct BinDirOpt {
    /// Directory with the CNI plugin executables [env: CNI_PATH, else CNI_BIN_DIR] [default:
    /// /opt/cni/bin]
    #[arg(long, value_name = "DIR")]
    pub(crate) cni_bin_dir: Option<PathBuf>,
}

/// The directories of a command's options, each in the one resolution order (option, then
/// environment, then default; see [`crate::paths`]). A command passes `None` for an option it
/// does not have.
pub(crate) fn dirs(
    data: Option<&InstanceOpt>,
    bin: Option<&BinDirOpt>,
    conf: Option<&ConfDirOpt>,
) -> Result<Dirs> {
    Dirs::resolve(
        data.and_then(|d| d.data_dir.as_deref()),
        bin.and_then(|b| b.cni_bin_dir.as_deref()),
        conf.and_then(|c| c.cni_conf_dir.as_deref()),
    )
}

fn data_dir_flag(dirs: &Dirs) -> String {
    format!("--data-dir {}", shell_quote(&dirs.data_dir.to_string_lossy()))
}

fn print_export(state: &StateFiles) {
    outln!(
        "export KUBECONFIG={}",
        shell_quote(&state.kubeconfig.to_string_lossy())
    );
}
