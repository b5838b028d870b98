//! Results as libcni reads them: into the typed model, in their own version, laid out again the way
//! libcni writes them.

use cni_core::{CniError, NetResult, Version};
use serde_json::Value;

/// What a successful ADD gives back.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    /// The final result, read into the model the way libcni reads it.
    pub(crate) result: NetResult,
    /// The version the result is in: its own `cniVersion`, else the list's.
    pub(crate) version: Version,
    /// The bytes the last plugin printed, unchanged (for checks that must see the raw JSON, as
    /// go-cni's result rules).
    pub raw: Vec<u8>,
}

impl Added {
    /// The result laid out in its version, fields in the spec's order (as libcni prints it).
    pub fn to_json(&self) -> Result<Vec<u8>, CniError> {
        self.result.to_json(self.version)
    }
}

/// A result read at `default` when it has no `cniVersion`, into the model and its own version, and
/// laid out again in that version (libcni reads results into its typed model and writes them back out
/// the same way): the one normalisation of a plugin's result.
pub(super) fn read_result(v: &Value, default: &str) -> Result<(NetResult, Version, Vec<u8>), CniError> {
    let own = match v.get("cniVersion") {
        Some(Value::String(s)) => s.as_str(),
        _ => default,
    };
    let ver = Version::parse(own).ok_or_else(|| {
        CniError::incompatible_version(format!("the result has unsupported cniVersion {own:?}"))
    })?;
    let r = NetResult::from_json(v, ver, "the result").map_err(|e| e.context("the result"))?;
    let bytes = r.to_json(ver)?;
    Ok((r, ver, bytes))
}

/// A result converted to `version` (libcni `GetAsVersion`), e.g. the cached result for DEL and CHECK.
pub(crate) fn convert_result(v: &Value, version: &str) -> Result<Value, CniError> {
    let ver = Version::parse(version)
        .ok_or_else(|| CniError::incompatible_version(format!("unsupported cniVersion {version:?}")))?;
    let bytes = NetResult::from_json(v, ver, "the cached result")?.to_json(ver)?;
    serde_json::from_slice(&bytes).map_err(|e| CniError::decode(e.to_string()))
}
