//! Every option of every command does something (issue 20): the test walks clap's command tree and
//! runs, for each option (and positional), a probe showing that the command reads it. A probe runs
//! the command with the option and, where the value alone cannot show it, without it too: a
//! marker must appear in one run's output and not in the other's. A directory option gets a path
//! of its own, which must show up in what the command says. An option with no probe fails the
//! test, so a new one needs a probe, and an option no code reads cannot pass one.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use k3s_sandbox::cli::Cli;

use crate::common::{Out, Sandbox, built_plugins_dir, exe, repo_conflist};

/// Every (command path, `--long` or positional id) of the tree that --help lists: help, version and
/// hidden entries aside (`pods-profile measure` is doctor's internal child).
fn tree(cmd: &clap::Command, path: &str, out: &mut BTreeSet<(String, String)>) {
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        if id == "help" || id == "version" || a.is_hide_set() {
            continue;
        }
        let name = a.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}"));
        out.insert((path.to_string(), name));
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        tree(sub, format!("{path} {}", sub.get_name()).trim_start(), out);
    }
}

/// Extra environment of a command.
type Env = Vec<(&'static str, String)>;

struct Probe {
    path: &'static str,
    opt: &'static str,
    with: Vec<String>,
    /// The same command without the option, when the marker must be absent there.
    without: Option<Vec<String>>,
    marker: String,
    /// Extra environment.
    env: Vec<(&'static str, String)>,
    /// Stop the instances in these data dirs afterwards.
    down: Vec<String>,
    /// The marker must be in the run without the option, and not in the run with it.
    absent_with: bool,
    /// Commands run first (argv, environment), for the state the probe needs.
    before: Vec<(Vec<String>, Env)>,
    /// A command run right after, whose output counts as the probe's (with the option only).
    after: Option<Vec<String>>,
    /// The command runs until stopped (`trace --follow`): stop it after a second.
    endless: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

const LONG_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct World {
    sb: Sandbox,
    conf: PathBuf,
    file: PathBuf,
    netns: String,
}

impl World {
    fn new() -> World {
        let sb = Sandbox::new();
        let root = sb.tmp.path().to_path_buf();
        let conf = root.join("probe-net.d");
        fs::create_dir_all(&conf).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&repo_conflist()).unwrap();
        v["plugins"][0]["ipam"]["dataDir"] = root.join("networks").to_string_lossy().into();
        fs::write(conf.join("10-sandbox-cni.conflist"), v.to_string()).unwrap();
        let file = root.join("a-file");
        fs::write(&file, "not a directory").unwrap();
        // A network whose one plugin answers ADD at once (unless the netns ends in -sleep) and
        // sleeps on every other verb, for the --timeout probes.
        let slow = root.join("slow-bin");
        fs::create_dir_all(&slow).unwrap();
        fs::write(
            slow.join("sleepy"),
            "#!/bin/sh\ncase $CNI_COMMAND:$CNI_NETNS in ADD:*-sleep) ;; ADD:*) echo '{\"cniVersion\":\"1.1.0\"}'; exit 0 ;; esac\nexec sleep 5\n",
        )
        .unwrap();
        fs::set_permissions(slow.join("sleepy"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            conf.join("20-slow.conflist"),
            r#"{"cniVersion":"1.1.0","name":"slow","plugins":[{"type":"sleepy"}]}"#,
        )
        .unwrap();
        let bin = root.join("fake-bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(crate::common::fixture("fake-crictl.sh"), bin.join("crictl")).unwrap();
        let w = World {
            conf,
            file,
            netns: root.join("netns-probe").to_string_lossy().into_owned(),
            sb,
        };
        // Two attachments, and an old reservation of a container long gone (a 64-character ID).
        for ns in [
            w.netns.clone(),
            w.root().join("netns-b").to_string_lossy().into_owned(),
        ] {
            w.run(&words(&format!("cni add sandbox-cni {ns}")), &[]).ok();
        }
        let store = root.join("networks/sandbox-cni");
        let leaked = store.join("10.42.0.200");
        fs::write(&leaked, format!("{LONG_ID}\r\neth0")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&leaked)
            .unwrap()
            .set_modified(old)
            .unwrap();
        w
    }

    fn root(&self) -> &Path {
        self.sb.tmp.path()
    }

    /// A path of its own for the probe of `opt`.
    fn sentinel(&self, opt: &str) -> String {
        self.root()
            .join(format!("sentinel{opt}"))
            .to_string_lossy()
            .into_owned()
    }

    fn data(&self, n: &str) -> String {
        self.root()
            .join(format!("data-{n}"))
            .to_string_lossy()
            .into_owned()
    }

    fn command(&self, argv: &[String], env: &[(&str, String)]) -> Command {
        let mut c = Command::new(exe());
        c.env_clear()
            .env(
                "PATH",
                format!(
                    "{}:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.root().join("fake-bin").display()
                ),
            )
            .env("HOME", self.root())
            .env("SANDBOX_CNI_TRACE_DIR", self.root().join("trace"))
            .env("XDG_DATA_HOME", self.root().join("xdg"))
            .env("FAKE_CRICTL_MODE", "up")
            .env("FAKE_CRICTL_PODS", crate::common::fixture("crictl/pods-two.json"))
            .args(argv);
        // The CNI commands get the probe network through cnitool's variables; the instance
        // commands their own directories through k3s-sandbox's.
        if ["cni", "ipam", "trace"].contains(&argv[0].as_str()) {
            c.env("NETCONFPATH", &self.conf)
                .env("CNI_PATH", built_plugins_dir())
                .env("CNI_CACHE_DIR", self.root().join("cache"));
        } else {
            c.env("CNI_CONF_DIR", &self.sb.conf)
                .env("CNI_BIN_DIR", &self.sb.bin);
        }
        for (k, v) in &self.sb.env {
            if k == "K3S_BIN" || k == "FAKE_K3S_ARGV_LOG" {
                c.env(k, v);
            }
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, argv: &[String], env: &[(&str, String)]) -> Out {
        Out::from(self.command(argv, env).output().unwrap())
    }

    /// Runs a command that does not end by itself for a second, then stops it.
    fn run_for_a_second(&self, argv: &[String], env: &[(&str, String)]) -> Out {
        use std::process::Stdio;
        let mut child = self
            .command(argv, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        let _ = child.kill();
        Out::from(child.wait_with_output().unwrap())
    }
}

fn probes(w: &World) -> Vec<Probe> {
    let s = |o: &str| w.sentinel(o);
    let src = w.sb.plugin_src.to_string_lossy().into_owned();
    let conf = w.conf.to_string_lossy().into_owned();
    let net = "sandbox-cni";
    let slow_bin = w.root().join("slow-bin").to_string_lossy().into_owned();
    let ns = &w.netns;
    let under_file = w.file.join("x").to_string_lossy().into_owned();
    let up = |d: &str, extra: &str| {
        words(&format!(
            "up --data-dir {d} --profile control-plane --plugins-from {src} --timeout 10 {extra}"
        ))
    };
    let agent = |d: &str, extra: &str| {
        words(&format!(
            "up --data-dir {d} --profile agent --plugins-from {src} --timeout 10 {extra}"
        ))
    };
    let p = |path: &'static str, opt: &'static str, with: Vec<String>, marker: &str| Probe {
        path,
        opt,
        with,
        without: None,
        marker: marker.to_string(),
        env: Vec::new(),
        down: Vec::new(),
        absent_with: false,
        before: Vec::new(),
        after: None,
        endless: false,
    };
    let flag = |path: &'static str, opt: &'static str, base: &str, marker: &str| Probe {
        without: Some(words(base)),
        ..p(path, opt, words(&format!("{base} {opt}")), marker)
    };
    let purge_conf = s("-purge-conf");
    fs::create_dir_all(&purge_conf).unwrap();
    fs::write(Path::new(&purge_conf).join("10-sandbox-cni.conflist"), "{}").unwrap();
    let logs = w.data("lg");
    fs::create_dir_all(&logs).unwrap();
    fs::write(Path::new(&logs).join("k3s.log"), "line-1\nline-2\nline-3\n").unwrap();
    let crictl_yaml = Path::new(&w.data("gd")).join("k3s/agent/etc");
    fs::create_dir_all(&crictl_yaml).unwrap();
    fs::write(
        crictl_yaml.join("crictl.yaml"),
        format!("runtime-endpoint: unix://{}\n", s("gd")),
    )
    .unwrap();
    let netns_b = w.root().join("netns-b").to_string_lossy().into_owned();
    let probe_id = k3s_sandbox::commands::cni::container_id(Path::new(ns));
    let mut v = vec![
        p(
            "doctor",
            "--data-dir",
            words(&format!("doctor --data-dir {}", s("dd"))),
            &s("dd"),
        ),
        p(
            "doctor",
            "--cni-conf-dir",
            words(&format!("doctor --cni-conf-dir {}", s("dc"))),
            &s("dc"),
        ),
        p(
            "doctor",
            "--cni-bin-dir",
            words(&format!("doctor --cni-bin-dir {}", s("db"))),
            &s("db"),
        ),
        flag("doctor", "--json", "doctor", "\"level\":"),
        Probe {
            without: Some(words("doctor")),
            ..p(
                "doctor",
                "--profile",
                words("doctor --profile control-plane"),
                "control-plane (requested)",
            )
        },
        p(
            "selftest",
            "--cni-conf-dir",
            words(&format!("selftest --cni-conf-dir {}", s("sc"))),
            &s("sc"),
        ),
        p(
            "selftest",
            "--cni-bin-dir",
            words(&format!("selftest --cni-bin-dir {}", s("sb"))),
            &s("sb"),
        ),
        flag("selftest", "--json", "selftest", "\"error\": {"),
        p(
            "selftest",
            "--conflist",
            words(&format!("selftest --conflist {}", s("sf"))),
            &s("sf"),
        ),
        p("up", "--data-dir", up(&under_file, ""), &under_file),
        Probe {
            down: vec![w.data("uc")],
            ..p(
                "up",
                "--cni-conf-dir",
                up(&w.data("uc"), &format!("--cni-conf-dir {}", s("uc"))),
                &s("uc"),
            )
        },
        Probe {
            down: vec![w.data("ub")],
            ..p(
                "up",
                "--cni-bin-dir",
                up(&w.data("ub"), &format!("--cni-bin-dir {}", s("ub"))),
                &s("ub"),
            )
        },
        Probe {
            down: vec![w.data("up")],
            ..p(
                "up",
                "--profile",
                up(&w.data("up"), ""),
                "control-plane (requested)",
            )
        },
        Probe {
            env: vec![("FAKE_K3S_MODE", "never-ready".into())],
            down: vec![w.data("ut")],
            ..p(
                "up",
                "--timeout",
                words(&format!(
                    "up --data-dir {} --profile control-plane --plugins-from {src} --timeout 1",
                    w.data("ut")
                )),
                "within 1s",
            )
        },
        p(
            "up",
            "--plugins-from",
            words(&format!(
                "up --data-dir {} --profile control-plane --plugins-from {}",
                w.data("uf"),
                s("uf")
            )),
            &s("uf"),
        ),
        Probe {
            without: Some(up(&w.data("ux"), "-- --flannel-backend=vxlan")),
            down: vec![w.data("ux")],
            ..p(
                "up",
                "--force",
                up(&w.data("ux"), "--force -- --flannel-backend=vxlan"),
                "export KUBECONFIG=",
            )
        },
        p(
            "up",
            "extra",
            up(&w.data("ue"), "-- --data-dir=/elsewhere"),
            "--data-dir=/elsewhere",
        ),
        Probe {
            without: Some(agent(&w.data("us2"), "")),
            down: vec![w.data("us1"), w.data("us2")],
            absent_with: true,
            ..p(
                "up",
                "--skip-selftest",
                agent(&w.data("us1"), "--skip-selftest"),
                "self-test",
            )
        },
        p(
            "down",
            "--data-dir",
            words(&format!("down --data-dir {}", s("xd"))),
            &s("xd"),
        ),
        p(
            "down",
            "--cni-conf-dir",
            words(&format!(
                "down --data-dir {} --purge --cni-conf-dir {purge_conf}",
                w.data("uc")
            )),
            &purge_conf,
        ),
        p(
            "down",
            "--cni-bin-dir",
            words(&format!(
                "down --data-dir {} --purge --cni-bin-dir {}",
                w.data("ub"),
                s("xb")
            )),
            &s("xb"),
        ),
        Probe {
            without: Some(words(&format!("down --data-dir {}", w.data("up")))),
            ..p(
                "down",
                "--purge",
                words(&format!("down --data-dir {} --purge", w.data("up"))),
                "removed ",
            )
        },
        Probe {
            before: vec![(up(&w.data("dr"), ""), Vec::new())],
            down: vec![w.data("dr")],
            ..p(
                "down",
                "--dry-run",
                words(&format!("down --data-dir {} --dry-run", w.data("dr"))),
                "dry run: `down` would",
            )
        },
        Probe {
            before: vec![(
                up(&w.data("xt"), ""),
                vec![("FAKE_K3S_MODE", "ignore-term".into())],
            )],
            ..p(
                "down",
                "--timeout",
                words(&format!("down --data-dir {} --timeout 1", w.data("xt"))),
                "ignored SIGTERM for 1s",
            )
        },
        p(
            "status",
            "--data-dir",
            words(&format!("status --data-dir {}", s("td"))),
            &s("td"),
        ),
        Probe {
            before: vec![(agent(&w.data("ag"), "--skip-selftest"), Vec::new())],
            down: vec![w.data("ag")],
            ..p(
                "status",
                "--cni-conf-dir",
                words(&format!(
                    "status --data-dir {} --cni-conf-dir {}",
                    w.data("ag"),
                    s("tc")
                )),
                &format!("configs of {}", s("tc")),
            )
        },
        flag(
            "status",
            "--json",
            &format!("status --data-dir {}", s("tj")),
            "\"exitCode\":",
        ),
        p(
            "env",
            "--data-dir",
            words(&format!("env --data-dir {}", s("ed"))),
            &s("ed"),
        ),
        p(
            "logs",
            "--data-dir",
            words(&format!("logs --data-dir {}", s("ld"))),
            &s("ld"),
        ),
        Probe {
            absent_with: true,
            without: Some(words(&format!("logs --data-dir {logs}"))),
            ..p(
                "logs",
                "--lines",
                words(&format!("logs --data-dir {logs} --lines 1")),
                "line-1",
            )
        },
    ];
    // cni: the directories come from the options, not from NETCONFPATH / CNI_PATH / CNI_CACHE_DIR.
    for (path, verb) in [("cni add", "add"), ("cni check", "check"), ("cni del", "del")] {
        let base = format!("cni {verb} {net} {ns}");
        v.push(p(
            path,
            "network",
            words(&format!("cni {verb} nosuchnet {ns}")),
            "nosuchnet",
        ));
        let own_ns = s(&format!("ns-{verb}"));
        v.push(p(
            path,
            "netns",
            words(&format!("cni {verb} {net} {own_ns}")),
            &own_ns,
        ));
        v.push(p(
            path,
            "--cni-conf-dir",
            words(&format!("{base} --cni-conf-dir {}", s("cc"))),
            &s("cc"),
        ));
        v.push(p(
            path,
            "--cni-bin-dir",
            words(&format!("{base} --cni-bin-dir {}", s("cb"))),
            &s("cb"),
        ));
        // The attachment lands in (add), is read from (check) and is removed from (del) the cache
        // named: `cni gc --json --cache-dir` shows it there afterwards.
        let cache = s("cache");
        let c_ns = w.root().join("netns-c").to_string_lossy().into_owned();
        let c_id = k3s_sandbox::commands::cni::container_id(Path::new(&c_ns));
        let gc_cache = words(&format!("cni gc {net} --json --cache-dir {cache}"));
        v.push(match verb {
            "add" => Probe {
                after: Some(gc_cache),
                ..p(
                    path,
                    "--cache-dir",
                    words(&format!("cni add {net} {c_ns} --cache-dir {cache}")),
                    &c_id,
                )
            },
            "check" => p(
                path,
                "--cache-dir",
                words(&format!("{base} --cache-dir {}", s("cache-empty"))),
                &s("cache-empty"),
            ),
            _ => Probe {
                before: vec![(
                    words(&format!("cni add {net} {c_ns} --cache-dir {cache}")),
                    Vec::new(),
                )],
                after: Some(gc_cache),
                ..p(
                    path,
                    "--cache-dir",
                    words(&format!("cni del {net} {c_ns} --cache-dir {cache}")),
                    "\"release\": []",
                )
            },
        });
        // The plugin of network `slow` sleeps (on ADD of a netns ending in -sleep, on CHECK and
        // DEL): killed after the --timeout given.
        let slow_ns = w.root().join("netns-slow").to_string_lossy().into_owned();
        v.push(Probe {
            before: vec![(
                words(&format!("cni add slow {slow_ns} --cni-bin-dir {slow_bin}")),
                Vec::new(),
            )],
            ..p(
                path,
                "--timeout",
                words(&format!(
                    "cni {verb} slow {slow_ns}{} --cni-bin-dir {slow_bin} --timeout 1",
                    if verb == "add" { "-sleep" } else { "" }
                )),
                "timed out after 1 s",
            )
        });
    }
    v.extend([
        p("cni gc", "network", words("cni gc nosuchnet"), "nosuchnet"),
        Probe {
            without: Some(words(&format!("cni gc {net}"))),
            ..p(
                "cni gc",
                "--valid",
                words(&format!("cni gc {net} --valid {probe_id}")),
                "1 kept",
            )
        },
        flag("cni gc", "--json", &format!("cni gc {net}"), "\"dryRun\""),
        p(
            "cni gc",
            "--cni-conf-dir",
            words(&format!("cni gc {net} --cni-conf-dir {}", s("gc"))),
            &s("gc"),
        ),
        p(
            "cni gc",
            "--cni-bin-dir",
            words(&format!("cni gc {net} --cni-bin-dir {}", s("gb"))),
            &s("gb"),
        ),
        p(
            "cni gc",
            "--cache-dir",
            words(&format!("cni gc {net} --json --cache-dir {}", s("gk"))),
            "\"release\": []",
        ),
        p(
            "cni gc",
            "--timeout",
            words(&format!(
                "cni gc slow --apply --cni-bin-dir {slow_bin} --timeout 1"
            )),
            "timed out after 1 s",
        ),
        p(
            "cni status",
            "network",
            words("cni status nosuchnet"),
            "nosuchnet",
        ),
        flag("cni status", "--json", &format!("cni status {net}"), "\"asked\""),
        p(
            "cni status",
            "--cni-conf-dir",
            words(&format!("cni status {net} --cni-conf-dir {}", s("sc"))),
            &s("sc"),
        ),
        p(
            "cni status",
            "--cni-bin-dir",
            words(&format!("cni status {net} --cni-bin-dir {}", s("sb"))),
            &s("sb"),
        ),
        p(
            "cni status",
            "--timeout",
            words(&format!("cni status slow --cni-bin-dir {slow_bin} --timeout 1")),
            "timed out after 1 s",
        ),
        p(
            "cni version",
            "plugin",
            words("cni version nosuchplugin"),
            "nosuchplugin",
        ),
        flag("cni version", "--json", "cni version", "\"supportedVersions\""),
        p(
            "cni version",
            "--cni-bin-dir",
            words(&format!("cni version --cni-bin-dir {}", s("vb"))),
            &s("vb"),
        ),
        p(
            "cni version",
            "--timeout",
            words(&format!(
                "cni version sleepy --cni-bin-dir {slow_bin} --timeout 1"
            )),
            "timed out after 1 s",
        ),
        flag("cni ls", "--json", "cni ls", "\"containerdDefault\""),
        p(
            "cni ls",
            "--cni-conf-dir",
            words(&format!("cni ls --cni-conf-dir {}", s("lc"))),
            &s("lc"),
        ),
        p(
            "cni ls",
            "--cni-bin-dir",
            words(&format!("cni ls --cni-bin-dir {}", s("lb"))),
            &s("lb"),
        ),
        p("trace", "action", words("trace status"), "trace: off"),
        p("trace", "--json", words("trace status --json"), "\"on\": false"),
        p(
            "trace",
            "--dir",
            words(&format!("trace status --dir {}", s("td"))),
            &s("td"),
        ),
        Probe {
            endless: true,
            without: Some(words(&format!("trace --dir {}", s("tf")))),
            ..p(
                "trace",
                "--follow",
                words(&format!("trace --follow --dir {}", s("tf"))),
                "waiting for the trace",
            )
        },
        Probe {
            before: vec![
                (words("trace on"), Vec::new()),
                (words(&format!("cni check {net} {netns_b}")), Vec::new()),
            ],
            without: Some(words("trace")),
            ..p(
                "trace",
                "--since",
                words("trace --since 0s"),
                "no calls in the last 0s",
            )
        },
        flag("trace", "--no-trunc", "trace", " PID "),
        p(
            "ipam ls",
            "network",
            words(&format!("ipam ls nosuchnet --cni-conf-dir {conf}")),
            "nosuchnet",
        ),
        p(
            "ipam ls",
            "--ipam-dir",
            words(&format!("ipam ls --ipam-dir {}", s("id"))),
            &s("id"),
        ),
        p(
            "ipam ls",
            "--cni-conf-dir",
            words(&format!("ipam ls --cni-conf-dir {}", s("ic"))),
            &s("ic"),
        ),
        flag("ipam ls", "--json", "ipam ls", "\"networks\""),
        flag("ipam ls", "--no-trunc", "ipam ls", LONG_ID),
        flag(
            "ipam gc",
            "--no-trunc",
            &format!("ipam gc {net} --valid a --min-age 0"),
            LONG_ID,
        ),
        p(
            "ipam release",
            "network",
            words("ipam release nosuchnet --ip 10.42.0.9"),
            "nosuchnet",
        ),
        p(
            "ipam release",
            "--ip",
            words(&format!("ipam release {net} --ip 10.42.0.9")),
            "10.42.0.9 is not reserved",
        ),
        p(
            "ipam release",
            "--container",
            words(&format!("ipam release {net} --container ctr-x")),
            "container ctr-x holds no",
        ),
        p(
            "ipam release",
            "--ifname",
            words(&format!("ipam release {net} --container ctr-x --ifname net7")),
            "(interface net7)",
        ),
        // The leaked reservation stays: a dry run frees nothing (a later probe's gc still sees it).
        p(
            "ipam release",
            "--dry-run",
            words(&format!("ipam release {net} --ip 10.42.0.200 --dry-run")),
            "would release 10.42.0.200",
        ),
        flag(
            "ipam release",
            "--json",
            &format!("ipam release {net} --ip 10.42.0.9"),
            "\"exitCode\"",
        ),
        p(
            "ipam release",
            "--ipam-dir",
            words(&format!(
                "ipam release {net} --ip 10.42.0.9 --ipam-dir {}",
                s("rd")
            )),
            &s("rd"),
        ),
        p(
            "ipam release",
            "--cni-conf-dir",
            words(&format!(
                "ipam release {net} --ip 10.42.0.9 --cni-conf-dir {}",
                s("rc")
            )),
            &s("rc"),
        ),
        p(
            "ipam gc",
            "network",
            words("ipam gc nosuchnet --valid a"),
            "nosuchnet",
        ),
        p(
            "ipam gc",
            "--valid",
            words(&format!("ipam gc {net} --valid {LONG_ID} --min-age 0")),
            "1 held by live attachments (--valid)",
        ),
        p(
            "ipam gc",
            "--from-cri",
            words(&format!("ipam gc {net} --from-cri")),
            "lists 2 pod sandboxes",
        ),
        p(
            "ipam gc",
            "--runtime-endpoint",
            words(&format!(
                "ipam gc {net} --from-cri --runtime-endpoint unix://{}",
                s("re")
            )),
            &s("re"),
        ),
        // The instance's crictl.yaml names its runtime endpoint.
        Probe {
            without: Some(words(&format!("ipam gc {net} --from-cri"))),
            ..p(
                "ipam gc",
                "--data-dir",
                words(&format!("ipam gc {net} --from-cri --data-dir {}", w.data("gd"))),
                &format!("unix://{}", s("gd")),
            )
        },
        p(
            "ipam gc",
            "--min-age",
            words(&format!("ipam gc {net} --valid a --min-age 77s")),
            "--min-age 77s",
        ),
        p(
            "ipam gc",
            "--allow-empty",
            words(&format!("ipam gc {net} --valid a --allow-empty")),
            "--allow-empty applies only with --from-cri",
        ),
        flag(
            "ipam gc",
            "--json",
            &format!("ipam gc {net} --valid a"),
            "\"dryRun\"",
        ),
        p(
            "ipam gc",
            "--ipam-dir",
            words(&format!("ipam gc {net} --valid a --ipam-dir {}", s("gi"))),
            &s("gi"),
        ),
        p(
            "ipam gc",
            "--cni-conf-dir",
            words(&format!("ipam gc {net} --valid a --cni-conf-dir {}", s("gk"))),
            &s("gk"),
        ),
        p(
            "completions",
            "shell",
            words("completions fish"),
            "complete -c k3s-sandbox",
        ),
        // Last: these two free what the probes above look at.
        p(
            "ipam gc",
            "--apply",
            words(&format!("ipam gc {net} --valid a --min-age 0 --apply")),
            "freed 4 reservations (all of them)",
        ),
        flag(
            "cni gc",
            "--apply",
            &format!("cni gc {net}"),
            "gc sandbox-cni: released",
        ),
        // The record is read first: one under a regular file names its path in the error.
        p(
            "pods-profile mount",
            "--record",
            words(&format!("pods-profile mount --record {under_file}")),
            &under_file,
        ),
        p(
            "pods-profile unmount",
            "--record",
            words(&format!("pods-profile unmount --record {}", s("-no-record"))),
            &format!("no record at {}", s("-no-record")),
        ),
    ]);
    v
}

#[test]
fn every_option_in_the_tree_is_read() {
    let mut all = BTreeSet::new();
    tree(&Cli::command(), "", &mut all);
    let w = World::new();
    let probes = probes(&w);
    let probed: BTreeSet<(String, String)> = probes
        .iter()
        .map(|p| (p.path.to_string(), p.opt.to_string()))
        .collect();
    let missing: Vec<_> = all.difference(&probed).collect();
    assert!(missing.is_empty(), "options without a probe: {missing:?}");
    let mut failed = Vec::new();
    for p in &probes {
        for (argv, env) in &p.before {
            w.run(argv, env);
        }
        let run = |argv: &[String]| {
            if p.endless {
                w.run_for_a_second(argv, &p.env)
            } else {
                w.run(argv, &p.env)
            }
        };
        let with = run(&p.with);
        let mut text = format!("{}{}", with.stdout, with.stderr);
        if let Some(after) = &p.after {
            let a = w.run(after, &p.env);
            text.push_str(&a.stdout);
            text.push_str(&a.stderr);
        }
        let mut other = String::new();
        if let Some(without) = &p.without {
            let o = run(without);
            other = format!("{}{}", o.stdout, o.stderr);
        }
        let ok = if p.absent_with {
            !text.contains(&p.marker) && other.contains(&p.marker)
        } else {
            text.contains(&p.marker) && (p.without.is_none() || !other.contains(&p.marker))
        };
        for d in &p.down {
            w.run(&words(&format!("down --data-dir {d}")), &[]);
        }
        if !ok {
            failed.push(format!(
                "{} {}: {:?} {:?}\n--- with:\n{text}--- without:\n{other}",
                p.path, p.opt, p.with, p.marker
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
