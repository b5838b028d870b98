//! The derived plugin configuration a plugin receives on stdin (SPEC.md "Plugin configuration object"
//! and "Deriving execution configuration from plugin configuration").
//!
//! The well-known keys are typed; the whole object is kept in [`NetConf::raw`] so plugin-specific keys
//! reach the plugin unchanged. [`Fields`] reads plugin keys with type checks whose errors (code 7) name the
//! key, the expected type and what was found.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};
use crate::result::{Dns, NetResult, kind, parse_cidr};
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
    pub plugin_type: String,
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

/// Typed access to a JSON object's keys, for plugin-specific configuration.
///
/// Type errors are code 7 and name the full key path, the expected type and what was found. The `_ci`
/// lookups match keys case-insensitively, for runtime capability payloads (containerd sends `HostPort`
/// where the convention says `hostPort`).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    path: String,
}

static EMPTY_MAP: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl Fields<'static> {
    /// An empty object.
    pub fn empty() -> Self {
        Fields {
            obj: &EMPTY_MAP,
            path: String::new(),
        }
    }
}

impl<'a> Fields<'a> {
    /// `path` prefixes key names in messages, e.g. `"ipam."`.
    pub fn new(obj: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Fields {
            obj,
            path: path.into(),
        }
    }

    /// The full name of `key`, for messages.
    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    /// The value of `key` (exact match), `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// The value of the first key equal to `key` ignoring ASCII case, preferring an exact match.
    pub fn get_ci(&self, key: &str) -> Option<(&'a str, &'a Value)> {
        if let Some((k, v)) = self.obj.get_key_value(key) {
            return (!v.is_null()).then_some((k.as_str(), v));
        }
        self.obj
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_null())
            .map(|(k, v)| (k.as_str(), v))
    }

    fn wrong(&self, key: &str, want: &str, got: &Value) -> CniError {
        CniError::invalid_config(format!(
            "{} must be {want}, got {}",
            self.name(key),
            describe(got)
        ))
    }

    pub fn bool(&self, key: &str) -> CniResult<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    pub fn string(&self, key: &str) -> CniResult<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    /// A whole number in `min..=max`.
    pub fn int(&self, key: &str, min: i64, max: i64) -> CniResult<Option<i64>> {
        int_value(self.get(key), &self.name(key), min, max)
    }

    /// As [`Fields::int`], key matched case-insensitively.
    pub fn int_ci(&self, key: &str, min: i64, max: i64) -> CniResult<Option<i64>> {
        let found = self.get_ci(key);
        let name = self.name(found.map_or(key, |(k, _)| k));
        int_value(found.map(|(_, v)| v), &name, min, max)
    }

    /// As [`Fields::string`], key matched case-insensitively.
    pub fn string_ci(&self, key: &str) -> CniResult<Option<String>> {
        match self.get_ci(key) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((k, v)) => Err(self.wrong(k, "a string", v)),
        }
    }

    /// A nested object, as `Fields` whose messages carry the nested path.
    pub fn object(&self, key: &str) -> CniResult<Option<Fields<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(Fields::new(o, format!("{}.", self.name(key))))),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }

    /// As [`Fields::object`], key matched case-insensitively.
    pub fn object_ci(&self, key: &str) -> CniResult<Option<Fields<'a>>> {
        match self.get_ci(key) {
            None => Ok(None),
            Some((k, Value::Object(o))) => Ok(Some(Fields::new(o, format!("{}.", self.name(k))))),
            Some((k, v)) => Err(self.wrong(k, "an object", v)),
        }
    }

    /// An array of values.
    pub fn array(&self, key: &str) -> CniResult<Option<&'a Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(key, "a list", v)),
        }
    }

    /// As [`Fields::array`], key matched case-insensitively.
    pub fn array_ci(&self, key: &str) -> CniResult<Option<&'a Vec<Value>>> {
        match self.get_ci(key) {
            None => Ok(None),
            Some((_, Value::Array(a))) => Ok(Some(a)),
            Some((k, v)) => Err(self.wrong(k, "a list", v)),
        }
    }

    /// An array whose items are objects; yields `Fields` named `key[i].`.
    pub fn objects(&self, key: &str) -> CniResult<Vec<Fields<'a>>> {
        self.array(key)?
            .map_or(Ok(Vec::new()), |a| self.objects_of(key, a))
    }

    /// As [`Fields::objects`], key matched case-insensitively.
    pub fn objects_ci(&self, key: &str) -> CniResult<Vec<Fields<'a>>> {
        self.array_ci(key)?
            .map_or(Ok(Vec::new()), |a| self.objects_of(key, a))
    }

    fn objects_of(&self, key: &str, a: &'a [Value]) -> CniResult<Vec<Fields<'a>>> {
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => Ok(Fields::new(o, format!("{}[{i}].", self.name(key)))),
                other => Err(self.wrong(&format!("{key}[{i}]"), "an object", other)),
            })
            .collect()
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> CniResult<Vec<String>> {
        let Some(a) = self.array(key)? else {
            return Ok(Vec::new());
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.wrong(&format!("{key}[{i}]"), "a string", other)),
            })
            .collect()
    }

    /// A CIDR (`addr/prefix`, host bits kept).
    pub fn cidr(&self, key: &str) -> CniResult<Option<ipnetwork::IpNetwork>> {
        self.string(key)?
            .map(|s| parse_cidr(&s).map_err(|e| CniError::invalid_config(format!("{}: {e}", self.name(key)))))
            .transpose()
    }

    /// An IP address.
    pub fn ip(&self, key: &str) -> CniResult<Option<IpAddr>> {
        self.string(key)?
            .map(|s| {
                s.parse::<IpAddr>().map_err(|_| {
                    CniError::invalid_config(format!("{}: {s:?} is not an IP address", self.name(key)))
                })
            })
            .transpose()
    }

    /// Refuses keys outside `known` (code 2, naming key and value); for objects whose shape we own.
    pub fn deny_unknown(&self, known: &[&str]) -> CniResult<()> {
        match self.obj.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, v)) => Err(CniError::unsupported_field(format!(
                "unsupported field {}: {} (known fields: {})",
                self.name(k),
                describe(v),
                known.join(", ")
            ))),
        }
    }
}

fn int_value(v: Option<&Value>, name: &str, min: i64, max: i64) -> CniResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        Some(_) => Err(CniError::invalid_config(format!(
            "{name} must be a whole number from {min} to {max}, got {}",
            describe(v)
        ))),
        None => Err(CniError::invalid_config(format!(
            "{name} must be a whole number from {min} to {max}, got {}",
            describe(v)
        ))),
    }
}

/// A short description of a value for messages: its type, and the value itself when short.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) if s.chars().count() <= 64 => format!("a string ({s:?})"),
        _ => kind(v).to_owned(),
    }
}
