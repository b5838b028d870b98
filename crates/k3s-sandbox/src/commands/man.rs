//! `man`: the manual page k3s-sandbox(1) in roff, generated from the command line itself
//! (clap_mangen): every subcommand with its options. install.sh, the tarball and the .deb install
//! it as man1/k3s-sandbox.1.

use clap::{Args, CommandFactory};

use crate::error::{Failure, Result};

/// `man` has no options.
#[derive(Args, Debug)]
pub(crate) struct ManArgs {}

/// The page: the root's, then one section per subcommand (and per `cni`/`ipam` subcommand).
pub(crate) fn page() -> std::io::Result<Vec<u8>> {
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        section(sub, "k3s-sandbox", &mut out)?;
    }
    Ok(out)
}

fn section(cmd: &clap::Command, parent: &str, out: &mut Vec<u8>) -> std::io::Result<()> {
    let name = format!("{parent} {}", cmd.get_name());
    // A page is rendered once per process: leaking the section names costs nothing.
    let man = clap_mangen::Man::new(cmd.clone().name(&*String::leak(name.clone())));
    out.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        section(sub, &name, out)?;
    }
    Ok(())
}

pub(crate) fn run(_a: &ManArgs) -> Result<u8> {
    let page = page().map_err(|e| Failure::new(format!("cannot render the manual page: {e}")))?;
    let _ = crate::output::stdout_bytes(&page);
    Ok(0)
}
