//! `k3s-sandbox cni`: run a network by hand, with the command line and environment of the upstream
//! `cnitool` (and, when the binary is called through a link named `cnitool`, as `cnitool`), plus what
//! cnitool 1.1 lacks: gc, status, version, ls and `--json`. See docs/cni-cli.md.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use cni_runtime::cache::{self, Cache};
use cni_runtime::conf::{self, NetworkList};
use cni_runtime::runner::ProcessRunner;
use cni_runtime::{Runtime, RuntimeConf, json, plugins, runtime, version};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use crate::error::{Failure, Result};

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
                eprintln!("cnitool: {}", f.message);
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

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn conf_dir() -> PathBuf {
    env_var("NETCONFPATH").map_or_else(|| PathBuf::from("/etc/cni/net.d"), PathBuf::from)
}

fn cni_path() -> Vec<PathBuf> {
    match env_var("CNI_PATH") {
        Some(p) => p
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect(),
        None => vec![PathBuf::from("/opt/cni/bin")],
    }
}

/// The interface name: CNI_IFNAME, eth0 when unset (set but empty stays empty, as in cnitool).
fn ifname() -> String {
    std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".to_string())
}

/// CNI_ARGS as cnitool reads it: `K=V` pairs separated by `;`, each with a non-empty key and value.
pub fn parse_cni_args(raw: &str) -> Result<Vec<(String, String)>> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(';')
        .map(|item| {
            let parts: Vec<&str> = item.split('=').collect();
            match parts.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Failure::new(format!(
                    "invalid CNI_ARGS pair {item:?}: each pair must be KEY=VALUE with a non-empty key and value"
                ))),
            }
        })
        .collect()
}

/// CAP_ARGS: a JSON object of capability arguments.
pub fn parse_cap_args(raw: &str) -> Result<Map<String, Value>> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Failure::new(
            "CAP_ARGS must be a JSON object, e.g. {\"portMappings\":[...]}",
        )),
        Err(e) => Err(Failure::new(format!("CAP_ARGS is not valid JSON: {e}"))),
    }
}

/// `path` made absolute and cleaned lexically, as Go's filepath.Abs does (no symlinks resolved).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::new(format!("cannot make {} absolute: {e}", path.display())))?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// cnitool's container ID for a netns path: `cnitool-` and the first 10 bytes of its SHA-512, in hex.
pub fn container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
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
        CniCommand::Gc(g) => gc(&ctx, g),
        CniCommand::Status(n) => status(&ctx, &n.network),
        CniCommand::Version(v) => versions(&ctx, v.plugin.as_deref()),
        CniCommand::Ls => ls(&ctx),
    }
}

/// The result in the spec's field order (cniVersion, interfaces, ips, routes, dns), as Go prints it.
fn reorder_result(result: &Value) -> Option<Vec<u8>> {
    let v = result.get("cniVersion")?.as_str()?;
    let ver = cni_core::Version::parse(v)?;
    let model = cni_core::NetResult::from_json(result, ver, "the result").ok()?;
    model.to_json(ver).ok()
}

fn gc(ctx: &Ctx, g: &GcArgs) -> Result<u8> {
    let list = ctx.network(&g.network)?;
    let default_if = ifname();
    let valid: Vec<(String, String)> = g
        .valid
        .iter()
        .map(|v| match v.split_once('/') {
            Some((id, i)) => (id.to_string(), i.to_string()),
            None => (v.clone(), default_if.clone()),
        })
        .collect();
    let before = ctx.cache.entries(&list.name);
    let outcome = ctx.runtime().gc(&list, &valid);
    let after = ctx.cache.entries(&list.name);
    let released: Vec<Value> = before
        .iter()
        .filter(|e| {
            !after
                .iter()
                .any(|a| a.container_id == e.container_id && a.ifname == e.ifname)
        })
        .map(|e| json!({"containerID": e.container_id, "ifname": e.ifname}))
        .collect();
    let errors: Vec<String> = outcome
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect();
    if ctx.json {
        print_json(&json!({
            "network": list.name,
            "cniVersion": list.cni_version,
            "released": released,
            "kept": after.iter().map(|e| json!({"containerID": e.container_id, "ifname": e.ifname})).collect::<Vec<_>>(),
            "errors": errors,
        }))?;
    } else {
        eprintln!(
            "k3s-sandbox: gc {}: released {} cached attachment(s), kept {}{}",
            list.name,
            released.len(),
            after.len(),
            if list.disable_gc {
                " (disableGC is set)"
            } else {
                ""
            }
        );
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure::new(errors.join("\n")))
    }
}

