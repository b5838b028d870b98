//! host-local IPAM (mirrors plugins/ipam/host-local/main.go of containernetworking/plugins; SPEC.md
//! "IP Allocation" and the 1.1.0 GC and STATUS verbs).
//!
//! Same configuration and on-disk store as the reference (see crates/ipam-store), with these
//! differences: a repeated ADD of an attachment returns the addresses it already holds; DEL, CHECK and
//! ADD cost the same whatever the store's size; GC releases every reservation of an attachment not in
//! `cni.dev/valid-attachments` (and nothing when GC carries no list at all); STATUS reports an
//! unusable store or an exhausted range set (code 50);
//! `reclaimAfterReboot` frees reservations of earlier boots; errors carry specific codes (100 pool
//! exhausted, 101 requested address unavailable, 102 CHECK mismatch, 11 store locked, 7 config, 5 I/O).

pub mod config;
pub mod dns;

use std::path::Path;

use cni_core::error::code;
use cni_core::{CniError, CniResult, IpConfig, NetResult, Plugin, Request};
use ipam_store::alloc::{attachment_addresses, first_free};
use ipam_store::{DiskOptions, DiskStore, Live, Owner, StoreError, assign, release_attachment};
use ipnetwork::IpNetwork;

use config::IpamConf;

pub struct HostLocal;

/// The CNI error for a store or allocation failure.
fn cni_error(e: StoreError) -> CniError {
    let msg = e.to_string();
    match e {
        StoreError::Io { .. } | StoreError::Unsafe { .. } => CniError::io(format!("host-local store: {msg}")),
        StoreError::Locked { .. } => CniError::try_again(msg).with_details(
            "another host-local call is holding the store; retry, or find the process holding the lock file (fuser -v <dataDir>/<network>/lock)",
        ),
        StoreError::Exhausted { set, ranges, size } => CniError::new(code::ADDRESS_POOL_EXHAUSTED, msg).with_details(
            format!(
                "every address of range set {set} ({ranges}, {} addresses before excluding network, broadcast and gateway) is reserved; leaked reservations are freed by DEL, by GC with cni.dev/valid-attachments, or with reclaimAfterReboot after a reboot; otherwise widen the range",
                // A range that can be exhausted fits in 64 bits; formatting u128 would cost a kilobyte of code.
                u64::try_from(size).map_or_else(|_| "more than 2^64".to_owned(), |n| n.to_string())
            ),
        ),
        StoreError::Taken { .. }
        | StoreError::NotAllocatable { .. }
        | StoreError::Unmatched(_)
        | StoreError::HoldsOther { .. } => CniError::new(code::ADDRESS_UNAVAILABLE, msg),
    }
}

fn options(reclaim_after_reboot: bool) -> DiskOptions {
    DiskOptions {
        reclaim_after_reboot,
        ..DiskOptions::default()
    }
}

fn open(data_dir: &Path, network: &str, reclaim: bool) -> CniResult<DiskStore> {
    DiskStore::open(data_dir, network, &options(reclaim)).map_err(cni_error)
}

/// Opens the store only if the network's directory exists (DEL and GC create nothing).
fn open_existing(data_dir: &Path, network: &str, reclaim: bool) -> CniResult<Option<DiskStore>> {
    DiskStore::open_existing(data_dir, network, &options(reclaim)).map_err(cni_error)
}

fn result(conf: &IpamConf, assigned: &[ipam_store::Assigned], dns: cni_core::Dns) -> NetResult {
    let ips = assigned
        .iter()
        .map(|a| IpConfig {
            // The prefix is the subnet's, valid for the address's family: `new` cannot fail.
            address: IpNetwork::new(a.ip, a.range.subnet.prefix()).unwrap_or_else(|_| IpNetwork::from(a.ip)),
            gateway: Some(a.range.gateway),
            interface: None,
        })
        .collect();
    NetResult {
        interfaces: Vec::new(),
        ips,
        routes: conf.routes.clone(),
        dns,
    }
}

