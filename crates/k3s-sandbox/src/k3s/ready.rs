//! Waiting for k3s, in one place: [`wait_for_k3s`] holds the deadline, the poll interval and the
//! readiness checks ([`check`]) of `up`'s wait for the API server, and [`wait_for_pod_cidr`] the
//! wait for the node's podCIDR. Both poll through [`wait_until_ready`], which takes an injectable
//! clock and probe, so the timing logic is tested without sleeping.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::k3s::process::{self, Instance, LiveProcesses};
use crate::k3s::{self, KubectlError};

/// How often k3s is asked.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Progress while waiting for the API server is reported at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub(crate) trait Clock {
    /// Time elapsed since some fixed point.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

/// The real clock.
pub(crate) struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub(crate) fn new() -> Self {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// One look at the process being waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    Ready,
    /// Not ready yet; the text says what is still missing.
    NotYet(String),
    /// The process is gone; waiting further is pointless.
    Exited(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ready {
        after: Duration,
    },
    /// The deadline passed; the last "not yet" reason.
    TimedOut {
        last: String,
    },
    Exited(String),
}

/// Call `probe` every `interval` until it reports ready or exit, or until
/// `timeout` has passed (the probe always runs at least once, and once more
/// at the deadline). `on_wait` gets the elapsed time and the reason after
/// each unsuccessful probe, for progress output.
pub(crate) fn wait_until_ready(
    clock: &dyn Clock,
    timeout: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Probe,
    mut on_wait: impl FnMut(Duration, &str),
) -> Outcome {
    let start = clock.now();
    loop {
        let elapsed_before = clock.now().saturating_sub(start);
        match probe() {
            Probe::Ready => {
                return Outcome::Ready {
                    after: clock.now().saturating_sub(start),
                };
            }
            Probe::Exited(why) => return Outcome::Exited(why),
            Probe::NotYet(why) => {
                let elapsed = clock.now().saturating_sub(start);
                if elapsed >= timeout || elapsed_before >= timeout {
                    return Outcome::TimedOut { last: why };
                }
                on_wait(elapsed, &why);
                let remaining = timeout - elapsed;
                clock.sleep(interval.min(remaining));
            }
        }
    }
}

/// What tells the waiter that k3s is gone, so that waiting further is pointless.
pub(crate) enum Watched<'a> {
    /// The k3s this command started.
    Child(&'a mut Child),
    /// A k3s started earlier, as the data dir records it.
    Pid(&'a Instance),
}

impl Watched<'_> {
    /// Why k3s is no longer there, if it is not.
    fn exited(&mut self) -> Option<String> {
        match self {
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
        }
    }
}

/// Why k3s is not ready: the first readiness check that fails.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotReady {
    #[error("k3s has not written {} yet", .0.display())]
    NoKubeconfig(PathBuf),
    #[error("API server not ready: {0}")]
    Api(#[source] KubectlError),
}

/// The readiness checks, in order: k3s has written the kubeconfig, and the API server answers
/// /readyz with `ok`.
pub(crate) fn check(k3s: &Path, kubeconfig: &Path) -> Result<(), NotReady> {
    if !kubeconfig.exists() {
        return Err(NotReady::NoKubeconfig(kubeconfig.to_path_buf()));
    }
    k3s::readyz(k3s, kubeconfig).map_err(NotReady::Api)
}

/// Wait until k3s (the program `k3s`, with its kubeconfig at `kubeconfig`) passes [`check`], the
/// watched k3s exits, or `timeout` (from now) has passed, asking every [`POLL_INTERVAL`]. While
/// waiting, `report` gets a line of progress at most every ten seconds.
pub(crate) fn wait_for_k3s(
    k3s: &Path,
    kubeconfig: &Path,
    mut watched: Watched<'_>,
    timeout: Duration,
    mut report: impl FnMut(&str),
) -> Outcome {
    let mut last_report = Duration::ZERO;
    wait_until_ready(
        &SystemClock::new(),
        timeout,
        POLL_INTERVAL,
        || {
            if let Some(why) = watched.exited() {
                return Probe::Exited(why);
            }
            match check(k3s, kubeconfig) {
                Ok(()) => Probe::Ready,
                Err(e) => Probe::NotYet(e.to_string()),
            }
        },
        |elapsed, why| {
            if elapsed >= last_report + REPORT_EVERY {
                last_report = elapsed;
                report(&format!(
                    "waiting for k3s ({}s of {}s): {why}",
                    elapsed.as_secs(),
                    timeout.as_secs()
                ));
            }
        },
    )
}

/// Why node has no podCIDR to use (the last answer when the wait ended).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NoPodCidr {
    #[error("the node has no podCIDR yet")]
    Unset,
    #[error(transparent)]
    Kubectl(#[from] KubectlError),
}

/// Wait until k3s has given node `node` a podCIDR (its `spec.podCIDR`), or `timeout` (from now)
/// has passed, asking every [`POLL_INTERVAL`]; the podCIDR, or why there is none.
pub(crate) fn wait_for_pod_cidr(
    k3s: &Path,
    kubeconfig: &Path,
    node: &str,
    timeout: Duration,
) -> Result<String, NoPodCidr> {
    let mut last = NoPodCidr::Unset;
    let mut found = None;
    wait_until_ready(
        &SystemClock::new(),
        timeout,
        POLL_INTERVAL,
        || match k3s::node_pod_cidr(k3s, kubeconfig, node) {
            Ok(Some(cidr)) => {
                found = Some(cidr);
                Probe::Ready
            }
            Ok(None) => {
                last = NoPodCidr::Unset;
                Probe::NotYet(String::new())
            }
            Err(e) => {
                last = e.into();
                Probe::NotYet(String::new())
            }
        },
        |_, _| {},
    );
    found.ok_or(last)
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::cell::Cell;

    /// A clock that only moves when something sleeps (or a probe advances it).
    #[derive(Default)]
    pub(crate) struct FakeClock {
        pub(crate) t: Cell<Duration>,
        pub(crate) sleeps: Cell<u32>,
    }

    impl FakeClock {
        pub(crate) fn advance(&self, d: Duration) {
            self.t.set(self.t.get() + d);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            self.t.get()
        }
        fn sleep(&self, d: Duration) {
            self.sleeps.set(self.sleeps.get() + 1);
            self.advance(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeClock;
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ready_on_the_fourth_probe() {
        let clock = FakeClock::default();
        let mut n = 0;
        let out = wait_until_ready(
            &clock,
            10 * S,
            S,
            || {
                n += 1;
                if n == 4 {
                    Probe::Ready
                } else {
                    Probe::NotYet(format!("try {n}"))
                }
            },
            |_, _| {},
        );
        assert_eq!(out, Outcome::Ready { after: 3 * S });
        assert_eq!(clock.sleeps.get(), 3);
    }

    #[test]
    fn times_out_with_the_last_reason_and_never_oversleeps() {
        let clock = FakeClock::default();
        let mut reasons = Vec::new();
        let out = wait_until_ready(
            &clock,
            Duration::from_millis(2500),
            S,
            || Probe::NotYet("kubeconfig not written".into()),
            |t, why| reasons.push((t, why.to_string())),
        );
        assert_eq!(
            out,
            Outcome::TimedOut {
                last: "kubeconfig not written".into()
            }
        );
        // Probes at 0, 1, 2 and at the deadline 2.5 s.
        assert_eq!(clock.now(), Duration::from_millis(2500));
        assert_eq!(reasons.len(), 3);
        assert_eq!(reasons[2].0, 2 * S);
    }

    #[test]
    fn stops_at_once_when_the_process_exits() {
        let clock = FakeClock::default();
        let out = wait_until_ready(
            &clock,
            100 * S,
            S,
            || Probe::Exited("exit status 1".into()),
            |_, _| {},
        );
        assert_eq!(out, Outcome::Exited("exit status 1".into()));
        assert_eq!(clock.sleeps.get(), 0);
    }

    #[test]
    fn a_slow_probe_counts_against_the_timeout() {
        let clock = FakeClock::default();
        let mut calls = 0;
        let out = wait_until_ready(
            &clock,
            5 * S,
            S,
            || {
                calls += 1;
                clock.advance(4 * S);
                Probe::NotYet("slow".into())
            },
            |_, _| {},
        );
        assert!(matches!(out, Outcome::TimedOut { .. }));
        assert_eq!(calls, 2);
    }

    #[test]
    fn zero_timeout_still_probes_once() {
        let clock = FakeClock::default();
        let out = wait_until_ready(&clock, Duration::ZERO, S, || Probe::Ready, |_, _| {});
        assert_eq!(
            out,
            Outcome::Ready {
                after: Duration::ZERO
            }
        );
    }

    #[test]
    fn the_checks_in_order_read_as_before() {
        let tmp = tempfile::tempdir().unwrap();
        let kc = tmp.path().join("kubeconfig.yaml");
        let no_k3s = tmp.path().join("no-k3s");
        let e = check(&no_k3s, &kc).unwrap_err();
        assert_eq!(e.to_string(), format!("k3s has not written {} yet", kc.display()));
        // With the kubeconfig written, the API server is asked (here k3s cannot even be run).
        std::fs::write(&kc, "").unwrap();
        let e = check(&no_k3s, &kc).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "API server not ready: cannot run {} kubectl: ",
                no_k3s.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn a_k3s_that_is_gone_ends_the_wait_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let kc = tmp.path().join("kubeconfig.yaml");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        // Reaped by try_wait in the first probe.
        while std::fs::read_to_string(format!("/proc/{}/stat", child.id())).is_ok_and(|s| !s.contains(") Z "))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut lines = Vec::new();
        let out = wait_for_k3s(Path::new("k3s"), &kc, Watched::Child(&mut child), 100 * S, |l| {
            lines.push(l.to_string())
        });
        assert_eq!(out, Outcome::Exited("k3s exited with status 3".into()));
        assert!(lines.is_empty());
        // A recorded k3s whose start time is not that of any process is no longer running.
        let inst = Instance {
            pid: std::process::id(),
            pgid: 0,
            argv: vec![],
            start_time: Some(u64::MAX),
            profile: None,
            version: None,
            node_name: None,
        };
        let out = wait_for_k3s(Path::new("k3s"), &kc, Watched::Pid(&inst), 100 * S, |_| {});
        assert_eq!(
            out,
            Outcome::Exited(format!("k3s (pid {}) is no longer running", inst.pid))
        );
    }

    #[test]
    fn the_pod_cidr_wait_ends_with_the_last_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let no_k3s = tmp.path().join("no-k3s");
        let e = wait_for_pod_cidr(&no_k3s, &tmp.path().join("kc"), "n", Duration::ZERO).unwrap_err();
        assert!(matches!(e, NoPodCidr::Kubectl(KubectlError::Run { .. })), "{e}");
        assert_eq!(NoPodCidr::Unset.to_string(), "the node has no podCIDR yet");
    }
}
