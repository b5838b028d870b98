//! `env`: print `export KUBECONFIG=...` for the instance.

use clap::Args;

use super::{InstanceOpt, data_dir_flag, dirs, print_export};
use crate::error::{Failure, Result};

/// `env` takes only the instance directory.
#[derive(Args, Debug)]
pub(crate) struct EnvArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
}

pub(crate) fn run(a: &EnvArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), None, None)?;
    let state = dirs.state();
    if !state.kubeconfig.exists() {
        return Err(Failure::NotFound(format!(
            "there is no kubeconfig at {} yet; start k3s with `k3s-sandbox up {}`",
            state.kubeconfig.display(),
            data_dir_flag(&dirs)
        )));
    }
    print_export(&state);
    Ok(0)
}
