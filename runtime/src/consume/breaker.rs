//! Circuit breakers, one per handler of a consumer group: after `failure_threshold` consecutive
//! failed attempts (across messages and partitions) the breaker opens and the handler is not run
//! for `cooldown`; its partitions are paused at the broker meanwhile, and the messages waiting for it
//! keep their retry budget (the failure is the dependency's, not theirs). After the cool-down one
//! attempt is let through as a probe (half-open): success closes the breaker, failure opens it
//! again. Permanent and decode errors do not count: they are about a message, not a dependency.
//! A message spares its retry budget only for the breaker's `hold_limit`: a poison message whose
//! own failures keep the breaker open would otherwise be probed forever and hold its partition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::policy::CircuitBreaker;
use crate::telemetry::stats::Counters;

/// A breaker's state, as [`Bus::breakers`](crate::Bus::breakers) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// The handler runs; the number is the current run of consecutive failures.
    Closed(u32),
    /// The handler does not run until the cool-down is over.
    Open,
    /// One probe attempt is running.
    HalfOpen,
}

/// One handler's breaker, as reported by [`Bus::breakers`](crate::Bus::breakers).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BreakerStatus {
    /// The consumer group.
    pub group: String,
    /// The handler.
    pub handler: &'static str,
    /// Its state now.
    pub state: BreakerState,
    /// How often it opened so far.
    pub opened: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// Whether an attempt was let through normally or as the half-open probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Permit {
    Normal,
    Probe,
}

/// A handler's live breaker, shared by every partition worker of its group.
#[derive(Debug)]
pub(crate) struct Breaker {
    pub group: String,
    pub handler: &'static str,
    policy: CircuitBreaker,
    state: Mutex<State>,
    /// Bumped on every change, so waiters re-check.
    changed: watch::Sender<u64>,
    opened: AtomicU64,
    counters: Arc<Counters>,
}

impl Breaker {
    pub fn new(
        group: &str,
        handler: &'static str,
        policy: CircuitBreaker,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            group: group.to_owned(),
            handler,
            policy,
            state: Mutex::new(State::Closed { failures: 0 }),
            changed: watch::channel(0).0,
            opened: AtomicU64::new(0),
            counters,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long one message may wait on the open breaker before its failures count.
    pub fn hold_limit(&self) -> Duration {
        self.policy.hold_limit
    }

    /// Whether the handler may run now without waiting.
    pub fn is_closed(&self) -> bool {
        matches!(*self.lock(), State::Closed { .. })
    }

    /// Waits until an attempt may run: at once while closed; after the cool-down as the one probe
    /// while open. `None` when `cancel` fired first.
    pub async fn admit(&self, cancel: &CancellationToken) -> Option<Permit> {
        let mut changes = self.changed.subscribe();
        loop {
            let wait_until = {
                let mut state = self.lock();
                match *state {
                    State::Closed { .. } => return Some(Permit::Normal),
                    State::Open { until } if Instant::now() >= until => {
                        *state = State::HalfOpen;
                        self.notify();
                        return Some(Permit::Probe);
                    }
                    State::Open { until } => Some(until),
                    State::HalfOpen => None,
                }
            };
            let sleep = async {
                match wait_until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return None,
                _ = changes.changed() => {}
                _ = sleep => {}
            }
        }
    }

    /// Records the outcome of a permitted attempt; returns whether the breaker is open now.
    pub fn record(&self, permit: Permit, success: bool) -> bool {
        let mut state = self.lock();
        let next = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if permit == Permit::Normal => {
                if failures + 1 >= self.policy.failure_threshold {
                    self.open()
                } else {
                    State::Closed {
                        failures: failures + 1,
                    }
                }
            }
            // A failed probe, or a failure of an attempt admitted before another one opened it.
            (State::HalfOpen, false) => self.open(),
            (current, false) => current,
        };
        let was_open = !matches!(*state, State::Closed { .. });
        *state = next;
        let open = !matches!(next, State::Closed { .. });
        drop(state);
        if was_open != open || open {
            self.notify();
        }
        if was_open && !open {
            tracing::info!(group = %self.group, handler = self.handler, "circuit breaker closed");
        }
        open
    }

    fn open(&self) -> State {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Counters::add(&self.counters.breaker_opens, 1);
        tracing::warn!(group = %self.group, handler = self.handler, cooldown = ?self.policy.cooldown,
            "circuit breaker opened: the handler is paused for the cool-down");
        State::Open {
            until: Instant::now() + self.policy.cooldown,
        }
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// The state for reports.
    pub fn status(&self) -> BreakerStatus {
        let state = match *self.lock() {
            State::Closed { failures } => BreakerState::Closed(failures),
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        };
        BreakerStatus {
            group: self.group.clone(),
            handler: self.handler,
            state,
            opened: self.opened.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(
            "g",
            "h",
            CircuitBreaker::new(threshold, Duration::from_secs(10)),
            Arc::default(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_probes_once_after_the_cooldown() {
        let b = breaker(3);
        let cancel = CancellationToken::new();
        for _ in 0..2 {
            let permit = b.admit(&cancel).await.unwrap();
            assert!(!b.record(permit, false));
        }
        assert_eq!(b.status().state, BreakerState::Closed(2));
        let permit = b.admit(&cancel).await.unwrap();
        assert!(b.record(permit, false), "the third failure opens it");
        assert_eq!(b.status().state, BreakerState::Open);

        let started = Instant::now();
        let probe = b.admit(&cancel).await.unwrap();
        assert_eq!(probe, Permit::Probe);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(10),
            "waited the cool-down"
        );
        assert_eq!(b.status().state, BreakerState::HalfOpen);

        // While the probe runs, nobody else gets through.
        let second = tokio::time::timeout(Duration::from_secs(60), b.admit(&cancel)).await;
        assert!(second.is_err(), "a second attempt ran during the probe");

        assert!(b.record(probe, false), "a failed probe opens it again");
        let probe = b.admit(&cancel).await.unwrap();
        assert!(!b.record(probe, true), "a good probe closes it");
        assert_eq!(b.status().state, BreakerState::Closed(0));
        assert_eq!(b.status().opened, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_run_of_failures() {
        let b = breaker(2);
        let cancel = CancellationToken::new();
        let p = b.admit(&cancel).await.unwrap();
        b.record(p, false);
        let p = b.admit(&cancel).await.unwrap();
        b.record(p, true);
        let p = b.admit(&cancel).await.unwrap();
        assert!(
            !b.record(p, false),
            "one failure after a success does not open it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_an_open_breaker_stops_when_cancelled() {
        let b = breaker(1);
        let cancel = CancellationToken::new();
        let p = b.admit(&cancel).await.unwrap();
        b.record(p, false);
        let stopper = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                cancel.cancel();
            })
        };
        let started = Instant::now();
        assert!(b.admit(&cancel).await.is_none());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        stopper.await.unwrap();
    }
}
