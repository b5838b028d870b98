//! Checking and installing the CNI plugin executables.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use cni_runtime::cache::Cache;
use cni_runtime::runner::ProcessRunner;
use cni_runtime::runtime::{Runtime, supported_versions};

use crate::error::{Failure, Result};
use crate::util;

/// Plugins containerd needs for the default network (cni-runtime's list).
pub const REQUIRED: [&str; 4] = cni_runtime::plugins::DEFAULT_NETWORK;
/// Versions every plugin must support: 0.3.1 for containerd's loopback
/// network, 1.0.0 for the default conflist.
pub const NEEDED_VERSIONS: [&str; 2] = ["0.3.1", "1.0.0"];

const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginState {
    /// Regular executable answering VERSION with the needed versions.
    Ok {
        versions: Vec<String>,
    },
    Missing,
    /// Present but unusable; the text says why.
    Broken(String),
}

impl PluginState {
    pub fn is_ok(&self) -> bool {
        matches!(self, PluginState::Ok { .. })
    }
}

/// Check one plugin file: a regular executable file that answers
/// `CNI_COMMAND=VERSION` with JSON listing 0.3.1 and 1.0.0.
pub fn check_plugin(path: &Path) -> PluginState {
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
        pass_stderr: false,
    };
    let runtime = Runtime {
        exec: &runner,
        path: vec![dir.to_path_buf()],
        cache: Cache::new(dir),
        base_env: Vec::new(),
    };
    let versions = match runtime.version(name) {
        Ok(answer) => supported_versions(&answer),
        Err(e) => return PluginState::Broken(format!("CNI_COMMAND=VERSION: {}", e.message)),
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
/// while its content still has that hash.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    pub files: BTreeMap<String, String>,
}

impl WrittenFiles {
    pub fn load(path: &Path) -> WrittenFiles {
        let files = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.as_object().cloned())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        WrittenFiles { files }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let map: serde_json::Map<String, Value> = self
            .files
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let text = serde_json::to_string_pretty(&Value::Object(map))
            .map_err(|e| Failure::new(format!("cannot encode the written-files record: {e}")))?;
        util::atomic_write(path, text.as_bytes(), 0o600).map_err(|e| Failure::io("write", path, &e))
    }

    pub fn note(&mut self, path: &Path, contents_sha: String) {
        self.files
            .insert(path.to_string_lossy().into_owned(), contents_sha);
    }

    pub fn forget(&mut self, path: &Path) {
        self.files.remove(path.to_string_lossy().as_ref());
    }

    /// The file exists and still holds exactly what k3s-sandbox wrote.
    pub fn is_ours(&self, path: &Path) -> bool {
        match self.files.get(path.to_string_lossy().as_ref()) {
            Some(sha) => util::file_sha256(path).as_deref() == Some(sha.as_str()),
            None => false,
        }
    }
}

/// Where plugins can be installed from.
#[derive(Debug, Clone)]
pub struct Source {
    pub dir: PathBuf,
}

/// Pick the plugin source: --plugins-from, else the directory of the
/// running executable when it holds the plugins (true for target/debug).
pub fn find_source(explicit: Option<&Path>, exe_dir: Option<&Path>) -> Result<Option<Source>> {
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
        .filter(|d| REQUIRED.iter().any(|p| util::is_executable_file(&d.join(p))))
        .map(|d| Source { dir: d.to_path_buf() }))
}

