//! Leak and fill-level detection for `doctor` and `status`: a range set nearly full, or reservations
//! held by containers that are not live pod sandboxes, each with the command that fixes it. What
//! counts as leaked is exactly what `ipam gc --from-cri` would free: its plan, from ipam-store's one
//! liveness rule.

use std::collections::BTreeSet;
use std::time::Duration;

use ipam_store::inspect;
use ipam_store::live::Fate;
use ipam_store::{Live, inspect::Inspection};

use super::gc::{Plan, gc_command, gc_valid_command, ls_command, plan};
use super::ls::{RangeUse, range_use};
use super::network::networks_in;
use super::{DEFAULT_MIN_AGE, NEARLY_FULL_PERCENT, fmt_range, say};
use crate::cni::cri;
use crate::duration::parse_duration;
use crate::output::{outln, plural};
use crate::paths::Dirs;

/// A problem found in a store by [`detect`], with the command that fixes it.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub(crate) network: String,
    /// What is wrong, and what fixes it.
    pub(crate) problem: Option<(String, Fix)>,
    /// One line on the store when there is no problem.
    pub(crate) summary: String,
}

/// What fixes a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fix {
    /// This `ipam gc` command line.
    Run(String),
    /// Nothing to free (every holder is a live pod sandbox): the range itself is too small.
    Widen(String),
    /// The runtime cannot be asked which pods live: see the holders (this `ipam ls`), then free
    /// the dead ones' addresses by naming the live ones (this `ipam gc --valid`).
    Inspect { ls: String, gc: String },
}

impl Fix {
    /// The remedy as doctor words it.
    pub(crate) fn remedy(&self) -> String {
        match self {
            Fix::Run(cmd) => format!("run `{cmd}`"),
            Fix::Widen(advice) => advice.clone(),
            Fix::Inspect { ls, gc } => format!(
                "the container runtime does not answer, so the live pods are unknown: \
                 see the holders with `{ls}`, then name the live ones in `{gc} ...` (a dry run; add --apply)"
            ),
        }
    }
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fix::Run(cmd) | Fix::Widen(cmd) => f.write_str(cmd),
            Fix::Inspect { .. } => f.write_str(&self.remedy()),
        }
    }
}

