//! Retry policies: how often a failing handler is tried again on the same message, how long to wait
//! between tries (exponential backoff with jitter), and how long one try may run.
//!
//! The bus-wide default comes from [`Config`](crate::Config); named policies are registered with
//! [`BusBuilder::retry_policy`](crate::BusBuilder::retry_policy); a handler can override each
//! setting with `#[handler(retries = 5, backoff = "100ms..30s", timeout = "5s", policy = "name")]`.

use std::collections::HashMap;

use crate::config::policy::RetryPolicy;
use crate::error::{Error, Result};
use crate::registry::{HandlerDescriptor, HandlerRetry};

/// `policy` with a handler's own settings applied over it.
fn overridden_by(mut policy: RetryPolicy, handler: &HandlerRetry) -> RetryPolicy {
    if let Some(n) = handler.max_retries {
        policy.max_retries = n;
    }
    if let Some(d) = handler.base_delay {
        policy.base_delay = d;
    }
    if let Some(d) = handler.max_delay {
        policy.max_delay = d;
    }
    if handler.timeout.is_some() {
        policy.timeout = handler.timeout;
    }
    policy
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
        let policy = overridden_by(base, &own);
        policy.validate(handler.name)?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::RetryMode;
    use std::time::Duration;

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
