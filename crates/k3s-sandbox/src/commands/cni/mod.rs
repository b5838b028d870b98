//! `k3s-sandbox cni`: run a network by hand, with the command line and environment of the upstream
//! `cnitool` (and, when the binary is called through a link named `cnitool`, as `cnitool`), plus what
//! cnitool 1.1 lacks: gc, status, version, ls and `--json`. See docs/cni-cli.md.

mod args;
mod env;
mod gc;
mod ls;
mod status;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use cni_core::Command;
use cni_runtime::cache::Cache;
use cni_runtime::conf::{self, NetworkList};
use cni_runtime::runner::ProcessRunner;
use cni_runtime::{Runtime, RuntimeConf, json, version};

use super::{BinDirOpt, ConfDirOpt};
use crate::output::shell_quote;
use crate::{paths, suggest};

use crate::error::{Failure, Result};
use crate::output::{errln, say};
pub(crate) use args::{Attach, CacheOpt, CniArgs, CniCommand, GcArgs};
pub use env::container_id;
use env::{absolute, ifname, parse_cap_args, parse_cni_args};

/// The command line when the binary runs as `cnitool`.
#[derive(Parser, Debug)]
#[command(
    name = "cnitool",
    version,
    about = "Run CNI plugins by hand (k3s-sandbox cni)"
)]
pub(crate) struct CnitoolCli {
    #[command(flatten)]
    pub(crate) args: CniArgs,
}

/// cnitool's command line: `k3s-sandbox cni`'s, less `gc --apply`, since cnitool's gc always
/// applies (as upstream's does): its help lists only what does something there.
pub(crate) fn cnitool_command() -> clap::Command {
    CnitoolCli::command().mut_subcommand("gc", |gc| {
        gc.about("DEL the cached attachments of NETWORK that --valid does not keep, then send GC (1.1.0)")
            .mut_arg("apply", |a| a.hide(true))
    })
}

