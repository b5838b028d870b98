//! `k3s-sandbox`: check a sandbox, wire the sandbox-cni plugins and run k3s. See docs/k3s.md.
//! This file is only the entry point: the command line, the dispatch to the subcommands of the
//! library, and the exit status.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use k3s_sandbox::commands::doctor::DoctorArgs;
use k3s_sandbox::commands::down::DownArgs;
use k3s_sandbox::commands::env::EnvArgs;
use k3s_sandbox::commands::logs::LogsArgs;
use k3s_sandbox::commands::selftest::SelftestArgs;
use k3s_sandbox::commands::status::StatusArgs;
use k3s_sandbox::commands::up::UpArgs;
use k3s_sandbox::commands::{self, GlobalArgs};
use k3s_sandbox::error::USAGE_EXIT;
use k3s_sandbox::{cni_cmd, ipam_cmd, trace_cmd};

/// musl's allocator returns freed small blocks to the kernel at once, so a start of k3s-sandbox made
/// about 60 mmap/munmap calls (a third of the CPU time of a `cni` call outside its plugins).
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

const AFTER_HELP: &str = "\
Environment:
  K3S_BIN               k3s executable to use (default: `k3s` on PATH)
  K3S_SANDBOX_DATA_DIR  same as --data-dir (the flag wins; empty means unset)
  CNI_BIN_DIR           same as --cni-bin-dir
  CNI_CONF_DIR          same as --cni-conf-dir

Default data dir: /var/lib/k3s-sandbox for root, else $XDG_DATA_HOME/k3s-sandbox
or ~/.local/share/k3s-sandbox. One data dir holds one k3s instance.
Human-readable progress goes to stderr; machine-readable output to stdout.";

const ABOUT: &str = "Check a sandbox, wire the sandbox-cni plugins and run k3s in it";

#[derive(Parser, Debug)]
#[command(name = "k3s-sandbox", version, about = ABOUT, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Probe the environment: one ok/warn/FAIL line per check, exit 1 on any FAIL
    Doctor(DoctorArgs),
    /// Run ADD, CHECK and DEL through the installed plugins like containerd; print the pod IP
    Selftest(SelftestArgs),
    /// Install or verify the plugins, write the conflist, start k3s and wait until it is ready
    Up(UpArgs),
    /// Stop k3s (SIGTERM to its process group, SIGKILL after the timeout)
    Down(DownArgs),
    /// Report the instance: exit 0 running and ready, 2 running not ready, 3 stale pid file, 1 stopped
    Status(StatusArgs),
    /// Print `export KUBECONFIG=...` for the instance
    Env(EnvArgs),
    /// Print the end of the k3s log
    Logs(LogsArgs),
    /// Run a CNI network by hand like cnitool: add, check, del, gc, status, version, ls
    Cni(cni_cmd::CniArgs),
    /// Switch the plugins' invocation trace on or off, or print the recorded calls
    Trace(trace_cmd::TraceArgs),
    /// Inspect and repair host-local address stores: ls, release, gc
    Ipam(ipam_cmd::IpamArgs),
    /// What pods inside gVisor need (cgroups, runtime, containerd settings); mount/unmount them
    PodsProfile(commands::pods_profile::PodsProfileArgs),
}

/// The same command line with `cni` as its only subcommand: `k3s-sandbox cni ...` is parsed with it,
/// since building the parser of every subcommand cost half a process start on each call (see
/// docs/performance.md). Same root, same global options, same `cni` subtree (a test compares them),
/// so what `cni` accepts, prints and refuses is unchanged.
#[derive(Parser, Debug)]
#[command(name = "k3s-sandbox", version, about = ABOUT, after_help = AFTER_HELP)]
struct CniCli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: CniOnly,
}

#[derive(Subcommand, Debug)]
enum CniOnly {
    /// Run a CNI network by hand like cnitool: add, check, del, gc, status, version, ls
    Cni(cni_cmd::CniArgs),
}

/// Parses the command line, through [`CniCli`] when the first argument is `cni`.
fn parse() -> Result<Cli, clap::Error> {
    if std::env::args_os().nth(1).is_some_and(|a| a == "cni") {
        return CniCli::try_parse().map(|c| Cli {
            global: c.global,
            command: match c.command {
                CniOnly::Cni(a) => Command::Cni(a),
            },
        });
    }
    Cli::try_parse()
}

