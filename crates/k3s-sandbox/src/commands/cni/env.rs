//! What cnitool reads from its environment besides the directories (CNI_IFNAME, CNI_ARGS,
//! CAP_ARGS; the directories are `paths`'s), read the same way, and cnitool's container ID for a
//! netns path.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use crate::error::{Failure, Result};

/// The interface name: CNI_IFNAME, eth0 when unset (set but empty stays empty, as in cnitool).
pub(super) fn ifname() -> String {
    std::env::var("CNI_IFNAME").unwrap_or_else(|_| "eth0".to_string())
}

/// CNI_ARGS as cnitool reads it: `K=V` pairs separated by `;`, each with a non-empty key and value.
pub(crate) fn parse_cni_args(raw: &str) -> Result<Vec<(String, String)>> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    raw.split(';')
        .map(|item| {
            let parts: Vec<&str> = item.split('=').collect();
            match parts.as_slice() {
                [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Failure::CniInput(format!(
                    "invalid CNI_ARGS pair {item:?}: each pair must be KEY=VALUE with a non-empty key and value"
                ))),
            }
        })
        .collect()
}

/// CAP_ARGS: a JSON object of capability arguments.
pub(crate) fn parse_cap_args(raw: &str) -> Result<Map<String, Value>> {
    if raw.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Failure::CniInput(
            "CAP_ARGS must be a JSON object, e.g. {\"portMappings\":[...]}".into(),
        )),
        Err(e) => Err(Failure::CniInput(format!("CAP_ARGS is not valid JSON: {e}"))),
    }
}

/// `path` made absolute and cleaned lexically, as Go's filepath.Abs does (no symlinks resolved).
pub(crate) fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Failure::new(format!("cannot make {} absolute: {e}", path.display())))?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// cnitool's container ID for a netns path: `cnitool-` and the first 10 bytes of its SHA-512, in hex.
pub fn container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}
