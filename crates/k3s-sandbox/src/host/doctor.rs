//! `doctor`: one ok/warn/FAIL line per check, each problem with a remedy.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

use crate::cni::conflist;
use crate::cni::plugins::{self, PluginState};
use crate::error::Failure;
use crate::host::probe::{self, HostFacts};
use crate::k3s::flags::{K3sVersion, Profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) level: Level,
    pub(crate) name: String,
    pub(crate) detail: String,
    pub(crate) remedy: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            level: Level::Ok,
            name: name.into(),
            detail: detail.into(),
            remedy: None,
        }
    }
    fn bad(level: Level, name: &str, detail: impl Into<String>, remedy: impl Into<String>) -> Check {
        Check {
            level,
            name: name.into(),
            detail: detail.into(),
            remedy: Some(remedy.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<4}  {}: {}", self.level.label(), self.name, self.detail)?;
        if let Some(r) = &self.remedy {
            write!(f, " -> {r}")?;
        }
        Ok(())
    }
}

/// A problem that breaks the agent profile: FAIL when the agent profile
/// was asked for, a warning otherwise.
fn agent_level(profile: Option<Profile>) -> Level {
    if profile == Some(Profile::Agent) {
        Level::Fail
    } else {
        Level::Warn
    }
}

/// Checks computed from the host facts alone.
pub(crate) fn host_checks(f: &HostFacts, profile: Option<Profile>) -> Vec<Check> {
    let mut out = Vec::new();
    let al = agent_level(profile);

    out.push(if f.is_root {
        Check::ok("root", "running as root")
    } else {
        Check::bad(
            al,
            "root",
            "not running as root",
            "the agent profile needs root; --profile control-plane runs without it",
        )
    });

    out.push(match &f.root_fs {
        Ok(m) if *m == probe::MAGIC_9P => Check::bad(Level::Warn, "root filesystem", "/ is 9p (gVisor-style sandbox)",
            "runc cannot start pod containers here; use --profile control-plane (API server, kubectl, Helm, dry runs)"),
        Ok(m) if *m == probe::MAGIC_OVERLAY => Check::ok("root filesystem", "/ is overlay (container root; the agent uses the native snapshotter unless the data dir allows overlay)"),
        Ok(m) => Check::ok("root filesystem", format!("/ is {}", probe::fs_name(*m))),
        Err(e) => Check::bad(Level::Warn, "root filesystem", format!("cannot tell the type of /: {e}"), "nothing to do unless k3s fails; see docs/k3s.md"),
    });

    let dd = f.data_fs_path.display();
    out.push(match &f.data_fs {
        Ok(m) if *m == probe::MAGIC_9P => Check::bad(Level::Warn, "data dir filesystem", format!("{dd} is 9p"),
            "sqlite and containerd are slow or unreliable on 9p; pass --data-dir on a tmpfs (e.g. under /dev/shm or /run)"),
        Ok(m) => Check::ok("data dir filesystem", format!(
            "{dd} is {}{}", probe::fs_name(*m),
            if f.overlay_usable() { "" } else { " (the agent will use the native snapshotter)" })),
        Err(e) => Check::bad(Level::Warn, "data dir filesystem", format!("cannot tell the type of {dd}: {e}"), "pass --data-dir on a filesystem you can write"),
    });

    out.push(match &f.kmsg {
        Ok(()) => Check::ok("/dev/kmsg", "readable"),
        Err(e) => Check::bad(al, "/dev/kmsg", format!("cannot open: {e}"),
            "the kubelet needs it: use --profile control-plane, or as root `touch /dev/kmsg && mount --bind /dev/null /dev/kmsg`"),
    });

    out.push(if f.cgroups.has_kubelet_controllers() {
        Check::ok("cgroups", f.cgroups.describe())
    } else {
        Check::bad(Level::Warn, "cgroups", f.cgroups.describe(),
            "the agent profile then runs the kubelet with cgroups-per-qos=false; pods may still fail in runc, --profile control-plane is unaffected")
    });

    out.push(match &f.netns {
        Ok(()) => Check::ok("network namespace", "can be created"),
        Err(e) => Check::bad(
            al,
            "network namespace",
            format!("cannot be created: {e}"),
            "containerd needs one per pod: use --profile control-plane",
        ),
    });
    out
}