impl Plugin for HostLocal {
    fn name(&self) -> &'static str {
        "host-local"
    }

    fn about(&self) -> &'static str {
        "allocates IP addresses from configured ranges, keeping reservations in files under dataDir (compatible with the reference host-local)"
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        let conf = config::parse(req)?;
        let requested = config::requested(req)?;
        // Read resolvConf before reserving anything, so that a bad path leaves nothing behind.
        let dns = match &conf.resolv_conf {
            Some(path) => dns::load(path)?,
            None => cni_core::Dns::default(),
        };
        let mut store = open(&conf.data_dir, &req.conf.name, conf.reclaim_after_reboot)?;
        let owner = Owner::new(&req.env.container_id, &req.env.ifname);
        let assigned = assign(&mut store, &conf.sets, &owner, &requested).map_err(cni_error)?;
        Ok(result(&conf, &assigned, dns))
    }

    fn del(&self, req: &Request) -> CniResult<()> {
        let s = config::store_settings(req)?;
        let Some(mut store) = open_existing(&s.data_dir, &req.conf.name, s.reclaim_after_reboot)? else {
            return Ok(());
        };
        release_attachment(&mut store, &req.env.container_id, &req.env.ifname).map_err(cni_error)?;
        Ok(())
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        let conf = config::parse(req)?;
        let id = &req.env.container_id;
        let ifname = &req.env.ifname;
        let held = match open_existing(&conf.data_dir, &req.conf.name, conf.reclaim_after_reboot)? {
            Some(mut store) => attachment_addresses(&mut store, id, ifname).map_err(cni_error)?,
            None => Vec::new(),
        };
        if held.is_empty() {
            return Err(CniError::new(
                code::CHECK_MISMATCH,
                format!("host-local: Failed to find address added by container {id}"),
            )
            .with_details(format!(
                "no reservation for container {id} interface {ifname} in {}",
                conf.data_dir.join(&req.conf.name).display()
            )));
        }
        if let Some(prev) = req.conf.prev_result()? {
            for ip in prev.ips.iter().map(|c| c.address.ip()) {
                let ours = conf.sets.iter().any(|s| s.range_of(ip).is_some());
                if ours && !held.contains(&ip) {
                    return Err(CniError::new(
                        code::CHECK_MISMATCH,
                        format!(
                            "host-local: address {ip} in prevResult is not reserved for container {id} interface {ifname}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn gc(&self, req: &Request) -> CniResult<()> {
        let s = config::store_settings(req)?;
        // Without either key (libcni's GCNetworkList with no GCArgs, cnitool 1.3's `gc`) nothing says
        // which reservations are live: release nothing, as the reference does, and succeed.
        let Some(valid) = req.conf.gc_attachments()? else {
            return Ok(());
        };
        let Some(mut store) = open_existing(&s.data_dir, &req.conf.name, s.reclaim_after_reboot)? else {
            return Ok(());
        };
        // ipam-store's one liveness rule (a legacy reservation is kept by any attachment of its container).
        let live = Live::new(
            valid
                .into_iter()
                .map(|a| (a.container_id, Some(a.ifname)))
                .collect(),
        );
        store.retain(|o| live.holds(o)).map_err(cni_error)?;
        Ok(())
    }

    fn status(&self, req: &Request) -> CniResult<()> {
        let conf = config::parse(req)?;
        let unavailable = |e: CniError| {
            CniError::not_available(format!("host-local cannot serve ADD: {}", e.msg))
                .with_details(e.details.unwrap_or_default())
        };
        let mut store =
            open(&conf.data_dir, &req.conf.name, conf.reclaim_after_reboot).map_err(unavailable)?;
        store.check_writable().map_err(|e| unavailable(cni_error(e)))?;
        for (i, set) in conf.sets.iter().enumerate() {
            if first_free(&mut store, i, set)
                .map_err(|e| unavailable(cni_error(e)))?
                .is_none()
            {
                return Err(CniError::not_available(format!(
                    "host-local cannot serve ADD: no IP addresses available in range set {i} ({}): {set}",
                    conf.labels[i]
                ))
                .with_details("free leaked reservations with DEL or GC, or widen the range"));
            }
        }
        Ok(())
    }
}
