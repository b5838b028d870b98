//! libcni's result cache: one file per attachment at `<cacheDir>/results/<network>-<containerID>-<ifname>`
//! (dir 0700, file 0600), a JSON object of kind `cniCacheV1` holding the network config (base64, as Go
//! encodes bytes), the attachment's identity and arguments, and the final ADD result. Files written
//! here are read by libcni (cnitool, containerd, CRI-O) and the other way round.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cni_core::config::valid_identifier;
use cni_core::env::validate_ifname;
use cni_core::safefs;

use serde_json::{Map, Value};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// libcni's default cache directory.
pub const DEFAULT_DIR: &str = "/var/lib/cni";
/// The `kind` of every cache file libcni writes.
pub const KIND: &str = "cniCacheV1";
/// The largest cache file read (libcni's are a few kilobytes: a config and a result).
pub const MAX_ENTRY: u64 = 4 << 20;

/// One cached attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub container_id: String,
    /// The network config bytes the attachment was added with.
    pub config: Vec<u8>,
    pub ifname: String,
    pub network: String,
    /// The netns path (written by libcni 1.2 and later; absent in older files).
    pub netns: String,
    pub cni_args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The final ADD result as the last plugin printed it (in its version).
    pub result: Option<Value>,
}

/// A cache directory (the parent of `results/`).
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
}

fn js(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

impl Entry {
    /// The file's bytes, with the fields in libcni's order (kind, containerId, config, ifName,
    /// networkName, netns, cniArgs, capabilityArgs, result; empty optional ones left out).
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"kind\":{},\"containerId\":{},\"config\":{},\"ifName\":{},\"networkName\":{}",
            js(&KIND),
            js(&self.container_id),
            js(&STANDARD.encode(&self.config)),
            js(&self.ifname),
            js(&self.network)
        );
        if !self.netns.is_empty() {
            s += &format!(",\"netns\":{}", js(&self.netns));
        }
        if !self.cni_args.is_empty() {
            let pairs: Vec<[&str; 2]> = self
                .cni_args
                .iter()
                .map(|(k, v)| [k.as_str(), v.as_str()])
                .collect();
            s += &format!(",\"cniArgs\":{}", js(&pairs));
        }
        if !self.capability_args.is_empty() {
            s += &format!(",\"capabilityArgs\":{}", js(&self.capability_args));
        }
        if let Some(r) = self
            .result
            .as_ref()
            .filter(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        {
            s += &format!(",\"result\":{}", js(r));
        }
        s + "}"
    }

    /// Reads a cache file's contents.
    pub fn from_json(bytes: &[u8]) -> Result<Entry, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let o = v.as_object().ok_or("not a JSON object")?;
        let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        if s("kind") != KIND {
            return Err(format!("kind is {:?}, not {KIND:?}", s("kind")));
        }
        let config = STANDARD
            .decode(s("config"))
            .map_err(|e| format!("config is not base64: {e}"))?;
        let cni_args = o
            .get("cniArgs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        let p = p.as_array()?;
                        Some((p.first()?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Entry {
            container_id: s("containerId"),
            config,
            ifname: s("ifName"),
            network: s("networkName"),
            netns: s("netns"),
            cni_args,
            capability_args: o
                .get("capabilityArgs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            result: o.get("result").filter(|r| !r.is_null()).cloned(),
        })
    }
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub fn results_dir(&self) -> PathBuf {
        self.dir.join("results")
    }

    /// The file name of one attachment, `<network>-<containerID>-<ifname>`, after the three are
    /// checked as libcni checks them (so that no name can lead out of `results/`).
    pub fn file_name(network: &str, container_id: &str, ifname: &str) -> io::Result<String> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if !valid_identifier(container_id) {
            return Err(bad(format!(
                "invalid characters in containerID {container_id:?}: it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
            )));
        }
        if !valid_identifier(network) {
            return Err(bad(format!("invalid network name {network:?}")));
        }
        validate_ifname(ifname).map_err(|e| bad(e.to_string()))?;
        Ok(format!("{network}-{container_id}-{ifname}"))
    }

    /// The file of one attachment (names checked first).
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> io::Result<PathBuf> {
        Ok(self
            .results_dir()
            .join(Self::file_name(network, container_id, ifname)?))
    }

    /// Checks `results/` as a private directory (see [`safefs::check_private_dir`]); with `create`,
    /// creates it (0700) when missing and tightens one of ours that others could write to.
    fn check_dir(&self, create: bool) -> io::Result<bool> {
        let dir = self.results_dir();
        if create {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        }
        let md = match fs::symlink_metadata(&dir) {
            Ok(md) => md,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let euid = rustix::process::geteuid().as_raw();
        if create && md.is_dir() && md.uid() == euid && md.mode() & 0o077 != 0 {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
            return self.check_dir(false);
        }
        safefs::check_private_dir(&dir, &md, euid)
            .map(|()| true)
            .map_err(|m| io::Error::new(io::ErrorKind::PermissionDenied, m))
    }

    /// Writes an entry (atomically: a new temporary file, created exclusively, renamed over the
    /// target, so a reader never sees half a file and nothing planted under the temporary name is
    /// written through). Not fsynced, as libcni does not sync its cache either: the entry only
    /// matters while the attachment lives, and after a power loss, when it may be missing or empty,
    /// DEL goes on without it (an unreadable entry is dropped) and GC frees by the valid list. A
    /// sync cost a whole process start on every ADD.
    pub fn write(&self, e: &Entry) -> io::Result<PathBuf> {
        let name = Self::file_name(&e.network, &e.container_id, &e.ifname)?;
        self.check_dir(true)?;
        let dir = self.results_dir();
        safefs::replace(&dir, &name, e.to_json().as_bytes(), 0o600)?;
        Ok(dir.join(name))
    }

    /// The entry of one attachment: `Ok(None)` when there is no file. A file that is not a regular
    /// file, or larger than [`MAX_ENTRY`], is an error (never waited on, never read whole).
    pub fn read(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Entry>, String> {
        let path = self
            .path(network, container_id, ifname)
            .map_err(|e| e.to_string())?;
        let unreadable = |e: io::Error| format!("cannot read the cached result {}: {e}", path.display());
        if !self.check_dir(false).map_err(unreadable)? {
            return Ok(None);
        }
        match safefs::read_file(&path, MAX_ENTRY).map_err(unreadable)? {
            Some(b) => Entry::from_json(&b)
                .map(Some)
                .map_err(|e| format!("cached result {}: {e}", path.display())),
            None => Ok(None),
        }
    }

    /// Removes one attachment's file; a missing file is fine.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> io::Result<()> {
        let path = self.path(network, container_id, ifname)?;
        if !self.check_dir(false)? {
            return Ok(());
        }
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable entry of `network` (libcni `GetCachedAttachments`, filtered), sorted by file
    /// name. Files that are not regular, too large or not entries are skipped.
    pub fn entries(&self, network: &str) -> Vec<Entry> {
        if !valid_identifier(network) || !self.check_dir(false).unwrap_or(false) {
            return Vec::new();
        }
        let Ok(rd) = fs::read_dir(self.results_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        files
            .iter()
            .filter(|p| is_entry_name(p, network))
            .filter_map(|p| safefs::read_file(p, MAX_ENTRY).ok().flatten())
            .filter_map(|b| Entry::from_json(&b).ok())
            .filter(|e| e.network == network)
            .collect()
    }
}

fn is_entry_name(p: &Path, network: &str) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(&format!("{network}-")))
}

#[cfg(test)]
mod tests;
