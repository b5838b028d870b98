//! `up`'s wait for the API server, and what it shows when k3s does not get there.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use crate::commands::say;
use crate::hints;
use crate::paths::StateFiles;
use crate::process::{self, Instance, LiveProcesses};
use crate::ready::{self, Outcome, Probe, SystemClock};
use crate::util;

const LOG_TAIL_LINES: usize = 40;

pub(super) fn print_log_tail_and_hints(state: &StateFiles) {
    let text = util::read_tail(&state.log, 256 * 1024).unwrap_or_default();
    let tail = util::tail_lines(&text, LOG_TAIL_LINES);
    if tail.is_empty() {
        say(&format!("the k3s log {} is empty", state.log.display()));
    } else {
        say(&format!("last {} lines of {}:", tail.len(), state.log.display()));
        for l in &tail {
            eprintln!("    {l}");
        }
    }
    for h in hints::match_hints(&text) {
        say(&format!("hint: {h}"));
    }
}

/// How the readiness probe learns whether k3s is still there.
pub(super) enum Watched<'a> {
    Child(&'a mut Child),
    Pid(&'a Instance),
}

pub(super) fn wait_ready(
    k3s: &Path,
    state: &StateFiles,
    mut watched: Watched<'_>,
    timeout: Duration,
) -> Outcome {
    let clock = SystemClock::new();
    let mut last_report = Duration::ZERO;
    ready::wait_until_ready(
        &clock,
        timeout,
        Duration::from_secs(1),
        || {
            let exited = match &mut watched {
                Watched::Child(c) => match c.try_wait() {
                    Ok(Some(s)) => Some(match s.code() {
                        Some(code) => format!("k3s exited with status {code}"),
                        None => format!("k3s was killed by a signal ({s})"),
                    }),
                    Ok(None) => None,
                    Err(e) => Some(format!("cannot watch k3s: {e}")),
                },
                Watched::Pid(inst) => (!process::is_alive(&LiveProcesses, inst.pid, inst.start_time))
                    .then(|| format!("k3s (pid {}) is no longer running", inst.pid)),
            };
            if let Some(why) = exited {
                return Probe::Exited(why);
            }
            if !state.kubeconfig.exists() {
                return Probe::NotYet(format!("k3s has not written {} yet", state.kubeconfig.display()));
            }
            match crate::k3s::readyz(k3s, &state.kubeconfig) {
                Ok(()) => Probe::Ready,
                Err(e) => Probe::NotYet(format!("API server not ready: {e}")),
            }
        },
        |elapsed, why| {
            if elapsed >= last_report + Duration::from_secs(10) {
                last_report = elapsed;
                say(&format!(
                    "waiting for k3s ({}s of {}s): {why}",
                    elapsed.as_secs(),
                    timeout.as_secs()
                ));
            }
        },
    )
}
