//! Retry policies: how often a failing handler is tried again on the same message, how long to wait
//! between tries (exponential backoff with jitter), and how long one try may run.
//!
//! The bus-wide default comes from [`Config`](crate::Config); named policies are registered with
//! [`BusBuilder::retry_policy`](crate::BusBuilder::retry_policy); a handler can override each
//! setting with `#[handler(retries = 5, backoff = "100ms..30s", timeout = "5s", policy = "name")]`.

use std::collections::HashMap;
use std::time::Duration;

use super::breaker::CircuitBreaker;
use crate::error::{Error, Result};
use crate::registry::{HandlerDescriptor, HandlerRetry};

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

    /// This policy with a handler's own settings applied over it.
    fn overridden_by(mut self, handler: &HandlerRetry) -> Self {
        if let Some(n) = handler.max_retries {
            self.max_retries = n;
        }
        if let Some(d) = handler.base_delay {
            self.base_delay = d;
        }
        if let Some(d) = handler.max_delay {
            self.max_delay = d;
        }
        if handler.timeout.is_some() {
            self.timeout = handler.timeout;
        }
        self
    }
}

/// The bus-wide default policy and the named ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct RetryPolicies {
    pub default: RetryPolicy,
    pub named: HashMap<String, RetryPolicy>,
}

impl RetryPolicies {
    /// The policy a handler runs with: its named policy (or the default), with its own settings
    /// over it.
    ///
    /// # Errors
    /// [`Error::Config`] when the handler names a policy that was not registered, or its settings
    /// make an invalid policy.
    pub fn for_handler(&self, handler: &HandlerDescriptor) -> Result<RetryPolicy> {
        let own = handler.retry;
        let base = match own.policy {
            None => self.default,
            Some(name) => *self.named.get(name).ok_or_else(|| {
                let mut known: Vec<&str> = self.named.keys().map(String::as_str).collect();
                known.sort_unstable();
                Error::Config(format!(
                    "handler `{}` ({}) uses retry policy `{name}`, which is not registered: add it with \
                     `Bus::builder(config).retry_policy(\"{name}\", RetryPolicy {{ .. }})`{}",
                    handler.name,
                    handler.rust_path,
                    if known.is_empty() {
                        String::new()
                    } else {
                        format!(" (registered: {})", known.join(", "))
                    }
                ))
            })?,
        };
        let policy = base.overridden_by(&own);
        policy.validate(handler.name)?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: 0.5,
            timeout: None,
            breaker: None,
            mode: RetryMode::InPlace,
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<u128> = (1..=6).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX), p.max_delay);
    }

    #[test]
    fn jitter_shortens_a_delay_by_at_most_its_fraction() {
        let p = policy();
        assert_eq!(p.delay(3, 0.0), Duration::from_millis(400));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        let full = RetryPolicy { jitter: 1.0, ..p };
        assert_eq!(full.delay(3, 1.0), Duration::ZERO);
        assert_eq!(
            RetryPolicy { jitter: 0.0, ..p }.delay(3, 0.9),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn invalid_policies_are_refused_with_the_reason() {
        let spin = RetryPolicy {
            base_delay: Duration::ZERO,
            ..policy()
        };
        assert!(spin
            .validate("p")
            .unwrap_err()
            .to_string()
            .contains("busy loop"));
        let inverted = RetryPolicy {
            base_delay: Duration::from_secs(2),
            ..policy()
        };
        assert!(inverted.validate("p").is_err());
        let jitter = RetryPolicy {
            jitter: 1.5,
            ..policy()
        };
        assert!(jitter
            .validate("p")
            .unwrap_err()
            .to_string()
            .contains("jitter"));
        let timeout = RetryPolicy {
            timeout: Some(Duration::ZERO),
            ..policy()
        };
        assert!(timeout.validate("p").is_err());
        assert!(policy().validate("p").is_ok());
    }
}
