//! Running a network list the way libcni does (libcni `AddNetworkList`, `CheckNetworkList`,
//! `DelNetworkList`, `GCNetworkList`, `GetStatusNetworkList`, `GetVersionInfo`):
//!
//! - every plugin gets its object plus the list's `name` and `cniVersion`, a `runtimeConfig` holding the
//!   capability arguments it declares in `capabilities` (left untouched when there are none), and
//!   `prevResult`;
//! - ADD runs in list order, each plugin getting the previous one's result; the first failure stops it;
//!   the final result is cached only when every plugin succeeded;
//! - CHECK needs 0.4.0 (earlier lists are an error without running anything), is a success without
//!   running anything under `disableCheck`, and gives every plugin the cached result;
//! - DEL runs in reverse order, with the cached result as prevResult from 0.4.0 on (an unreadable cache
//!   file is removed and DEL goes on without it), and removes the cache file after success;
//! - GC DELs every cached attachment of the network that is not listed as valid, then, from 1.1.0,
//!   sends GC with the valid attachments to every plugin; all errors are collected;
//! - STATUS runs every plugin in order from 1.1.0 (earlier lists succeed without running anything).
//!
//! The environment of every plugin is built explicitly: `base_env` plus the six CNI_* variables.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use cni_core::exec::{Exec, decode_error};
use cni_core::{CniError, NetResult, Version};
use serde_json::{Map, Value};

use crate::cache::{Cache, Entry};
use crate::conf::NetworkList;
use crate::version;

/// One attachment's arguments (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments (portMappings, bandwidth, ...), matched against each plugin's capabilities.
    pub capability_args: Map<String, Value>,
}

/// A failure, with the plugin's own CNI error when a plugin reported one.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub message: String,
    pub plugin_error: Option<CniError>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            plugin_error: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Everything needed to run plugins.
pub struct Runtime<'a> {
    pub exec: &'a dyn Exec,
    /// CNI_PATH.
    pub path: Vec<PathBuf>,
    pub cache: Cache,
    /// Variables every plugin gets besides the six CNI_* ones (libcni passes the runtime's environment).
    pub base_env: Vec<(OsString, OsString)>,
}

/// The config one plugin receives (libcni `buildOneConfig` and `injectRuntimeConfig`).
pub fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    rt: &RuntimeConf,
) -> Map<String, Value> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let mut rc = Map::new();
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        for (cap, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = rt.capability_args.get(cap)
            {
                rc.insert(cap.clone(), v.clone());
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    conf
}

fn plugin_type(p: &Map<String, Value>) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// A result read at `default` when it has no `cniVersion`, re-laid out in its own version (libcni
/// reads results into its typed model and writes them back out the same way).
fn normalise_result(v: &Value, default: &str, what: &str) -> Result<Value, Error> {
    let own = match v.get("cniVersion") {
        Some(Value::String(s)) => s.as_str(),
        _ => default,
    };
    let ver = Version::parse(own)
        .ok_or_else(|| Error::new(format!("{what} has unsupported cniVersion {own:?}")))?;
    let r = NetResult::from_json(v, ver, what).map_err(|e| Error::new(format!("{what}: {}", e.msg)))?;
    let bytes = r.to_json(ver).map_err(|e| Error::new(e.msg))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::new(e.to_string()))
}

