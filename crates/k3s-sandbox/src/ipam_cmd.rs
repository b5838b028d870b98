//! `k3s-sandbox ipam ls|release|gc`: inspect host-local stores, free one reservation, and free the
//! reservations of attachments that no longer exist. Also the leak and fill-level detection used
//! by `doctor` and `status`.
//!
//! Stores are found through the network configs of the conf dir (each conflist's name and its
//! host-local `dataDir`), or given with --ipam-dir. Reading goes through ipam-store's read-only
//! inspection; every change goes through its locked store operations, as a plugin call would.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use cni_runtime::conf::{self, NetworkList};
use ipam_store::alloc::release_attachment;
use ipam_store::disk::DEFAULT_DATA_DIR;
use ipam_store::inspect::{self, Inspection};
use ipam_store::{DiskOptions, DiskStore, Owner, Range, Reservations};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

use crate::cri;
use crate::error::{Failure, Result};
use crate::paths::Dirs;
use crate::trace_cmd::parse_duration;
use crate::util::shell_quote;

/// How long `ls` waits for a plugin to release the store's lock before reading without it.
const LS_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Default of `gc --min-age`.
const DEFAULT_MIN_AGE: &str = "5m";
/// A range set is nearly full from this share of used addresses (percent).
const NEARLY_FULL_PERCENT: u128 = 90;

#[derive(Args, Debug)]
pub struct IpamArgs {
    #[command(subcommand)]
    pub command: IpamCommand,
}

#[derive(Subcommand, Debug)]
pub enum IpamCommand {
    /// Show each host-local network's ranges, used and free addresses, reservations and damage
    Ls(LsArgs),
    /// Free one address, or every address of a container, under the store's lock
    Release(ReleaseArgs),
    /// Free the reservations of attachments that no longer exist (dry run unless --apply)
    Gc(GcArgs),
}

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// host-local's dataDir (the directory holding one directory per network) [default: each
    /// network's `ipam.dataDir` from the configs in the CNI conf dir, else /var/lib/cni/networks]
    #[arg(long, value_name = "DIR")]
    pub ipam_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only this network (the config's `name`)
    pub network: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["ip", "container"])))]
pub struct ReleaseArgs {
    /// The network (the config's `name`)
    pub network: String,
    /// Free this address, whoever holds it
    #[arg(long, value_name = "IP")]
    pub ip: Option<IpAddr>,
    /// Free every address held by this container ID
    #[arg(long, value_name = "ID")]
    pub container: Option<String>,
    /// With --container: only this interface's addresses
    #[arg(long, value_name = "IF", requires = "container")]
    pub ifname: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["valid", "from_cri"])))]
pub struct GcArgs {
    /// The network (the config's `name`)
    pub network: String,
    /// The attachments that are live: container ID, optionally /IFNAME; everything else is freed
    #[arg(long, value_name = "ID[/IFNAME]", num_args = 1..)]
    pub valid: Vec<String>,
    /// Take the live attachments from the container runtime's pod sandboxes (k3s crictl, or
    /// crictl on PATH); refuses when the runtime cannot be asked
    #[arg(long)]
    pub from_cri: bool,
    /// CRI endpoint for --from-cri [default: CONTAINER_RUNTIME_ENDPOINT, else the instance's
    /// k3s containerd socket]
    #[arg(long, value_name = "ENDPOINT", requires = "from_cri")]
    pub runtime_endpoint: Option<String>,
    /// Free them (without it, only show what would be freed)
    #[arg(long)]
    pub apply: bool,
    /// Keep reservations younger than this: a pod being created holds its address before the
    /// runtime lists it
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_MIN_AGE, value_parser = parse_duration)]
    pub min_age: Duration,
    /// Allow --apply when the runtime lists no pod sandbox at all (everything would be freed)
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

fn say(msg: &str) {
    eprintln!("k3s-sandbox: {msg}");
}

// ------------------------------------------------------------ networks

/// One host-local network found in a config.
#[derive(Debug, Clone)]
pub struct Network {
    pub name: String,
    pub data_dir: PathBuf,
    /// Where it was found (a config file), if anywhere.
    pub config: Option<PathBuf>,
    /// Range sets from the config; empty when unknown.
    pub sets: Vec<Vec<Range>>,
    /// Why the ranges could not be read.
    pub range_error: Option<String>,
}

impl Network {
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }
}

