//! The command line of `k3s-sandbox cni`: each subcommand with the options it reads, and no other.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::cni::valid;
use crate::commands::{BinDirOpt, ConfDirOpt};

const AFTER_HELP: &str = "\
Environment (cnitool's variables; an option wins over them, and they over k3s-sandbox's):
  NETCONFPATH    directory of network configs (else CNI_CONF_DIR, else /etc/cni/net.d)
  CNI_PATH       plugin directories, ':'-separated (else CNI_BIN_DIR, else /opt/cni/bin)
  CNI_CACHE_DIR  libcni's result cache directory (default: /var/lib/cni)
  CNI_IFNAME     interface name (default: eth0)
  CNI_ARGS       KEY=VALUE pairs separated by ';'
  CAP_ARGS       capability arguments as a JSON object, e.g. {\"portMappings\":[...]}

The container ID is `cnitool-` and the first 10 bytes of the SHA-512 of the absolute NETNS path
in hex, as cnitool computes it, so attachments made here can be removed with cnitool or libcni
and the other way round.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct CniArgs {
    #[command(subcommand)]
    pub(crate) command: CniCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CniCommand {
    /// Add the container NETNS to NETWORK and print the result (as cnitool does)
    Add(Attach),
    /// Check the attachment of NETNS to NETWORK against the cached result
    Check(Attach),
    /// Delete the attachment of NETNS from NETWORK
    Del(Attach),
    /// Show the cached attachments of NETWORK that --valid does not keep; with --apply, DEL them
    /// and send GC (1.1.0)
    Gc(GcArgs),
    /// Ask every plugin of NETWORK whether it is ready (STATUS, 1.1.0)
    Status(StatusArgs),
    /// Ask a plugin (default: every sandbox-cni plugin in the plugin dirs) for its versions
    Version(VersionArgs),
    /// List the networks of the conf dir, their plugin chains and the file containerd would pick
    Ls(LsArgs),
}

/// A plugin's time limit, for the commands that run plugins.
#[derive(Args, Debug, Clone)]
pub(crate) struct TimeoutOpt {
    /// Seconds a plugin may run before it is killed with its process group (1 or more)
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout: u64,
}

/// libcni's result cache, for the commands that read or write it.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct CacheOpt {
    /// libcni's result cache directory [env: CNI_CACHE_DIR] [default: /var/lib/cni]
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct Attach {
    /// Network name (or a path to a config file)
    pub(crate) network: String,
    /// Network namespace path (any path works with plugins that do not enter it)
    pub(crate) netns: PathBuf,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    #[command(flatten)]
    pub(crate) cache: CacheOpt,
    #[command(flatten)]
    pub(crate) timeout: TimeoutOpt,
}

#[derive(Args, Debug)]
pub(crate) struct GcArgs {
    /// Network name (or a path to a config file)
    pub(crate) network: String,
    /// A live attachment to keep: a container ID (every interface of it) or ID/IFNAME; repeat
    /// the option for more
    #[arg(long, value_name = "ID[/IFNAME]", value_parser = valid::parse)]
    pub(crate) valid: Vec<valid::Attachment>,
    /// Release them (without it, only show what would be released)
    #[arg(long)]
    pub(crate) apply: bool,
    /// Print the outcome as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    #[command(flatten)]
    pub(crate) cache: CacheOpt,
    #[command(flatten)]
    pub(crate) timeout: TimeoutOpt,
}

#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// Network name (or a path to a config file)
    pub(crate) network: String,
    /// Print the outcome as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    #[command(flatten)]
    pub(crate) timeout: TimeoutOpt,
}

#[derive(Args, Debug)]
pub(crate) struct VersionArgs {
    /// Plugin type to ask
    pub(crate) plugin: Option<String>,
    /// Print the versions as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
    #[command(flatten)]
    pub(crate) timeout: TimeoutOpt,
}

#[derive(Args, Debug)]
pub(crate) struct LsArgs {
    /// Print the networks as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
    /// Directory with the CNI plugin executables, to flag missing ones [env: CNI_PATH, else
    /// CNI_BIN_DIR] [default: /opt/cni/bin]
    #[command(flatten)]
    pub(crate) bin: BinDirOpt,
}

impl CniArgs {
    /// Whether the command was asked for JSON (its errors then come as JSON too).
    pub(crate) fn json(&self) -> bool {
        match &self.command {
            CniCommand::Gc(g) => g.json,
            CniCommand::Status(s) => s.json,
            CniCommand::Version(v) => v.json,
            CniCommand::Ls(l) => l.json,
            CniCommand::Add(_) | CniCommand::Check(_) | CniCommand::Del(_) => false,
        }
    }
}
