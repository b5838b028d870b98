//! Asking the container runtime which pod sandboxes exist (`crictl pods -o json`), for `ipam gc
//! --from-cri` and the leak detection of `doctor` and `status`.
//!
//! "No pods" and "runtime down" must never be confused: an empty answer from a runtime that is down
//! would free every reservation. So an answer counts only when the runtime proved it is up in the
//! same run: `crictl version` exits 0 and names the runtime, then `crictl pods -o json` exits 0 and
//! prints a JSON object with an `items` list whose every entry has an `id`. Anything else (a missing
//! crictl, a refused or timed-out connection, a runtime still starting, empty or other output) is an
//! error, and the caller refuses to act.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::k3s::process;
use crate::paths::{self, Dirs};

/// k3s's containerd socket (fixed by k3s, whatever its --data-dir).
pub(crate) const K3S_ENDPOINT: &str = "unix:///run/k3s/containerd/containerd.sock";
const TIMEOUT: Duration = Duration::from_secs(30);

/// One pod sandbox the runtime reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The sandbox ID: containerd passes it to CNI as CNI_CONTAINERID.
    pub id: String,
    /// `namespace/name`, for messages.
    pub(crate) name: String,
    pub(crate) state: String,
}

/// The runtime's answer and who gave it.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) sandboxes: Vec<Sandbox>,
    /// The command that answered, e.g. `k3s crictl --runtime-endpoint ...`.
    pub(crate) asked: String,
}

/// Why `crictl pods -o json` printed no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("its output is not the JSON of `crictl pods -o json` ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("its output has no `items` list")]
    NoItems,
    #[error("a pod sandbox in its output has no `id`")]
    NoId,
}

/// Why the container runtime could not be asked which pod sandboxes exist.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CriError {
    #[error("neither k3s (K3S_BIN, PATH) nor crictl (PATH) was found to ask the container runtime")]
    NoCrictl,
    /// `shown` is the command line.
    #[error("cannot run `{shown}`: {source}")]
    Run { shown: String, source: std::io::Error },
    /// crictl failed: how it ended ("exited with status 1") and the last line of its stderr.
    #[error("`{shown}` {end}{}", .last_line.as_ref().map_or(String::new(), |l| format!(": {l}")))]
    Failed {
        shown: String,
        end: String,
        last_line: Option<String>,
    },
    #[error(
        "the runtime at {endpoint} did not name itself in `crictl version`; it cannot be trusted to list the pods"
    )]
    Unnamed { endpoint: String },
    #[error("asking the runtime at {endpoint} with crictl: {source}")]
    Pods { endpoint: String, source: PodsError },
}

/// How to run crictl: the program and the arguments before crictl's own.
#[derive(Debug, Clone)]
struct Crictl {
    program: PathBuf,
    prefix: Vec<String>,
}