/// When the binary was called through a link named `cnitool`: runs as `k3s-sandbox cni` and returns
/// the exit status (1 for every failure and usage error, as cnitool: the statuses of
/// `crate::error::exit` are `k3s-sandbox cni`'s).
pub fn run_as_cnitool() -> Option<std::process::ExitCode> {
    let argv0 = std::env::args_os().next()?;
    if Path::new(&argv0).file_name()? != "cnitool" {
        return None;
    }
    let code = match cnitool_command()
        .try_get_matches()
        .and_then(|m| CnitoolCli::from_arg_matches(&m))
    {
        Ok(c) => match run_with(&c.args, true) {
            Ok(code) => code,
            Err(f) => {
                errln!("cnitool: {f}");
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
    cache_dir: PathBuf,
    conf_dir: PathBuf,
    json: bool,
}

impl Ctx {
    fn new(
        conf: Option<&ConfDirOpt>,
        bin: &BinDirOpt,
        cache: Option<&CacheOpt>,
        timeout: u64,
        json: bool,
    ) -> Ctx {
        let cache_dir = paths::cache_dir(cache.and_then(|c| c.cache_dir.as_deref()));
        Ctx {
            runner: ProcessRunner {
                timeout: Duration::from_secs(timeout),
                stderr: Some(crate::output::stderr_bytes),
            },
            path: paths::bin_path(bin.cni_bin_dir.as_deref()),
            cache: Cache::new(cache_dir.clone()),
            cache_dir,
            conf_dir: paths::conf_dir(conf.and_then(|c| c.cni_conf_dir.as_deref())),
            json,
        }
    }

    fn runtime(&self) -> Runtime<'_> {
        // The plugins see the directories this command resolved, whatever the environment said.
        let mut base_env: Vec<(OsString, OsString)> =
            std::env::vars_os().filter(|(k, _)| k != "CNI_PATH").collect();
        if let Ok(p) = std::env::join_paths(&self.path) {
            base_env.push(("CNI_PATH".into(), p));
        }
        Runtime {
            exec: &self.runner,
            path: self.path.clone(),
            cache: self.cache.clone(),
            base_env,
        }
    }

    /// The network named `name` (or the config file at a path), with the known networks and a
    /// "did you mean" when there is none, and every plugin of its chain found in the plugin dirs.
    fn network(&self, name: &str) -> Result<NetworkList> {
        if !name.contains('/') {
            let known = known_networks(&self.conf_dir);
            if !known.iter().any(|k| k == name) {
                return Err(Failure::new(format!(
                    "no network {name:?} in {}{}; {}",
                    self.conf_dir.display(),
                    suggest::did_you_mean(name, known.iter().map(String::as_str)),
                    if known.is_empty() {
                        "it has no readable network config (pick another dir with --cni-conf-dir or NETCONFPATH)".to_string()
                    } else {
                        format!("known networks: {}", known.join(", "))
                    }
                )));
            }
        }
        let list = conf::find(&self.conf_dir, name)?;
        for t in list.plugin_types() {
            if self.path.iter().any(|d| d.join(&t).is_file()) {
                continue;
            }
            let present = plugins_in(&self.path);
            return Err(Failure::PluginMissing(format!(
                "network {}: plugin {t:?} is not in {}{}",
                list.name,
                show_path(&self.path),
                suggest::did_you_mean(&t, present.iter().map(String::as_str)),
            )));
        }
        Ok(list)
    }
}

/// The names of the networks of the conf dir that can be read.
fn known_networks(conf_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = conf::config_files(conf_dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| NetworkList::load_file(f).ok().map(|l| l.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The executables of the plugin dirs.
fn plugins_in(path: &[PathBuf]) -> Vec<String> {
    path.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn show_path(path: &[PathBuf]) -> String {
    path.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The outcome of a command that went on after errors (gc, version): exit 0 without any, else the
/// failure of the first, with every message; under `--json` the object printed already holds them.
fn outcome(errors: Vec<cni_runtime::Error>, json: bool) -> Result<u8> {
    let mut errors = errors.into_iter();
    let Some(first) = errors.next() else {
        return Ok(0);
    };
    let rest: String = errors.map(|e| format!("\n{e}")).collect();
    let f = Failure::from(first).with_note(&rest);
    Err(if json { f.reported() } else { f })
}

/// Runs `k3s-sandbox cni ...`.
pub(crate) fn run(a: &CniArgs) -> Result<u8> {
    run_with(a, false)
}

/// Runs `k3s-sandbox cni ...`, or `cnitool ...` (whose gc releases at once, as upstream's does).
fn run_with(a: &CniArgs, as_cnitool: bool) -> Result<u8> {
    match &a.command {
        CniCommand::Add(at) | CniCommand::Check(at) | CniCommand::Del(at) => {
            let ctx = Ctx::new(
                Some(&at.conf),
                &at.bin,
                Some(&at.cache),
                at.timeout.timeout,
                false,
            );
            attach(&ctx, &a.command, at)
        }
        CniCommand::Gc(g) => {
            let ctx = Ctx::new(Some(&g.conf), &g.bin, Some(&g.cache), g.timeout.timeout, g.json);
            gc::gc(&ctx, g, g.apply || as_cnitool)
        }
        CniCommand::Status(s) => {
            let ctx = Ctx::new(Some(&s.conf), &s.bin, None, s.timeout.timeout, s.json);
            status::status(&ctx, &s.network)
        }
        CniCommand::Version(v) => {
            let ctx = Ctx::new(None, &v.bin, None, v.timeout.timeout, v.json);
            status::versions(&ctx, v.plugin.as_deref())
        }
        CniCommand::Ls(l) => ls::ls(&Ctx::new(Some(&l.conf), &l.bin, None, 1, l.json)),
    }
}

/// ADD, CHECK or DEL of one attachment.
fn attach(ctx: &Ctx, verb: &CniCommand, at: &Attach) -> Result<u8> {
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
    let again = format!(
        "{} {}",
        shell_quote(&at.network),
        shell_quote(&at.netns.to_string_lossy())
    );
    match verb {
        CniCommand::Add(_) => match r.add(&list, &rt) {
            Ok(Some(added)) => {
                // As cnitool prints it: in the spec's field order, indented by four spaces, no newline
                // at the end.
                let text = added.to_json().map_err(|e| Failure::new(e.msg))?;
                let _ = crate::output::stdout_bytes(json::indent(&text, "    ").as_bytes());
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::from(e).with_note(&format!(
                    "\nthe plugins before the failing one may still hold what they added (an address): \
                     release it with `k3s-sandbox cni del {again}`"
                )));
            }
        },
        CniCommand::Check(_) => {
            let checks =
                version::has(&list.cni_version, Command::Check).unwrap_or(false) && !list.disable_check;
            if checks && matches!(ctx.cache.read(&list.name, &rt.container_id, &rt.ifname), Ok(None)) {
                return Err(Failure::new(format!(
                    "no cached result for {} ({}, {}) in network {} (cache {}): nothing was added, \
                     or it was deleted; add it with `k3s-sandbox cni add {again}`",
                    rt.netns,
                    rt.container_id,
                    rt.ifname,
                    list.name,
                    ctx.cache_dir.display()
                )));
            }
            r.check(&list, &rt)?;
        }
        _ => {
            r.del(&list, &rt)?;
            say(&format!(
                "deleted {} ({}, {}) from network {}",
                rt.netns, rt.container_id, rt.ifname, list.name
            ));
        }
    }
    Ok(0)
}
