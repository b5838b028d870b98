//! The command line: the clap tree of every subcommand (with the `cni`-only fast parser), the
//! dispatch to `commands::*::run`, JSON errors under `--json`, and usage hints for options given
//! where they do not apply. `main.rs` only calls [`main`].

use clap::{Parser, Subcommand};

use crate::commands::{
    cni, completions, doctor, down, env, ipam, logs, man, pods_profile, selftest, status, trace, up,
};
use crate::error::{Failure, USAGE_EXIT};
use crate::output::{self, errln, say};

pub(crate) const AFTER_HELP: &str = "\
Each subcommand takes the options that apply to it (see `k3s-sandbox SUBCOMMAND --help`).
Directories, in the one order every subcommand uses: the option, then cnitool's variable
(NETCONFPATH, CNI_PATH, CNI_CACHE_DIR), then CNI_CONF_DIR / CNI_BIN_DIR, then the default
(/etc/cni/net.d, /opt/cni/bin, /var/lib/cni). --data-dir is k3s-sandbox's instance directory
(env K3S_SANDBOX_DATA_DIR); host-local's dataDir is `ipam --ipam-dir`. K3S_BIN names the k3s
executable. NO_COLOR and CLICOLOR are honoured. Progress goes to stderr, data to stdout.";

pub(crate) const ABOUT: &str = "Check a sandbox, wire the sandbox-cni plugins and run k3s in it";

#[derive(Parser, Debug)]
#[command(name = "k3s-sandbox", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Probe the environment: one ok/warn/FAIL line per check, exit 1 on any FAIL
    Doctor(doctor::DoctorArgs),
    /// Run ADD, CHECK and DEL through the installed plugins like containerd; print the pod IP
    Selftest(selftest::SelftestArgs),
    /// Install or verify the plugins, write the conflist, start k3s and wait until it is ready
    Up(up::UpArgs),
    /// Stop k3s (SIGTERM to its process group, SIGKILL after the timeout)
    Down(down::DownArgs),
    /// Report the instance: exit 0 running and ready, 2 running not ready, 3 stale pid file, 1 stopped
    Status(status::StatusArgs),
    /// Print `export KUBECONFIG=...` for the instance
    Env(env::EnvArgs),
    /// Print the end of the k3s log
    Logs(logs::LogsArgs),
    /// Run a CNI network by hand like cnitool: add, check, del, gc, status, version, ls
    Cni(cni::CniArgs),
    /// Switch the plugins' invocation trace on or off, or print the recorded calls
    Trace(trace::TraceArgs),
    /// Inspect and repair host-local address stores: ls, release, gc
    Ipam(ipam::IpamArgs),
    /// Print a shell completion script (bash, zsh or fish)
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff)
    Man(man::ManArgs),
    /// What pods inside gVisor need (cgroups, runtime, containerd settings); mount/unmount them
    PodsProfile(pods_profile::PodsProfileArgs),
}

impl Command {
    /// Whether the command was asked for JSON: its errors then come as a JSON object on stdout.
    pub(crate) fn json(&self) -> bool {
        match self {
            Command::Doctor(a) => a.json,
            Command::Cni(a) => a.json(),
            Command::Trace(a) => a.json,
            Command::Ipam(a) => a.json(),
            Command::Status(a) => a.json,
            Command::Selftest(a) => a.json,
            Command::Up(_)
            | Command::Down(_)
            | Command::Env(_)
            | Command::Logs(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::PodsProfile(_) => false,
        }
    }

    /// Runs the command: every one has the same signature.
    pub(crate) fn run(&self) -> crate::error::Result<u8> {
        match self {
            Command::Doctor(a) => doctor::run(a),
            Command::Selftest(a) => selftest::run(a),
            Command::Up(a) => up::run(a),
            Command::Down(a) => down::run(a),
            Command::Status(a) => status::run(a),
            Command::Env(a) => env::run(a),
            Command::Logs(a) => logs::run(a),
            Command::Cni(a) => cni::run(a),
            Command::Trace(a) => trace::run(a),
            Command::Ipam(a) => ipam::run(a),
            Command::Completions(a) => completions::run(a),
            Command::Man(a) => man::run(a),
            Command::PodsProfile(a) => pods_profile::run(a),
        }
    }
}

/// The same command line with `cni` as its only subcommand: `k3s-sandbox cni ...` is parsed with it,
/// since building the parser of every subcommand cost half a process start on each call (see
/// docs/performance.md). Same root, same `cni` subtree (a test compares them), so what `cni`
/// accepts, prints and refuses is unchanged.
#[derive(Parser, Debug)]
#[command(name = "k3s-sandbox", version, about = ABOUT, after_help = AFTER_HELP)]
pub(crate) struct CniCli {
    #[command(subcommand)]
    pub(crate) command: CniOnly,
}

#[derive(Subcommand, Debug)]
pub(crate) enum CniOnly {
    /// Run a CNI network by hand like cnitool: add, check, del, gc, status, version, ls
    Cni(cni::CniArgs),
}

/// Parses `argv`, through [`CniCli`] when the first argument is `cni`.
pub(crate) fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    if argv.get(1).is_some_and(|a| a == "cni") {
        return CniCli::try_parse_from(&argv).map(|c| Cli {
            command: match c.command {
                CniOnly::Cni(a) => Command::Cni(a),
            },
        });
    }
    Cli::try_parse_from(&argv)
}

