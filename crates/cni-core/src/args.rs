//! CNI_ARGS parsing with libcni's rules (pkg/types/args.go): `K=V` pairs separated by `;`, each with
//! exactly one `=`; keys are case-sensitive; an unknown key is an error unless `IgnoreUnknown` is true
//! (`1`, `true`, `0`, `false`, any case) anywhere in the list.

use crate::error::{CniError, CniResult};

/// Parsed CNI_ARGS: the pairs, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
}

const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

fn parse_bool(key: &str, v: &str) -> CniResult<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(CniError::invalid_env(format!(
            "CNI_ARGS: {key}={v}: the value must be 1, true, 0 or false"
        ))),
    }
}

impl CniArgs {
    /// Parses `raw`, accepting only the keys in `known` (plus `IgnoreUnknown`) unless IgnoreUnknown is set.
    pub fn parse(raw: &str, known: &[&str]) -> CniResult<CniArgs> {
        if raw.is_empty() {
            return Ok(CniArgs::default());
        }
        let mut pairs = Vec::new();
        for segment in raw.split(';') {
            let mut parts = segment.split('=');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(k), Some(v), None) => pairs.push((k.to_owned(), v.to_owned())),
                _ => {
                    return Err(CniError::invalid_env(format!(
                        "CNI_ARGS: invalid pair {segment:?}: every ';'-separated item must be KEY=VALUE with exactly one '='"
                    )));
                }
            }
        }
        let mut ignore_unknown = false;
        for (k, v) in &pairs {
            if k == IGNORE_UNKNOWN {
                ignore_unknown |= parse_bool(k, v)?;
            }
        }
        if !ignore_unknown {
            let unknown: Vec<String> = pairs
                .iter()
                .filter(|(k, _)| k != IGNORE_UNKNOWN && !known.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !unknown.is_empty() {
                return Err(
                    CniError::invalid_env(format!("ARGS: unknown args {unknown:?}")).with_details(format!(
                        "this plugin understands {}; add IgnoreUnknown=1 to CNI_ARGS to skip others",
                        if known.is_empty() {
                            "no keys".to_owned()
                        } else {
                            known.join(", ")
                        }
                    )),
                );
            }
        }
        Ok(CniArgs { pairs })
    }

    /// The last value given for `key` (exact case).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_form_in_any_order() {
        for raw in [
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;K8S_POD_INFRA_CONTAINER_ID=c;K8S_POD_UID=d",
            "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;IgnoreUnknown=1",
        ] {
            let a = CniArgs::parse(raw, &["IP"]).unwrap();
            assert_eq!(a.get("K8S_POD_NAMESPACE"), Some("a"));
        }
    }

    #[test]
    fn unknown_without_ignore_is_refused() {
        let e = CniArgs::parse("K8S_POD_NAME=x", &["IP"]).unwrap_err();
        assert_eq!(e.code, 4);
        assert!(e.msg.contains("K8S_POD_NAME=x"));
        assert!(CniArgs::parse("ignoreunknown=1;X=1", &[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=TRUE;X=1", &[]).is_ok());
        assert!(CniArgs::parse("IgnoreUnknown=yes;X=1", &[]).is_err());
        assert!(CniArgs::parse("IgnoreUnknown=0;X=1", &[]).is_err());
    }

    #[test]
    fn malformed_segments_are_refused_even_with_ignore_unknown() {
        for raw in [
            "IgnoreUnknown=1;X=a=b",
            "IgnoreUnknown=1;",
            "IgnoreUnknown=1;;IP=1.2.3.4",
            "X",
        ] {
            assert_eq!(CniArgs::parse(raw, &["IP", "X"]).unwrap_err().code, 4, "{raw}");
        }
    }

    #[test]
    fn empty_value_is_allowed_and_known_keys_are_case_sensitive() {
        let a = CniArgs::parse("IP=", &["IP"]).unwrap();
        assert_eq!(a.get("IP"), Some(""));
        assert!(CniArgs::parse("ip=10.0.0.1", &["IP"]).is_err());
    }
}
