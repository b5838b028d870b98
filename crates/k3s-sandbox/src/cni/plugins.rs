//! The product's plugin list ([`ALL`], from plugins/list.txt; [`REQUIRED`], the default network's),
//! checking and installing the CNI plugin executables, and the ledger of the files k3s-sandbox
//! wrote (`WrittenFiles`, each file's SHA-256 from `sha256_hex`).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use cni_runtime::cache::Cache;
use cni_runtime::runner::ProcessRunner;
use cni_runtime::runtime::{Runtime, supported_versions};

use crate::error::{Failure, Result};
use crate::paths;

// `ALL`, every plugin binary sandbox-cni builds: generated from plugins/list.txt (see build.rs).
include!(concat!(env!("OUT_DIR"), "/plugin_list.rs"));

/// The plugins containerd needs for the default network: loopback for `lo`, and the three types of
/// cni-conf/10-sandbox-cni.conflist.
pub const REQUIRED: [&str; 4] = ["loopback", "bridge", "host-local", "portmap"];
/// Versions every plugin must support: 0.3.1 for containerd's loopback
/// network, 1.0.0 for the default conflist.
pub(crate) const NEEDED_VERSIONS: [&str; 2] = ["0.3.1", "1.0.0"];

const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PluginState {
    /// Regular executable answering VERSION with the needed versions.
    Ok {
        versions: Vec<String>,
    },
    Missing,
    /// Present but unusable; the text says why.
    Broken(String),
}

impl PluginState {
    pub(crate) fn is_ok(&self) -> bool {
        matches!(self, PluginState::Ok { .. })
    }
}

/// Check one plugin file: a regular executable file that answers
/// `CNI_COMMAND=VERSION` with JSON listing 0.3.1 and 1.0.0.
pub(crate) fn check_plugin(path: &Path) -> PluginState {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return if fs::symlink_metadata(path).is_ok() {
                PluginState::Broken("a dangling symlink".into())
            } else {
                PluginState::Missing
            };
        }
        Err(e) => return PluginState::Broken(format!("cannot stat: {e}")),
    };
    if !meta.is_file() {
        return PluginState::Broken("not a regular file".into());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return PluginState::Broken("not executable (chmod 0755 it)".into());
    }
    // VERSION the way libcni asks it: the plugin found by name in its directory, an explicit
    // environment, a deadline.
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return PluginState::Broken("not a plugin file name".into());
    };
    let runner = ProcessRunner {
        timeout: VERSION_TIMEOUT,
        stderr: None,
    };
    let runtime = Runtime {
        exec: &runner,
        path: vec![dir.to_path_buf()],
        cache: Cache::new(dir),
        base_env: Vec::new(),
    };
    let versions = match runtime.version(name) {
        Ok(answer) => supported_versions(&answer),
        Err(e) => return PluginState::Broken(format!("CNI_COMMAND=VERSION: {e}")),
    };
    let missing: Vec<&str> = NEEDED_VERSIONS
        .iter()
        .copied()
        .filter(|v| !versions.iter().any(|x| x == v))
        .collect();
    if missing.is_empty() {
        PluginState::Ok { versions }
    } else {
        PluginState::Broken(format!(
            "VERSION lists {} but not {}",
            versions.join(", "),
            missing.join(", ")
        ))
    }
}

/// Files k3s-sandbox wrote outside the data dir, with the hash of what it
/// wrote, kept in `<data-dir>/written-files.json`. A file is "ours" only
/// while its content still has that hash. On disk: one JSON object, path to hex SHA-256.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct WrittenFiles {
    pub(crate) files: BTreeMap<String, String>,
}

impl WrittenFiles {
    /// The ledger at `path`; empty when there is none or it cannot be read, so that nothing
    /// counts as ours.
    pub(crate) fn load(path: &Path) -> WrittenFiles {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Failure::new(format!("cannot encode the written-files record: {e}")))?;
        paths::atomic_write(path, text.as_bytes(), 0o600).map_err(|e| Failure::io("write", path, &e))
    }

    pub(crate) fn note(&mut self, path: &Path, contents_sha: String) {
        self.files
            .insert(path.to_string_lossy().into_owned(), contents_sha);
    }

    pub(crate) fn forget(&mut self, path: &Path) {
        self.files.remove(path.to_string_lossy().as_ref());
    }

    /// The file exists and still holds exactly what k3s-sandbox wrote.
    pub(crate) fn is_ours(&self, path: &Path) -> bool {
        match self.files.get(path.to_string_lossy().as_ref()) {
            Some(sha) => file_sha256(path).as_deref() == Some(sha.as_str()),
            None => false,
        }
    }
}

