//! Waiting for k3s: a poller with an injectable clock and probe, so the
//! timing logic is tested without sleeping.

use std::time::{Duration, Instant};

pub trait Clock {
    /// Time elapsed since some fixed point.
    fn now(&self) -> Duration;
    fn sleep(&self, d: Duration);
}

/// The real clock.
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
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
pub enum Probe {
    Ready,
    /// Not ready yet; the text says what is still missing.
    NotYet(String),
    /// The process is gone; waiting further is pointless.
    Exited(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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
pub fn wait_until_ready(
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

#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::cell::Cell;

    /// A clock that only moves when something sleeps (or a probe advances it).
    #[derive(Default)]
    pub struct FakeClock {
        pub t: Cell<Duration>,
        pub sleeps: Cell<u32>,
    }

    impl FakeClock {
        pub fn advance(&self, d: Duration) {
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
}
