//! `ipam gc`: free the reservations of attachments that are not live (from --valid or the
//! container runtime), older than --min-age; a dry run unless --apply.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipam_store::Owner;
use ipam_store::inspect::{self, Inspection};

use super::network::{Network, one};
use super::release::{describe_holder, open_store};
use super::{DEFAULT_MIN_AGE, GcArgs, fmt_age, say};
use crate::cri;
use crate::error::{Failure, Result};
use crate::paths::Dirs;
use crate::trace_cmd::parse_duration;
use crate::util::shell_quote;

/// The live attachments: a container ID and, when known, the interface.
#[derive(Debug, Clone, Default)]
pub struct Valid {
    pub attachments: BTreeSet<(String, Option<String>)>,
}

impl Valid {
    pub fn parse(list: &[String]) -> Result<Valid> {
        let mut v = Valid::default();
        for item in list {
            let (id, ifname) = match item.split_once('/') {
                Some((id, i)) => (id, Some(i.to_string())),
                None => (item.as_str(), None),
            };
            if id.is_empty() || ifname.as_deref() == Some("") {
                return Err(Failure::new(format!(
                    "--valid {item:?}: expected a container ID, optionally followed by /IFNAME"
                )));
            }
            v.attachments.insert((id.to_string(), ifname));
        }
        Ok(v)
    }

    /// Whether the holder belongs to a live attachment (an id-only holder to any interface of its
    /// container; a live entry without an interface to every interface of its container).
    pub fn keeps(&self, o: &Owner) -> bool {
        self.attachments
            .range((o.id.clone(), None)..)
            .take_while(|(id, _)| *id == o.id)
            .any(|(_, i)| i.is_none() || o.ifname.is_none() || *i == o.ifname)
    }
}

/// One reservation gc would free, and why.
#[derive(Debug, Clone)]
pub struct Doomed {
    pub ip: IpAddr,
    pub owner: Option<Owner>,
    pub age: Option<Duration>,
}

/// What gc decides for a store: the reservations to free, and how many are kept.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub free: Vec<Doomed>,
    pub live: usize,
    /// Not live, but younger than --min-age.
    pub young: usize,
    /// Not regular files: never removed by gc.
    pub blocked: Vec<IpAddr>,
}

/// Decides, from the reservations and their ages, what to free.
pub fn plan(found: &Inspection, valid: &Valid, min_age: Duration) -> Plan {
    let mut p = Plan::default();
    let not_files: BTreeSet<IpAddr> = found
        .damage
        .iter()
        .filter_map(|d| match d {
            inspect::Damage::NotAFile { ip, .. } => Some(*ip),
            _ => None,
        })
        .collect();
    for r in &found.reservations {
        if not_files.contains(&r.ip) {
            p.blocked.push(r.ip);
            continue;
        }
        if r.owner.as_ref().is_some_and(|o| valid.keeps(o)) {
            p.live += 1;
        } else if r.age.is_none_or(|a| a < min_age) {
            p.young += 1;
        } else {
            p.free.push(Doomed {
                ip: r.ip,
                owner: r.owner.clone(),
                age: r.age,
            });
        }
    }
    p
}

/// ` FLAG PATH`, the path quoted for a shell.
fn path_flag(flag: &str, path: &Path) -> String {
    format!(" {flag} {}", shell_quote(&path.to_string_lossy()))
}

/// `k3s-sandbox [global flags] ipam gc NETWORK`: the start of every gc command line we print.
fn gc_start(dirs: &Dirs, net: &Network) -> String {
    let mut s = String::from("k3s-sandbox");
    if dirs.cni_conf_dir != Path::new(crate::paths::DEFAULT_CNI_CONF_DIR) {
        s.push_str(&path_flag("--cni-conf-dir", &dirs.cni_conf_dir));
    }
    if let Ok(default) = crate::paths::default_data_dir(
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    ) && default != dirs.data_dir
    {
        s.push_str(&path_flag("--data-dir", &dirs.data_dir));
    }
    s.push_str(&format!(" ipam gc {}", shell_quote(&net.name)));
    s
}

/// The exact gc command for a network.
pub fn gc_command(dirs: &Dirs, net: &Network, apply: bool, allow_empty: bool) -> String {
    let mut s = gc_start(dirs, net);
    if net.config.is_none() {
        s.push_str(&path_flag("--ipam-dir", &net.data_dir));
    }
    s.push_str(" --from-cri");
    if apply {
        s.push_str(" --apply");
    }
    if allow_empty {
        s.push_str(" --allow-empty");
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
            "{} lists {} pod sandbox(es)",
            answer.asked,
            answer.sandboxes.len()
        ));
        let mut v = Valid::default();
        for s in &answer.sandboxes {
            v.attachments.insert((s.id.clone(), None));
        }
        (v, "the runtime's pod sandboxes")
    } else {
        (Valid::parse(&a.valid)?, "--valid")
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
    // Under the store's (exclusive) lock: nothing changes until we are done.
    let found = inspect::inspect(&dir, Duration::ZERO)
        .map_err(|e| Failure::new(format!("cannot inspect {}: {e}", dir.display())))?;
    let p = plan(&found, &valid, a.min_age);
    println!(
        "network {}: {} reservation(s): {} held by live attachments ({from}), {} younger than --min-age {}s (kept), {} to free",
        net.name,
        found.reservations.len(),
        p.live,
        p.young,
        a.min_age.as_secs(),
        p.free.len()
    );
    for ip in &p.blocked {
        println!("  {ip}: not a regular file, never removed by gc: remove it by hand");
    }
    // What gc cannot repair: plugin calls on this store keep failing until it is removed by hand.
    for d in found.damage.iter().filter(|d| d.blocks_calls()) {
        println!("  {d}");
    }
    for d in &p.free {
        println!(
            "  {:<39}  {}  age {}",
            d.ip,
            describe_holder(d.owner.as_ref()),
            fmt_age(d.age)
        );
    }
    if p.free.is_empty() {
        return Ok(0);
    }
    let everything = p.live == 0 && p.young == 0;
    if a.from_cri && valid.attachments.is_empty() && !a.allow_empty {
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
            if a.from_cri && valid.attachments.is_empty() {
                " --allow-empty"
            } else {
                ""
            }
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
        "freed {freed} reservation(s){}",
        if everything { " (all of them)" } else { "" }
    ));
    Ok(0)
}

/// The command line of this gc run without --apply, for the dry run's hint.
fn gc_args_text(dirs: &Dirs, net: &Network, a: &GcArgs) -> String {
    let mut s = gc_start(dirs, net);
    if let Some(d) = &a.store.ipam_dir {
        s.push_str(&path_flag("--ipam-dir", d));
    }
    if a.from_cri {
        s.push_str(" --from-cri");
        if let Some(e) = &a.runtime_endpoint {
            s.push_str(&format!(" --runtime-endpoint {}", shell_quote(e)));
        }
    } else {
        s.push_str(" --valid");
        for v in &a.valid {
            s.push(' ');
            s.push_str(&shell_quote(v));
        }
    }
    if a.min_age != parse_duration(DEFAULT_MIN_AGE).unwrap_or_default() {
        s.push_str(&format!(" --min-age {}s", a.min_age.as_secs()));
    }
    s
}
