//! The host-local networks to work on: found in the conf dir's configs (name, `dataDir`, ranges)
//! or given with --ipam-dir. Configs are read by ipam-store's one reader of host-local
//! configuration, the plugin's own: a config the plugin refuses is refused here with its message.

use std::fs;
use std::path::{Path, PathBuf};

use cni_core::{Fields, Version};
use cni_runtime::conf::{self, NetworkList};
use ipam_store::RangeSet;
use ipam_store::config::{self as hl_config, ConfigError};
use serde_json::{Map, Value};

use super::{StoreArgs, say};
use crate::error::{Failure, Result};
use crate::paths::Dirs;

/// One host-local network found in a config.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    /// Where it was found (a config file), if anywhere.
    pub(crate) config: Option<PathBuf>,
    /// Range sets from the config; empty when unknown.
    pub(crate) sets: Vec<RangeSet>,
    /// Why the ranges could not be read (the plugin's message: its ADD fails the same way).
    pub(crate) range_error: Option<String>,
}

impl Network {
    pub(crate) fn store_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }
}

/// The store settings and range sets of one plugin object of a list at CNI `version`, read as the
/// plugin reads them (its `runtimeConfig` is the runtime's to add, so `ipRanges` is not known here).
/// The outer error: the plugin refuses the store settings, so it never uses a store for this config.
pub(super) fn read_plugin(
    plugin: &Map<String, Value>,
    version: Version,
) -> std::result::Result<(PathBuf, std::result::Result<Vec<RangeSet>, ConfigError>), ConfigError> {
    let conf = Fields::new(plugin, "");
    let ipam = hl_config::ipam(&conf)?;
    let store = hl_config::store_settings(&ipam)?;
    let sets = hl_config::range_sets(&ipam, &Fields::empty(), version).map(|r| r.sets);
    Ok((store.data_dir, sets))
}

/// Every host-local network of the configs in `conf_dir`, in the configs' sort order; configs
/// that cannot be read are reported in the second list.
pub(crate) fn networks_in(conf_dir: &Path) -> (Vec<Network>, Vec<String>) {
    let mut out: Vec<Network> = Vec::new();
    let mut problems = Vec::new();
    let files = match conf::config_files(conf_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            problems.push(format!("cannot list {}: {e}", conf_dir.display()));
            Vec::new()
        }
    };
    for file in files {
        let list = match NetworkList::load_file(&file) {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        let name = list.name.clone();
        for p in &list.plugins {
            let Some(ipam) = p.get("ipam") else { continue };
            if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
                continue;
            }
            let version = Version::parse(&list.cni_version).unwrap_or(Version::V1_1_0);
            let (data_dir, sets) = match read_plugin(p, version) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{}: network {name}: {e}", file.display()));
                    continue;
                }
            };
            if out.iter().any(|n| n.name == name && n.data_dir == data_dir) {
                continue;
            }
            let (sets, range_error) = match sets {
                Ok(s) => (s, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            out.push(Network {
                name: name.clone(),
                data_dir,
                config: Some(file.clone()),
                sets,
                range_error,
            });
        }
    }
    (out, problems)
}

/// The networks to work on: from the configs, or every store under --ipam-dir (with the ranges of
/// a config of the same name when there is one).
pub(super) fn select(dirs: &Dirs, store: &StoreArgs, only: Option<&str>) -> Result<Vec<Network>> {
    let (known, problems) = networks_in(&dirs.cni_conf_dir);
    let mut known_names: Vec<String> = known.iter().map(|k| k.name.clone()).collect();
    known_names.dedup();
    for p in &problems {
        say(&format!("warning: {p}"));
    }
    let mut nets: Vec<Network> = match &store.ipam_dir {
        Some(dir) => {
            let mut names: Vec<String> = match only {
                Some(n) => vec![n.to_string()],
                None => fs::read_dir(dir)
                    .map_err(|e| Failure::io("list", dir, &e))?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
            };
            names.sort();
            names
                .into_iter()
                .map(|name| match known.iter().find(|k| k.name == name) {
                    Some(k) => Network {
                        data_dir: dir.clone(),
                        ..k.clone()
                    },
                    None => Network {
                        name,
                        data_dir: dir.clone(),
                        config: None,
                        sets: Vec::new(),
                        range_error: None,
                    },
                })
                .collect()
        }
        None => known,
    };
    if let Some(n) = only {
        nets.retain(|k| k.name == n);
        if nets.is_empty() {
            let names: Vec<&str> = known_names.iter().map(String::as_str).collect();
            return Err(Failure::new(format!(
                "no config in {} names a host-local network {n:?}{}; {}pass --ipam-dir DIR \
                 (host-local's dataDir) to use its store anyway",
                dirs.cni_conf_dir.display(),
                crate::suggest::did_you_mean(n, names.iter().copied()),
                if names.is_empty() {
                    String::new()
                } else {
                    format!("known host-local networks: {}; or ", names.join(", "))
                }
            )));
        }
    }
    Ok(nets)
}

/// Exactly one network for release and gc.
pub(super) fn one(dirs: &Dirs, store: &StoreArgs, name: &str) -> Result<Network> {
    let mut nets = select(dirs, store, Some(name))?;
    if nets.len() > 1 {
        return Err(Failure::new(format!(
            "network {name:?} uses several stores ({}); pick one with --ipam-dir DIR",
            nets.iter()
                .map(|n| n.store_dir().display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    nets.pop()
        .ok_or_else(|| Failure::new(format!("no network {name:?}")))
}