/// Port checks. `ours` names the running instance of this data dir, whose
/// ports are expected to be busy.
pub(crate) fn port_checks(
    results: &[(u16, io::Result<()>)],
    ours: Option<u32>,
    profile: Option<Profile>,
) -> Vec<Check> {
    results
        .iter()
        .map(|(port, r)| {
            let name = format!("port {port}");
            match (r, ours) {
                (Ok(()), _) => Check::ok(&name, "free on 127.0.0.1"),
                (Err(_), Some(pid)) => Check::ok(&name, format!("in use, k3s of this data dir is running (pid {pid})")),
                (Err(e), None) => {
                    let level = if *port == 10250 { agent_level(profile) } else { Level::Fail };
                    Check::bad(level, &name, format!("in use on 127.0.0.1 ({e})"),
                        "another k3s or kubelet is running: stop it (`k3s-sandbox down --data-dir DIR`, k3s-killall.sh) or find it with `ss -ltnp`")
                }
            }
        })
        .collect()
}

/// Problems with the CNI chain: FAIL, except a warning when only the
/// control plane was asked for (an agentless k3s never runs a plugin).
fn chain_level(profile: Option<Profile>) -> Level {
    if profile == Some(Profile::ControlPlane) {
        Level::Warn
    } else {
        Level::Fail
    }
}

/// One line per plugin: the required ones plus every type the picked
/// conflist uses.
pub(crate) fn plugin_checks(bin_dir: &Path, extra_types: &[String], profile: Option<Profile>) -> Vec<Check> {
    let mut names: Vec<String> = plugins::REQUIRED.iter().map(|s| s.to_string()).collect();
    for t in extra_types {
        if !names.contains(t) {
            names.push(t.clone());
        }
    }
    names
        .iter()
        .map(|n| {
            let path = bin_dir.join(n);
            let name = format!("plugin {n}");
            match plugins::check_plugin(&path) {
                PluginState::Ok { versions } => Check::ok(
                    &name,
                    format!("{} answers VERSION ({})", path.display(), versions.join(", ")),
                ),
                other => Check::bad(
                    chain_level(profile),
                    &name,
                    format!("{}: {}", path.display(), plugins::describe(&other)),
                    reinstall_remedy(bin_dir),
                ),
            }
        })
        .collect()
}

/// How to put the plugins back, for the way sandbox-cni was installed here: the .deb (dpkg knows
/// the package), install.sh (its manifest in the plugin dir), else either.
pub(crate) fn reinstall_remedy(bin_dir: &Path) -> String {
    let up = format!(
        "`k3s-sandbox up --plugins-from DIR --cni-bin-dir {}` installs them from DIR",
        bin_dir.display()
    );
    if Path::new("/var/lib/dpkg/info/sandbox-cni.list").is_file() {
        format!("reinstall the package: `dpkg -i sandbox-cni_<version>_<arch>.deb`; or {up}")
    } else if bin_dir.join(".sandbox-cni.manifest").is_file() {
        format!("run install.sh again (from the source tree or the release tarball it came from); or {up}")
    } else {
        format!(
            "install sandbox-cni (install.sh of the source tree or release tarball, or the .deb); or {up}"
        )
    }
}

