//! Where things live: the instance data dir (one k3s instance per data dir),
//! the CNI plugin dir and the CNI config dir, plus the file names inside the
//! data dir. Also how the CLI writes the files it keeps there (`atomic_write`) and how it finds
//! an executable on a search path (`find_in_path`, `is_executable_file`).

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Failure, Result};

pub(crate) const DEFAULT_CNI_BIN_DIR: &str = "/opt/cni/bin";
pub(crate) const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub(crate) const ROOT_DATA_DIR: &str = "/var/lib/k3s-sandbox";

/// libcni's result cache directory when neither --cache-dir nor CNI_CACHE_DIR names one.
pub(crate) const DEFAULT_CACHE_DIR: &str = cni_runtime::cache::DEFAULT_DIR;

/// A directory from the environment; empty counts as unset.
pub(crate) fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The CNI conf dir: `--cni-conf-dir`, then NETCONFPATH (cnitool's), then CNI_CONF_DIR, then
/// /etc/cni/net.d. The one resolution order of every subcommand (docs/k3s.md, "Directories").
pub(crate) fn conf_dir(option: Option<&Path>) -> PathBuf {
    option
        .map(Path::to_path_buf)
        .or_else(|| env_dir("NETCONFPATH"))
        .or_else(|| env_dir("CNI_CONF_DIR"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CNI_CONF_DIR))
}

/// The plugin directories: `--cni-bin-dir`, then CNI_PATH (cnitool's, `:`-separated), then
/// CNI_BIN_DIR, then /opt/cni/bin.
pub(crate) fn bin_path(option: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = option {
        return vec![d.to_path_buf()];
    }
    if let Some(p) = std::env::var_os("CNI_PATH").filter(|v| !v.is_empty()) {
        let dirs: Vec<PathBuf> = std::env::split_paths(&p)
            .filter(|d| !d.as_os_str().is_empty())
            .collect();
        if !dirs.is_empty() {
            return dirs;
        }
    }
    vec![env_dir("CNI_BIN_DIR").unwrap_or_else(|| PathBuf::from(DEFAULT_CNI_BIN_DIR))]
}

/// libcni's result cache: `--cache-dir`, then CNI_CACHE_DIR, then /var/lib/cni.
pub(crate) fn cache_dir(option: Option<&Path>) -> PathBuf {
    option
        .map(Path::to_path_buf)
        .or_else(|| env_dir("CNI_CACHE_DIR"))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// The directories a command works with.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    /// k3s-sandbox's instance directory (not host-local's dataDir: that is `--ipam-dir`).
    pub(crate) data_dir: PathBuf,
    /// The one plugin directory of commands that install or check plugins: the first of
    /// [`bin_path`].
    pub(crate) cni_bin_dir: PathBuf,
    pub(crate) cni_conf_dir: PathBuf,
}

impl Dirs {
    /// The directories from the options given (`None`: not given, or not an option of the
    /// command), each resolved in the one order: option, environment, default.
    pub(crate) fn resolve(
        data_dir: Option<&Path>,
        cni_bin_dir: Option<&Path>,
        cni_conf_dir: Option<&Path>,
    ) -> Result<Dirs> {
        let data_dir = match data_dir
            .map(Path::to_path_buf)
            .or_else(|| env_dir("K3S_SANDBOX_DATA_DIR"))
        {
            Some(d) => d,
            None => default_data_dir(
                rustix::process::geteuid().is_root(),
                std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
                std::env::var_os("HOME").map(PathBuf::from),
            )?,
        };
        let data_dir = absolute(&data_dir)?;
        let bin = bin_path(cni_bin_dir).into_iter().next().unwrap_or_default();
        let cni_bin_dir = absolute(&bin)?;
        let cni_conf_dir = absolute(&conf_dir(cni_conf_dir))?;
        Ok(Dirs {
            data_dir,
            cni_bin_dir,
            cni_conf_dir,
        })
    }

    pub(crate) fn uses_default_cni_dirs(&self) -> bool {
        self.cni_bin_dir == Path::new(DEFAULT_CNI_BIN_DIR)
            && self.cni_conf_dir == Path::new(DEFAULT_CNI_CONF_DIR)
    }

    pub(crate) fn state(&self) -> StateFiles {
        StateFiles::new(&self.data_dir)
    }
}

/// Root uses /var/lib/k3s-sandbox; everyone else $XDG_DATA_HOME/k3s-sandbox
/// or ~/.local/share/k3s-sandbox.
pub(crate) fn default_data_dir(
    is_root: bool,
    xdg_data_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> Result<PathBuf> {
    if is_root {
        return Ok(PathBuf::from(ROOT_DATA_DIR));
    }
    if let Some(x) = xdg_data_home.filter(|p| p.is_absolute()) {
        return Ok(x.join("k3s-sandbox"));
    }
    match home.filter(|p| p.is_absolute()) {
        Some(h) => Ok(h.join(".local/share/k3s-sandbox")),
        None => Err(Failure::Usage(
            "cannot pick a default data dir: HOME is not set; pass --data-dir DIR or set K3S_SANDBOX_DATA_DIR"
                .into(),
        )),
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Failure::Usage(
            "an empty path was given for a directory option".into(),
        ));
    }
    std::path::absolute(p).map_err(|e| Failure::io("resolve the path", p, &e))
}

/// Files k3s-sandbox keeps in the data dir. Everything `down --purge` may
/// remove is listed here; nothing else in the data dir is ever deleted.
#[derive(Debug, Clone)]
pub struct StateFiles {
    pub(crate) dir: PathBuf,
    pub lock: PathBuf,
    pub(crate) pid: PathBuf,
    pub(crate) pgid: PathBuf,
    pub(crate) argv: PathBuf,
    pub(crate) meta: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) old_log: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) k3s_data: PathBuf,
    pub(crate) written: PathBuf,
    pub(crate) pod_cidr: PathBuf,
}

