//! `logs`: print the end of the k3s log.

use clap::Args;

use super::{InstanceOpt, dirs};
use crate::error::{Failure, Result};
use crate::k3s::hints;
use crate::output::outln;

#[derive(Args, Debug)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub(crate) instance: InstanceOpt,
    /// Number of lines to print
    #[arg(short = 'n', long, default_value_t = 100)]
    pub(crate) lines: usize,
}

pub(crate) fn run(a: &LogsArgs) -> Result<u8> {
    let dirs = dirs(Some(&a.instance), None, None)?;
    let state = dirs.state();
    let text = match hints::read_tail(&state.log, 8 * 1024 * 1024) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::NotFound(format!(
                "there is no log at {}: k3s was never started from this data dir",
                state.log.display()
            )));
        }
        Err(e) => return Err(Failure::io("read", &state.log, &e)),
    };
    for l in hints::tail_lines(&text, a.lines) {
        outln!("{l}");
    }
    Ok(0)
}