/// Where plugins can be installed from.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) dir: PathBuf,
}

/// Pick the plugin source: --plugins-from, else the directory of the
/// running executable when it holds the plugins (true for target/debug).
pub(crate) fn find_source(explicit: Option<&Path>, exe_dir: Option<&Path>) -> Result<Option<Source>> {
    if let Some(d) = explicit {
        if !d.is_dir() {
            return Err(Failure::Usage(format!(
                "--plugins-from {}: not a directory",
                d.display()
            )));
        }
        return Ok(Some(Source { dir: d.to_path_buf() }));
    }
    Ok(exe_dir
        .filter(|d| REQUIRED.iter().any(|p| paths::is_executable_file(&d.join(p))))
        .map(|d| Source { dir: d.to_path_buf() }))
}

/// Make sure every required plugin in `bin_dir` works, installing missing
/// or outdated ones from `source`. Returns one line per plugin for the user.
pub(crate) fn ensure_plugins(
    bin_dir: &Path,
    source: Option<&Source>,
    written: &mut WrittenFiles,
    force: bool,
) -> Result<Vec<String>> {
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for name in REQUIRED {
        let target = bin_dir.join(name);
        let state = check_plugin(&target);
        let src = source.map(|s| s.dir.join(name));
        let src_state = src.as_deref().map(check_plugin);
        let src_usable = src_state.as_ref().is_some_and(PluginState::is_ok);
        let ours = written.is_ours(&target);

        match (&state, src.as_deref()) {
            (PluginState::Ok { .. }, Some(src)) if src_usable && !same_contents(src, &target) => {
                if ours || force {
                    install_one(src, &target, written)?;
                    report.push(format!("updated {} from {}", target.display(), src.display()));
                } else {
                    report.push(format!(
                        "kept {} (works, differs from {}, and was not installed by k3s-sandbox; \
                         pass --force to replace it)",
                        target.display(),
                        src.display()
                    ));
                }
            }
            (PluginState::Ok { .. }, _) => report.push(format!("ok {}", target.display())),
            (bad, Some(src)) if src_usable => {
                let exists = !matches!(bad, PluginState::Missing);
                if exists && !ours && !force {
                    problems.push(format!(
                        "{} is unusable ({}) but was not installed by k3s-sandbox; not overwriting \
                         it without --force",
                        target.display(),
                        describe(bad)
                    ));
                    continue;
                }
                install_one(src, &target, written)?;
                report.push(format!("installed {} from {}", target.display(), src.display()));
            }
            (bad, src) => {
                let why_no_source = match (src, &src_state) {
                    (Some(s), Some(st)) => {
                        format!("; {} is not usable either ({})", s.display(), describe(st))
                    }
                    _ => String::new(),
                };
                problems.push(format!("{}: {}{why_no_source}", target.display(), describe(bad)));
            }
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(Failure::Plugin(format!(
            "the CNI plugins are not ready:\n  {}\nRun ./install.sh from the sandbox-cni checkout \
             (it installs the plugins into /opt/cni/bin, or --bin-dir DIR), or pass \
             --plugins-from DIR pointing at built plugins (e.g. target/release).",
            problems.join("\n  ")
        )))
    }
}

pub(crate) fn describe(state: &PluginState) -> String {
    match state {
        PluginState::Ok { versions } => format!("ok, supports {}", versions.join(", ")),
        PluginState::Missing => "missing".to_string(),
        PluginState::Broken(why) => why.clone(),
    }
}

fn same_contents(a: &Path, b: &Path) -> bool {
    match (fs::read(a), fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn install_one(src: &Path, target: &Path, written: &mut WrittenFiles) -> Result<()> {
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| Failure::io("create the CNI bin dir", dir, &e))?;
    }
    let bytes = fs::read(src).map_err(|e| Failure::io("read", src, &e))?;
    paths::atomic_write(target, &bytes, 0o755).map_err(|e| Failure::io("install the plugin", target, &e))?;
    written.note(target, sha256_hex(&bytes));
    Ok(())
}

/// The SHA-256 of `bytes` in lowercase hex, as the written-files ledger records a file's contents.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hash of a file's contents, or `None` when it cannot be read.
pub(crate) fn file_sha256(path: &Path) -> Option<String> {
    fs::read(path).ok().map(|b| sha256_hex(&b))
}

#[cfg(test)]
mod tests;
