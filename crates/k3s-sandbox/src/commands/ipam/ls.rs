//! `ipam ls`: each store's ranges, used and free addresses, reservations and damage, as tables or
//! JSON.

use std::net::IpAddr;

use ipam_store::inspect::{self, Inspection};
use ipam_store::{Owner, Range};
use serde_json::{Value, json};

use super::gc::holder_cells;
use super::network::{Network, select};
use super::{LS_LOCK_WAIT, LsArgs, fmt_age, fmt_range, say};
use crate::error::{Failure, Result};
use crate::output::{self, outln};
use crate::paths::Dirs;

/// Used and free addresses of one range.
#[derive(Debug, Clone)]
pub(crate) struct RangeUse {
    pub(crate) set: usize,
    pub(crate) range: Range,
    pub(crate) capacity: u128,
    pub(crate) used: u128,
}

impl RangeUse {
    pub(crate) fn free(&self) -> u128 {
        self.capacity.saturating_sub(self.used)
    }
}

pub(crate) fn range_use(net: &Network, found: &Inspection) -> Vec<RangeUse> {
    let mut out = Vec::new();
    for (set, ranges) in net.sets.iter().enumerate() {
        for r in &ranges.ranges {
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
        .filter(|x| {
            !net.sets
                .iter()
                .flat_map(|s| &s.ranges)
                .any(|r| r.allocatable(x.ip))
        })
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
    if a.store.ipam_dir.is_none() && !dirs.cni_conf_dir.is_dir() {
        return Err(Failure::new(format!(
            "the conf dir {} does not exist: pick the one with the network configs with \
             --cni-conf-dir DIR (or NETCONFPATH), or name a store directly with --ipam-dir DIR",
            dirs.cni_conf_dir.display()
        )));
    }
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
            outln!();
        }
        ls_text(net, found.as_ref(), a.no_trunc);
    }
    if a.json {
        output::print_json(&json!({ "networks": all }));
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
                   "capacity": count(u.capacity), "used": count(u.used), "free": count(u.free())})
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
        .map(|d| {
            let (kind, detail) = describe(net, d);
            json!({"kind": kind, "detail": detail})
        })
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

/// A damage's kind and text. A reservation that names no holder is "malformed" when its file is
/// not empty (host-local wrote `ID\r\nIFNAME`; an LF instead of the CRLF, for one, names nobody),
/// "empty or unreadable" otherwise. Only the file's size is looked at, never its content.
fn describe(net: &Network, d: &inspect::Damage) -> (&'static str, String) {
    if let inspect::Damage::NoHolder { ip } = d
        && let Ok(md) = std::fs::symlink_metadata(net.store_dir().join(ip.to_string()))
        && md.is_file()
        && md.len() > 0
    {
        return (
            "malformed",
            format!(
                "reservation {ip} is malformed ({}): it is not `ID` or `ID\\r\\nIFNAME` (an LF instead \
                 of the CRLF, for one), so it names no holder and no DEL frees it (free it with \
                 `ipam release --ip {ip}` or `ipam gc`)",
                output::plural(md.len(), "byte", "bytes")
            ),
        );
    }
    (d.kind(), d.to_string())
}

/// A count as JSON: a number up to 2^53 (exact in every JSON reader), else a decimal string (an
/// IPv6 range holds up to 2^128 addresses).
fn count(n: u128) -> Value {
    if n <= 1 << 53 {
        json!(n as u64)
    } else {
        json!(n.to_string())
    }
}

fn ls_text(net: &Network, found: Option<&Inspection>, full: bool) {
    outln!(
        "network {}: store {}{}",
        net.name,
        net.store_dir().display(),
        net.config
            .as_ref()
            .map(|c| format!(" (config {})", c.display()))
            .unwrap_or_default()
    );
    if let Some(e) = &net.range_error {
        outln!("  ranges: cannot be read from the config: {e}");
    } else if net.sets.is_empty() {
        outln!("  ranges: unknown (no config names this network)");
    }
    if found.is_none() {
        outln!("  no store yet: no address has been handed out on this network");
    }
    let empty = Inspection::default();
    for u in range_use(net, found.unwrap_or(&empty)) {
        outln!(
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
        outln!("  no reservations");
    } else {
        let rows: Vec<Vec<String>> = f
            .reservations
            .iter()
            .map(|r| {
                let (id, ifname) = holder_cells(r.owner.as_ref(), full);
                vec![r.ip.to_string(), id, ifname, fmt_age(r.age)]
            })
            .collect();
        for line in output::table(&["ADDRESS", "CONTAINER", "IF", "AGE"], &rows, &[3], full) {
            outln!("  {line}");
        }
    }
    let out = outside(net, f);
    let damage = f.damage.len() + out.len();
    if damage == 0 {
        outln!("  damage: none");
    } else {
        outln!("  damage: {damage}");
        for d in &f.damage {
            outln!("    - {}", describe(net, d).1);
        }
        for ip in out {
            outln!(
                "    - {ip} lies outside every configured range (left from an earlier pod range?); free it with `ipam release --ip {ip}` if no pod uses it"
            );
        }
    }
    if !f.locked {
        outln!("  (read without the store's lock: a plugin held it, or there is no lock file)");
    }
}
