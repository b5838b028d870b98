//! `k3s-sandbox ipam ls|release|gc`: inspect host-local stores, free one reservation, and free the
//! reservations of attachments that no longer exist. Also the leak and fill-level detection used
//! by `doctor` and `status`.
//!
//! Stores are found through the network configs of the conf dir (each conflist's name and its
//! host-local `dataDir`), or given with --ipam-dir. Reading goes through ipam-store's read-only
//! inspection; every change goes through its locked store operations, as a plugin call would.

mod detect;
mod gc;
mod ls;
mod network;
mod release;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use ipam_store::Range;

use super::{ConfDirOpt, InstanceOpt, dirs};
use crate::cni::valid;
use crate::duration::parse_duration;
use crate::error::{Failure, Result};
use crate::output::say;

pub(crate) use detect::{Finding, detect, live_ids, print_status};

/// How long `ls` waits for a plugin to release the store's lock before reading without it.
const LS_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Default of `gc --min-age`.
const DEFAULT_MIN_AGE: &str = "5m";
/// A range set is nearly full from this share of used addresses (percent).
const NEARLY_FULL_PERCENT: u128 = 90;

#[derive(Args, Debug)]
pub(crate) struct IpamArgs {
    #[command(subcommand)]
    pub(crate) command: IpamCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum IpamCommand {
    /// Show each host-local network's ranges, used and free addresses, reservations and damage
    Ls(LsArgs),
    /// Free one address, or every address of a container, under the store's lock
    Release(ReleaseArgs),
    /// Free the reservations of attachments that no longer exist (dry run unless --apply)
    Gc(GcArgs),
}

#[derive(Args, Debug)]
pub(crate) struct StoreArgs {
    /// host-local's dataDir (the directory holding one directory per network) [default: each
    /// network's `ipam.dataDir` from the configs in the CNI conf dir, else /var/lib/cni/networks]
    #[arg(long, value_name = "DIR")]
    pub(crate) ipam_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) conf: ConfDirOpt,
}

#[derive(Args, Debug)]
pub(crate) struct LsArgs {
    /// Only this network (the config's `name`)
    pub(crate) network: Option<String>,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Print JSON instead of tables
    #[arg(long)]
    pub(crate) json: bool,
    /// Show whole container IDs (tables show their first 13 characters, as crictl does)
    #[arg(long, visible_alias = "wide")]
    pub(crate) no_trunc: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ip", "container"])))]
pub(crate) struct ReleaseArgs {
    /// The network (the config's `name`)
    pub(crate) network: String,
    /// Free this address, whoever holds it
    #[arg(long, value_name = "IP")]
    pub(crate) ip: Option<IpAddr>,
    /// Free every address held by this container ID
    #[arg(long, value_name = "ID")]
    pub(crate) container: Option<String>,
    /// With --container: only this interface's addresses
    #[arg(long, value_name = "IF")]
    pub(crate) ifname: Option<String>,
    /// Print what would be released, and release nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print what was released as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["valid", "from_cri"])))]
pub(crate) struct GcArgs {
    /// The network (the config's `name`)
    pub(crate) network: String,
    /// A live attachment: a container ID (every interface of it) or ID/IFNAME; repeat the option
    /// for more. Everything else older than --min-age is freed
    #[arg(long, value_name = "ID[/IFNAME]", value_parser = valid::parse)]
    pub(crate) valid: Vec<valid::Attachment>,
    /// Take the live attachments from the container runtime's pod sandboxes (k3s crictl, or
    /// crictl on PATH); refuses when the runtime cannot be asked
    #[arg(long)]
    pub(crate) from_cri: bool,
    /// With --from-cri: the CRI endpoint [default: CONTAINER_RUNTIME_ENDPOINT, else the k3s
    /// containerd socket of the instance in --data-dir]
    #[arg(long, value_name = "ENDPOINT")]
    pub(crate) runtime_endpoint: Option<String>,
    /// With --from-cri: the k3s-sandbox instance whose containerd to ask [env:
    /// K3S_SANDBOX_DATA_DIR] (host-local's dataDir is --ipam-dir)
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Free them (without it, only show what would be freed)
    #[arg(long)]
    pub(crate) apply: bool,
    /// Keep reservations younger than this: a pod being created holds its address before the
    /// runtime lists it
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_MIN_AGE, value_parser = parse_duration)]
    pub(crate) min_age: Duration,
    /// With --from-cri --apply: go on when the runtime lists no pod sandbox at all (everything
    /// would be freed)
    #[arg(long)]
    pub(crate) allow_empty: bool,
    /// Print the plan (and what was freed) as JSON on stdout
    #[arg(long)]
    pub(crate) json: bool,
    /// Show whole container IDs (tables show their first 13 characters, as crictl does)
    #[arg(long, visible_alias = "wide")]
    pub(crate) no_trunc: bool,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

impl IpamArgs {
    /// Whether the command was asked for JSON.
    pub(crate) fn json(&self) -> bool {
        match &self.command {
            IpamCommand::Ls(a) => a.json,
            IpamCommand::Release(a) => a.json,
            IpamCommand::Gc(a) => a.json,
        }
    }
}

/// Options that apply only together with another one: a usage error otherwise.
fn needs(given: bool, option: &str, other: &str) -> Result<()> {
    if given {
        return Err(Failure::Usage(format!(
            "{option} applies only with {other}; leave it out or add {other}"
        )));
    }
    Ok(())
}

fn fmt_age(d: Option<Duration>) -> String {
    let Some(d) = d else { return "?".into() };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

fn fmt_range(r: &Range) -> String {
    format!("{}-{} ({})", r.start, r.end, r.subnet)
}

pub(crate) fn run(a: &IpamArgs) -> Result<u8> {
    match &a.command {
        IpamCommand::Ls(x) => ls::ls(&dirs(None, None, Some(&x.store.conf))?, x),
        IpamCommand::Release(x) => {
            needs(
                x.ifname.is_some() && x.container.is_none(),
                "--ifname",
                "--container",
            )?;
            release::release(&dirs(None, None, Some(&x.store.conf))?, x)
        }
        IpamCommand::Gc(x) => {
            if !x.from_cri {
                needs(x.runtime_endpoint.is_some(), "--runtime-endpoint", "--from-cri")?;
                needs(x.allow_empty, "--allow-empty", "--from-cri")?;
                needs(x.data_dir.is_some(), "--data-dir", "--from-cri")?;
            }
            let instance = InstanceOpt {
                data_dir: x.data_dir.clone(),
            };
            gc::gc(&dirs(Some(&instance), None, Some(&x.store.conf))?, x)
        }
    }
}
