//! `ipam gc`: free the reservations of attachments that are not live (from --valid or the
//! container runtime), older than --min-age; a dry run unless --apply.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cni_core::safefs::printable;
use ipam_store::inspect::Inspection;
use ipam_store::live::Fate;
use ipam_store::{Live, Owner};

use super::network::{Network, one};
use super::release::open_store;
use super::{DEFAULT_MIN_AGE, GcArgs, fmt_age, say};
use crate::cni::cri;
use crate::duration::parse_duration;
use crate::error::{Failure, Result};
use crate::output::{self, outln, plural, shell_quote};
use crate::paths::Dirs;
use serde_json::{Value, json};

/// One reservation gc would free, and why.
#[derive(Debug, Clone)]
pub(crate) struct Doomed {
    pub(crate) ip: IpAddr,
    pub(crate) owner: Option<Owner>,
    pub(crate) age: Option<Duration>,
}

/// What gc decides for a store: the reservations to free, and how many are kept.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) free: Vec<Doomed>,
    pub(crate) live: usize,
    /// Not live, but younger than --min-age.
    pub(crate) young: usize,
    /// Not regular files: never removed by gc.
    pub(crate) blocked: Vec<IpAddr>,
}

/// Decides, from the reservations and their ages, what to free: each reservation's fate is
/// ipam-store's one liveness rule ([`ipam_store::live`]), the same the plugin's GC and the leak
/// counts of `doctor` and `status` use; dead ones younger than `min_age` are kept.
pub(crate) fn plan(found: &Inspection, live: &Live, min_age: Duration) -> Plan {
    let mut p = Plan::default();
    for r in &found.reservations {
        match live.fate(r.entry()) {
            Fate::Blocked => p.blocked.push(r.ip),
            Fate::Live => p.live += 1,
            Fate::Dead if r.age.is_none_or(|a| a < min_age) => p.young += 1,
            Fate::Dead => p.free.push(Doomed {
                ip: r.ip,
                owner: r.owner.clone(),
                age: r.age,
            }),
        }
    }
    p
}

/// ` FLAG PATH`, the path quoted for a shell.
fn path_flag(flag: &str, path: &Path) -> String {
    format!(" {flag} {}", shell_quote(&path.to_string_lossy()))
}

/// `k3s-sandbox ipam gc NETWORK [--cni-conf-dir DIR]`: the start of every gc command line we
/// print.
fn gc_start(dirs: &Dirs, net: &Network) -> String {
    let mut s = format!("k3s-sandbox ipam gc {}", shell_quote(&net.name));
    if dirs.cni_conf_dir != Path::new(crate::paths::DEFAULT_CNI_CONF_DIR) {
        s.push_str(&path_flag("--cni-conf-dir", &dirs.cni_conf_dir));
    }
    if net.config.is_none() {
        s.push_str(&path_flag("--ipam-dir", &net.data_dir));
    }
    s
}

/// `--from-cri`, with `--data-dir` when the instance is not the default one.
fn from_cri_flags(dirs: &Dirs) -> String {
    let mut s = String::from(" --from-cri");
    if let Ok(default) = crate::paths::default_data_dir(
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    ) && default != dirs.data_dir
    {
        s.push_str(&path_flag("--data-dir", &dirs.data_dir));
    }
    s
}

/// The exact gc command for a network, with the runtime's pods as the live ones.
pub(crate) fn gc_command(dirs: &Dirs, net: &Network, apply: bool, allow_empty: bool) -> String {
    let mut s = gc_start(dirs, net);
    s.push_str(&from_cri_flags(dirs));
    if apply {
        s.push_str(" --apply");
    }
    if allow_empty {
        s.push_str(" --allow-empty");
    }
    s
}

/// The gc command for a network when the runtime cannot be asked: the live IDs by hand.
pub(crate) fn gc_valid_command(dirs: &Dirs, net: &Network) -> String {
    format!("{} --valid LIVE-ID", gc_start(dirs, net))
}

/// The `ipam ls` command for a network.
pub(crate) fn ls_command(dirs: &Dirs, net: &Network) -> String {
    let mut s = format!("k3s-sandbox ipam ls {}", shell_quote(&net.name));
    if dirs.cni_conf_dir != Path::new(crate::paths::DEFAULT_CNI_CONF_DIR) {
        s.push_str(&path_flag("--cni-conf-dir", &dirs.cni_conf_dir));
    }
    if net.config.is_none() {
        s.push_str(&path_flag("--ipam-dir", &net.data_dir));
    }
    s
}

