//! Which sandbox `doctor` runs in, and what that means for the profiles.
//!
//! gVisor (`runsc`) is recognised by two signatures of its kernel: the kernel
//! log starts with the banner "Starting gVisor...", and `/proc/version` is a
//! fixed made-up Linux 4.4.0 line. Either one is enough; both are reported.
//! Its root filesystem is either a memory overlay over the host's files
//! (`runsc --overlay`, the default of `runsc do`) or 9p (gofer-backed).
//! `/dev/kmsg` and `/proc/sys/kernel/random/boot_id` are missing there too;
//! they are reported as supporting facts, never used alone (containers lack
//! them as well).
//!
//! Probing (`SandboxFacts::probe`) is kept apart from judging (`checks`), so
//! the judgement is unit tested on the texts gVisor prints.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::host::doctor::{Check, Level};
use crate::host::probe;
use crate::paths;

/// `/proc/version` inside gVisor, whatever the host kernel.
pub(crate) const GVISOR_PROC_VERSION: &str = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016";
/// The first message of gVisor's kernel log.
pub(crate) const GVISOR_DMESG_BANNER: &str = "Starting gVisor...";

/// What the probes saw; `None` where a source could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SandboxFacts {
    /// Text of /proc/version.
    pub(crate) proc_version: Option<String>,
    /// The first lines of the kernel log (`dmesg`).
    pub(crate) dmesg_head: Option<String>,
    pub(crate) kmsg_exists: bool,
    pub(crate) boot_id_exists: bool,
}

/// The sandbox doctor recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sandbox {
    /// gVisor, with the signatures that gave it away.
    Gvisor { evidence: Vec<&'static str> },
    /// No known sandbox signature.
    None,
}

/// Kernel-log lines read: the banner is the first message.
const DMESG_LINES: usize = 5;

impl SandboxFacts {
    /// Probe the running system. `dmesg` may be refused to unprivileged
    /// users (kernel.dmesg_restrict); /proc/version then decides alone.
    pub(crate) fn probe() -> SandboxFacts {
        SandboxFacts {
            proc_version: fs::read_to_string("/proc/version").ok(),
            dmesg_head: read_dmesg_head(),
            kmsg_exists: Path::new("/dev/kmsg").exists(),
            boot_id_exists: Path::new("/proc/sys/kernel/random/boot_id").exists(),
        }
    }

    pub(crate) fn detect(&self) -> Sandbox {
        let mut evidence = Vec::new();
        let first_message = self
            .dmesg_head
            .as_deref()
            .and_then(|t| t.lines().find(|l| !l.trim().is_empty()));
        if first_message.is_some_and(is_gvisor_banner) {
            evidence.push("dmesg starts with \"Starting gVisor...\"");
        }
        if self
            .proc_version
            .as_deref()
            .is_some_and(|t| t.trim() == GVISOR_PROC_VERSION)
        {
            evidence.push("/proc/version is gVisor's fixed 4.4.0 line");
        }
        if evidence.is_empty() {
            Sandbox::None
        } else {
            Sandbox::Gvisor { evidence }
        }
    }
}

/// A kernel-log line carrying gVisor's banner, with or without dmesg's
/// `[    0.000000] ` time stamp.
fn is_gvisor_banner(line: &str) -> bool {
    let text = match line.trim_start().strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(_, after)| after),
        None => line,
    };
    text.trim().starts_with(GVISOR_DMESG_BANNER)
}

fn read_dmesg_head() -> Option<String> {
    let dmesg = paths::find_in_path("dmesg", std::env::var_os("PATH").as_deref())?;
    let out = cni_runtime::runner::run(
        &mut std::process::Command::new(&dmesg),
        b"",
        Duration::from_secs(5),
    )
    .ok()?;
    if !out.success() {
        return None;
    }
    let text = out.stdout_text();
    Some(text.lines().take(DMESG_LINES).collect::<Vec<_>>().join("\n"))
}

/// How the root filesystem reads for the sandbox line.
fn root_kind(root_fs: &Result<u64, probe::StatfsError>) -> String {
    match root_fs {
        Ok(m) if *m == probe::MAGIC_9P => "9p root (files served by the gofer)".to_string(),
        Ok(m) if *m == probe::MAGIC_OVERLAY => {
            "overlay root (a memory overlay over the host's files: writes stay in the sandbox)".to_string()
        }
        Ok(m) => format!("{} root", probe::fs_name(*m)),
        Err(e) => format!("root of unknown type ({e})"),
    }
}