fn status(ctx: &Ctx, name: &str) -> Result<u8> {
    let list = ctx.network(name)?;
    let ran = ctx.runtime().status(&list).map_err(fail)?;
    if ctx.json {
        print_json(
            &json!({"network": list.name, "cniVersion": list.cni_version, "ready": true, "asked": ran}),
        )?;
    } else if ran {
        eprintln!(
            "k3s-sandbox: network {} is ready ({} plugins answered STATUS)",
            list.name,
            list.plugins.len()
        );
    } else {
        eprintln!(
            "k3s-sandbox: network {} runs at cniVersion {:?}, before STATUS (1.1.0): nothing to ask, taken as ready",
            list.name, list.cni_version
        );
    }
    Ok(0)
}

fn versions(ctx: &Ctx, plugin: Option<&str>) -> Result<u8> {
    let r = ctx.runtime();
    let names: Vec<String> = match plugin {
        Some(p) => vec![p.to_string()],
        None => plugins::ALL
            .iter()
            .filter(|p| ctx.path.iter().any(|d| d.join(p).is_file()))
            .map(|p| p.to_string())
            .collect(),
    };
    if names.is_empty() {
        return Err(Failure::new(format!(
            "none of the sandbox-cni plugins ({}) is on CNI_PATH ({}); name a plugin or set CNI_PATH",
            plugins::ALL.join(", "),
            ctx.path
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        )));
    }
    let mut out = Map::new();
    let mut failed = Vec::new();
    for n in &names {
        match r.version(n) {
            Ok(v) => {
                if !ctx.json {
                    println!("{n}: {}", runtime::supported_versions(&v).join(", "));
                }
                out.insert(n.clone(), v);
            }
            Err(e) => failed.push(e.message),
        }
    }
    if ctx.json {
        print_json(&json!({"runtime": version::CURRENT, "plugins": out}))?;
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Failure::new(failed.join("\n")))
    }
}

fn ls(ctx: &Ctx) -> Result<u8> {
    let files =
        conf::config_files(&ctx.conf_dir).map_err(|e| Failure::io("read the conf dir", &ctx.conf_dir, &e))?;
    let mut rows = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let row = match NetworkList::load_file(f) {
            Ok(l) => json!({
                "file": file,
                "name": l.name,
                "cniVersion": l.cni_version,
                "plugins": l.chain(),
                "containerdDefault": i == 0,
            }),
            Err(e) => json!({"file": file, "error": e, "containerdDefault": i == 0}),
        };
        rows.push(row);
    }
    if ctx.json {
        return print_json(&Value::Array(rows)).map(|()| 0);
    }
    if rows.is_empty() {
        eprintln!(
            "k3s-sandbox: no .conf, .conflist or .json files in {}",
            ctx.conf_dir.display()
        );
    }
    for r in &rows {
        let mark = if r["containerdDefault"] == true { "*" } else { " " };
        let file = r["file"].as_str().unwrap_or_default();
        match r.get("error").and_then(Value::as_str) {
            Some(e) => println!("{mark} {file}  INVALID: {e}"),
            None => println!(
                "{mark} {file}  {}  cniVersion {}  {}",
                r["name"].as_str().unwrap_or_default(),
                r["cniVersion"]
                    .as_str()
                    .filter(|v| !v.is_empty())
                    .unwrap_or("(none)"),
                r["plugins"]
                    .as_array()
                    .map(|p| p
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" -> "))
                    .unwrap_or_default()
            ),
        }
    }
    if !rows.is_empty() {
        println!("(* = the file containerd picks as the default network)");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_is_cnitools() {
        // `printf /var/run/netns/test | sha512sum | cut -c1-20`
        assert_eq!(
            container_id(Path::new("/var/run/netns/test")),
            "cnitool-7b8a61d5d8e94d07cbe4"
        );
    }

    #[test]
    fn paths_are_made_absolute_lexically() {
        assert_eq!(absolute(Path::new("/a/./b/../c")).unwrap(), PathBuf::from("/a/c"));
        assert!(absolute(Path::new("x")).unwrap().is_absolute());
    }

    #[test]
    fn cni_args_follow_cnitool() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert!(parse_cni_args("").unwrap().is_empty());
        for bad in ["A", "A=", "=1", "A=1=2", "A=1;"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
        assert!(parse_cap_args("[]").is_err());
        assert!(parse_cap_args("{").is_err());
        assert_eq!(parse_cap_args(r#"{"a":1}"#).unwrap()["a"], 1);
    }
}
