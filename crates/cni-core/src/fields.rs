//! Typed access to the keys of a JSON object: one reader for plugin configuration (errors code 7)
//! and for results read back (a prevResult or a delegated plugin's reply; errors code 6). Every
//! error names the full key path, the expected type and what was found.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::{CniError, CniResult};
use crate::result::parse_cidr;

/// Typed access to a JSON object's keys, for plugin-specific configuration.
///
/// Type errors name the full key path, the expected type and what was found. They are code 7
/// (invalid configuration) for configuration read with [`Fields::new`], and code 6 (decoding) for
/// results read with `Fields::result` (a prevResult, a delegated plugin's reply), whose messages
/// name only the JSON type found. The `_ci` lookups match keys case-insensitively, for runtime
/// capability payloads (containerd sends `HostPort` where the convention says `hostPort`).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    path: String,
    /// Read as a result (code 6), not as configuration (code 7).
    decode: bool,
}

static EMPTY_MAP: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl Fields<'static> {
    /// An empty object.
    pub fn empty() -> Self {
        Fields {
            obj: &EMPTY_MAP,
            path: String::new(),
            decode: false,
        }
    }
}

impl<'a> Fields<'a> {
    /// `path` prefixes key names in messages, e.g. `"ipam."`.
    pub fn new(obj: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Fields {
            obj,
            path: path.into(),
            decode: false,
        }
    }

    /// As [`Fields::new`], for reading a result: errors are decode errors (code 6).
    pub(crate) fn result(obj: &'a Map<String, Value>, path: impl Into<String>) -> Self {
        Fields {
            decode: true,
            ..Fields::new(obj, path)
        }
    }

    /// A nested object's reader: same kind of errors, `path` prefixing its keys.
    fn nested(&self, obj: &'a Map<String, Value>, path: String) -> Fields<'a> {
        Fields {
            obj,
            path,
            decode: self.decode,
        }
    }

    /// An error of this reader's kind: code 6 for a result, 7 for configuration.
    pub(crate) fn error(&self, msg: impl Into<String>) -> CniError {
        if self.decode {
            CniError::decode(msg)
        } else {
            CniError::invalid_config(msg)
        }
    }

    /// What was found, for messages: the value itself when short (configuration), or its JSON type
    /// (a result).
    fn found(&self, v: &Value) -> String {
        if self.decode {
            kind(v).to_owned()
        } else {
            describe(v)
        }
    }

    /// What a JSON array is called in messages.
    fn list_word(&self) -> &'static str {
        if self.decode { "an array" } else { "a list" }
    }

    /// The full name of `key`, for messages.
    pub fn name(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    /// The value of `key` (exact match), `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
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

    /// The error for `key` holding `got` where `want` was expected.
    pub(crate) fn wrong(&self, key: &str, want: &str, got: &Value) -> CniError {
        self.error(format!(
            "{} must be {want}, got {}",
            self.name(key),
            self.found(got)
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
        self.int_value(self.get(key), &self.name(key), min, max)
    }

    /// A whole number from 0 to `u32::MAX`.
    pub(crate) fn u32(&self, key: &str) -> CniResult<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.error(format!(
                        "{} must be a whole number from 0 to 4294967295, got {n}",
                        self.name(key)
                    ))
                }),
            Some(v) => Err(self.wrong(key, "a number", v)),
        }
    }

    /// As [`Fields::int`], key matched case-insensitively.
    pub fn int_ci(&self, key: &str, min: i64, max: i64) -> CniResult<Option<i64>> {
        let found = self.get_ci(key);
        let name = self.name(found.map_or(key, |(k, _)| k));
        self.int_value(found.map(|(_, v)| v), &name, min, max)
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
            Some(Value::Object(o)) => Ok(Some(self.nested(o, format!("{}.", self.name(key))))),
            Some(v) => Err(self.wrong(key, "an object", v)),
        }
    }

    /// As [`Fields::object`], key matched case-insensitively.
    pub fn object_ci(&self, key: &str) -> CniResult<Option<Fields<'a>>> {
        match self.get_ci(key) {
            None => Ok(None),
            Some((k, Value::Object(o))) => Ok(Some(self.nested(o, format!("{}.", self.name(k))))),
            Some((k, v)) => Err(self.wrong(k, "an object", v)),
        }
    }

    /// An array of values.
    pub fn array(&self, key: &str) -> CniResult<Option<&'a Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(self.wrong(key, self.list_word(), v)),
        }
    }

    /// As [`Fields::array`], key matched case-insensitively.
    pub fn array_ci(&self, key: &str) -> CniResult<Option<&'a Vec<Value>>> {
        match self.get_ci(key) {
            None => Ok(None),
            Some((_, Value::Array(a))) => Ok(Some(a)),
            Some((k, v)) => Err(self.wrong(k, self.list_word(), v)),
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
                Value::Object(o) => Ok(self.nested(o, format!("{}[{i}].", self.name(key)))),
                other => Err(self.wrong(&format!("{key}[{i}]"), "an object", other)),
            })
            .collect()
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> CniResult<Vec<String>> {
        let a = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(v) if self.decode => return Err(self.wrong(key, "an array of strings", v)),
            Some(v) => return Err(self.wrong(key, "a list", v)),
        };
        a.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other if self.decode => Err(self.error(format!(
                    "{} must hold strings, got {}",
                    self.name(key),
                    kind(other)
                ))),
                other => Err(self.wrong(&format!("{key}[{i}]"), "a string", other)),
            })
            .collect()
    }

    /// A CIDR (`addr/prefix`, host bits kept).
    pub fn cidr(&self, key: &str) -> CniResult<Option<ipnetwork::IpNetwork>> {
        self.string(key)?
            .map(|s| parse_cidr(&s).map_err(|e| self.error(format!("{}: {e}", self.name(key)))))
            .transpose()
    }

    /// An IP address.
    pub fn ip(&self, key: &str) -> CniResult<Option<IpAddr>> {
        self.string(key)?
            .map(|s| {
                s.parse::<IpAddr>()
                    .map_err(|_| self.error(format!("{}: {s:?} is not an IP address", self.name(key))))
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

    /// `v` (the value of key `name`) as a whole number in `min..=max`; an error of this reader's kind.
    fn int_value(&self, v: Option<&Value>, name: &str, min: i64, max: i64) -> CniResult<Option<i64>> {
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
            _ => Err(self.error(format!(
                "{name} must be a whole number from {min} to {max}, got {}",
                describe(v)
            ))),
        }
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

/// The JSON type of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
