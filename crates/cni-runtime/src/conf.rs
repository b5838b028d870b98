//! Network configuration files (SPEC.md "Configuration format"; libcni `LoadConfList`, `ConfFiles`,
//! `ConfListFromBytes`, `ConfListFromConf`; go-cni's conf dir loading).
//!
//! A conf dir holds `.conflist` files and single-plugin `.conf`/`.json` files. Looking a network up by
//! name follows libcni: the conflists in lexical order first (one unparsable conflist aborts the lookup,
//! naming the file), then the single configs, which become one-plugin lists. containerd's default network
//! is the first `.conf`/`.conflist`/`.json` file in lexical order.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::version;

/// One network, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    /// The version the list runs at: `cniVersion`, or the one picked from `cniVersions`.
    pub cni_version: String,
    /// `cniVersion` as the file states it ("" when absent).
    pub(crate) declared_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// The plugin objects, as written.
    pub plugins: Vec<Map<String, Value>>,
    /// The bytes libcni keeps for the list (the file for conflists): what the result cache stores.
    pub(crate) bytes: Vec<u8>,
    /// The file it came from, when it came from one.
    pub(crate) source: Option<PathBuf>,
}

/// A network configuration that cannot be found, read or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A conflist that is not one (libcni's wording).
    #[error("error parsing configuration list: {0}")]
    List(String),
    /// A conflist whose `cniVersion` or `cniVersions` holds something that is not a version.
    #[error("error parsing configuration list: {0}")]
    ListVersion(#[from] version::Error),
    /// A single-plugin config that is not one.
    #[error("error parsing configuration: {0}")]
    Conf(String),
    #[error("error reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// What is wrong with the file at `path`.
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: Box<Error> },
    #[error("cannot read the conf dir {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("no net configuration with name \"{name}\" in {}", dir.display())]
    NotFound { name: String, dir: PathBuf },
}

fn err(what: &str) -> Error {
    Error::List(what.to_string())
}

fn flag(obj: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // libcni 1.2+ also reads the strings "true" and "false".
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(err(&format!("invalid {key} value {other}"))),
    }
}

fn check_plugin(i: usize, p: &Value) -> Result<Map<String, Value>, Error> {
    let obj = p
        .as_object()
        .ok_or_else(|| err(&format!("plugin {i} is not a JSON object")))?;
    match obj.get("type") {
        Some(Value::String(t)) if !t.is_empty() => Ok(obj.clone()),
        _ => Err(err(&format!("plugin {i} has no 'type'"))),
    }
}

