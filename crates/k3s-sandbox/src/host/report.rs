//! `doctor --json`: each check as one JSON object on a line of its own
//! (JSON Lines), for scripts: `{"name", "level", "detail", "remedy"}`, with
//! level `ok`, `warn` or `fail` and remedy `null` when there is none.

use serde_json::{Value, json};

use crate::host::doctor::{Check, Level};

impl Check {
    pub(crate) fn to_json(&self) -> Value {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        };
        json!({
            "name": self.name,
            "level": level,
            "detail": self.detail,
            "remedy": self.remedy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_per_check_with_a_null_remedy_when_none() {
        let ok = Check {
            level: Level::Ok,
            name: "sandbox".into(),
            detail: "gVisor (runsc), 9p root".into(),
            remedy: None,
        };
        assert_eq!(
            ok.to_json().to_string(),
            r#"{"detail":"gVisor (runsc), 9p root","level":"ok","name":"sandbox","remedy":null}"#
        );
        let bad = Check {
            level: Level::Fail,
            name: "profile agent".into(),
            detail: "pods stop at the shim".into(),
            remedy: Some("use --profile control-plane".into()),
        };
        let v = bad.to_json();
        assert_eq!(v["level"], "fail");
        assert_eq!(v["remedy"], "use --profile control-plane");
        assert!(!v.to_string().contains('\n'));
    }
}