/// A key of `obj`, matched case-insensitively (as host-local reads range keys).
fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn range_of(obj: &Value) -> std::result::Result<Range, String> {
    let s = |k: &str| get_ci(obj, k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let ip = |k: &str| -> std::result::Result<Option<IpAddr>, String> {
        s(k).map(|v| {
            v.parse::<IpAddr>()
                .map_err(|_| format!("{k} {v:?} is not an address"))
        })
        .transpose()
    };
    let subnet: IpNetwork = s("subnet")
        .ok_or("a range has no subnet")?
        .parse()
        .map_err(|e| format!("bad subnet: {e}"))?;
    Range::new(subnet, ip("rangeStart")?, ip("rangeEnd")?, ip("gateway")?).map_err(|e| e.to_string())
}

/// The range sets of an `ipam` object: the legacy single-range form first, then `ranges`.
fn range_sets(ipam: &Value) -> std::result::Result<Vec<Vec<Range>>, String> {
    let mut sets = Vec::new();
    if get_ci(ipam, "subnet").is_some() {
        sets.push(vec![range_of(ipam)?]);
    }
    if let Some(list) = get_ci(ipam, "ranges").and_then(Value::as_array) {
        for set in list {
            let ranges = set.as_array().ok_or("a range set is not a list")?;
            sets.push(
                ranges
                    .iter()
                    .map(range_of)
                    .collect::<std::result::Result<_, _>>()?,
            );
        }
    }
    Ok(sets)
}

/// Every host-local network of the configs in `conf_dir`, in the configs' sort order; configs
/// that cannot be read are reported in the second list.
pub fn networks_in(conf_dir: &Path) -> (Vec<Network>, Vec<String>) {
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
            let data_dir = ipam
                .get("dataDir")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), PathBuf::from);
            if out.iter().any(|n| n.name == name && n.data_dir == data_dir) {
                continue;
            }
            let (sets, range_error) = match range_sets(ipam) {
                Ok(s) => (s, None),
                Err(e) => (Vec::new(), Some(e)),
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
fn select(dirs: &Dirs, store: &StoreArgs, only: Option<&str>) -> Result<Vec<Network>> {
    let (known, problems) = networks_in(&dirs.cni_conf_dir);
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
            return Err(Failure::new(format!(
                "no config in {} names a host-local network {n:?}; pass --ipam-dir DIR (host-local's dataDir) to use its store anyway",
                dirs.cni_conf_dir.display()
            )));
        }
    }
    Ok(nets)
}

