//! libcni's result cache: one file per attachment at `<cacheDir>/results/<network>-<containerID>-<ifname>`
//! (dir 0700, file 0600), a JSON object of kind `cniCacheV1` holding the network config (base64, as Go
//! encodes bytes), the attachment's identity and arguments, and the final ADD result. Files written
//! here are read by libcni (cnitool, containerd, CRI-O) and the other way round.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// libcni's default cache directory.
pub const DEFAULT_DIR: &str = "/var/lib/cni";
/// The `kind` of every cache file libcni writes.
pub const KIND: &str = "cniCacheV1";

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

    /// The file of one attachment.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.results_dir()
            .join(format!("{network}-{container_id}-{ifname}"))
    }

    /// Writes an entry (atomically: a temporary file renamed over the target, so a reader never sees
    /// half a file). Not fsynced, as libcni does not sync its cache either: the entry only matters while
    /// the attachment lives, and after a power loss, when it may be missing or empty, DEL goes on without
    /// it (an unreadable entry is dropped) and GC frees by the valid list. A sync cost a whole process
    /// start on every ADD.
    pub fn write(&self, e: &Entry) -> std::io::Result<PathBuf> {
        let dir = self.results_dir();
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let path = self.path(&e.network, &e.container_id, &e.ifname);
        let tmp = dir.join(format!(".{}-{}.tmp", e.network, std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(e.to_json().as_bytes())?;
        drop(f);
        fs::rename(&tmp, &path)?;
        Ok(path)
    }

    /// The entry of one attachment: `Ok(None)` when there is no file.
    pub fn read(&self, network: &str, container_id: &str, ifname: &str) -> Result<Option<Entry>, String> {
        let path = self.path(network, container_id, ifname);
        match fs::read(&path) {
            Ok(b) => Entry::from_json(&b)
                .map(Some)
                .map_err(|e| format!("cached result {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the cached result {}: {e}", path.display())),
        }
    }

    /// Removes one attachment's file; a missing file is fine.
    pub fn remove(&self, network: &str, container_id: &str, ifname: &str) -> std::io::Result<()> {
        match fs::remove_file(self.path(network, container_id, ifname)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable entry of `network` (libcni `GetCachedAttachments`, filtered), sorted by file name.
    pub fn entries(&self, network: &str) -> Vec<Entry> {
        let Ok(rd) = fs::read_dir(self.results_dir()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        files
            .iter()
            .filter(|p| is_entry_name(p, network))
            .filter_map(|p| fs::read(p).ok())
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
mod tests {
    use super::*;

    fn entry() -> Entry {
        let mut caps = Map::new();
        caps.insert("portMappings".into(), serde_json::json!([{"hostPort": 8080}]));
        Entry {
            container_id: "c1".into(),
            config: br#"{"name":"n"}"#.to_vec(),
            ifname: "eth0".into(),
            network: "n".into(),
            netns: "/run/netns/x".into(),
            cni_args: vec![("K8S_POD_NAME".into(), "p".into())],
            capability_args: caps,
            result: Some(serde_json::json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]})),
        }
    }

    #[test]
    fn layout_and_field_order_follow_libcni() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Cache::new(tmp.path());
        let e = entry();
        let p = c.write(&e).unwrap();
        assert_eq!(p, tmp.path().join("results/n-c1-eth0"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(r#"{"kind":"cniCacheV1","containerId":"c1","config":"eyJuYW1lIjoibiJ9","ifName":"eth0","networkName":"n","netns":"/run/netns/x","cniArgs":[["K8S_POD_NAME","p"]],"capabilityArgs""#), "{text}");
        assert_eq!(c.read("n", "c1", "eth0").unwrap().unwrap(), e);
        assert_eq!(c.entries("n"), vec![e.clone()]);
        assert!(c.entries("m").is_empty());
        c.remove("n", "c1", "eth0").unwrap();
        c.remove("n", "c1", "eth0").unwrap();
        assert_eq!(c.read("n", "c1", "eth0").unwrap(), None);
    }

    #[test]
    fn empty_optional_fields_are_left_out() {
        let e = Entry {
            netns: String::new(),
            cni_args: vec![],
            capability_args: Map::new(),
            result: None,
            ..entry()
        };
        assert!(
            !e.to_json().contains("netns")
                && !e.to_json().contains("cniArgs")
                && !e.to_json().contains("result")
        );
        assert!(Entry::from_json(br#"{"kind":"other"}"#).is_err());
    }
}
