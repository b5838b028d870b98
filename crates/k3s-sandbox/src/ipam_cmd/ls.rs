//! `ipam ls`: each store's ranges, used and free addresses, reservations and damage, as tables or
//! JSON.

use cni_core::safefs::printable;
use std::net::IpAddr;

use ipam_store::inspect::{self, Inspection};
use ipam_store::{Owner, Range};
use serde_json::{Value, json};

use super::network::{Network, select};
use super::{LS_LOCK_WAIT, LsArgs, fmt_age, fmt_range, say};
use crate::error::{Failure, Result};
use crate::paths::Dirs;

/// Used and free addresses of one range.
#[derive(Debug, Clone)]
pub struct RangeUse {
    pub set: usize,
    pub range: Range,
    pub capacity: u128,
    pub used: u128,
}

impl RangeUse {
    pub fn free(&self) -> u128 {
        self.capacity.saturating_sub(self.used)
    }
}

pub fn range_use(net: &Network, found: &Inspection) -> Vec<RangeUse> {
    let mut out = Vec::new();
    for (set, ranges) in net.sets.iter().enumerate() {
        for r in ranges {
            let used = found.reservations.iter().filter(|x| r.allocatable(x.ip)).count() as u128;
            out.push(RangeUse {
                set,
                range: r.clone(),
                capacity: inspect::capacity(r),
                used,
            });
        }
    }
    out
}

fn outside(net: &Network, found: &Inspection) -> Vec<IpAddr> {
    if net.sets.is_empty() {
        return Vec::new();
    }
    found
        .reservations
        .iter()
        .filter(|x| !net.sets.iter().flatten().any(|r| r.allocatable(x.ip)))
        .map(|x| x.ip)
        .collect()
}

fn owner_json(o: Option<&Owner>) -> (Value, Value) {
    match o {
        Some(o) => (json!(o.id), json!(o.ifname)),
        None => (Value::Null, Value::Null),
    }
}

pub(super) fn ls(dirs: &Dirs, a: &LsArgs) -> Result<u8> {
    let nets = select(dirs, &a.store, a.network.as_deref())?;
    if nets.is_empty() {
        say(&format!(
            "no host-local network in the configs of {}; pass --ipam-dir DIR to list a store directly",
            dirs.cni_conf_dir.display()
        ));
    }
    let mut all = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        let dir = net.store_dir();
        let found = if dir.is_dir() {
            Some(
                inspect::inspect(&dir, LS_LOCK_WAIT)
                    .map_err(|e| Failure::new(format!("cannot inspect {}: {e}", dir.display())))?,
            )
        } else {
            None
        };
        if a.json {
            all.push(ls_json(net, found.as_ref()));
            continue;
        }
        if i > 0 {
            println!();
        }
        ls_text(net, found.as_ref());
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "networks": all })).unwrap_or_default()
        );
    }
    Ok(0)
}

fn ls_json(net: &Network, found: Option<&Inspection>) -> Value {
    let empty = Inspection::default();
    let f = found.unwrap_or(&empty);
    let ranges: Vec<Value> = range_use(net, f)
        .iter()
        .map(|u| {
            json!({"set": u.set, "subnet": u.range.subnet.to_string(), "rangeStart": u.range.start.to_string(),
                   "rangeEnd": u.range.end.to_string(), "gateway": u.range.gateway.to_string(),
                   "capacity": u64::try_from(u.capacity).unwrap_or(u64::MAX),
                   "used": u64::try_from(u.used).unwrap_or(u64::MAX),
                   "free": u64::try_from(u.free()).unwrap_or(u64::MAX)})
        })
        .collect();
    let reservations: Vec<Value> = f
        .reservations
        .iter()
        .map(|r| {
            let (id, ifname) = owner_json(r.owner.as_ref());
            json!({"ip": r.ip.to_string(), "containerID": id, "ifname": ifname,
                   "ageSeconds": r.age.map(|d| d.as_secs())})
        })
        .collect();
    let damage: Vec<Value> = f
        .damage
        .iter()
        .map(|d| json!({"kind": d.kind(), "detail": d.to_string()}))
        .chain(
            outside(net, f)
                .iter()
                .map(|ip| json!({"kind": "outside-ranges", "detail": format!("{ip} lies outside every configured range")})),
        )
        .collect();
    json!({
        "name": net.name,
        "store": net.store_dir().display().to_string(),
        "exists": found.is_some(),
        "config": net.config.as_ref().map(|c| c.display().to_string()),
        "rangeError": net.range_error,
        "ranges": ranges,
        "reservations": reservations,
        "damage": damage,
        "indexed": f.has_index,
        "locked": f.locked,
    })
}

fn ls_text(net: &Network, found: Option<&Inspection>) {
    println!(
        "network {}: store {}{}",
        net.name,
        net.store_dir().display(),
        net.config
            .as_ref()
            .map(|c| format!(" (config {})", c.display()))
            .unwrap_or_default()
    );
    if let Some(e) = &net.range_error {
        println!("  ranges: cannot be read from the config: {e}");
    } else if net.sets.is_empty() {
        println!("  ranges: unknown (no config names this network)");
    }
    if found.is_none() {
        println!("  no store yet: no address has been handed out on this network");
    }
    let empty = Inspection::default();
    for u in range_use(net, found.unwrap_or(&empty)) {
        println!(
            "  range set {}: {}  used {}, free {} of {}",
            u.set,
            fmt_range(&u.range),
            u.used,
            u.free(),
            u.capacity
        );
    }
    let Some(f) = found else { return };
    if f.reservations.is_empty() {
        println!("  no reservations");
    } else {
        println!("  {:<39}  {:<64}  {:<6}  AGE", "ADDRESS", "CONTAINER", "IF");
        for r in &f.reservations {
            let (id, ifname) = match &r.owner {
                Some(o) => (o.id.clone(), o.ifname.clone().unwrap_or_else(|| "-".into())),
                None => ("(no holder)".to_string(), "-".to_string()),
            };
            let (id, ifname) = (printable(&id), printable(&ifname));
            println!("  {:<39}  {:<64}  {:<6}  {}", r.ip, id, ifname, fmt_age(r.age));
        }
    }
    let out = outside(net, f);
    let damage = f.damage.len() + out.len();
    if damage == 0 {
        println!("  damage: none");
    } else {
        println!("  damage: {damage}");
        for d in &f.damage {
            println!("    - {d}");
        }
        for ip in out {
            println!(
                "    - {ip} lies outside every configured range (left from an earlier pod range?); free it with `ipam release --ip {ip}` if no pod uses it"
            );
        }
    }
    if !f.locked {
        println!("  (read without the store's lock: a plugin held it, or there is no lock file)");
    }
}