/// Checks every host-local store of the conf dir: a range set nearly full, or reservations held by
/// containers that are not live pod sandboxes (when `live` is known).
pub(crate) fn detect(dirs: &Dirs, live: Option<&BTreeSet<String>>) -> Vec<Finding> {
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
        let mut problems = Vec::new();
        let mut allow_empty = false;
        // What `ipam gc --from-cri` would decide now (the runtime's sandboxes are the live ones).
        let gc_plan = live.map(|ids| {
            let ids = ids.iter().map(|id| (id.clone(), None)).collect();
            plan(&found, &Live::new(ids), grace)
        });
        if let (Some(live), Some(p)) = (live, &gc_plan)
            && !p.free.is_empty()
        {
            problems.push(leaked(&found, p, live.len()));
            allow_empty = live.is_empty();
        }
        // Not regular files: blocked whoever lives (gc never removes them).
        let blocked: Vec<String> = found
            .reservations
            .iter()
            .filter(|r| Live::default().fate(r.entry()) == Fate::Blocked)
            .map(|r| r.ip.to_string())
            .collect();
        if !blocked.is_empty() {
            problems.push(format!(
                "{} not a reservation file ({}): it blocks the address, and gc never removes it",
                plural(
                    blocked.len() as u64,
                    "address holds something that is",
                    "addresses hold something that is"
                ),
                blocked.join(", ")
            ));
        }
        // Every condition under which the plugin refuses to work on this store.
        problems.extend(
            found
                .damage
                .iter()
                .filter(|d| d.blocks_calls())
                .map(ToString::to_string),
        );
        let nearly_full: Vec<&RangeUse> = uses
            .iter()
            .filter(|u| {
                u.capacity > 0 && u.used.saturating_mul(100) >= u.capacity.saturating_mul(NEARLY_FULL_PERCENT)
            })
            .collect();
        for u in &nearly_full {
            problems.push(format!(
                "range {} is nearly full: {} of {} used",
                fmt_range(&u.range),
                u.used,
                plural(u.capacity, "address", "addresses")
            ));
        }
        // One figure per range: an IPv4 and an IPv6 range are never summed.
        let summary = if uses.iter().any(|u| u.capacity > 0) {
            format!(
                "{} ({})",
                uses.iter()
                    .map(|u| format!(
                        "{} of {} used in {}",
                        u.used,
                        plural(u.capacity, "address", "addresses"),
                        u.range.subnet
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                dir.display()
            )
        } else {
            format!(
                "{} ({})",
                plural(found.reservations.len() as u64, "reservation", "reservations"),
                dir.display()
            )
        };
        let refused = found.damage.iter().any(|d| d.blocks_calls());
        // gc would free nothing, now or later: every reservation gc may free is held by a live
        // pod sandbox (young ones of pods not listed yet may be leaks gc frees once they age).
        let all_live = gc_plan
            .as_ref()
            .is_some_and(|p| p.free.is_empty() && p.young == 0);
        let by_hand = || {
            Fix::Widen(
                "remove what is not a reservation file by hand (gc never removes it), then check with `k3s-sandbox ipam ls`".into(),
            )
        };
        let problem = (!problems.is_empty()).then(|| {
            let fix = if refused {
                Fix::Widen(
                    "remove what the message names (the plugin never works around it; it recreates its own files), then check with `k3s-sandbox ipam ls`".into(),
                )
            } else if !blocked.is_empty() && (all_live || (live.is_none() && nearly_full.is_empty())) {
                by_hand()
            } else if all_live {
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
                Fix::Inspect {
                    ls: ls_command(dirs, &net),
                    gc: gc_valid_command(dirs, &net),
                }
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

/// The leak `plan` found in `found` with `live` live pod sandboxes: the holders it would free, and
/// the reservations that name no holder (it frees those too).
fn leaked(found: &Inspection, plan: &Plan, live: usize) -> String {
    let holders: BTreeSet<&str> = found
        .reservations
        .iter()
        .filter_map(|r| r.owner.as_ref().map(|o| o.id.as_str()))
        .collect();
    let gone: BTreeSet<&str> = plan
        .free
        .iter()
        .filter_map(|d| d.owner.as_ref().map(|o| o.id.as_str()))
        .collect();
    let nobody = plan.free.iter().filter(|d| d.owner.is_none()).count();
    let mut why = Vec::new();
    match gone.len() {
        0 => {}
        1 => why.push("1 holder is gone".to_string()),
        n => why.push(format!("{n} holders are gone")),
    }
    if nobody > 0 {
        why.push(format!(
            "{} no holder (empty or unreadable)",
            plural(nobody as u64, "reservation names", "reservations name")
        ));
    }
    format!(
        "{} held by {}, but only {}: {}",
        plural(found.reservations.len() as u64, "reservation", "reservations"),
        plural(holders.len() as u64, "container", "containers"),
        plural(live as u64, "live pod sandbox", "live pod sandboxes"),
        why.join(", ")
    )
}

/// The live sandbox IDs, when this data dir's k3s agent is running and its runtime answers.
pub(crate) fn live_ids(dirs: &Dirs) -> Option<BTreeSet<String>> {
    cri::live_sandboxes(dirs, None)
        .ok()
        .map(|a| a.sandboxes.into_iter().map(|s| s.id).collect())
}

/// `status` lines: one per store, and a warning with the fixing command for each problem.
pub(crate) fn print_status(dirs: &Dirs) {
    let live = live_ids(dirs);
    if live.is_none() {
        say("the container runtime did not answer `crictl pods`: leaked reservations cannot be counted");
    }
    let found = detect(dirs, live.as_ref());
    if found.is_empty() {
        outln!(
            "ipam: no host-local store in use by the configs of {}",
            dirs.cni_conf_dir.display()
        );
    }
    for f in found {
        outln!("ipam {}: {}", f.network, f.summary);
        if let Some((what, cmd)) = &f.problem {
            say(&format!("warning: network {}: {what}; fix: {cmd}", f.network));
        }
    }
}
