//! What `up` does for an agent in gVisor, and `down` undoes: crun as k3s's default runtime
//! (`--default-runtime`), k3s's containerd templates importing [`super::containerd_fragment`],
//! and the cgroup v1 mounts, all recorded in the data dir's [`super::RECORD_FILE`].
//!
//! `K3S_SANDBOX_PODS_PROFILE` = `gvisor` applies it outside gVisor too, `none` never; unset, it
//! applies in gVisor. `K3S_SANDBOX_PODS_ROOT` = DIR (tests) looks for crun and the cgroup root
//! under DIR instead of `/`; `K3S_SANDBOX_MOUNT_LOG` (tests) logs the mounts instead of making them.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    CGROUP_ROOT, ConfigVersion, Mounter, RECORD_FILE, RUNTIME, Record, apply, containerd_fragment, find_crun,
    k3s_template, mount, plan, revert,
};
use crate::error::{Failure, Result};

/// The first line of the templates `up` writes; a template without it is the user's own.
const OURS: &str = "# Written by k3s-sandbox up";

/// The pods-in-gVisor profile of one `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pods {
    /// What stands for `/` (`/` outside tests).
    pub(crate) root: PathBuf,
    /// crun where k3s finds it, if installed.
    pub(crate) crun: Option<PathBuf>,
    /// Whether k3s takes `--default-runtime` (it does since 1.29).
    pub(crate) flag: bool,
    /// Whether k3s offers its config as the template `base` (September 2023 releases on).
    pub(crate) templates: bool,
}

impl Pods {
    /// The profile when it applies: in gVisor (`in_gvisor`) unless turned off, or when forced.
    pub(crate) fn wanted(in_gvisor: bool) -> Option<Pods> {
        let setting = std::env::var("K3S_SANDBOX_PODS_PROFILE").unwrap_or_default();
        let on = match setting.as_str() {
            "gvisor" => true,
            "none" => false,
            _ => in_gvisor,
        };
        if !on {
            return None;
        }
        let root = std::env::var_os("K3S_SANDBOX_PODS_ROOT")
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let crun = find_crun(&root);
        Some(Pods {
            root,
            crun,
            flag: true,
            templates: true,
        })
    }

    /// The k3s flag that makes crun the default runtime, unless the user's arguments set one.
    pub(crate) fn default_runtime_flag(&self, extra: &[String]) -> Option<String> {
        let user_sets = extra.iter().any(|a| a.starts_with("--default-runtime"));
        (self.flag && self.crun.is_some() && !user_sets).then(|| format!("--default-runtime={RUNTIME}"))
    }

    fn cgroup_root(&self) -> PathBuf {
        self.root.join(CGROUP_ROOT.trim_start_matches('/'))
    }

    /// Writes the fragments and templates and mounts the missing hierarchies; every step is
    /// recorded in `state_dir` before the next one, so `down` can undo a half-done `up`.
    /// Returns lines for the user.
    pub(crate) fn setup(&self, state_dir: &Path, k3s_data: &Path, m: &dyn Mounter) -> Result<Vec<String>> {
        let record_file = state_dir.join(RECORD_FILE);
        let mut record = Record::load(&record_file)?.unwrap_or_default();
        let mut said = Vec::new();
        if let Some(crun) = &self.crun {
            let dir = k3s_data.join("agent/etc/containerd");
            fs::create_dir_all(&dir).map_err(|e| Failure::io("create", &dir, &e))?;
            for v in [ConfigVersion::V3, ConfigVersion::V2] {
                let fragment = state_dir.join(v.fragment_file());
                write(
                    &fragment,
                    &containerd_fragment(v, crun),
                    &mut record,
                    &record_file,
                )?;
                let template = dir.join(v.template());
                if !self.templates {
                    said.push(format!(
                        "warning: this k3s has no `base` containerd template (k3s 1.24.17, 1.25.13, 1.26.8, \
                         1.27.5, 1.28.1 and later have it): not writing {}; copy the settings of {} into \
                         your own template",
                        template.display(),
                        fragment.display()
                    ));
                    continue;
                }
                if theirs(&template) {
                    said.push(format!(
                        "warning: kept your {}; for pods in gVisor add `imports = [\"{}\"]` to it",
                        template.display(),
                        fragment.display()
                    ));
                    continue;
                }
                write(&template, &k3s_template(&fragment), &mut record, &record_file)?;
            }
            said.push(format!(
                "pods in gVisor: runtime {RUNTIME} ({}), containerd settings in {}",
                crun.display(),
                dir.display()
            ));
        } else {
            said.push(format!(
                "warning: crun is not installed (k3s looks in /{}); pods cannot start in gVisor without \
                 it: apt-get install crun, then run `up` again",
                super::CRUN_DIRS.join(", /")
            ));
        }
        let root = self.cgroup_root();
        if let Some(p) = plan(&root, &mount::mountinfo()) {
            let result = apply(m, &root, &p, &mut record);
            record.save(&record_file)?;
            result?;
            if !p.controllers.is_empty() {
                said.push(format!(
                    "mounted the cgroup v1 hierarchies {} under {} (`down` unmounts them)",
                    p.controllers.join(", "),
                    root.display()
                ));
            }
        }
        Ok(said)
    }
}

/// Whether `path` is a template the user wrote (present, and not ours).
fn theirs(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|t| !t.starts_with(OURS))
}

fn write(path: &Path, text: &str, record: &mut Record, record_file: &Path) -> Result<()> {
    if !record.written.iter().any(|p| p == path) {
        record.written.push(path.to_path_buf());
        record.save(record_file)?;
    }
    fs::write(path, text).map_err(|e| Failure::io("write", path, &e))
}

/// Undoes what `up` recorded in `state_dir`: unmounts, removes the written files and the record.
/// Returns lines for the user; problems leave the record in place listing what is left.
pub(crate) fn teardown(state_dir: &Path, m: &dyn Mounter) -> Result<Vec<String>> {
    let record_file = state_dir.join(RECORD_FILE);
    let Some(record) = Record::load(&record_file)? else {
        return Ok(Vec::new());
    };
    let (left, problems) = revert(m, &record);
    if !problems.is_empty() {
        left.save(&record_file)?;
        return Err(Failure::new(format!(
            "{}; {} lists what is left: stop what uses it and run `down` again",
            problems.join("; "),
            record_file.display()
        )));
    }
    fs::remove_file(&record_file).map_err(|e| Failure::io("remove", &record_file, &e))?;
    let mut said = Vec::new();
    if !record.mounted.is_empty() {
        let points: Vec<String> = record
            .mounted
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        said.push(format!("unmounted {}", points.join(", ")));
    }
    if !record.written.is_empty() {
        said.push(format!(
            "removed the containerd templates and settings for pods in gVisor ({} files)",
            record.written.len()
        ));
    }
    Ok(said)
}
