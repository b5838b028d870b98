//! `env`: print `export KUBECONFIG=...` for the instance.

use clap::Args;

use super::{GlobalArgs, data_dir_flag, dirs, print_export};
use crate::error::{Failure, Result};

/// `env` has no options of its own.
#[derive(Args, Debug)]
pub struct EnvArgs {}

pub fn run(g: &GlobalArgs, _a: &EnvArgs) -> Result<u8> {
    let dirs = dirs(g)?;
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