/// A result converted to `version` (libcni `GetAsVersion`), e.g. the cached result for DEL and CHECK.
pub fn convert_result(v: &Value, version: &str) -> Result<Value, String> {
    let ver = Version::parse(version).ok_or_else(|| format!("unsupported cniVersion {version:?}"))?;
    let r = NetResult::from_json(v, ver, "the cached result").map_err(|e| e.msg)?;
    let bytes = r.to_json(ver).map_err(|e| e.msg)?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

impl Runtime<'_> {
    fn env(&self, command: &str, rt: &RuntimeConf) -> Vec<(OsString, OsString)> {
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        cni_core::exec::plugin_env(
            self.base_env.clone(),
            command,
            &rt.container_id,
            &rt.netns,
            &rt.ifname,
            &args,
            &self.path,
        )
    }

    /// Runs one plugin; returns its stdout on success.
    fn run(
        &self,
        verb: &str,
        ptype: &str,
        conf: &Map<String, Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, Error> {
        let what = format!("plugin type=\"{ptype}\" failed ({})", verb.to_lowercase());
        let exe = self.exec.find(ptype, &self.path).map_err(|e| Error {
            message: format!("{what}: {}", e.msg),
            plugin_error: None,
        })?;
        let stdin = serde_json::to_vec(conf).map_err(|e| Error::new(format!("{what}: {e}")))?;
        let out = self
            .exec
            .exec(&exe, &self.env(verb, rt), &stdin)
            .map_err(|e| Error::new(format!("{what}: cannot run {}: {e}", exe.display())))?;
        if !out.success {
            let e = decode_error(ptype, verb, &out);
            let details = e.details.as_deref().map(|d| format!("; {d}")).unwrap_or_default();
            return Err(Error {
                message: format!("{what}: {}{details}", e.msg),
                plugin_error: Some(e),
            });
        }
        Ok(out.stdout)
    }

    /// ADD: returns the final result (in the last plugin's version), and caches it.
    pub fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, Error> {
        self.add_raw(list, rt).map(|(result, _)| result)
    }

    /// ADD, returning the final result and also the last plugin's reply exactly as it printed it (for
    /// checks that must see the raw JSON, as go-cni's result rules).
    pub fn add_raw(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<(Option<Value>, Option<Value>), Error> {
        validate(list, rt)?;
        let mut prev: Option<Value> = None;
        let mut raw: Option<Value> = None;
        for plugin in &list.plugins {
            let ptype = plugin_type(plugin);
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            let stdout = self.run("ADD", ptype, &conf, rt)?;
            let fail = |m: String| Error::new(format!("plugin type=\"{ptype}\" failed (add): {m}"));
            let v: Value = serde_json::from_slice(&stdout).map_err(|e| {
                fail(format!(
                    "its result is not JSON ({e}): {}",
                    String::from_utf8_lossy(&stdout).trim()
                ))
            })?;
            prev = match &v {
                Value::Null => None,
                v => Some(normalise_result(v, &list.cni_version, "the result").map_err(|e| fail(e.message))?),
            };
            raw = Some(v).filter(|v| !v.is_null());
        }
        if let Some(r) = &prev {
            let entry = Entry {
                container_id: rt.container_id.clone(),
                config: list.bytes.clone(),
                ifname: rt.ifname.clone(),
                network: list.name.clone(),
                netns: rt.netns.clone(),
                cni_args: rt.args.clone(),
                capability_args: rt.capability_args.clone(),
                result: Some(r.clone()),
            };
            self.cache.write(&entry).map_err(|e| {
                Error::new(format!(
                    "failed to set network {:?} cached result: {e}",
                    list.name
                ))
            })?;
        }
        Ok((prev, raw))
    }

    fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, String> {
        let Some(entry) = self.cache.read(&list.name, &rt.container_id, &rt.ifname)? else {
            return Ok(None);
        };
        entry
            .result
            .as_ref()
            .map(|r| convert_result(r, &list.cni_version))
            .transpose()
    }

    /// CHECK.
    pub fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        if !version::at_least(&list.cni_version, "0.4.0").map_err(Error::new)? {
            return Err(Error::new(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            )));
        }
        validate(list, rt)?;
        if list.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(list, rt).map_err(|e| {
            Error::new(format!(
                "failed to get network {:?} cached result: {e}",
                list.name
            ))
        })?;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            self.run("CHECK", plugin_type(plugin), &conf, rt)?;
        }
        Ok(())
    }

    /// DEL.
    pub fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        validate(list, rt)?;
        let mut cached = None;
        if version::at_least(&list.cni_version, "0.4.0").map_err(Error::new)? {
            cached = match self.cached_result(list, rt) {
                Ok(c) => c,
                Err(_) => {
                    let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
                    None
                }
            };
        }
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            self.run("DEL", plugin_type(plugin), &conf, rt)?;
        }
        let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
        Ok(())
    }

    /// GC: `valid` lists the attachments (container ID, ifname) to keep. Returns every error.
    pub fn gc(&self, list: &NetworkList, valid: &[(String, String)]) -> Result<(), Vec<Error>> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errs = Vec::new();
        for e in self.cache.entries(&list.name) {
            if valid
                .iter()
                .any(|(id, ifname)| *id == e.container_id && *ifname == e.ifname)
            {
                continue;
            }
            let rt = RuntimeConf {
                container_id: e.container_id.clone(),
                netns: e.netns.clone(),
                ifname: e.ifname.clone(),
                args: e.cni_args.clone(),
                capability_args: e.capability_args.clone(),
            };
            if let Err(err) = self.del(list, &rt) {
                errs.push(Error {
                    message: format!(
                        "failed to delete stale attachment {} {}: {}",
                        rt.container_id, rt.ifname, err.message
                    ),
                    plugin_error: err.plugin_error,
                });
            }
        }
        if version::at_least(&list.cni_version, "1.1.0").unwrap_or(false) {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname}))
                .collect();
            for plugin in &list.plugins {
                let mut conf = plugin.clone();
                conf.insert("name".into(), Value::String(list.name.clone()));
                conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
                conf.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(attachments.clone()),
                );
                // The spec's first text used this name; libcni sends both.
                conf.insert("cni.dev/attachments".into(), Value::Array(attachments.clone()));
                if let Err(e) = self.run("GC", plugin_type(plugin), &conf, &RuntimeConf::default()) {
                    errs.push(e);
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// STATUS. `Ok(false)` when the list is older than 1.1.0 and nothing ran.
    pub fn status(&self, list: &NetworkList) -> Result<bool, Error> {
        if !version::at_least(&list.cni_version, "1.1.0").map_err(Error::new)? {
            return Ok(false);
        }
        for plugin in &list.plugins {
            let mut conf = plugin.clone();
            conf.insert("name".into(), Value::String(list.name.clone()));
            conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
            self.run("STATUS", plugin_type(plugin), &conf, &RuntimeConf::default())?;
        }
        Ok(true)
    }

    /// VERSION of one plugin type: its answer (`cniVersion`, `supportedVersions`).
    pub fn version(&self, plugin: &str) -> Result<Value, Error> {
        let mut conf = Map::new();
        conf.insert("cniVersion".into(), Value::String(version::CURRENT.into()));
        let stdout = self.run("VERSION", plugin, &conf, &RuntimeConf::default())?;
        let v: Value = serde_json::from_slice(&stdout).map_err(|e| {
            Error::new(format!(
                "plugin {plugin:?} answered VERSION with something that is not JSON: {e}"
            ))
        })?;
        match v.get("supportedVersions").and_then(Value::as_array) {
            Some(list) if list.iter().all(Value::is_string) => Ok(v),
            _ => Err(Error::new(format!(
                "plugin {plugin:?} answered VERSION without a supportedVersions list: {v}"
            ))),
        }
    }
}

/// Checks the container ID, network name and interface name as libcni does before ADD, CHECK and
/// DEL: before anything (a cache path above all) is built from them.
fn validate(list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
    Cache::file_name(&list.name, &rt.container_id, &rt.ifname)
        .map(drop)
        .map_err(|e| Error::new(e.to_string()))
}

/// `supportedVersions` of a VERSION answer.
pub fn supported_versions(answer: &Value) -> Vec<String> {
    answer
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
