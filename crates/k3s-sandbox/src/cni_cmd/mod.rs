//! `k3s-sandbox cni`: run a network by hand, with the command line and environment of the upstream
//! `cnitool` (and, when the binary is called through a link named `cnitool`, as `cnitool`), plus what
//! cnitool 1.1 lacks: gc, status, version, ls and `--json`. See docs/cni-cli.md.

mod env;
mod gc;
mod ls;
mod status;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use cni_runtime::cache::{self, Cache};
use cni_runtime::conf::{self, NetworkList};
use cni_runtime::runner::ProcessRunner;
use cni_runtime::{Runtime, RuntimeConf, json, runtime};
use serde_json::Value;

use crate::error::{Failure, Result};
use env::{absolute, cni_path, conf_dir, container_id, env_var, ifname, parse_cap_args, parse_cni_args};

const AFTER_HELP: &str = "\
Environment (as cnitool reads it):
  NETCONFPATH    directory of network configs (default: /etc/cni/net.d)
  CNI_PATH       plugin directories, ':'-separated (default: /opt/cni/bin)
  CNI_IFNAME     interface name (default: eth0)
  CNI_ARGS       KEY=VALUE pairs separated by ';'
  CAP_ARGS       capability arguments as a JSON object, e.g. {\"portMappings\":[...]}
  CNI_CACHE_DIR  libcni's result cache directory (default: /var/lib/cni)

The container ID is `cnitool-` and the first 10 bytes of the SHA-512 of the absolute NETNS path
in hex, as cnitool computes it, so attachments made here can be removed with cnitool or libcni
and the other way round.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct CniArgs {
    /// Machine-readable output on stdout (gc, status, version, ls)
    #[arg(long, global = true)]
    pub json: bool,
    /// libcni's result cache directory [env: CNI_CACHE_DIR] [default: /var/lib/cni]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Seconds a plugin may run before it is killed with its process group
    #[arg(long, global = true, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: CniCommand,
}

#[derive(Subcommand, Debug)]
pub enum CniCommand {
    /// Add the container NETNS to NETWORK and print the result (as cnitool does)
    Add(Attach),
    /// Check the attachment of NETNS to NETWORK against the cached result
    Check(Attach),
    /// Delete the attachment of NETNS from NETWORK
    Del(Attach),
    /// DEL every cached attachment of NETWORK not listed with --valid, then send GC (1.1.0)
    Gc(GcArgs),
    /// Ask every plugin of NETWORK whether it is ready (STATUS, 1.1.0)
    Status(NetworkArg),
    /// Ask a plugin (default: every sandbox-cni plugin on CNI_PATH) for its supported versions
    Version(VersionArgs),
    /// List the networks in NETCONFPATH, their plugin chains and the file containerd would pick
    Ls,
}

#[derive(Args, Debug)]
pub struct Attach {
    /// Network name (or a path to a config file)
    pub network: String,
    /// Network namespace path (any path works with plugins that do not enter it)
    pub netns: PathBuf,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Network name (or a path to a config file)
    pub network: String,
    /// An attachment to keep: container ID, optionally with /IFNAME (default: CNI_IFNAME or eth0)
    #[arg(long, value_name = "ID[/IFNAME]")]
    pub valid: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NetworkArg {
    /// Network name (or a path to a config file)
    pub network: String,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Plugin type to ask
    pub plugin: Option<String>,
}

/// The command line when the binary runs as `cnitool`.
#[derive(Parser, Debug)]
#[command(
    name = "cnitool",
    version,
    about = "Run CNI plugins by hand (k3s-sandbox cni)"
)]
pub struct CnitoolCli {
    #[command(flatten)]
    pub args: CniArgs,
}