pub(super) fn gc(dirs: &Dirs, a: &GcArgs) -> Result<u8> {
    let net = one(dirs, &a.store, &a.network)?;
    // The runtime is asked first; the reservations are read (and freed) afterwards under the lock,
    // so a pod created in between holds a young reservation, which --min-age keeps.
    let (valid, from) = if a.from_cri {
        let answer = cri::live_sandboxes(dirs, a.runtime_endpoint.as_deref()).map_err(|e| {
            Failure::new(format!(
                "refusing to collect garbage: the container runtime cannot be asked which pods exist: {e}. \
                 Nothing was freed. Start the runtime (k3s agent), or pass the live attachments with --valid ID[/IFNAME]..."
            ))
        })?;
        say(&format!(
            "{} lists {}",
            answer.asked,
            plural(answer.sandboxes.len() as u64, "pod sandbox", "pod sandboxes")
        ));
        let ids = answer.sandboxes.iter().map(|s| (s.id.clone(), None)).collect();
        (Live::new(ids), "the runtime's pod sandboxes")
    } else {
        let list = a.valid.iter().map(|v| (v.id.clone(), v.ifname.clone())).collect();
        (Live::new(list), "--valid")
    };
    let dir = net.store_dir();
    if !dir.is_dir() {
        say(&format!(
            "network {} has no store at {}: nothing to collect",
            net.name,
            dir.display()
        ));
        return Ok(0);
    }
    let mut store = open_store(&net)?;
    // Under the store's (exclusive) lock, which we hold: nothing changes until we are done.
    let found = store
        .inspect()
        .map_err(|e| Failure::new(format!("cannot inspect {}: {e}", dir.display())))?;
    let p = plan(&found, &valid, a.min_age);
    let empty_runtime = a.from_cri && valid.is_empty();
    if a.json {
        let doomed: Vec<Value> = p
            .free
            .iter()
            .map(|d| {
                json!({"ip": d.ip.to_string(), "containerID": d.owner.as_ref().map(|o| o.id.clone()),
                       "ifname": d.owner.as_ref().and_then(|o| o.ifname.clone()),
                       "ageSeconds": d.age.map(|x| x.as_secs())})
            })
            .collect();
        output::print_json(&json!({
            "network": net.name, "store": dir.display().to_string(),
            "reservations": found.reservations.len(), "live": p.live, "young": p.young,
            "minAgeSeconds": a.min_age.as_secs(),
            "blocked": p.blocked.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "refusals": found.damage.iter().filter(|d| d.blocks_calls()).map(ToString::to_string).collect::<Vec<_>>(),
            "free": doomed, "dryRun": !a.apply,
        }));
    } else {
        outln!(
            "network {}: {}: {} held by live attachments ({from}), {} younger than --min-age {}s (kept), {} to free",
            net.name,
            plural(found.reservations.len() as u64, "reservation", "reservations"),
            p.live,
            p.young,
            a.min_age.as_secs(),
            p.free.len()
        );
        for ip in &p.blocked {
            outln!("  {ip}: not a regular file, never removed by gc: remove it by hand");
        }
        // What gc cannot repair: plugin calls on this store keep failing until it is removed by hand.
        for d in found.damage.iter().filter(|d| d.blocks_calls()) {
            outln!("  {d}");
        }
        if !p.free.is_empty() {
            let rows: Vec<Vec<String>> = p
                .free
                .iter()
                .map(|d| {
                    let (id, ifname) = holder_cells(d.owner.as_ref(), a.no_trunc);
                    vec![d.ip.to_string(), id, ifname, fmt_age(d.age)]
                })
                .collect();
            for line in output::table(&["ADDRESS", "CONTAINER", "IF", "AGE"], &rows, &[3], a.no_trunc) {
                outln!("  {line}");
            }
        }
    }
    if p.free.is_empty() {
        return Ok(0);
    }
    let everything = p.live == 0 && p.young == 0;
    if empty_runtime && !a.allow_empty {
        let msg = "the runtime lists no pod sandbox at all, so every reservation would be freed";
        if a.apply {
            return Err(Failure::new(format!(
                "{msg}; nothing was freed. If no pod runs on this node, run again with --allow-empty"
            )));
        }
        say(&format!("{msg}: --apply also needs --allow-empty"));
    }
    if !a.apply {
        say(&format!(
            "dry run: nothing freed. Free them with: {} --apply{}",
            gc_args_text(dirs, &net, a),
            if empty_runtime { " --allow-empty" } else { "" }
        ));
        return Ok(0);
    }
    let mut freed = 0;
    for d in &p.free {
        match store.release_address(d.ip) {
            Ok(Some(_)) => freed += 1,
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::new(format!(
                    "freed {freed} of {}, then: {e}",
                    p.free.len()
                )));
            }
        }
    }
    say(&format!(
        "freed {}{}",
        plural(freed as u64, "reservation", "reservations"),
        if everything { " (all of them)" } else { "" }
    ));
    Ok(0)
}

/// The command line of this gc run without --apply, for the dry run's hint.
fn gc_args_text(dirs: &Dirs, net: &Network, a: &GcArgs) -> String {
    let mut s = gc_start(dirs, net);
    if let Some(d) = &a.store.ipam_dir
        && net.config.is_some()
    {
        s.push_str(&path_flag("--ipam-dir", d));
    }
    if a.from_cri {
        s.push_str(&from_cri_flags(dirs));
        if let Some(e) = &a.runtime_endpoint {
            s.push_str(&format!(" --runtime-endpoint {}", shell_quote(e)));
        }
    } else {
        for v in &a.valid {
            s.push_str(&format!(" --valid {}", shell_quote(&v.to_string())));
        }
    }
    if a.min_age != parse_duration(DEFAULT_MIN_AGE).unwrap_or_default() {
        s.push_str(&format!(" --min-age {}s", a.min_age.as_secs()));
    }
    s
}

/// The CONTAINER and IF cells of a holder.
pub(super) fn holder_cells(o: Option<&Owner>, full: bool) -> (String, String) {
    match o {
        Some(o) => (
            printable(&output::short_id(&o.id, full)).into_owned(),
            o.ifname
                .as_deref()
                .map_or_else(|| "-".into(), |i| printable(i).into_owned()),
        ),
        None => ("(no holder)".to_string(), "-".to_string()),
    }
}