/// Conf-dir checks; also returns the plugin types of the file containerd
/// would pick.
pub(crate) fn conflist_checks(conf_dir: &Path, profile: Option<Profile>) -> (Vec<Check>, Vec<String>) {
    let al = agent_level(profile);
    let files = match cni_runtime::conf::config_files(conf_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return (
                vec![Check::bad(
                    al,
                    "CNI config",
                    format!("{} does not exist", conf_dir.display()),
                    "`k3s-sandbox up` writes the sandbox-cni conflist there (needed by the agent profile)",
                )],
                Vec::new(),
            );
        }
        Err(e) => {
            return (
                vec![Check::bad(
                    Level::Fail,
                    "CNI config",
                    format!("cannot list {}: {e}", conf_dir.display()),
                    "make the directory readable",
                )],
                Vec::new(),
            );
        }
    };
    let Some(first) = files.first() else {
        return (
            vec![Check::bad(
                al,
                "CNI config",
                format!("no .conf/.conflist/.json file in {}", conf_dir.display()),
                "`k3s-sandbox up` writes the sandbox-cni conflist there (needed by the agent profile)",
            )],
            Vec::new(),
        );
    };
    let names: Vec<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let first_name = names.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut types = Vec::new();
    match cni_runtime::NetworkList::load_file(first) {
        Ok(list) => {
            types = list.plugin_types();
            let listing = format!("files: {}", names.join(", "));
            if first_name == conflist::FILE_NAME {
                out.push(Check::ok(
                    "CNI config",
                    format!("containerd would pick {first_name} ({listing})"),
                ));
            } else {
                out.push(Check::bad(Level::Warn, "CNI config",
                    format!("containerd would pick {first_name}, not {} ({listing})", conflist::FILE_NAME),
                    format!("containerd uses only the first file in sort order; remove or rename {first_name} if the sandbox-cni network should be used")));
            }
        }
        Err(e) => out.push(Check::bad(
            chain_level(profile),
            "CNI config",
            format!("containerd would pick {first_name}, which is unusable: {e}"),
            "fix or remove that file; containerd fails to load a broken first config",
        )),
    }
    if names.iter().any(|n| n == "10-flannel.conflist") {
        out.push(Check::bad(
            Level::Warn,
            "CNI config",
            "10-flannel.conflist is present",
            "flannel's config needs the flannel plugin and kernel networking; remove it from the conf dir",
        ));
    }
    (out, types)
}

/// One line per host-local store: a warning with the exact `ipam gc` command when a range set is
/// nearly full or reservations are held by containers that are not live pod sandboxes.
pub(crate) fn ipam_checks(findings: &[crate::commands::ipam::Finding]) -> Vec<Check> {
    findings
        .iter()
        .map(|f| {
            let name = format!("IPAM {}", f.network);
            match &f.problem {
                Some((what, fix)) => Check::bad(Level::Warn, &name, what.clone(), fix.remedy()),
                None => Check::ok(&name, f.summary.clone()),
            }
        })
        .collect()
}

/// The k3s binary check; when k3s is not found, the failure's message is the remedy.
pub(crate) fn k3s_check(found: Result<(std::path::PathBuf, String, Option<K3sVersion>), Failure>) -> Check {
    match found {
        Ok((path, line, Some(v))) if !v.at_least(1, 25) => Check::bad(
            Level::Warn,
            "k3s",
            format!("{} at {} is older than 1.25", line, path.display()),
            "the agent profile falls back to a feature gate for local storage isolation; prefer a current release",
        ),
        Ok((path, line, _)) => Check::ok("k3s", format!("{line} ({})", path.display())),
        Err(e) => Check::bad(Level::Fail, "k3s", "not found", e.to_string()),
    }
}

/// Whether `dir` is writable, or could be created: tested with a short-lived
/// file in `dir` or in its nearest existing ancestor (nothing is created).
pub(crate) fn data_dir_check(dir: &Path) -> Check {
    let mut probe_dir = dir.to_path_buf();
    while !probe_dir.exists() {
        match probe_dir.parent() {
            Some(p) => probe_dir = p.to_path_buf(),
            None => break,
        }
    }
    let remedy = "pass --data-dir DIR (or K3S_SANDBOX_DATA_DIR) pointing at a writable place";
    if !probe_dir.is_dir() {
        return Check::bad(
            Level::Fail,
            "data dir",
            format!(
                "cannot create {}: {} is not a directory",
                dir.display(),
                probe_dir.display()
            ),
            remedy,
        );
    }
    let test = probe_dir.join(format!(".k3s-sandbox-write-test-{}", std::process::id()));
    let verb = if probe_dir == dir {
        "is writable"
    } else {
        "can be created"
    };
    match fs::write(&test, b"x") {
        Ok(()) => {
            let _ = fs::remove_file(&test);
            Check::ok("data dir", format!("{} {verb}", dir.display()))
        }
        Err(e) => Check::bad(
            Level::Fail,
            "data dir",
            format!("{} is not writable: {e}", probe_dir.display()),
            remedy,
        ),
    }
}

#[cfg(test)]
mod tests;