/// When the binary was called through a link named `cnitool`: runs as `k3s-sandbox cni` and returns
/// the exit status (1 for every failure and usage error, as cnitool).
pub fn run_as_cnitool() -> Option<std::process::ExitCode> {
    let argv0 = std::env::args_os().next()?;
    if Path::new(&argv0).file_name()? != "cnitool" {
        return None;
    }
    let code = match CnitoolCli::try_parse() {
        Ok(c) => match run(&c.args) {
            Ok(code) => code,
            Err(f) => {
                eprintln!("cnitool: {f}");
                1
            }
        },
        Err(e) => {
            let _ = e.print();
            u8::from(e.use_stderr())
        }
    };
    Some(std::process::ExitCode::from(code))
}

struct Ctx {
    runner: ProcessRunner,
    path: Vec<PathBuf>,
    cache: Cache,
    conf_dir: PathBuf,
    json: bool,
}

impl Ctx {
    fn new(a: &CniArgs) -> Ctx {
        let cache_dir = a
            .cache_dir
            .clone()
            .or_else(|| env_var("CNI_CACHE_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(cache::DEFAULT_DIR));
        Ctx {
            runner: ProcessRunner {
                timeout: Duration::from_secs(a.timeout.max(1)),
                pass_stderr: true,
            },
            path: cni_path(),
            cache: Cache::new(cache_dir),
            conf_dir: conf_dir(),
            json: a.json,
        }
    }

    fn runtime(&self) -> Runtime<'_> {
        Runtime {
            exec: &self.runner,
            path: self.path.clone(),
            cache: self.cache.clone(),
            base_env: std::env::vars_os().collect::<Vec<(OsString, OsString)>>(),
        }
    }

    fn network(&self, name: &str) -> Result<NetworkList> {
        conf::find(&self.conf_dir, name).map_err(Failure::new)
    }
}

fn fail(e: runtime::Error) -> Failure {
    Failure::new(e.message)
}

fn print_json(v: &Value) -> Result<()> {
    let text = serde_json::to_vec(v).map_err(|e| Failure::new(e.to_string()))?;
    println!("{}", json::indent(&text, "    "));
    Ok(())
}

/// Runs `k3s-sandbox cni ...` (and `cnitool ...`).
pub fn run(a: &CniArgs) -> Result<u8> {
    let ctx = Ctx::new(a);
    match &a.command {
        CniCommand::Add(at) | CniCommand::Check(at) | CniCommand::Del(at) => {
            let list = ctx.network(&at.network)?;
            let netns = absolute(&at.netns)?;
            let rt = RuntimeConf {
                container_id: container_id(&netns),
                netns: netns.to_string_lossy().into_owned(),
                ifname: ifname(),
                args: parse_cni_args(&std::env::var("CNI_ARGS").unwrap_or_default())?,
                capability_args: parse_cap_args(&std::env::var("CAP_ARGS").unwrap_or_default())?,
            };
            let r = ctx.runtime();
            match &a.command {
                CniCommand::Add(_) => {
                    if let Some(result) = r.add(&list, &rt).map_err(fail)? {
                        // As cnitool prints it: indented by four spaces, no newline at the end.
                        let bytes = serde_json::to_vec(&result).map_err(|e| Failure::new(e.to_string()))?;
                        let text = reorder_result(&result).unwrap_or(bytes);
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(json::indent(&text, "    ").as_bytes());
                        let _ = out.flush();
                    }
                }
                CniCommand::Check(_) => r.check(&list, &rt).map_err(fail)?,
                _ => r.del(&list, &rt).map_err(fail)?,
            }
            Ok(0)
        }
        CniCommand::Gc(g) => gc::gc(&ctx, g),
        CniCommand::Status(n) => status::status(&ctx, &n.network),
        CniCommand::Version(v) => status::versions(&ctx, v.plugin.as_deref()),
        CniCommand::Ls => ls::ls(&ctx),
    }
}

/// The result in the spec's field order (cniVersion, interfaces, ips, routes, dns), as Go prints it.
fn reorder_result(result: &Value) -> Option<Vec<u8>> {
    let v = result.get("cniVersion")?.as_str()?;
    let ver = cni_core::Version::parse(v)?;
    let model = cni_core::NetResult::from_json(result, ver, "the result").ok()?;
    model.to_json(ver).ok()
}
