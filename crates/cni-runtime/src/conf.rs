//! Network configuration files (SPEC.md "Configuration format"; libcni `LoadConfList`, `ConfFiles`,
//! `ConfListFromBytes`, `ConfListFromConf`; go-cni's conf dir loading).
//!
//! A conf dir holds `.conflist` files and single-plugin `.conf`/`.json` files. Looking a network up by
//! name follows libcni: the conflists in lexical order first (one unparsable conflist aborts the lookup,
//! naming the file), then the single configs, which become one-plugin lists. containerd's default network
//! is the first `.conf`/`.conflist`/`.json` file in lexical order.

use std::fs;
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
    pub declared_version: String,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// The plugin objects, as written.
    pub plugins: Vec<Map<String, Value>>,
    /// The bytes libcni keeps for the list (the file for conflists): what the result cache stores.
    pub bytes: Vec<u8>,
    /// The file it came from, when it came from one.
    pub source: Option<PathBuf>,
}

fn err(what: &str) -> String {
    format!("error parsing configuration list: {what}")
}

fn flag(obj: &Map<String, Value>, key: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // libcni 1.2+ also reads the strings "true" and "false".
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(err(&format!("invalid {key} value {other}"))),
    }
}

fn check_plugin(i: usize, p: &Value) -> Result<Map<String, Value>, String> {
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
    pub fn from_list_bytes(bytes: &[u8]) -> Result<NetworkList, String> {
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
        let cni_version = version::select(&declared, versions.as_deref()).map_err(|e| err(&e))?;
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
    pub fn from_conf_bytes(bytes: &[u8]) -> Result<NetworkList, String> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("error parsing configuration: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("error parsing configuration: not a JSON object")?;
        if obj.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err("error parsing configuration: missing 'type'".to_string());
        }
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default();
        let version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or_default();
        let mut list = Map::new();
        list.insert("cniVersion".into(), Value::String(version.into()));
        list.insert("name".into(), Value::String(name.into()));
        list.insert("plugins".into(), Value::Array(vec![v.clone()]));
        let wrapped = serde_json::to_vec(&Value::Object(list)).map_err(|e| e.to_string())?;
        NetworkList::from_list_bytes(&wrapped)
    }

    /// Reads a file by its extension: `.conflist` as a list, anything else as a single config.
    pub fn load_file(path: &Path) -> Result<NetworkList, String> {
        let bytes = fs::read(path).map_err(|e| format!("error reading {}: {e}", path.display()))?;
        let list = if path.extension().is_some_and(|x| x == "conflist") {
            NetworkList::from_list_bytes(&bytes)
        } else {
            NetworkList::from_conf_bytes(&bytes)
        };
        let mut list = list.map_err(|e| format!("{}: {e}", path.display()))?;
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
pub fn find(dir: &Path, name: &str) -> Result<NetworkList, String> {
    if name.contains('/') {
        return NetworkList::load_file(Path::new(name));
    }
    let read_dir = |exts: &[&str]| {
        files_with(dir, exts).map_err(|e| format!("cannot read the conf dir {}: {e}", dir.display()))
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
    Err(format!(
        "no net configuration with name \"{name}\" in {}",
        dir.display()
    ))
}

/// The file containerd would pick (the first config file) and what reading it gives.
pub fn default_network(dir: &Path) -> std::io::Result<Option<(PathBuf, Result<NetworkList, String>)>> {
    Ok(config_files(dir)?.into_iter().next().map(|f| {
        let l = NetworkList::load_file(&f);
        (f, l)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn missing_cni_version_stays_empty() {
        // Drift bug: a list without cniVersion was run at 0.3.1; libcni passes "" (read as 0.1.0).
        let l = NetworkList::from_list_bytes(br#"{"name":"n","plugins":[{"type":"loopback"}]}"#).unwrap();
        assert_eq!(l.cni_version, "");
        let c = NetworkList::from_conf_bytes(br#"{"name":"n","type":"bridge"}"#).unwrap();
        assert_eq!(c.cni_version, "");
    }

    #[test]
    fn cni_versions_pick_the_highest_known() {
        // Drift bug: cniVersions was ignored.
        let l = NetworkList::from_list_bytes(
            br#"{"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert_eq!(l.cni_version, "1.1.0");
        assert_eq!(l.declared_version, "1.0.0");
    }

    #[test]
    fn list_errors_name_the_problem() {
        for (text, want) in [
            (r#"{"plugins":[{"type":"x"}]}"#, "no name"),
            (r#"{"name":"n"}"#, "no 'plugins'"),
            (r#"{"name":"n","plugins":[]}"#, "no plugins"),
            (r#"{"name":"n","plugins":[{"a":1}]}"#, "no 'type'"),
            (
                r#"{"name":"n","cniVersion":1,"plugins":[{"type":"x"}]}"#,
                "cniVersion",
            ),
            (
                r#"{"name":"n","disableCheck":3,"plugins":[{"type":"x"}]}"#,
                "disableCheck",
            ),
            ("[", "parsing"),
        ] {
            let e = NetworkList::from_list_bytes(text.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let l = NetworkList::from_list_bytes(
            br#"{"name":"n","disableCheck":"true","disableGC":true,"plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        assert!(l.disable_check && l.disable_gc);
    }

    #[test]
    fn lookup_follows_libcni() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            "20-b.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"second"}]}"#,
        );
        write(
            d,
            "10-a.conflist",
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"}]}"#,
        );
        write(
            d,
            "05-single.conf",
            r#"{"cniVersion":"0.4.0","name":"single","type":"bridge"}"#,
        );
        write(
            d,
            "01-other.json",
            r#"{"cniVersion":"0.4.0","name":"net","type":"conf-loses"}"#,
        );
        write(d, "README", "not json");
        assert_eq!(find(d, "net").unwrap().chain(), ["first"]);
        let s = find(d, "single").unwrap();
        assert_eq!(s.chain(), ["bridge"]);
        assert_eq!(s.cni_version, "0.4.0");
        let wrapped: Value = serde_json::from_slice(&s.bytes).unwrap();
        assert_eq!(wrapped["plugins"][0]["name"], "single");
        assert!(find(d, "nope").unwrap_err().contains("no net configuration"));
        let (first, _) = default_network(d).unwrap().unwrap();
        assert!(first.ends_with("01-other.json"));
        // One broken conflist aborts the lookup, naming the file.
        write(d, "00-broken.conflist", "{");
        assert!(find(d, "net").unwrap_err().contains("00-broken.conflist"));
        // A path is read directly.
        let p = d.join("20-b.conflist");
        assert_eq!(find(d, p.to_str().unwrap()).unwrap().chain(), ["second"]);
    }

    #[test]
    fn loopback_and_plugin_types() {
        let l = NetworkList::loopback();
        assert_eq!(l.chain(), ["loopback"]);
        assert_eq!(l.cni_version, "0.3.1");
        let t = NetworkList::from_list_bytes(
            br#"{"name":"n","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"portmap"},{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(t.plugin_types(), ["bridge", "host-local", "portmap"]);
        let mut t = t;
        t.set_ipam_data_dir(Path::new("/tmp/x"));
        assert_eq!(t.plugins[0]["ipam"]["dataDir"], "/tmp/x");
        assert!(t.plugins[1].get("ipam").is_none());
        let bytes: Value = serde_json::from_slice(&t.bytes).unwrap();
        assert_eq!(bytes["plugins"][0]["ipam"]["dataDir"], "/tmp/x");
    }
}