/// Reads `crictl pods -o json` output. Errors unless it is the complete, well-formed answer.
pub fn parse_pods(text: &str) -> Result<Vec<Sandbox>, PodsError> {
    let v: Value = serde_json::from_str(text).map_err(PodsError::NotJson)?;
    let items = match v.get("items") {
        Some(Value::Array(a)) => a.as_slice(),
        Some(Value::Null) => &[],
        _ => return Err(PodsError::NoItems),
    };
    items
        .iter()
        .map(|p| {
            let id = p
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or(PodsError::NoId)?;
            let meta = p.get("metadata");
            let field = |k: &str| {
                meta.and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            Ok(Sandbox {
                id: id.to_string(),
                name: format!("{}/{}", field("namespace"), field("name")),
                state: p.get("state").and_then(Value::as_str).unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// The runtime endpoint: CONTAINER_RUNTIME_ENDPOINT, else the instance's
/// `--container-runtime-endpoint`, else the one in the instance's crictl.yaml, else k3s's socket.
pub(crate) fn endpoint(dirs: &Dirs) -> String {
    if let Some(e) = std::env::var("CONTAINER_RUNTIME_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    {
        return e;
    }
    let state = dirs.state();
    if let Ok(Some(inst)) = process::read_instance(&state) {
        let mut args = inst.argv.iter();
        while let Some(a) = args.next() {
            if let Some(v) = a.strip_prefix("--container-runtime-endpoint=") {
                return v.to_string();
            }
            if a == "--container-runtime-endpoint"
                && let Some(v) = args.next()
            {
                return v.clone();
            }
        }
    }
    let yaml = state.k3s_data.join("agent/etc/crictl.yaml");
    if let Ok(text) = fs::read_to_string(&yaml) {
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("runtime-endpoint:") {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                if !v.is_empty() {
                    return v.to_string();
                }
            }
        }
    }
    K3S_ENDPOINT.to_string()
}

/// k3s's bundled crictl (the instance's k3s, else K3S_BIN or k3s on PATH), else crictl on PATH.
fn find_crictl(dirs: &Dirs) -> Result<Crictl, CriError> {
    let from_instance = process::read_instance(&dirs.state())
        .ok()
        .flatten()
        .and_then(|i| i.argv.first().map(PathBuf::from))
        .filter(|p| paths::is_executable_file(p));
    if let Some(k3s) = from_instance.or_else(|| crate::k3s::locate_from_env().ok()) {
        return Ok(Crictl {
            program: k3s,
            prefix: vec!["crictl".to_string()],
        });
    }
    paths::find_in_path("crictl", std::env::var_os("PATH").as_deref())
        .map(|program| Crictl {
            program,
            prefix: Vec::new(),
        })
        .ok_or(CriError::NoCrictl)
}

fn run(c: &Crictl, endpoint: &str, args: &[&str]) -> Result<String, CriError> {
    let mut full = c.prefix.clone();
    full.push("--runtime-endpoint".to_string());
    full.push(endpoint.to_string());
    full.extend(args.iter().map(|a| a.to_string()));
    let shown = format!("{} {}", c.program.display(), full.join(" "));
    let mut cmd = std::process::Command::new(&c.program);
    let out = match cni_runtime::runner::run(cmd.args(&full), b"", TIMEOUT) {
        Ok(out) => out,
        Err(source) => return Err(CriError::Run { shown, source }),
    };
    if !out.success() {
        let err = out.stderr_text();
        let last = err.trim().lines().last().unwrap_or("").trim().to_string();
        return Err(CriError::Failed {
            shown,
            end: out.describe_end(),
            last_line: (!last.is_empty()).then_some(last),
        });
    }
    Ok(out.stdout_text())
}

/// Every pod sandbox the runtime knows (ready or not: a sandbox the runtime still knows may still
/// get its DEL). Errors when the runtime cannot be asked or its answer is not complete.
pub(crate) fn live_sandboxes(dirs: &Dirs, endpoint_override: Option<&str>) -> Result<Answer, CriError> {
    let c = find_crictl(dirs)?;
    let ep = endpoint_override.map_or_else(|| endpoint(dirs), str::to_string);
    let version = run(&c, &ep, &["version"])?;
    if !version.lines().any(|l| {
        l.trim()
            .strip_prefix("RuntimeName:")
            .is_some_and(|n| !n.trim().is_empty())
    }) {
        return Err(CriError::Unnamed { endpoint: ep });
    }
    let pods = run(&c, &ep, &["pods", "-o", "json"])?;
    let sandboxes = match parse_pods(&pods) {
        Ok(s) => s,
        Err(source) => return Err(CriError::Pods { endpoint: ep, source }),
    };
    Ok(Answer {
        sandboxes,
        asked: format!("{} (runtime endpoint {ep})", display_program(&c)),
    })
}

fn display_program(c: &Crictl) -> String {
    let name = c.program.file_name().map_or_else(
        || c.program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    if c.prefix.is_empty() {
        name
    } else {
        format!("{name} {}", c.prefix.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_json_of_crictl_is_read() {
        let text = r#"{
  "items": [
    {
      "id": "5f2b6c1e0a",
      "metadata": {"name": "coredns-1", "uid": "u1", "namespace": "kube-system", "attempt": 0},
      "state": "SANDBOX_READY",
      "createdAt": "1764630000000000000",
      "labels": {}, "annotations": {}, "runtimeHandler": ""
    },
    {"id": "77aa", "metadata": {"name": "old", "uid": "u2", "namespace": "default", "attempt": 1},
     "state": "SANDBOX_NOTREADY", "createdAt": "1764620000000000000"}
  ]
}"#;
        let p = parse_pods(text).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id, "5f2b6c1e0a");
        assert_eq!(p[0].name, "kube-system/coredns-1");
        assert_eq!(p[1].state, "SANDBOX_NOTREADY");
        assert_eq!(parse_pods(r#"{"items": []}"#).unwrap(), vec![]);
    }

    #[test]
    fn anything_but_a_complete_answer_is_refused() {
        for bad in [
            "",
            "   ",
            "null",
            "[]",
            "{}",
            r#"{"items": 3}"#,
            r#"{"items": [{"metadata": {}}]}"#,
            "time=... level=fatal",
        ] {
            assert!(parse_pods(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_name_the_command_and_the_runtime() {
        let failed = |last_line: Option<&str>| CriError::Failed {
            shown: "k3s crictl version".into(),
            end: "exited with status 1".into(),
            last_line: last_line.map(str::to_string),
        };
        assert_eq!(
            failed(Some("connection refused")).to_string(),
            "`k3s crictl version` exited with status 1: connection refused"
        );
        assert_eq!(
            failed(None).to_string(),
            "`k3s crictl version` exited with status 1"
        );
        let pods = CriError::Pods {
            endpoint: "unix:///x.sock".into(),
            source: parse_pods("{}").unwrap_err(),
        };
        assert_eq!(
            pods.to_string(),
            "asking the runtime at unix:///x.sock with crictl: its output has no `items` list"
        );
    }
}
