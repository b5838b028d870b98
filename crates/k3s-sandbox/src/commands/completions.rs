//! `completions SHELL`: the shell completion script, generated from the command line itself
//! (clap_complete), so it cannot drift from it. install.sh, the tarball and the .deb install it
//! where each shell looks (docs/install.md).

use clap::{Args, CommandFactory, ValueEnum};

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

/// The script for `shell`.
pub(crate) fn script(shell: Shell) -> Vec<u8> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = Vec::new();
    let name = "k3s-sandbox";
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, &mut out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, &mut out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, &mut out),
    }
    out
}

pub(crate) fn run(a: &CompletionsArgs) -> Result<u8> {
    let _ = crate::output::stdout_bytes(&script(a.shell));
    Ok(0)
}
