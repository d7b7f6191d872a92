//! Retry and circuit-breaker settings, as data: what `Config`, named policies and
//! `#[handler(...)]` settle on; the consumer groups apply them.

use std::time::Duration;

use crate::error::{Error, Result};

/// How a handler's failures are retried before its message goes to the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Tries after the first attempt (0: the first failure dead-letters the message).
    pub max_retries: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// The longest delay between two tries.
    pub max_delay: Duration,
    /// Randomisation of each delay, `0.0..=1.0`: a delay `d` becomes a uniform pick from
    /// `d * (1 - jitter) ..= d`; `1.0` is "full jitter".
    pub jitter: f64,
    /// How long one attempt may run before it counts as a (transient) failure; `None`: unbounded.
    pub timeout: Option<Duration>,
    /// A circuit breaker for each handler under this policy; `None`: none.
    pub breaker: Option<CircuitBreaker>,
    /// Where retries wait: in place, holding the partition (the default, keeps order per key), or
    /// in retry topics, letting the partition move on.
    pub mode: RetryMode,
}

/// Where a failed event waits for its next try.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryMode {
    /// On its partition: later events of the partition wait too, so order per key is kept.
    #[default]
    InPlace,
    /// In the retry topics `{topic}.retry.1`, `.retry.2`, `.retry.3`: the partition moves on
    /// at once and the event is retried out of order (for this handler only). See
    /// `docs/failure-handling.md`.
    Topics,
}

impl Default for RetryPolicy {
    /// Seed 003's defaults, with herald's shorter first delay: 3 retries, 100 ms doubling to 30 s,
    /// 10 % jitter, no attempt timeout.
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            jitter: 0.1,
            timeout: None,
            breaker: None,
            mode: RetryMode::InPlace,
        }
    }
}

impl RetryPolicy {
    /// Checks that the policy cannot spin or stall.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: a zero base delay (the retries would spin), a base
    /// delay longer than the maximum, a jitter outside `0.0..=1.0`, a zero attempt timeout.
    pub fn validate(&self, name: &str) -> Result<()> {
        let problem = if self.base_delay.is_zero() {
            Some("its base delay is zero, so a failing handler would be retried in a busy loop: use at least 1 ms")
        } else if self.base_delay > self.max_delay {
            Some("its base delay is longer than its maximum delay")
        } else if !(0.0..=1.0).contains(&self.jitter) {
            Some("its jitter must be between 0.0 and 1.0")
        } else if self.timeout.is_some_and(|t| t.is_zero()) {
            Some("its attempt timeout is zero, so every attempt would fail: leave it unset for no timeout")
        } else if self.breaker.is_some_and(|b| b.failure_threshold == 0) {
            Some("its circuit breaker's failure threshold is zero: use at least 1")
        } else if self.breaker.is_some_and(|b| b.cooldown.is_zero()) {
            Some("its circuit breaker's cool-down is zero, so it would never hold the handler back")
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::Config(format!("retry policy `{name}`: {problem}"))),
            None => Ok(()),
        }
    }

    /// The delay before retry number `retry` (1 for the first retry), before jitter:
    /// `base * 2^(retry-1)`, at most `max_delay`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(30));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The delay before retry number `retry`, with jitter drawn from `unit` (a number in `0..1`).
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let full = self.backoff(retry);
        full.mul_f64(1.0 - self.jitter * unit.clamp(0.0, 1.0))
    }
}

/// When a handler's circuit breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Consecutive failed attempts that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long it stays open before one probe attempt is let through.
    pub cooldown: Duration,
    /// How long one message may wait on the open breaker with its failures not counted against
    /// its retries (default [`CircuitBreaker::DEFAULT_HOLD_LIMIT`]). After that they count, so a
    /// message that fails whenever it is tried (one that keeps the breaker open itself) ends in the
    /// dead-letter topic instead of holding its partition for good.
    pub hold_limit: Duration,
}

impl CircuitBreaker {
    /// The default [`CircuitBreaker::hold_limit`]: five minutes.
    pub const DEFAULT_HOLD_LIMIT: Duration = Duration::from_secs(300);

    /// A breaker opening after `failure_threshold` consecutive failures for `cooldown`, with the
    /// default hold limit.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self {
            failure_threshold,
            cooldown,
            hold_limit: Self::DEFAULT_HOLD_LIMIT,
        }
    }
}