/// The sandbox line, and in gVisor the control-plane profile's (the agent's comes from what
/// [`crate::k3s::gvisor_pods::measure`] measures).
pub(crate) fn checks(facts: &SandboxFacts, root_fs: &Result<u64, probe::StatfsError>) -> Vec<Check> {
    let Sandbox::Gvisor { evidence } = facts.detect() else {
        let kernel = facts
            .proc_version
            .as_deref()
            .and_then(|v| v.split_whitespace().nth(2))
            .unwrap_or("unknown");
        return vec![Check {
            level: Level::Ok,
            name: "sandbox".into(),
            detail: format!("none detected (Linux {kernel}; no gVisor signature)"),
            remedy: None,
        }];
    };
    let mut support = Vec::new();
    if !facts.kmsg_exists {
        support.push("no /dev/kmsg");
    }
    if !facts.boot_id_exists {
        support.push("no boot_id");
    }
    let mut why = evidence.join(", ");
    if !support.is_empty() {
        why = format!("{why}; {}", support.join(", "));
    }
    vec![
        Check {
            level: Level::Ok,
            name: "sandbox".into(),
            detail: format!("gVisor (runsc), {} [{why}]", root_kind(root_fs)),
            remedy: None,
        },
        Check {
            level: Level::Ok,
            name: "profile control-plane".into(),
            detail: "works in gVisor: API server, controllers, kubectl and Helm need no pod network; \
                     the sandbox-cni plugins answer every CNI verb here"
                .into(),
            remedy: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first lines of `dmesg` inside runsc 20221219, as printed there.
    const GVISOR_DMESG: &str = "[    0.000000] Starting gVisor...\n\
        [    0.292291] Creating cloned children...\n\
        [    0.476002] Letting the watchdogs out...\n";
    const DEBIAN_PROC_VERSION: &str = "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) \
        (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP \
        PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)\n";
    const DEBIAN_DMESG: &str = "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org)\n\
        [    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=x ro quiet\n";

    fn gvisor() -> SandboxFacts {
        SandboxFacts {
            proc_version: Some(format!("{GVISOR_PROC_VERSION}\n")),
            dmesg_head: Some(GVISOR_DMESG.into()),
            kmsg_exists: false,
            boot_id_exists: false,
        }
    }

    fn host() -> SandboxFacts {
        SandboxFacts {
            proc_version: Some(DEBIAN_PROC_VERSION.into()),
            dmesg_head: Some(DEBIAN_DMESG.into()),
            kmsg_exists: true,
            boot_id_exists: true,
        }
    }

    #[test]
    fn gvisor_is_recognised_by_either_signature() {
        assert_eq!(
            gvisor().detect(),
            Sandbox::Gvisor {
                evidence: vec![
                    "dmesg starts with \"Starting gVisor...\"",
                    "/proc/version is gVisor's fixed 4.4.0 line"
                ]
            }
        );
        let mut f = gvisor();
        f.dmesg_head = None; // dmesg refused
        assert!(matches!(f.detect(), Sandbox::Gvisor { evidence } if evidence.len() == 1));
        let mut f = host();
        f.dmesg_head = Some("Starting gVisor...\n".into()); // no time stamp
        assert!(matches!(f.detect(), Sandbox::Gvisor { evidence } if evidence.len() == 1));
    }

    #[test]
    fn a_normal_kernel_is_not_gvisor() {
        assert_eq!(host().detect(), Sandbox::None);
        // Missing kmsg and boot_id alone (a container) are not gVisor.
        let mut f = host();
        f.kmsg_exists = false;
        f.boot_id_exists = false;
        f.dmesg_head = None;
        assert_eq!(f.detect(), Sandbox::None);
        // Another 4.4.0 kernel is not gVisor's line.
        f.proc_version = Some("Linux version 4.4.0-210-generic (buildd@lgw01) #242-Ubuntu SMP\n".into());
        assert_eq!(f.detect(), Sandbox::None);
        // The banner anywhere but first (a message quoting it) does not count.
        f.dmesg_head = Some(format!("{DEBIAN_DMESG}[   12.0] Starting gVisor...\n"));
        assert_eq!(f.detect(), Sandbox::None);
        let c = checks(&host(), &Ok(probe::MAGIC_EXT));
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0].to_string(),
            "ok    sandbox: none detected (Linux 6.1.0-18-amd64; no gVisor signature)"
        );
    }

    #[test]
    fn the_sandbox_line_names_gvisor_and_the_root() {
        let c = checks(&gvisor(), &Ok(probe::MAGIC_OVERLAY));
        let line = c[0].to_string();
        assert!(
            line.starts_with("ok    sandbox: gVisor (runsc), overlay root"),
            "{line}"
        );
        assert!(line.contains("no /dev/kmsg, no boot_id"), "{line}");
        let c = checks(&gvisor(), &Ok(probe::MAGIC_9P));
        assert!(
            c[0].detail.starts_with("gVisor (runsc), 9p root"),
            "{}",
            c[0].detail
        );
        let c = checks(&gvisor(), &Err(probe::StatfsError(rustix::io::Errno::ACCESS)));
        assert!(
            c[0].detail
                .contains("root of unknown type (statfs failed: Permission denied (os error 13))"),
            "{}",
            c[0].detail
        );
    }

    #[test]
    fn gvisor_says_the_control_plane_works_and_leaves_the_agent_to_the_measurements() {
        let c = checks(&gvisor(), &Ok(probe::MAGIC_OVERLAY));
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sandbox", "profile control-plane"]);
        assert_eq!(c[1].level, Level::Ok);
        assert_eq!(checks(&host(), &Ok(probe::MAGIC_OVERLAY)).len(), 1);
    }
}
