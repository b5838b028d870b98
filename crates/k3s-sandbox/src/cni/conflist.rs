//! The default network config, rendered from the conflist committed in the
//! repository (cni-conf/10-sandbox-cni.conflist) so the CLI and the repo
//! cannot drift. Reading conf dirs the way containerd does is cni-runtime's job.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Failure, Result};
use crate::paths;

/// The repository's default conflist, byte for byte.
pub const TEMPLATE: &str = include_str!("../../../../cni-conf/10-sandbox-cni.conflist");
/// File name in the conf dir (also the repository file name).
pub(crate) const FILE_NAME: &str = "10-sandbox-cni.conflist";

/// The first host-local range's subnet of a conflist, if it has one.
pub(crate) fn first_subnet(conf: &Value) -> Option<&str> {
    conf.get("plugins")?.as_array()?.iter().find_map(|p| {
        p.get("ipam")?
            .get("ranges")?
            .get(0)?
            .get(0)?
            .get("subnet")?
            .as_str()
    })
}

/// The default subnet of the template.
pub(crate) fn default_subnet() -> Result<String> {
    let conf: Value = serde_json::from_str(TEMPLATE)
        .map_err(|e| Failure::new(format!("the built-in conflist is not valid JSON: {e}")))?;
    first_subnet(&conf)
        .map(str::to_string)
        .ok_or_else(|| Failure::new("the built-in conflist has no host-local range"))
}

/// Render the conflist with `subnet` as the pod range. Only the subnet
/// string changes; everything else stays byte-identical to the template.
pub(crate) fn render(template: &str, subnet: &str) -> Result<String> {
    // The strict parser host-local uses, so `up` never writes a range every pod ADD would refuse.
    let net = cni_core::result::parse_cidr(subnet)
        .map_err(|e| Failure::new(format!("{e} (expected ADDRESS/PREFIX, e.g. 10.42.0.0/24)")))?;
    if !net.is_ipv4() {
        return Err(Failure::Ipv6Range {
            subnet: subnet.to_string(),
        });
    }
    let conf: Value = serde_json::from_str(template)
        .map_err(|e| Failure::new(format!("the conflist template is not valid JSON: {e}")))?;
    let old = first_subnet(&conf)
        .ok_or_else(|| Failure::new("the conflist template has no host-local range to fill in"))?;
    let needle = format!("\"{old}\"");
    let count = template.matches(&needle).count();
    if count != 1 {
        return Err(Failure::new(format!(
            "the conflist template mentions {needle} {count} times; expected exactly once"
        )));
    }
    let out = template.replacen(&needle, &format!("\"{subnet}\""), 1);
    // Prove the substitution hit the range and nothing else.
    let check: Value = serde_json::from_str(&out)
        .map_err(|e| Failure::new(format!("rendered conflist is not valid JSON: {e}")))?;
    if first_subnet(&check) != Some(subnet) {
        return Err(Failure::new("rendering the conflist did not set the pod range"));
    }
    Ok(out)
}

/// Whether the file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    Written,
    Unchanged,
}

/// Write `content` to `dir/FILE_NAME` atomically, only when it differs.
pub(crate) fn write_if_changed(dir: &Path, content: &str) -> Result<(PathBuf, WriteOutcome)> {
    let path = dir.join(FILE_NAME);
    if fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok((path, WriteOutcome::Unchanged));
    }
    fs::create_dir_all(dir).map_err(|e| Failure::io("create the CNI conf dir", dir, &e))?;
    paths::atomic_write(&path, content.as_bytes(), 0o644)
        .map_err(|e| Failure::io("write the conflist", &path, &e))?;
    Ok((path, WriteOutcome::Written))
}

/// Make containerd reload the conf dir after the conflist was replaced by a
/// rename. Its watcher ignores create events (a rename into the directory is
/// one), but reloads on writes and removals of any file there, and it only
/// loads *.conf, *.conflist and *.json, so a short-lived dot file is enough.
pub(crate) fn poke_watchers(dir: &Path) -> Result<()> {
    let poke = dir.join(".k3s-sandbox-reload");
    fs::write(&poke, b"reload\n").map_err(|e| Failure::io("write", &poke, &e))?;
    fs::remove_file(&poke).map_err(|e| Failure::io("remove", &poke, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_the_repository_default_network() {
        let v: Value = serde_json::from_str(TEMPLATE).unwrap();
        assert_eq!(v["name"], "sandbox-cni");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(default_subnet().unwrap(), "10.42.0.0/24");
    }

    #[test]
    fn render_changes_only_the_subnet() {
        let out = render(TEMPLATE, "10.42.7.0/24").unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(first_subnet(&v), Some("10.42.7.0/24"));
        // Same bytes apart from the one substitution.
        assert_eq!(out.replace("10.42.7.0/24", "10.42.0.0/24"), TEMPLATE);
        // Rendering the default subnet gives the repo file unchanged.
        assert_eq!(render(TEMPLATE, "10.42.0.0/24").unwrap(), TEMPLATE);
    }

    #[test]
    fn render_rejects_bad_ranges_and_templates() {
        for bad in [
            "10.42.0.0",
            "10.42.0.0/33",
            "banana/24",
            "10.42.0.0/+24",
            "10.42.0.0/ 24",
        ] {
            let e = render(TEMPLATE, bad).unwrap_err().message();
            assert!(e.contains("ADDRESS/PREFIX"), "{bad}: {e}");
        }
        let v6 = render(TEMPLATE, "fd00::/64").unwrap_err();
        assert!(
            matches!(&v6, Failure::Ipv6Range { subnet } if subnet == "fd00::/64"),
            "{v6}"
        );
        assert_eq!(
            v6.to_string(),
            "pod range fd00::/64 is IPv6; the default sandbox-cni network is IPv4-only \
             (see cni-conf/dual-stack.conflist for a dual-stack example)"
        );
        let two = r#"{"name":"n","cniVersion":"1.0.0","note":"10.0.0.0/24","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}}]}"#;
        assert!(
            render(two, "10.1.0.0/24")
                .unwrap_err()
                .message()
                .contains("2 times")
        );
        assert!(render("{}", "10.1.0.0/24").is_err());
    }

    #[test]
    fn write_only_when_changed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let (p, w) = write_if_changed(&conf, TEMPLATE).unwrap();
        assert_eq!(w, WriteOutcome::Written);
        assert_eq!(p, conf.join(FILE_NAME));
        let before = fs::metadata(&p).unwrap().modified().unwrap();
        assert_eq!(
            write_if_changed(&conf, TEMPLATE).unwrap().1,
            WriteOutcome::Unchanged
        );
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), before);
        let other = render(TEMPLATE, "10.42.9.0/24").unwrap();
        assert_eq!(write_if_changed(&conf, &other).unwrap().1, WriteOutcome::Written);
        assert_eq!(fs::read_to_string(&p).unwrap(), other);
        poke_watchers(&conf).unwrap();
        assert_eq!(fs::read_dir(&conf).unwrap().count(), 1);
    }
}
