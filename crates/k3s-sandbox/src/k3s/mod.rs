//! The k3s lifecycle: k3s's command line (`flags`), the instance's process ([`process`]), the wait
//! until it is ready (`ready`), what its log's failures mean (`hints`) and the agent's
//! pods-in-gVisor profile ([`gvisor_pods`]). This module itself finds and asks the k3s binary.

pub(crate) mod flags;
pub mod gvisor_pods;
pub(crate) mod hints;
pub mod process;
pub(crate) mod ready;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Failure, Result};
use crate::k3s::flags::K3sVersion;
use crate::paths;

pub(crate) const HOW_TO_GET_K3S: &str = "k3s is a single static binary: download it from \
https://github.com/k3s-io/k3s/releases (asset `k3s` for x86_64, `k3s-arm64` for arm64), then \
`install -m 0755 k3s /usr/local/bin/k3s`, or point K3S_BIN at it. (The get.k3s.io script also \
sets up a systemd service, which sandboxes usually lack; k3s-sandbox does not need it.)";

/// `$K3S_BIN` if set, else `k3s` on PATH.
pub(crate) fn locate(k3s_bin: Option<OsString>, path: Option<OsString>) -> Result<PathBuf> {
    if let Some(bin) = k3s_bin.filter(|b| !b.is_empty()) {
        let p = PathBuf::from(&bin);
        if paths::is_executable_file(&p) {
            return Ok(std::path::absolute(&p).unwrap_or(p));
        }
        return Err(Failure::NotFound(format!(
            "K3S_BIN={} is not an executable file. Fix K3S_BIN or unset it to search PATH. {HOW_TO_GET_K3S}",
            p.display()
        )));
    }
    paths::find_in_path("k3s", path.as_deref()).ok_or_else(|| {
        Failure::NotFound(format!(
            "k3s was not found (K3S_BIN is not set and there is no k3s on PATH). {HOW_TO_GET_K3S}"
        ))
    })
}

pub(crate) fn locate_from_env() -> Result<PathBuf> {
    locate(std::env::var_os("K3S_BIN"), std::env::var_os("PATH"))
}

/// First line of `k3s --version` and the parsed version.
pub(crate) fn version(k3s: &Path) -> Result<(String, Option<K3sVersion>)> {
    let out = cni_runtime::runner::run(
        std::process::Command::new(k3s).arg("--version"),
        b"",
        Duration::from_secs(60),
    )
    .map_err(|e| Failure::new(format!("cannot run {} --version: {e}", k3s.display())))?;
    if !out.success() {
        return Err(Failure::new(format!(
            "`{} --version` {}: {}",
            k3s.display(),
            out.describe_end(),
            out.stderr_text().trim()
        )));
    }
    let text = out.stdout_text();
    let first = text.lines().next().unwrap_or("").trim().to_string();
    Ok((first, K3sVersion::parse(&text)))
}

/// Why a question to k3s's kubectl got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KubectlError {
    #[error("cannot run {} kubectl: {source}", k3s.display())]
    Run { k3s: PathBuf, source: std::io::Error },
    /// kubectl failed: the last line of its stderr, else how it ended.
    #[error("{0}")]
    Failed(String),
    /// The API server answered /readyz with something else than `ok`.
    #[error("/readyz answered {0:?}")]
    NotOk(String),
}

fn kubectl(k3s: &Path, kubeconfig: &Path, args: &[&str]) -> std::result::Result<String, KubectlError> {
    let mut full = vec![
        "kubectl".to_string(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--request-timeout=5s".to_string(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let out = cni_runtime::runner::run(
        std::process::Command::new(k3s).args(&full),
        b"",
        Duration::from_secs(20),
    )
    .map_err(|source| KubectlError::Run {
        k3s: k3s.to_path_buf(),
        source,
    })?;
    if out.success() {
        Ok(out.stdout_text())
    } else {
        let err = out.stderr_text();
        let err = err.trim().lines().last().unwrap_or("").to_string();
        Err(KubectlError::Failed(if err.is_empty() {
            format!("kubectl {}", out.describe_end())
        } else {
            err
        }))
    }
}

/// `k3s kubectl get --raw=/readyz` answered `ok`.
pub(crate) fn readyz(k3s: &Path, kubeconfig: &Path) -> std::result::Result<(), KubectlError> {
    let body = kubectl(k3s, kubeconfig, &["get", "--raw=/readyz"])?;
    if body.trim() == "ok" {
        Ok(())
    } else {
        Err(KubectlError::NotOk(body.trim().to_string()))
    }
}

/// `spec.podCIDR` of node `name`; `Ok(None)` while unset.
pub(crate) fn node_pod_cidr(
    k3s: &Path,
    kubeconfig: &Path,
    name: &str,
) -> std::result::Result<Option<String>, KubectlError> {
    let out = kubectl(
        k3s,
        kubeconfig,
        &["get", "node", name, "-o", "jsonpath={.spec.podCIDR}"],
    )?;
    let cidr = out.trim();
    Ok((!cidr.is_empty()).then(|| cidr.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn kubectl_errors_read_as_before() {
        let run = KubectlError::Run {
            k3s: "/bin/k3s".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(run.to_string(), "cannot run /bin/k3s kubectl: entity not found");
        assert_eq!(
            KubectlError::NotOk("[-]etcd failed".into()).to_string(),
            r#"/readyz answered "[-]etcd failed""#
        );
        assert_eq!(KubectlError::Failed("x".into()).to_string(), "x");
    }

    #[test]
    fn locate_prefers_k3s_bin_then_path() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for d in [&a, &b] {
            std::fs::write(d.join("k3s"), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(d.join("k3s"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = std::env::join_paths([&b, &a]).unwrap();
        assert_eq!(locate(None, Some(path.clone())).unwrap(), b.join("k3s"));
        assert_eq!(
            locate(Some(a.join("k3s").into()), Some(path.clone())).unwrap(),
            a.join("k3s")
        );
        let err = locate(Some(a.join("nope").into()), Some(path)).unwrap_err();
        assert!(err.message().contains("K3S_BIN="), "{}", err.message());
        let err = locate(None, Some(tmp.path().join("empty").into())).unwrap_err();
        assert!(
            err.message().contains("github.com/k3s-io/k3s/releases"),
            "{}",
            err.message()
        );
    }
}