/// What to add to clap's error for an option given where it does not apply.
pub(crate) fn usage_hint(argv: &[String], err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    if err.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let name = arg.split('=').next().unwrap_or(arg);
    let subs = [
        "doctor", "selftest", "up", "down", "status", "env", "logs", "cni", "trace", "ipam",
    ];
    let sub_at = argv
        .iter()
        .skip(1)
        .position(|a| subs.contains(&a.as_str()))
        .map(|i| i + 1);
    let opt_at = argv.iter().position(|a| a.split('=').next() == Some(name));
    let known = [
        "--data-dir",
        "--cni-conf-dir",
        "--cni-bin-dir",
        "--cache-dir",
        "--json",
    ];
    let (Some(sub_at), Some(opt_at)) = (sub_at, opt_at) else {
        return None;
    };
    if !known.contains(&name) {
        return None;
    }
    let sub = argv[sub_at].as_str();
    // `cni` and `ipam` have subcommands of their own: the option belongs after that one.
    let nested = matches!(sub, "cni" | "ipam")
        .then(|| argv.iter().skip(sub_at + 1).find(|a| !a.starts_with('-')))
        .flatten();
    let path = match nested {
        Some(n) => format!("{sub} {n}"),
        None => sub.to_string(),
    };
    let deepest = nested
        .and_then(|n| argv.iter().position(|a| a == n))
        .unwrap_or(sub_at);
    if opt_at < deepest {
        return Some(format!(
            "options go after the subcommand they belong to, e.g. `k3s-sandbox {path} {name} ...`"
        ));
    }
    if sub == "ipam" && name == "--data-dir" {
        return Some(
            "--data-dir is k3s-sandbox's instance directory (only `ipam gc --from-cri` uses it, to ask \
             that instance's containerd); host-local's dataDir is --ipam-dir DIR"
                .into(),
        );
    }
    Some(format!(
        "`{path}` has no use for {name}: `k3s-sandbox {path} --help` lists the options that apply"
    ))
}

/// The whole program: parse, run, report. Returns the exit status.
pub fn main() -> u8 {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = match parse(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            if e.use_stderr() && argv.iter().any(|a| a == "--json") {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or_default();
                output::print_json(&output::error_json(
                    first.trim_start_matches("error: "),
                    USAGE_EXIT,
                ));
            }
            let _ = e.print();
            if let Some(h) = usage_hint(&argv, &e) {
                errln!("hint: {h}");
            }
            return if e.use_stderr() { USAGE_EXIT } else { 0 };
        }
    };
    match cli.command.run() {
        Ok(code) => code,
        Err(f) => report(&f, cli.command.json()),
    }
}

/// Prints a failure (and, under `--json`, its JSON object on stdout); returns the exit status.
fn report(f: &Failure, json: bool) -> u8 {
    let code = f.exit_code();
    if json && !matches!(f, Failure::Reported(_)) {
        output::print_json(&output::error_json(&f.message(), code));
    }
    say(&format!("error: {f}"));
    code
}

#[cfg(test)]
mod tests;