/// Exactly one network for release and gc.
fn one(dirs: &Dirs, store: &StoreArgs, name: &str) -> Result<Network> {
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

fn fmt_age(d: Option<Duration>) -> String {
    let Some(d) = d else { return "?".into() };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        _ => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

fn fmt_range(r: &Range) -> String {
    format!("{}-{} ({})", r.start, r.end, r.subnet)
}

// ------------------------------------------------------------------ ls

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

fn ls(dirs: &Dirs, a: &LsArgs) -> Result<u8> {
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
    let Some(f) = found else {
        println!("  no store yet: no address has been handed out on this network");
        for u in range_use(net, &Inspection::default()) {
            println!(
                "  range set {}: {}  used 0, free {} of {}",
                u.set,
                fmt_range(&u.range),
                u.capacity,
                u.capacity
            );
        }
        return;
    };
    for u in range_use(net, f) {
        println!(
            "  range set {}: {}  used {}, free {} of {}",
            u.set,
            fmt_range(&u.range),
            u.used,
            u.free(),
            u.capacity
        );
    }
    if f.reservations.is_empty() {
        println!("  no reservations");
    } else {
        println!("  {:<39}  {:<64}  {:<6}  AGE", "ADDRESS", "CONTAINER", "IF");
        for r in &f.reservations {
            let (id, ifname) = match &r.owner {
                Some(o) => (o.id.clone(), o.ifname.clone().unwrap_or_else(|| "-".into())),
                None => ("(no holder)".to_string(), "-".to_string()),
            };
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

// ------------------------------------------------------------- release

fn open_store(net: &Network) -> Result<DiskStore> {
    let dir = net.store_dir();
    if !dir.is_dir() {
        return Err(Failure::new(format!(
            "network {} has no store at {}: nothing is reserved",
            net.name,
            dir.display()
        )));
    }
    DiskStore::open(&net.data_dir, &net.name, &DiskOptions::default())
        .map_err(|e| Failure::new(format!("cannot open the store {}: {e}", dir.display())))
}

fn describe_holder(o: Option<&Owner>) -> String {
    o.map_or_else(|| "no holder recorded".to_string(), |o| o.to_string())
}

fn release(dirs: &Dirs, a: &ReleaseArgs) -> Result<u8> {
    let net = one(dirs, &a.store, &a.network)?;
    let mut store = open_store(&net)?;
    let store_err = |e: ipam_store::StoreError| Failure::new(format!("{}: {e}", net.store_dir().display()));
    if let Some(ip) = a.ip {
        return match store.release_address(ip).map_err(store_err)? {
            Some(holder) => {
                println!("released {ip} ({})", describe_holder(holder.as_ref()));
                Ok(0)
            }
            None => Err(Failure::new(format!(
                "{ip} is not reserved in network {}",
                net.name
            ))),
        };
    }
    let id = a.container.as_deref().unwrap_or_default();
    let released: Vec<(IpAddr, Owner)> = match &a.ifname {
        Some(ifname) => {
            let owner = Owner::new(id, ifname.as_str());
            release_attachment(&mut store, id, ifname)
                .map_err(store_err)?
                .into_iter()
                .map(|ip| (ip, owner.clone()))
                .collect()
        }
        None => {
            let held: Vec<(IpAddr, Owner)> = store
                .list()
                .map_err(store_err)?
                .into_iter()
                .filter_map(|(ip, o)| o.filter(|o| o.id == id).map(|o| (ip, o)))
                .collect();
            let mut done = Vec::new();
            for (ip, o) in held {
                if store.release(ip, &o).map_err(store_err)? {
                    done.push((ip, o));
                }
            }
            done
        }
    };
    if released.is_empty() {
        return Err(Failure::new(format!(
            "container {id}{} holds no address in network {}",
            a.ifname
                .as_ref()
                .map(|i| format!(" (interface {i})"))
                .unwrap_or_default(),
            net.name
        )));
    }
    for (ip, o) in released {
        println!("released {ip} ({o})");
    }
    Ok(0)
}

// ------------------------------------------------------------------ gc

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

fn global_flags(dirs: &Dirs) -> String {
    let mut s = String::new();
    if dirs.cni_conf_dir != Path::new(crate::paths::DEFAULT_CNI_CONF_DIR) {
        s.push_str(&format!(
            " --cni-conf-dir {}",
            shell_quote(&dirs.cni_conf_dir.to_string_lossy())
        ));
    }
    if let Ok(default) = crate::paths::default_data_dir(
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    ) && default != dirs.data_dir
    {
        s.push_str(&format!(
            " --data-dir {}",
            shell_quote(&dirs.data_dir.to_string_lossy())
        ));
    }
    s
}

/// The exact gc command for a network.
pub fn gc_command(dirs: &Dirs, net: &Network, apply: bool, allow_empty: bool) -> String {
    let mut s = format!(
        "k3s-sandbox{} ipam gc {}",
        global_flags(dirs),
        shell_quote(&net.name)
    );
    if net.config.is_none() {
        s.push_str(&format!(
            " --ipam-dir {}",
            shell_quote(&net.data_dir.to_string_lossy())
        ));
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

fn gc(dirs: &Dirs, a: &GcArgs) -> Result<u8> {
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
    let mut s = format!(
        "k3s-sandbox{} ipam gc {}",
        global_flags(dirs),
        shell_quote(&net.name)
    );
    if let Some(d) = &a.store.ipam_dir {
        s.push_str(&format!(" --ipam-dir {}", shell_quote(&d.to_string_lossy())));
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

// ----------------------------------------------------------- detection

/// A problem found in a store by [`detect`], with the command that fixes it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub network: String,
    /// What is wrong, and what fixes it.
    pub problem: Option<(String, Fix)>,
    /// One line on the store when there is no problem.
    pub summary: String,
}

/// What fixes a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// This `ipam gc` command line.
    Run(String),
    /// Nothing to free (every holder is a live pod sandbox): the range itself is too small.
    Widen(String),
}

impl Fix {
    /// The remedy as doctor words it.
    pub fn remedy(&self) -> String {
        match self {
            Fix::Run(cmd) => format!("run `{cmd}`"),
            Fix::Widen(advice) => advice.clone(),
        }
    }
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fix::Run(cmd) | Fix::Widen(cmd) => f.write_str(cmd),
        }
    }
}

/// Checks every host-local store of the conf dir: a range set nearly full, or reservations held by
/// containers that are not live pod sandboxes (when `live` is known).
pub fn detect(dirs: &Dirs, live: Option<&BTreeSet<String>>) -> Vec<Finding> {
    let (nets, _) = networks_in(&dirs.cni_conf_dir);
    let grace = parse_duration(DEFAULT_MIN_AGE).unwrap_or_default();
    let mut out = Vec::new();
    for net in nets {
        let dir = net.store_dir();
        if !dir.is_dir() {
            continue;
        }
        let Ok(found) = inspect::inspect(&dir, Duration::from_secs(2)) else {
            continue;
        };
        let uses = range_use(&net, &found);
        let used: u128 = uses.iter().map(|u| u.used).sum();
        let cap: u128 = uses.iter().map(|u| u.capacity).sum();
        let mut problems = Vec::new();
        let mut allow_empty = false;
        // Every holder is a live pod sandbox: gc would free nothing.
        let all_live = live.is_some_and(|live| {
            found
                .reservations
                .iter()
                .all(|r| r.owner.as_ref().is_some_and(|o| live.contains(&o.id)))
        });
        if let Some(live) = live {
            let stale: BTreeSet<&str> = found
                .reservations
                .iter()
                .filter(|r| r.age.is_some_and(|a| a >= grace))
                .filter_map(|r| r.owner.as_ref())
                .filter(|o| !live.contains(&o.id))
                .map(|o| o.id.as_str())
                .collect();
            let holders: BTreeSet<&str> = found
                .reservations
                .iter()
                .filter_map(|r| r.owner.as_ref().map(|o| o.id.as_str()))
                .collect();
            if !stale.is_empty() {
                problems.push(format!(
                    "{} reservation(s) held by {} container(s), but only {} live pod sandbox(es): {} holder(s) are gone",
                    found.reservations.len(),
                    holders.len(),
                    live.len(),
                    stale.len()
                ));
                allow_empty = live.is_empty();
            }
        }
        for u in &uses {
            if u.capacity > 0 && u.used * 100 >= u.capacity * NEARLY_FULL_PERCENT {
                problems.push(format!(
                    "range {} is nearly full: {} of {} addresses used",
                    fmt_range(&u.range),
                    u.used,
                    u.capacity
                ));
            }
        }
        let summary = if cap > 0 {
            format!("{used} of {cap} addresses used ({})", dir.display())
        } else {
            format!("{} reservation(s) ({})", found.reservations.len(), dir.display())
        };
        let problem = (!problems.is_empty()).then(|| {
            let fix = if all_live {
                Fix::Widen(format!(
                    "every address is held by a live pod sandbox, so gc would free none: give network {} a larger range{}",
                    net.name,
                    net.config
                        .as_ref()
                        .map(|c| format!(" (ipam ranges in {})", c.display()))
                        .unwrap_or_default()
                ))
            } else if live.is_some() {
                Fix::Run(gc_command(dirs, &net, true, allow_empty))
            } else {
                // Without the runtime's answer, show what would go first.
                Fix::Run(gc_command(dirs, &net, false, false))
            };
            (problems.join("; "), fix)
        });
        out.push(Finding {
            network: net.name.clone(),
            problem,
            summary,
        });
    }
    out
}

/// The live sandbox IDs, when this data dir's k3s agent is running and its runtime answers.
pub fn live_ids(dirs: &Dirs) -> Option<BTreeSet<String>> {
    cri::live_sandboxes(dirs, None)
        .ok()
        .map(|a| a.sandboxes.into_iter().map(|s| s.id).collect())
}

/// `status` lines: one per store, and a warning with the fixing command for each problem.
pub fn print_status(dirs: &Dirs) {
    let live = live_ids(dirs);
    if live.is_none() {
        say("the container runtime did not answer `crictl pods`: leaked reservations cannot be counted");
    }
    for f in detect(dirs, live.as_ref()) {
        println!("ipam {}: {}", f.network, f.summary);
        if let Some((what, cmd)) = &f.problem {
            say(&format!("warning: network {}: {what}; fix: {cmd}", f.network));
        }
    }
}

pub fn ipam(dirs: &Dirs, a: &IpamArgs) -> Result<u8> {
    match &a.command {
        IpamCommand::Ls(x) => ls(dirs, x),
        IpamCommand::Release(x) => release(dirs, x),
        IpamCommand::Gc(x) => gc(dirs, x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipam_store::inspect::Reservation;

    fn res(ip: &str, id: Option<&str>, ifname: &str, age: u64) -> Reservation {
        Reservation {
            ip: ip.parse().unwrap(),
            owner: id.map(|i| Owner::new(i, ifname)),
            age: Some(Duration::from_secs(age)),
        }
    }

    #[test]
    fn valid_attachments_keep_their_holders() {
        let v = Valid::parse(&["a".into(), "b/eth1".into()]).unwrap();
        assert!(v.keeps(&Owner::new("a", "eth0")));
        assert!(v.keeps(&Owner::new("a", "net1")));
        assert!(v.keeps(&Owner::new("b", "eth1")));
        assert!(!v.keeps(&Owner::new("b", "eth0")));
        assert!(v.keeps(&Owner::legacy("b")));
        assert!(!v.keeps(&Owner::new("c", "eth0")));
        assert!(Valid::parse(&["/eth0".into()]).is_err());
        assert!(Valid::parse(&["x/".into()]).is_err());
    }

    #[test]
    fn plan_frees_only_old_reservations_of_dead_attachments() {
        let found = Inspection {
            reservations: vec![
                res("10.0.0.2", Some("live"), "eth0", 9999),
                res("10.0.0.3", Some("dead"), "eth0", 9999),
                res("10.0.0.4", Some("new"), "eth0", 3),
                res("10.0.0.5", None, "", 9999),
            ],
            ..Inspection::default()
        };
        let v = Valid::parse(&["live".into()]).unwrap();
        let p = plan(&found, &v, Duration::from_secs(60));
        assert_eq!(p.live, 1);
        assert_eq!(p.young, 1);
        let freed: Vec<String> = p.free.iter().map(|d| d.ip.to_string()).collect();
        assert_eq!(freed, vec!["10.0.0.3", "10.0.0.5"]);
    }

    #[test]
    fn detection_counts_holders_that_are_not_live_sandboxes() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("net.d");
        let store = tmp.path().join("networks");
        fs::create_dir_all(&conf).unwrap();
        fs::create_dir_all(store.join("n")).unwrap();
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge",
            "ipam": {"type": "host-local", "dataDir": store, "ranges": [[{"subnet": "10.5.0.0/24"}]]}}]});
        fs::write(conf.join("10-n.conflist"), list.to_string()).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for (ip, id) in [
            ("10.5.0.2", "live"),
            ("10.5.0.3", "gone-1"),
            ("10.5.0.4", "gone-2"),
        ] {
            let f = store.join("n").join(ip);
            fs::write(&f, format!("{id}\r\neth0")).unwrap();
            fs::File::options()
                .write(true)
                .open(&f)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // A fresh reservation of a pod the runtime does not list yet is not a leak.
        fs::write(store.join("n").join("10.5.0.5"), "starting\r\neth0").unwrap();
        let dirs = Dirs {
            data_dir: tmp.path().join("data"),
            cni_bin_dir: tmp.path().join("bin"),
            cni_conf_dir: conf.clone(),
        };
        let live: BTreeSet<String> = ["live".to_string()].into();
        let f = detect(&dirs, Some(&live));
        assert_eq!(f.len(), 1);
        let (what, cmd) = f[0].problem.clone().unwrap();
        let cmd = cmd.to_string();
        assert!(what.contains("4 reservation(s) held by 4 container(s), but only 1 live pod sandbox(es): 2 holder(s) are gone"), "{what}");
        assert!(cmd.ends_with("ipam gc n --from-cri --apply"), "{cmd}");
        assert!(cmd.contains("--cni-conf-dir"), "{cmd}");
        // No live sandbox at all: the command needs --allow-empty.
        let (_, cmd) = detect(&dirs, Some(&BTreeSet::new()))[0].problem.clone().unwrap();
        let cmd = cmd.to_string();
        assert!(cmd.ends_with("--apply --allow-empty"), "{cmd}");
        // Without the runtime's answer, and with room in the range: no problem.
        let f = detect(&dirs, None);
        assert!(f[0].problem.is_none());
        assert_eq!(f[0].summary.split(" (").next(), Some("4 of 253 addresses used"));
    }

    #[test]
    fn ranges_are_read_like_host_local() {
        let ipam = json!({"type": "host-local", "subnet": "10.1.0.0/24",
            "ranges": [[{"Subnet": "10.2.0.0/24", "rangeStart": "10.2.0.10", "rangeEnd": "10.2.0.19"}], [{"subnet": "fd00::/120"}]]});
        let sets = range_sets(&ipam).unwrap();
        assert_eq!(sets.len(), 3);
        assert_eq!(inspect::capacity(&sets[1][0]), 10);
        assert!(range_sets(&json!({"ranges": [[{"subnet": "10.2.0.1/24"}]]})).is_err());
    }
}