impl NetworkList {
    /// Reads a conflist (libcni `ConfListFromBytes`, with libcni 1.2's `cniVersions`).
    pub fn from_list_bytes(bytes: &[u8]) -> Result<NetworkList, Error> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| err(&e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| err("not a JSON object"))?;
        let name = match obj.get("name") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(err(&format!("invalid name {other}"))),
            None => return Err(err("no name")),
        };
        let declared = match obj.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(err(&format!("invalid cniVersion {other}"))),
        };
        let versions = match obj.get("cniVersions") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| err(&format!("invalid type for cniVersions index {i}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(err("cniVersions must be a list of strings")),
        };
        let cni_version = version::select(&declared, versions.as_deref())?;
        let plugins = match obj.get("plugins") {
            Some(Value::Array(a)) if a.is_empty() => return Err(err("no plugins in list")),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, p)| check_plugin(i, p))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(err("'plugins' must be a list")),
            None => return Err(err("no 'plugins' key")),
        };
        Ok(NetworkList {
            name,
            cni_version,
            declared_version: declared,
            disable_check: flag(obj, "disableCheck")?,
            disable_gc: flag(obj, "disableGC")?,
            plugins,
            bytes: bytes.to_vec(),
            source: None,
        })
    }

    /// Reads a single-plugin config and wraps it into a one-plugin list, as libcni `ConfListFromConf`:
    /// the list keeps the config's `name` and `cniVersion`, and its bytes are that wrapper.
    pub fn from_conf_bytes(bytes: &[u8]) -> Result<NetworkList, Error> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Conf(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::Conf("not a JSON object".into()))?;
        if obj.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(Error::Conf("missing 'type'".into()));
        }
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        let version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or_default();
        let mut list = Map::new();
        list.insert("cniVersion".into(), Value::String(version.into()));
        list.insert("name".into(), Value::String(name.into()));
        list.insert("plugins".into(), Value::Array(vec![v.clone()]));
        let wrapped = serde_json::to_vec(&Value::Object(list)).map_err(|e| Error::Conf(e.to_string()))?;
        NetworkList::from_list_bytes(&wrapped)
    }

    /// Reads a file by its extension: `.conflist` as a list, anything else as a single config.
    pub fn load_file(path: &Path) -> Result<NetworkList, Error> {
        let bytes = fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let list = if path.extension().is_some_and(|x| x == "conflist") {
            NetworkList::from_list_bytes(&bytes)
        } else {
            NetworkList::from_conf_bytes(&bytes)
        };
        let mut list = list.map_err(|e| Error::File {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        list.source = Some(path.to_path_buf());
        Ok(list)
    }

    /// Plugin executables the list needs: each `type`, then each `ipam.type`, without repeats.
    pub fn plugin_types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.plugins {
            let ipam = p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str);
            for t in [p.get("type").and_then(Value::as_str), ipam]
                .into_iter()
                .flatten()
            {
                if !t.is_empty() && !out.iter().any(|x| x == t) {
                    out.push(t.to_string());
                }
            }
        }
        out
    }

    /// Sets `ipam.dataDir` in every plugin that has an `ipam` object (and in the cached bytes), so a
    /// run keeps its IPAM state in a directory of its own.
    pub fn set_ipam_data_dir(&mut self, dir: &Path) {
        for p in &mut self.plugins {
            if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
                ipam.insert(
                    "dataDir".into(),
                    Value::String(dir.to_string_lossy().into_owned()),
                );
            }
        }
        if let Ok(mut v) = serde_json::from_slice::<Value>(&self.bytes) {
            if let Some(list) = v.get_mut("plugins").and_then(Value::as_array_mut) {
                for (p, new) in list.iter_mut().zip(&self.plugins) {
                    *p = Value::Object(new.clone());
                }
            }
            if let Ok(b) = serde_json::to_vec(&v) {
                self.bytes = b;
            }
        }
    }

    /// Each plugin's `type`, in chain order.
    pub fn chain(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .map(|p| p.get("type").and_then(Value::as_str).unwrap_or_default())
            .collect()
    }

    /// containerd's built-in loopback network (cniVersion 0.3.1, on `lo`).
    pub fn loopback() -> NetworkList {
        let bytes = br#"{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}"#;
        // A constant that parses: covered by a unit test.
        NetworkList::from_list_bytes(bytes).unwrap_or_else(|_| NetworkList {
            name: "cni-loopback".into(),
            cni_version: "0.3.1".into(),
            declared_version: "0.3.1".into(),
            disable_check: false,
            disable_gc: false,
            plugins: Vec::new(),
            bytes: bytes.to_vec(),
            source: None,
        })
    }
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| exts.contains(&x))
}

/// Regular files of `dir` with one of `exts`, in lexical order (libcni `ConfFiles`, sorted).
pub fn files_with(dir: &Path, exts: &[&str]) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| has_ext(p, exts))
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    out.sort();
    Ok(out)
}

/// The network config files of a conf dir the way containerd lists them: `.conf`, `.conflist` and
/// `.json`, in lexical order. The first is containerd's default network.
pub fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    files_with(dir, &["conf", "conflist", "json"])
}

/// Finds network `name` in `dir` as libcni `LoadConfList` does. A `name` that names an existing file
/// (it contains a `/`) is read directly.
pub fn find(dir: &Path, name: &str) -> Result<NetworkList, Error> {
    if name.contains('/') {
        return NetworkList::load_file(Path::new(name));
    }
    let read_dir = |exts: &[&str]| {
        files_with(dir, exts).map_err(|source| Error::Dir {
            dir: dir.to_path_buf(),
            source,
        })
    };
    for file in read_dir(&["conflist"])? {
        let list = NetworkList::load_file(&file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    for file in read_dir(&["conf", "json"])? {
        let list = NetworkList::load_file(&file)?;
        if list.name == name {
            return Ok(list);
        }
    }
    Err(Error::NotFound {
        name: name.to_string(),
        dir: dir.to_path_buf(),
    })
}

/// The file containerd would pick (the first config file) and what reading it gives.
pub fn default_network(dir: &Path) -> std::io::Result<Option<(PathBuf, Result<NetworkList, Error>)>> {
    Ok(config_files(dir)?.into_iter().next().map(|f| {
        let l = NetworkList::load_file(&f);
        (f, l)
    }))
}

#[cfg(test)]
mod tests;
