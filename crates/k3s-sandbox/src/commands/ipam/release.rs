//! `ipam release`: free one address, or the addresses of one container, under the store's lock.

use std::net::IpAddr;

use ipam_store::alloc::release_attachment;
use ipam_store::{DiskOptions, DiskStore, Owner, Reservations};

use super::ReleaseArgs;
use super::network::{Network, one};
use crate::error::{Failure, Result};
use crate::output::outln;
use crate::paths::Dirs;

pub(super) fn open_store(net: &Network) -> Result<DiskStore> {
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

pub(super) fn describe_holder(o: Option<&Owner>) -> String {
    o.map_or_else(|| "no holder recorded".to_string(), |o| o.to_string())
}

pub(super) fn release(dirs: &Dirs, a: &ReleaseArgs) -> Result<u8> {
    let net = one(dirs, &a.store, &a.network)?;
    let mut store = open_store(&net)?;
    let store_err = |e: ipam_store::StoreError| Failure::new(format!("{}: {e}", net.store_dir().display()));
    if a.dry_run {
        // The same selection as below, read from the store's list (under its lock), nothing freed.
        let chosen: Vec<(IpAddr, Option<Owner>)> = store
            .list()
            .map_err(store_err)?
            .into_iter()
            .filter(|(ip, o)| match (a.ip, o) {
                (Some(want), _) => *ip == want,
                (None, Some(o)) => {
                    o.id == a.container.as_deref().unwrap_or_default()
                        && a.ifname.as_deref().is_none_or(|i| o.ifname.as_deref() == Some(i))
                }
                (None, None) => false,
            })
            .collect();
        if chosen.is_empty() {
            return Err(nothing_held(a, &net.name));
        }
        print_released(&net.name, &chosen, a.json, true);
        return Ok(0);
    }
    if let Some(ip) = a.ip {
        return match store.release_address(ip).map_err(store_err)? {
            Some(holder) => {
                print_released(&net.name, &[(ip, holder)], a.json, false);
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
        return Err(nothing_held(a, &net.name));
    }
    let released: Vec<(IpAddr, Option<Owner>)> = released.into_iter().map(|(ip, o)| (ip, Some(o))).collect();
    print_released(&net.name, &released, a.json, false);
    Ok(0)
}

fn nothing_held(a: &ReleaseArgs, network: &str) -> Failure {
    match a.ip {
        Some(ip) => Failure::new(format!("{ip} is not reserved in network {network}")),
        None => Failure::new(format!(
            "container {}{} holds no address in network {network}",
            a.container.as_deref().unwrap_or_default(),
            a.ifname
                .as_ref()
                .map(|i| format!(" (interface {i})"))
                .unwrap_or_default(),
        )),
    }
}

fn print_released(network: &str, released: &[(IpAddr, Option<Owner>)], json: bool, dry_run: bool) {
    if json {
        let list: Vec<serde_json::Value> = released
            .iter()
            .map(|(ip, o)| {
                serde_json::json!({"ip": ip.to_string(), "containerID": o.as_ref().map(|o| o.id.clone()),
                                   "ifname": o.as_ref().and_then(|o| o.ifname.clone())})
            })
            .collect();
        let key = if dry_run { "wouldRelease" } else { "released" };
        crate::output::print_json(&serde_json::json!({"network": network, key: list, "dryRun": dry_run}));
        return;
    }
    let verb = if dry_run { "would release" } else { "released" };
    for (ip, o) in released {
        outln!("{verb} {ip} ({})", describe_holder(o.as_ref()));
    }
    if dry_run {
        outln!("dry run: nothing released; run it again without --dry-run to release");
    }
}
