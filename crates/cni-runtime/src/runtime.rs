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
use std::path::PathBuf;

use cni_core::exec::{Exec, decode_error};
use cni_core::{Attachment, Command};
use serde_json::{Map, Value};

mod result;

pub use result::Added;
pub(crate) use result::convert_result;
use result::read_result;

use crate::cache::{Cache, Entry};
use crate::conf::NetworkList;
pub use crate::error::Error;
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

impl Runtime<'_> {
    fn env(&self, command: Command, rt: &RuntimeConf) -> Vec<(OsString, OsString)> {
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        cni_core::exec::plugin_env(
            self.base_env.clone(),
            command.as_str(),
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
        command: Command,
        ptype: &str,
        conf: &Map<String, Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, Error> {
        let exe = self
            .exec
            .find(ptype, &self.path)
            .map_err(|error| Error::PluginNotFound {
                plugin: ptype.to_string(),
                command,
                error,
            })?;
        // A map of JSON values always serialises.
        let stdin = serde_json::to_vec(conf).unwrap_or_default();
        let out = self
            .exec
            .exec(&exe, &self.env(command, rt), &stdin)
            .map_err(|source| Error::Spawn {
                plugin: ptype.to_string(),
                command,
                exe: exe.clone(),
                source,
            })?;
        if !out.success {
            return Err(Error::Plugin {
                plugin: ptype.to_string(),
                command,
                error: decode_error(ptype, command.as_str(), &out),
            });
        }
        Ok(out.stdout)
    }

    /// ADD: runs the chain and caches the final result. `None` when the last plugin printed no
    /// result (`null`).
    pub fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Added>, Error> {
        validate(list, rt)?;
        let mut prev: Option<Value> = None;
        let mut last: Option<Added> = None;
        for plugin in &list.plugins {
            let ptype = plugin_type(plugin);
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            let stdout = self.run(Command::Add, ptype, &conf, rt)?;
            let bad = |reason: String| Error::BadReply {
                plugin: ptype.to_string(),
                command: Command::Add,
                reason,
            };
            let v: Value = serde_json::from_slice(&stdout).map_err(|e| {
                bad(format!(
                    "its result is not JSON ({e}): {}",
                    String::from_utf8_lossy(&stdout).trim()
                ))
            })?;
            (prev, last) = match &v {
                Value::Null => (None, None),
                v => {
                    let (result, version, bytes) =
                        read_result(v, &list.cni_version).map_err(|e| bad(e.msg))?;
                    let next = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
                    let added = Added {
                        result,
                        version,
                        raw: stdout,
                    };
                    (Some(next), Some(added))
                }
            };
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
            self.cache.write(&entry).map_err(|source| Error::CacheWrite {
                network: list.name.clone(),
                source,
            })?;
        }
        Ok(last)
    }

    fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, Error> {
        let entry = self
            .cache
            .read(&list.name, &rt.container_id, &rt.ifname)
            .map_err(|source| Error::CacheRead {
                network: list.name.clone(),
                source,
            })?;
        let Some(result) = entry.and_then(|e| e.result) else {
            return Ok(None);
        };
        convert_result(&result, &list.cni_version)
            .map(Some)
            .map_err(|source| Error::CachedResult {
                network: list.name.clone(),
                source,
            })
    }

    /// CHECK.
    pub fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        if !version::has(&list.cni_version, Command::Check)? {
            return Err(Error::Unsupported {
                command: Command::Check,
                version: list.cni_version.clone(),
            });
        }
        validate(list, rt)?;
        if list.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(list, rt)?;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            self.run(Command::Check, plugin_type(plugin), &conf, rt)?;
        }
        Ok(())
    }

    /// DEL.
    pub fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        validate(list, rt)?;
        let mut cached = None;
        // prevResult on DEL came with CHECK, in 0.4.0.
        if version::has(&list.cni_version, Command::Check)? {
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
            self.run(Command::Del, plugin_type(plugin), &conf, rt)?;
        }
        let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
        Ok(())
    }

    /// GC: `valid` lists the attachments to keep. Returns every error.
    pub fn gc(&self, list: &NetworkList, valid: &[Attachment]) -> Result<(), Vec<Error>> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errs = Vec::new();
        for e in self.cache.entries(&list.name) {
            if valid
                .iter()
                .any(|a| a.container_id == e.container_id && a.ifname == e.ifname)
            {
                continue;
            }
            let rt = RuntimeConf {
                container_id: e.container_id,
                netns: e.netns,
                ifname: e.ifname,
                args: e.cni_args,
                capability_args: e.capability_args,
            };
            if let Err(err) = self.del(list, &rt) {
                errs.push(Error::StaleAttachment {
                    attachment: Attachment {
                        container_id: rt.container_id,
                        ifname: rt.ifname,
                    },
                    source: Box::new(err),
                });
            }
        }
        if version::has(&list.cni_version, Command::Gc).unwrap_or(false) {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|a| serde_json::json!({"containerID": a.container_id, "ifname": a.ifname}))
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
                if let Err(e) = self.run(Command::Gc, plugin_type(plugin), &conf, &RuntimeConf::default()) {
                    errs.push(e);
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// STATUS. `Ok(false)` when the list is older than 1.1.0 and nothing ran.
    pub fn status(&self, list: &NetworkList) -> Result<bool, Error> {
        if !version::has(&list.cni_version, Command::Status)? {
            return Ok(false);
        }
        for plugin in &list.plugins {
            let mut conf = plugin.clone();
            conf.insert("name".into(), Value::String(list.name.clone()));
            conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
            self.run(
                Command::Status,
                plugin_type(plugin),
                &conf,
                &RuntimeConf::default(),
            )?;
        }
        Ok(true)
    }

    /// VERSION of one plugin type: its answer (`cniVersion`, `supportedVersions`).
    pub fn version(&self, plugin: &str) -> Result<Value, Error> {
        let mut conf = Map::new();
        conf.insert("cniVersion".into(), Value::String(version::CURRENT.into()));
        let stdout = self.run(Command::Version, plugin, &conf, &RuntimeConf::default())?;
        let bad = |reason: String| Error::BadReply {
            plugin: plugin.to_string(),
            command: Command::Version,
            reason,
        };
        let v: Value = serde_json::from_slice(&stdout)
            .map_err(|e| bad(format!("with something that is not JSON: {e}")))?;
        match v.get("supportedVersions").and_then(Value::as_array) {
            Some(list) if list.iter().all(Value::is_string) => Ok(v),
            _ => Err(bad(format!("without a supportedVersions list: {v}"))),
        }
    }
}

/// Checks the container ID, network name and interface name as libcni does before ADD, CHECK and
/// DEL: before anything (a cache path above all) is built from them.
fn validate(list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
    Cache::file_name(&list.name, &rt.container_id, &rt.ifname)
        .map(drop)
        .map_err(Error::InvalidAttachment)
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