/// Make sure every required plugin in `bin_dir` works, installing missing
/// or outdated ones from `source`. Returns one line per plugin for the user.
pub fn ensure_plugins(
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

pub fn describe(state: &PluginState) -> String {
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
    util::atomic_write(target, &bytes, 0o755).map_err(|e| Failure::io("install the plugin", target, &e))?;
    written.note(target, util::sha256_hex(&bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell-script "plugin" that answers VERSION with `versions`.
    fn fake_plugin(path: &Path, versions: &str) {
        fs::write(
            path,
            format!(
                "#!/bin/sh\n[ \"$CNI_COMMAND\" = VERSION ] || exit 1\nprintf '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[{versions}]}}'\n"
            ),
        )
        .unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn all_fake(dir: &Path, versions: &str) {
        fs::create_dir_all(dir).unwrap();
        for p in REQUIRED {
            fake_plugin(&dir.join(p), versions);
        }
    }

    const GOOD: &str = r#""0.3.1","0.4.0","1.0.0""#;

    #[test]
    fn check_plugin_reports_each_failure() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bridge");
        assert_eq!(check_plugin(&p), PluginState::Missing);
        fake_plugin(&p, GOOD);
        assert!(check_plugin(&p).is_ok());
        fake_plugin(&p, r#""0.3.1""#);
        assert!(matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("not 1.0.0")));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("not executable")));
        fs::write(&p, "#!/bin/sh\necho '{\"code\":4,\"msg\":\"nope\"}'; exit 1\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            matches!(check_plugin(&p), PluginState::Broken(w) if w.contains("VERSION") && w.contains("nope"))
        );
        let d = dir.path().join("dir");
        fs::create_dir(&d).unwrap();
        assert!(matches!(check_plugin(&d), PluginState::Broken(w) if w.contains("regular")));
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling")).unwrap();
        assert!(
            matches!(check_plugin(&dir.path().join("dangling")), PluginState::Broken(w) if w.contains("dangling"))
        );
    }

    #[test]
    fn installs_missing_plugins_and_records_them() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let bin = tmp.path().join("bin");
        all_fake(&src, GOOD);
        let source = Source { dir: src.clone() };
        let mut written = WrittenFiles::default();
        let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
        assert_eq!(report.len(), 4);
        assert!(report.iter().all(|l| l.starts_with("installed")), "{report:?}");
        for p in REQUIRED {
            let t = bin.join(p);
            assert_eq!(fs::metadata(&t).unwrap().permissions().mode() & 0o777, 0o755);
            assert!(written.is_ours(&t));
        }
        // Second run: nothing to do.
        let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
        assert!(report.iter().all(|l| l.starts_with("ok")), "{report:?}");
        // A rebuilt source replaces our own copies.
        fake_plugin(&src.join("bridge"), r#""0.3.1","1.0.0","1.1.0""#);
        let report = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap();
        assert!(
            report
                .iter()
                .any(|l| l.starts_with("updated") && l.contains("bridge")),
            "{report:?}"
        );
        assert_eq!(
            fs::read(bin.join("bridge")).unwrap(),
            fs::read(src.join("bridge")).unwrap()
        );
    }

    #[test]
    fn never_overwrites_foreign_files_without_force() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        let bin = tmp.path().join("bin");
        all_fake(&src, GOOD);
        all_fake(&bin, r#""0.3.1","1.0.0","0.4.0""#);
        fs::write(bin.join("portmap"), "not a plugin").unwrap();
        let source = Source { dir: src.clone() };
        let mut written = WrittenFiles::default();
        let err = ensure_plugins(&bin, Some(&source), &mut written, false).unwrap_err();
        assert!(
            err.message().contains("portmap") && err.message().contains("--force"),
            "{}",
            err.message()
        );
        assert_eq!(fs::read(bin.join("portmap")).unwrap(), b"not a plugin");
        // Working foreign plugins are kept, the broken one is replaced with --force.
        let report = ensure_plugins(&bin, Some(&source), &mut written, true).unwrap();
        assert!(
            report
                .iter()
                .any(|l| l.contains("portmap") && l.starts_with("installed")),
            "{report:?}"
        );
        assert_eq!(
            fs::read(bin.join("portmap")).unwrap(),
            fs::read(src.join("portmap")).unwrap()
        );
    }

    #[test]
    fn missing_plugins_without_a_source_point_to_install_sh() {
        let tmp = tempfile::tempdir().unwrap();
        let mut written = WrittenFiles::default();
        let err = ensure_plugins(&tmp.path().join("bin"), None, &mut written, false).unwrap_err();
        assert!(err.message().contains("./install.sh"), "{}", err.message());
        assert!(err.message().contains("loopback: missing"), "{}", err.message());
    }

    #[test]
    fn source_defaults_to_the_executable_dir_only_when_it_has_plugins() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(find_source(None, Some(tmp.path())).unwrap().is_none());
        fake_plugin(&tmp.path().join("bridge"), GOOD);
        let s = find_source(None, Some(tmp.path())).unwrap().unwrap();
        assert_eq!(s.dir, tmp.path());
        assert!(find_source(Some(&tmp.path().join("nope")), None).is_err());
    }

    #[test]
    fn written_files_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("a");
        fs::write(&f, "x").unwrap();
        let mut w = WrittenFiles::default();
        w.note(&f, util::sha256_hex(b"x"));
        let rec = tmp.path().join("rec.json");
        w.save(&rec).unwrap();
        let back = WrittenFiles::load(&rec);
        assert_eq!(back, w);
        assert!(back.is_ours(&f));
        fs::write(&f, "changed").unwrap();
        assert!(!back.is_ours(&f));
    }
}
