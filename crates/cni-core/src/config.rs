//! The derived plugin configuration a plugin receives on stdin (SPEC.md "Plugin configuration object"
//! and "Deriving execution configuration from plugin configuration").
//!
//! The well-known keys are typed; the whole object is kept in [`NetConf::raw`] so plugin-specific keys
//! reach the plugin unchanged. [`Fields`] reads plugin keys with type checks whose errors (code 7) name the
//! key, the expected type and what was found.

use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};
pub use crate::fields::{Fields, describe};
use crate::result::{Dns, NetResult, kind};
use crate::version::{SUPPORTED, Version};

/// One live attachment, as listed in GC's `cni.dev/valid-attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// The request configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The version the reply must be in.
    pub version: Version,
    /// The network name (validated: `^[A-Za-z0-9][A-Za-z0-9_.-]*$`).
    pub name: String,
    /// The plugin type (`type`), may be empty for VERSION-like probes.
    pub(crate) plugin_type: String,
    /// The whole object as received.
    pub raw: Map<String, Value>,
}

/// Checks a network name or container ID against the spec's character rule.
pub fn valid_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl NetConf {
    /// Decodes stdin: JSON errors are code 6, a bad version code 1 (6 when not a string), a bad name 7.
    pub fn parse(stdin: &[u8]) -> CniResult<NetConf> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            let what = if stdin.iter().all(u8::is_ascii_whitespace) {
                "the network configuration on stdin is empty".to_owned()
            } else {
                format!("the network configuration on stdin is not valid JSON: {e}")
            };
            CniError::decode(what)
        })?;
        let Value::Object(raw) = value else {
            return Err(CniError::decode(format!(
                "the network configuration on stdin must be a JSON object, got {}",
                kind(&value)
            )));
        };
        let version = Self::version_of(&raw)?;
        let name = match raw.get("name") {
            None | Some(Value::Null) => return Err(CniError::invalid_config("missing network name")),
            Some(Value::String(s)) if valid_identifier(s) => s.clone(),
            Some(Value::String(s)) => {
                return Err(CniError::invalid_config(format!(
                    "invalid network name {s:?}: it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
                )));
            }
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "network name must be a string, got {}",
                    kind(other)
                )));
            }
        };
        let plugin_type = match raw.get("type") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(CniError::invalid_config(format!(
                    "type must be a string, got {}",
                    kind(other)
                )));
            }
        };
        Ok(NetConf {
            version,
            name,
            plugin_type,
            raw,
        })
    }

    fn version_of(raw: &Map<String, Value>) -> CniResult<Version> {
        match raw.get("cniVersion") {
            None | Some(Value::Null) => Ok(Version::V0_1_0),
            Some(Value::String(s)) => Version::parse(s).ok_or_else(|| {
                CniError::incompatible_version("incompatible CNI versions").with_details(format!(
                    "config is {s:?}, plugin supports [{}]",
                    SUPPORTED.map(|v| format!("{v:?}")).join(" ")
                ))
            }),
            Some(other) => Err(CniError::decode(format!(
                "cniVersion must be a string, got {}",
                kind(other)
            ))),
        }
    }

    /// Plugin-specific keys, type-checked.
    pub fn fields(&self) -> Fields<'_> {
        Fields::new(&self.raw, "")
    }

    /// `runtimeConfig` (empty when absent).
    pub fn runtime_config(&self) -> CniResult<Fields<'_>> {
        let empty: Fields<'_> = Fields::empty();
        Ok(self.fields().object("runtimeConfig")?.unwrap_or(empty))
    }

    /// `args.cni` (the conventions' per-attachment arguments), when present; a non-object `args` or
    /// `args.cni` is a type error (code 7) naming the key.
    pub fn args_cni(&self) -> CniResult<Option<Fields<'_>>> {
        match self.fields().object("args")? {
            Some(args) => args.object("cni"),
            None => Ok(None),
        }
    }

    /// The config's own `dns`, when set and not empty.
    pub fn dns(&self) -> CniResult<Option<Dns>> {
        match self.raw.get("dns") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Dns::from_json(v, "dns")
                .map_err(|e| CniError::invalid_config(e.msg))
                .map(|d| (!d.is_empty()).then_some(d)),
        }
    }

    /// The parsed `prevResult`, if present and not an empty object.
    pub fn prev_result(&self) -> CniResult<Option<NetResult>> {
        match self.raw.get("prevResult") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) if o.is_empty() => Ok(None),
            Some(v) => NetResult::from_json(v, self.version, "prevResult").map(Some),
        }
    }

    /// The `ipam` object's `type`, or an error (code 7) saying what is wrong.
    pub fn ipam_type(&self) -> CniResult<Option<String>> {
        let Some(ipam) = self.fields().object("ipam")? else {
            return Ok(None);
        };
        if ipam.obj.is_empty() {
            return Ok(None);
        }
        match ipam.string("type")? {
            Some(t) if !t.is_empty() => Ok(Some(t)),
            _ => Err(CniError::invalid_config(
                "ipam.type is missing: name the IPAM plugin, e.g. \"host-local\"",
            )),
        }
    }

    /// GC's list of live attachments: `None` when the request carries neither `cni.dev/valid-attachments`
    /// nor the older `cni.dev/attachments`; JSON `null` counts as an empty list.
    pub fn gc_attachments(&self) -> CniResult<Option<Vec<Attachment>>> {
        let (key, v) = match (
            self.raw.get("cni.dev/valid-attachments"),
            self.raw.get("cni.dev/attachments"),
        ) {
            (Some(v), _) => ("cni.dev/valid-attachments", v),
            (None, Some(v)) => ("cni.dev/attachments", v),
            (None, None) => return Ok(None),
        };
        let list = match v {
            Value::Null => return Ok(Some(Vec::new())),
            Value::Array(a) => a,
            other => {
                return Err(CniError::invalid_config(format!(
                    "{key} must be a list, got {}",
                    kind(other)
                )));
            }
        };
        list.iter()
            .enumerate()
            .map(|(i, item)| {
                let obj = item.as_object().ok_or_else(|| {
                    CniError::invalid_config(format!("{key}[{i}] must be an object, got {}", kind(item)))
                })?;
                let f = Fields::new(obj, format!("{key}[{i}]."));
                let need = |k: &str| {
                    f.string(k)?
                        .ok_or_else(|| CniError::invalid_config(format!("{key}[{i}].{k} is missing")))
                };
                Ok(Attachment {
                    container_id: need("containerID")?,
                    ifname: need("ifname")?,
                })
            })
            .collect::<CniResult<Vec<_>>>()
            .map(Some)
    }
}
