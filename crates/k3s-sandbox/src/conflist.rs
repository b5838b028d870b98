//! The default network config, rendered from the conflist committed in the
//! repository (cni-conf/10-sandbox-cni.conflist) so the CLI and the repo
//! cannot drift, and the conf-dir logic containerd applies to it.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Failure, Result};
use crate::util;

/// The repository's default conflist, byte for byte.
pub const TEMPLATE: &str = include_str!("../../../cni-conf/10-sandbox-cni.conflist");
/// File name in the conf dir (also the repository file name).
pub const FILE_NAME: &str = "10-sandbox-cni.conflist";

/// The first host-local range's subnet of a conflist, if it has one.
pub fn first_subnet(conf: &Value) -> Option<&str> {
    conf.get("plugins")?.as_array()?.iter().find_map(|p| {
        p.get("ipam")?
            .get("ranges")?
            .get(0)?
            .get(0)?
            .get("subnet")?
            .as_str()
    })
}

/// Validate a CIDR like `10.42.3.0/24`.
pub fn parse_cidr(s: &str) -> std::result::Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a CIDR (expected ADDRESS/PREFIX, e.g. 10.42.0.0/24)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{s}`: `{addr}` is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("`{s}`: `{len}` is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("`{s}`: prefix length {len} is larger than {max}"));
    }
    Ok((addr, len))
}

/// The default subnet of the template.
pub fn default_subnet() -> Result<String> {
    let conf: Value = serde_json::from_str(TEMPLATE)
        .map_err(|e| Failure::new(format!("the built-in conflist is not valid JSON: {e}")))?;
    first_subnet(&conf)
        .map(str::to_string)
        .ok_or_else(|| Failure::new("the built-in conflist has no host-local range"))
}

/// Render the conflist with `subnet` as the pod range. Only the subnet
/// string changes; everything else stays byte-identical to the template.
pub fn render(template: &str, subnet: &str) -> Result<String> {
    let (addr, _) = parse_cidr(subnet).map_err(Failure::new)?;
    if !addr.is_ipv4() {
        return Err(Failure::new(format!(
            "pod range {subnet} is IPv6; the default sandbox-cni network is IPv4-only \
             (see cni-conf/dual-stack.conflist for a dual-stack example)"
        )));
    }
    let conf: Value = serde_json::from_str(template)
        .map_err(|e| Failure::new(format!("the conflist template is not valid JSON: {e}")))?;
    let old = first_subnet(&conf)
        .ok_or_else(|| Failure::new("the conflist template has no host-local range to fill in"))?;
    let needle = format!("\"{old}\"");
    let count = template.matches(&needle).count();
    if count != 1 {
        return Err(Failure::new(format!(
            "the conflist template mentions {needle} {count} times; expected exactly once"
        )));
    }
    let out = template.replacen(&needle, &format!("\"{subnet}\""), 1);
    // Prove the substitution hit the range and nothing else.
    let check: Value = serde_json::from_str(&out)
        .map_err(|e| Failure::new(format!("rendered conflist is not valid JSON: {e}")))?;
    if first_subnet(&check) != Some(subnet) {
        return Err(Failure::new("rendering the conflist did not set the pod range"));
    }
    Ok(out)
}

/// Set `ipam.dataDir` of every plugin that has an `ipam` object.
pub fn set_ipam_data_dir(conf: &mut Value, dir: &Path) {
    if let Some(plugins) = conf.get_mut("plugins").and_then(Value::as_array_mut) {
        for p in plugins {
            if let Some(ipam) = p.get_mut("ipam").and_then(Value::as_object_mut) {
                ipam.insert(
                    "dataDir".to_string(),
                    Value::String(dir.to_string_lossy().into_owned()),
                );
            }
        }
    }
}

/// Whether the file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    Unchanged,
}

/// Write `content` to `dir/FILE_NAME` atomically, only when it differs.
pub fn write_if_changed(dir: &Path, content: &str) -> Result<(PathBuf, WriteOutcome)> {
    let path = dir.join(FILE_NAME);
    if fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok((path, WriteOutcome::Unchanged));
    }
    fs::create_dir_all(dir).map_err(|e| Failure::io("create the CNI conf dir", dir, &e))?;
    util::atomic_write(&path, content.as_bytes(), 0o644)
        .map_err(|e| Failure::io("write the conflist", &path, &e))?;
    Ok((path, WriteOutcome::Written))
}

/// Make containerd reload the conf dir after the conflist was replaced by a
/// rename. Its watcher ignores create events (a rename into the directory is
/// one), but reloads on writes and removals of any file there, and it only
/// loads *.conf, *.conflist and *.json, so a short-lived dot file is enough.
pub fn poke_watchers(dir: &Path) -> Result<()> {
    let poke = dir.join(".k3s-sandbox-reload");
    fs::write(&poke, b"reload\n").map_err(|e| Failure::io("write", &poke, &e))?;
    fs::remove_file(&poke).map_err(|e| Failure::io("remove", &poke, &e))
}

/// Config files of `dir` the way containerd (go-cni) lists them: names ending
/// in .conf, .conflist or .json, sorted. The first is the default network.
pub fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x, "conf" | "conflist" | "json"))
        })
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    out.sort();
    Ok(out)
}

/// Load a network config file as a conflist. A single-plugin `.conf` or
/// `.json` becomes a list of one plugin, as libcni does.
pub fn load_as_list(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| Failure::io("read", path, &e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::new(format!("{} is not valid JSON: {e}", path.display())))?;
    normalize_list(v).map_err(|e| Failure::new(format!("{}: {e}", path.display())))
}

/// Accept a conflist or a single plugin config; return a conflist.
pub fn normalize_list(v: Value) -> std::result::Result<Value, String> {
    if !v.is_object() {
        return Err("a network config must be a JSON object".to_string());
    }
    if let Some(plugins) = v.get("plugins") {
        let list = plugins.as_array().ok_or("`plugins` must be a list")?;
        if list.is_empty() {
            return Err("the conflist has no plugins".to_string());
        }
        for (i, p) in list.iter().enumerate() {
            if p.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("plugin {i} has no `type`"));
            }
        }
        if v.get("name").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err("the conflist has no `name`".to_string());
        }
        return Ok(v);
    }
    if v.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
        return Err("a single-plugin config needs a `type`".to_string());
    }
    let name = v.get("name").cloned().ok_or("the config has no `name`")?;
    let version = v
        .get("cniVersion")
        .cloned()
        .unwrap_or(Value::String("0.3.1".into()));
    Ok(serde_json::json!({ "cniVersion": version, "name": name, "plugins": [v] }))
}

/// Plugin executables a conflist needs: every `type`, and every `ipam.type`.
pub fn plugin_types(list: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |t: Option<&str>| {
        if let Some(t) = t.filter(|t| !t.is_empty())
            && !out.iter().any(|x| x == t)
        {
            out.push(t.to_string());
        }
    };
    if let Some(plugins) = list.get("plugins").and_then(Value::as_array) {
        for p in plugins {
            add(p.get("type").and_then(Value::as_str));
            add(p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_the_repository_default_network() {
        let v: Value = serde_json::from_str(TEMPLATE).unwrap();
        assert_eq!(v["name"], "sandbox-cni");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(default_subnet().unwrap(), "10.42.0.0/24");
        assert_eq!(plugin_types(&v), vec!["bridge", "host-local", "portmap"]);
    }

    #[test]
    fn render_changes_only_the_subnet() {
        let out = render(TEMPLATE, "10.42.7.0/24").unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(first_subnet(&v), Some("10.42.7.0/24"));
        // Same bytes apart from the one substitution.
        assert_eq!(out.replace("10.42.7.0/24", "10.42.0.0/24"), TEMPLATE);
        // Rendering the default subnet gives the repo file unchanged.
        assert_eq!(render(TEMPLATE, "10.42.0.0/24").unwrap(), TEMPLATE);
    }

    #[test]
    fn render_rejects_bad_ranges_and_templates() {
        assert!(
            render(TEMPLATE, "10.42.0.0")
                .unwrap_err()
                .message
                .contains("not a CIDR")
        );
        assert!(
            render(TEMPLATE, "10.42.0.0/33")
                .unwrap_err()
                .message
                .contains("larger than 32")
        );
        assert!(
            render(TEMPLATE, "banana/24")
                .unwrap_err()
                .message
                .contains("not an IP")
        );
        assert!(
            render(TEMPLATE, "fd00::/64")
                .unwrap_err()
                .message
                .contains("IPv6")
        );
        let two = r#"{"name":"n","cniVersion":"1.0.0","note":"10.0.0.0/24","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}}]}"#;
        assert!(
            render(two, "10.1.0.0/24")
                .unwrap_err()
                .message
                .contains("2 times")
        );
        assert!(render("{}", "10.1.0.0/24").is_err());
    }

    #[test]
    fn write_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let (p, w) = write_if_changed(&conf, TEMPLATE).unwrap();
        assert_eq!(w, WriteOutcome::Written);
        assert_eq!(p, conf.join(FILE_NAME));
        let before = fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(
            write_if_changed(&conf, TEMPLATE).unwrap().1,
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), before);
        let other = render(TEMPLATE, "10.42.9.0/24").unwrap();
        assert_eq!(write_if_changed(&conf, &other).unwrap().1, WriteOutcome::Written);
        assert_eq!(fs::read_to_string(&p).unwrap(), other);
        poke_watchers(&conf).unwrap();
        assert_eq!(fs::read_dir(&conf).unwrap().count(), 1);
    }

    #[test]
    fn containerd_picks_the_first_config_in_sort_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "10-sandbox-cni.conflist",
            "05-other.conf",
            "99-x.json",
            "README",
            "01-x.conflist.bak",
        ] {
            fs::write(dir.path().join(name), "{}").unwrap();
        }
        let files = config_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["05-other.conf", "10-sandbox-cni.conflist", "99-x.json"]
        );
    }

    #[test]
    fn single_plugin_configs_become_lists() {
        let v = normalize_list(
            serde_json::json!({"cniVersion":"0.4.0","name":"n","type":"bridge","ipam":{"type":"host-local"}}),
        )
        .unwrap();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert!(normalize_list(serde_json::json!({"name":"n","plugins":[]})).is_err());
        assert!(normalize_list(serde_json::json!({"name":"n","plugins":[{"x":1}]})).is_err());
        assert!(normalize_list(serde_json::json!([1])).is_err());
    }

    #[test]
    fn data_dir_is_rewritten_for_every_ipam() {
        let mut v: Value = serde_json::from_str(TEMPLATE).unwrap();
        set_ipam_data_dir(&mut v, Path::new("/tmp/x"));
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/tmp/x");
        assert!(v["plugins"][1].get("ipam").is_none());
    }
}
