//! k3s's log: its last lines ([`read_tail`], [`tail_lines`], for `logs` and for `up` when k3s did
//! not get ready), and the known failure messages in it with what to do about each one.

use std::fs;
use std::io::Read;
use std::path::Path;

/// (text to look for, lower-case; advice)
const HINTS: &[(&str, &str)] = &[
    (
        "failed to find host-local",
        "k3s looked up the host-local CNI plugin because flannel is enabled. Keep \
         --flannel-backend=none (k3s-sandbox sets it unless an extra argument replaced it), or put \
         host-local on PATH by running ./install.sh.",
    ),
    (
        "failed to get rootfs info",
        "the kubelet cannot read filesystem statistics for its root dir (9p, F2FS, NFS and similar \
         roots). Use `--profile control-plane`, or make sure the kubelet gets \
         local-storage-capacity-isolation=false (k3s-sandbox adds it in the agent profile; it needs \
         k3s 1.25 or newer).",
    ),
    (
        "/dev/kmsg",
        "the kubelet needs to open /dev/kmsg. Use `--profile control-plane`, or as root create a \
         placeholder: `touch /dev/kmsg && mount --bind /dev/null /dev/kmsg`.",
    ),
    (
        "address already in use",
        "a port k3s needs (6443, 6444, 10250, ...) is taken, often by another k3s. Stop it \
         (`k3s-sandbox down` or k3s-killall.sh), check with `k3s-sandbox doctor`, or pass \
         `-- --https-listen-port=PORT`.",
    ),
    (
        "must run as root",
        "the k3s agent needs root. Run as root, or use `--profile control-plane`, which runs \
         without root.",
    ),
    (
        "snapshotter",
        "the containerd snapshotter cannot work on this filesystem. Pass \
         `-- --snapshotter=native`, or put the data dir on a filesystem overlay accepts (ext4, \
         xfs, tmpfs).",
    ),
    (
        "failed to find plugin",
        "containerd cannot find a CNI plugin named in the conflist. Run ./install.sh or \
         `k3s-sandbox up --plugins-from DIR`, then `k3s-sandbox selftest`.",
    ),
    (
        "start failed: io.containerd.runc.v2: invalid argument",
        "containerd's shim cannot start in this gVisor (runsc 2022 refuses its \
         prctl(PR_SET_CHILD_SUBREAPER)). Pods need runsc 2024 or later (see docs/k3s.md, \"Pods in \
         gVisor\"), or use `--profile control-plane` here.",
    ),
    (
        "unsafe procfs detected",
        "runc refuses gVisor's procfs. Install crun (`apt-get install crun`): `k3s-sandbox up` makes \
         it k3s's default runtime in gVisor.",
    ),
    (
        "no cgroup mount found in mountinfo",
        "runc found no cgroup hierarchy, and runc does not work in gVisor anyway. Install crun \
         (`apt-get install crun`) and run `k3s-sandbox up` again: it mounts the cgroup v1 \
         hierarchies pods need.",
    ),
    (
        "could not join cgroup",
        "crun found no cgroup hierarchy to join. `k3s-sandbox up` mounts the cgroup v1 hierarchies in \
         gVisor; check `k3s-sandbox doctor --profile agent` (\"pods: cgroup v1\").",
    ),
    (
        "cni plugin not initialized",
        "containerd found no CNI config. Check that the conflist is in the conf dir containerd \
         reads (/etc/cni/net.d) with `k3s-sandbox doctor`.",
    ),
];

/// Advice for every known message found in `log`, in table order, each once.
pub(crate) fn match_hints(log: &str) -> Vec<&'static str> {
    let lower = log.to_lowercase();
    HINTS
        .iter()
        .filter(|(needle, _)| lower.contains(needle))
        .map(|(_, hint)| *hint)
        .collect()
}

/// The last `n` lines of `text`.
pub(crate) fn tail_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].to_vec()
}

/// Read at most the last `max_bytes` of a file as text (lossy).
pub(crate) fn read_tail(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > max_bytes {
        file.seek(SeekFrom::Start(len - max_bytes))?;
    }
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if len > max_bytes {
        // Drop the partial first line.
        if let Some(pos) = text.find('\n') {
            text.drain(..=pos);
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_known_failure_gets_its_hint() {
        let cases = [
            (
                r#"level=fatal msg="failed to retrieve agent configuration: failed to find host-local: exec: \"host-local\": executable file not found in $PATH""#,
                "--flannel-backend=none",
            ),
            (
                r#"E0101 "Failed to start ContainerManager" err="failed to get rootfs info: unable to find data in memory cache""#,
                "local-storage-capacity-isolation=false",
            ),
            (
                "Error: failed to create kubelet: open /dev/kmsg: no such file or directory",
                "mount --bind /dev/null /dev/kmsg",
            ),
            (
                "listen tcp 127.0.0.1:6444: bind: address already in use",
                "--https-listen-port",
            ),
            (
                "level=fatal msg=\"must run as root unless --disable-agent is specified\"",
                "--profile control-plane",
            ),
            (
                r#"level=fatal msg="failed to validate snapshotter: \"overlayfs\" snapshotter cannot be enabled for \"/x\", try using \"fuse-overlayfs\" or \"native\"""#,
                "--snapshotter=native",
            ),
            // What containerd says inside gVisor (tests/gvisor, docs/k3s.md "Pods in gVisor").
            (
                "failed to create containerd task: failed to start shim: start failed: io.containerd.runc.v2: invalid argument: exit status 1",
                "runsc 2024",
            ),
            (
                "OCI runtime create failed: runc create failed: unsafe procfs detected: incorrect procfs root inode number 86",
                "apt-get install crun",
            ),
            (
                "OCI runtime create failed: runc create failed: no cgroup mount found in mountinfo",
                "mounts the cgroup v1",
            ),
            (
                "failed to create shim task: OCI runtime create failed: could not join cgroup",
                "pods: cgroup v1",
            ),
        ];
        for (log, expect) in cases {
            let hints = match_hints(log);
            assert_eq!(hints.len(), 1, "{log}: {hints:?}");
            assert!(hints[0].contains(expect), "{log}: {}", hints[0]);
        }
    }

    #[test]
    fn matching_ignores_case_and_reports_several_problems_once_each() {
        let log = "ADDRESS ALREADY IN USE\nmust run as root\naddress already in use\n";
        let hints = match_hints(log);
        assert_eq!(hints.len(), 2);
        assert!(hints[0].contains("port"));
        assert!(hints[1].contains("root"));
    }

    #[test]
    fn unrelated_logs_get_no_hint() {
        assert!(match_hints("k3s is up and running\nall fine").is_empty());
        assert!(match_hints("").is_empty());
    }

    #[test]
    fn tail_lines_returns_the_end() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), vec!["b", "c"]);
        assert_eq!(tail_lines("a", 5), vec!["a"]);
    }

    #[test]
    fn read_tail_drops_the_partial_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        fs::write(&p, "first line\nsecond\nthird\n").unwrap();
        assert_eq!(read_tail(&p, 13).unwrap(), "third\n");
        assert_eq!(read_tail(&p, 1000).unwrap(), "first line\nsecond\nthird\n");
    }
}
