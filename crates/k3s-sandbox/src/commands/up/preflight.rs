//! Warnings `up` gives before it starts k3s: busy ports, agent blockers, CNI directories
//! containerd will not read, a data dir on 9p.

use crate::commands::say;
use crate::host::probe::{self, HostFacts};
use crate::k3s::flags::Profile;
use crate::paths::Dirs;

pub(super) fn preflight(facts: &HostFacts, profile: Profile, dirs: &Dirs) {
    let warn = |m: String| say(&format!("warning: {m}"));
    for (port, busy) in [6443u16, 6444].into_iter().map(|p| (p, probe::port_free(p))) {
        if let Err(e) = busy {
            warn(format!(
                "port {port} on 127.0.0.1 is in use ({e}); k3s will likely fail with `address already in use`"
            ));
        }
    }
    if profile == Profile::Agent {
        for b in facts.agent_blockers() {
            warn(format!("agent profile: {b}"));
        }
        if let Err(e) = probe::port_free(10250) {
            warn(format!("port 10250 (kubelet) is in use ({e})"));
        }
        if !dirs.uses_default_cni_dirs() {
            warn(format!(
                "k3s's containerd reads CNI plugins from {} and configs from {} when flannel is off; \
                 {} and {} are used for the plugins and conflist here, but pods will not see them",
                crate::paths::DEFAULT_CNI_BIN_DIR,
                crate::paths::DEFAULT_CNI_CONF_DIR,
                dirs.cni_bin_dir.display(),
                dirs.cni_conf_dir.display()
            ));
        }
    }
    if facts.data_fs == Ok(probe::MAGIC_9P) {
        warn(format!(
            "the data dir is on 9p ({}); if k3s is slow or its database fails, use --data-dir on a tmpfs",
            facts.data_fs_path.display()
        ));
    }
}