fn main() -> ExitCode {
    if let Some(code) = cni_cmd::run_as_cnitool() {
        return code;
    }
    let cli = match parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(USAGE_EXIT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Doctor(a) => commands::doctor::run(&cli.global, &a),
        Command::Selftest(a) => commands::selftest::run(&cli.global, &a),
        Command::Up(a) => commands::up::run(&cli.global, &a),
        Command::Down(a) => commands::down::run(&cli.global, &a),
        Command::Status(a) => commands::status::run(&cli.global, &a),
        Command::Env(a) => commands::env::run(&cli.global, &a),
        Command::Logs(a) => commands::logs::run(&cli.global, &a),
        Command::Cni(a) => cni_cmd::run(&a),
        Command::Trace(a) => trace_cmd::trace(&a),
        Command::Ipam(a) => commands::dirs(&cli.global).and_then(|d| ipam_cmd::ipam(&d, &a)),
        Command::PodsProfile(a) => commands::pods_profile::run(&cli.global, &a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("k3s-sandbox: error: {f}");
            ExitCode::from(f.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every help text of a command and its subcommands, by path.
    fn helps(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        out.push((path.to_string(), cmd.render_long_help().to_string()));
        out.push((format!("{path} -h"), cmd.render_help().to_string()));
        for sub in cmd.get_subcommands_mut() {
            let p = format!("{path} {}", sub.get_name());
            helps(sub, &p, out);
        }
    }

    #[test]
    fn the_cni_parser_is_the_full_parsers_cni_subtree() {
        let mut full = Cli::command();
        full.build();
        let mut fast = CniCli::command();
        fast.build();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        helps(full.find_subcommand_mut("cni").expect("cni"), "cni", &mut a);
        helps(fast.find_subcommand_mut("cni").expect("cni"), "cni", &mut b);
        assert!(a.len() > 10, "{}", a.len());
        assert_eq!(a, b);
        assert_eq!(full.get_name(), fast.get_name());
        assert_eq!(full.get_version(), fast.get_version());
        assert_eq!(
            full.get_about().map(ToString::to_string),
            fast.get_about().map(ToString::to_string)
        );
        let globals = |c: &clap::Command| c.get_arguments().map(|a| format!("{a:?}")).collect::<Vec<_>>();
        assert_eq!(globals(&full), globals(&fast));
    }

    #[test]
    fn cni_command_lines_parse_the_same_way() {
        for argv in [
            &["k3s-sandbox", "cni", "add", "net", "/run/netns/x"][..],
            &[
                "k3s-sandbox",
                "cni",
                "--data-dir",
                "/d",
                "--json",
                "gc",
                "net",
                "--valid",
                "a/eth1",
            ],
            &["k3s-sandbox", "cni", "version"],
            &[
                "k3s-sandbox",
                "cni",
                "--timeout",
                "5",
                "ls",
                "--cni-conf-dir",
                "/c",
            ],
        ] {
            let a = Cli::try_parse_from(argv).expect("full");
            let b = CniCli::try_parse_from(argv).expect("fast");
            let CniOnly::Cni(fast) = b.command;
            assert_eq!(format!("{:?}", a.command), format!("{:?}", Command::Cni(fast)));
            assert_eq!(format!("{:?}", a.global), format!("{:?}", b.global));
        }
        for argv in [
            &["k3s-sandbox", "cni"][..],
            &["k3s-sandbox", "cni", "ad", "net", "ns"],
            &["k3s-sandbox", "cni", "add", "net"],
            &["k3s-sandbox", "cni", "--version"],
            &["k3s-sandbox", "cni", "--help"],
            &["k3s-sandbox", "cni", "gc", "--bogus"],
            &["k3s-sandbox", "cni", "--timeout", "x", "ls"],
        ] {
            let a = Cli::try_parse_from(argv).expect_err("full");
            let b = CniCli::try_parse_from(argv).expect_err("fast");
            assert_eq!(a.kind(), b.kind(), "{argv:?}");
            assert_eq!(a.render().to_string(), b.render().to_string(), "{argv:?}");
        }
    }
}