impl StateFiles {
    pub fn new(dir: &Path) -> StateFiles {
        StateFiles {
            dir: dir.to_path_buf(),
            lock: dir.join("lock"),
            pid: dir.join("k3s.pid"),
            pgid: dir.join("k3s.pgid"),
            argv: dir.join("k3s.argv"),
            meta: dir.join("k3s.meta.json"),
            log: dir.join("k3s.log"),
            old_log: dir.join("k3s.log.1"),
            kubeconfig: dir.join("kubeconfig.yaml"),
            k3s_data: dir.join("k3s"),
            written: dir.join("written-files.json"),
            pod_cidr: dir.join("pod-cidr"),
        }
    }

    /// Files (not directories) k3s-sandbox writes into the data dir.
    pub(crate) fn owned_files(&self) -> Vec<&Path> {
        vec![
            &self.lock,
            &self.pid,
            &self.pgid,
            &self.argv,
            &self.meta,
            &self.log,
            &self.old_log,
            &self.kubeconfig,
            &self.written,
            &self.pod_cidr,
        ]
    }

    /// The per-process state files removed when the instance stops.
    pub(crate) fn process_files(&self) -> Vec<&Path> {
        vec![&self.pid, &self.pgid, &self.argv, &self.meta]
    }
}

/// Write `contents` to `path` atomically: a temporary file in the same
/// directory, flushed, given `mode`, then renamed over the target.
pub(crate) fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(contents)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Find an executable named `name` in the directories of `path_var`.
pub(crate) fn find_in_path(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| is_executable_file(p))
}

/// A regular file (symlinks followed) with at least one execute bit.
pub(crate) fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_data_dir_depends_on_user() {
        assert_eq!(
            default_data_dir(true, None, Some("/root".into())).unwrap(),
            PathBuf::from("/var/lib/k3s-sandbox")
        );
        assert_eq!(
            default_data_dir(false, Some("/x/data".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/x/data/k3s-sandbox")
        );
        assert_eq!(
            default_data_dir(false, Some("relative".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.local/share/k3s-sandbox")
        );
        let err = default_data_dir(false, None, None).unwrap_err();
        assert!(err.message().contains("--data-dir"), "{}", err.message());
    }

    #[test]
    fn atomic_write_replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.conflist");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
