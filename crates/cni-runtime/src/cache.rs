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

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// libcni's default cache directory.
pub const DEFAULT_DIR: &str = "/var/lib/cni";
/// The `kind` of every cache file libcni writes.
pub(crate) const KIND: &str = "cniCacheV1";
/// The largest cache file read (libcni's are a few kilobytes: a config and a result).
pub(crate) const MAX_ENTRY: u64 = 4 << 20;

/// One cached attachment, as libcni's `cachedInfo`: serialised with the fields in libcni's order
/// (kind, containerId, config, ifName, networkName, netns, cniArgs, capabilityArgs, result; empty
/// optional ones left out). Read leniently as libcni reads it: a field of the wrong type counts as
/// absent, and so does a `cniArgs` entry that is not a pair of strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "cniCacheV1")]
pub struct Entry {
    #[serde(rename = "containerId", default, deserialize_with = "lenient::string")]
    pub container_id: String,
    /// The network config bytes the attachment was added with (base64 in the file, as Go encodes
    /// bytes).
    #[serde(default, with = "lenient::base64")]
    pub(crate) config: Vec<u8>,
    #[serde(rename = "ifName", default, deserialize_with = "lenient::string")]
    pub ifname: String,
    #[serde(rename = "networkName", default, deserialize_with = "lenient::string")]
    pub network: String,
    /// The netns path (written by libcni 1.2 and later; absent in older files).
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub(crate) netns: String,
    #[serde(
        rename = "cniArgs",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::pairs"
    )]
    pub(crate) cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty",
        deserialize_with = "lenient::object"
    )]
    pub(crate) capability_args: Map<String, Value>,
    /// The final ADD result as the last plugin printed it (in its version).
    #[serde(default, skip_serializing_if = "lenient::no_result")]
    pub(crate) result: Option<Value>,
}

/// Why bytes are not a cache entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("not a JSON object")]
    NotObject,
    #[error("kind is {0:?}, not {KIND:?}")]
    Kind(String),
    /// A field that cannot be read (a `config` that is not base64).
    #[error("{0}")]
    Field(serde_json::Error),
}

/// Why a cached result cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network name, container ID or interface name is refused (so there is no file name).
    #[error(transparent)]
    Name(io::Error),
    #[error("cannot read the cached result {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cached result {}: {source}", path.display())]
    Entry { path: PathBuf, source: EntryError },
}

/// The field codecs of [`Entry`].
mod lenient {
    use ::base64::Engine as _;
    use ::base64::engine::general_purpose::STANDARD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::{Map, Value};

    pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => s,
            _ => String::new(),
        })
    }

    pub(super) fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
        let Value::Array(a) = Value::deserialize(d)? else {
            return Ok(Vec::new());
        };
        Ok(a.iter()
            .filter_map(|p| {
                let p = p.as_array()?;
                Some((p.first()?.as_str()?.to_string(), p.get(1)?.as_str()?.to_string()))
            })
            .collect())
    }

    pub(super) fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Object(m) => m,
            _ => Map::new(),
        })
    }

    /// libcni leaves out a result that is not a non-empty object.
    pub(super) fn no_result(r: &Option<Value>) -> bool {
        r.as_ref().and_then(Value::as_object).is_none_or(Map::is_empty)
    }

    pub(super) mod base64 {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&STANDARD.encode(bytes))
        }

        /// Go writes nil bytes as `null`: read as empty, as anything else that is not a string.
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            let text = super::string(d)?;
            STANDARD
                .decode(text)
                .map_err(|e| D::Error::custom(format!("config is not base64: {e}")))
        }
    }
}

/// A cache directory (the parent of `results/`).
#[derive(Debug, Clone)]
pub struct Cache {
    pub(crate) dir: PathBuf,
}

impl Entry {
    /// The file's bytes.
    pub fn to_json(&self) -> String {
        // An Entry holds strings, pairs of strings and JSON values only: nothing that can fail to
        // serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a cache file's contents.
    pub fn from_json(bytes: &[u8]) -> Result<Entry, EntryError> {
        let v: Value = serde_json::from_slice(bytes).map_err(EntryError::NotJson)?;
        let Value::Object(mut o) = v else {
            return Err(EntryError::NotObject);
        };
        match o.remove("kind") {
            Some(Value::String(k)) if k == KIND => {}
            Some(Value::String(k)) => return Err(EntryError::Kind(k)),
            _ => return Err(EntryError::Kind(String::new())),
        }
        // Null means absent, for every field.
        o.retain(|_, v| !v.is_null());
        serde_json::from_value(Value::Object(o)).map_err(EntryError::Field)
    }
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    pub(crate) fn results_dir(&self) -> PathBuf {
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
    pub(crate) fn path(&self, network: &str, container_id: &str, ifname: &str) -> io::Result<PathBuf> {
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
    pub(crate) fn write(&self, e: &Entry) -> io::Result<PathBuf> {
        let name = Self::file_name(&e.network, &e.container_id, &e.ifname)?;
        self.check_dir(true)?;
        let dir = self.results_dir();
        safefs::replace(&dir, &name, e.to_json().as_bytes(), 0o600)?;
        Ok(dir.join(name))
    }

    /// The entry of one attachment: `Ok(None)` when there is no file. A file that is not a regular
    /// file, or larger than `MAX_ENTRY`, is an error (never waited on, never read whole).
    pub fn read(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Entry>, Error> {
        let path = self.path(network, container_id, ifname).map_err(Error::Name)?;
        let unreadable = |source: io::Error| Error::Read {
            path: path.clone(),
            source,
        };
        if !self.check_dir(false).map_err(unreadable)? {
            return Ok(None);
        }
        match safefs::read_file(&path, MAX_ENTRY).map_err(unreadable)? {
            Some(b) => Entry::from_json(&b)
                .map(Some)
                .map_err(|source| Error::Entry { path, source }),
            None => Ok(None),
        }
    }

    /// Removes one attachment's file; a missing file is fine.
    pub(crate) fn remove(&self, network: &str, container_id: &str, ifname: &str) -> io::Result<()> {
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
