//! Topic naming: seed 000's conventions for the topics of service, domain and integration events,
//! and the per-environment prefix ([`Config::topic_prefix`](crate::Config::topic_prefix)) put before
//! every topic herald derives.
//!
//! The prefix is applied in two places that every topic goes through: the registry (the topics
//! handlers consume and herald creates, and so the dead-letter and retry topics named after
//! them) and the publisher (the topic an event is published to).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The topic of a service's own events: `service.{name}.events` (seed 000).
pub fn service_events(service: &str) -> String {
    format!("service.{service}.events")
}

/// The topic of an aggregate's domain events: `domain.{aggregate}.events` (seed 000); what
/// `#[domain_event(aggregate = "...")]` uses.
pub fn domain_events(aggregate: &str) -> String {
    format!("domain.{aggregate}.events")
}

/// The topic of events exchanged with an external system: `integration.{system}.events` (seed 000).
pub fn integration_events(system: &str) -> String {
    format!("integration.{system}.events")
}

/// `topic` with `prefix` before it, joined with a dot; `topic` itself without a prefix.
pub fn with_prefix(prefix: Option<&str>, topic: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}.{topic}"),
        None => topic.to_owned(),
    }
}

/// Why `prefix` cannot be a topic prefix, if it cannot.
pub(crate) fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return Some("is empty: leave it unset for no prefix".into());
    }
    if prefix.ends_with('.') {
        return Some(format!(
            "ends with `.`: herald joins prefix and topic with a dot itself, so write `{}`",
            prefix.trim_end_matches('.')
        ));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "contains `{bad}`: a topic name may only hold ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    None
}

/// `topic` with `prefix` before it, as a `&'static str` like the topics the macros derive. Each
/// (prefix, topic) pair is allocated once for the life of the process, so the memory is bounded by
/// the number of topics times the number of prefixes used.
pub(crate) fn prefixed(prefix: Option<&str>, topic: &'static str) -> &'static str {
    let Some(prefix) = prefix else {
        return topic;
    };
    static INTERNED: OnceLock<Mutex<HashMap<(String, &'static str), &'static str>>> =
        OnceLock::new();
    let mut interned = INTERNED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    interned
        .entry((prefix.to_owned(), topic))
        .or_insert_with(|| Box::leak(with_prefix(Some(prefix), topic).into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_000_conventions() {
        assert_eq!(service_events("billing"), "service.billing.events");
        assert_eq!(domain_events("user"), "domain.user.events");
        assert_eq!(integration_events("stripe"), "integration.stripe.events");
    }

    #[test]
    fn prefixes_join_with_a_dot_and_are_interned() {
        assert_eq!(prefixed(None, "a.b"), "a.b");
        let first = prefixed(Some("staging"), "a.b");
        assert_eq!(first, "staging.a.b");
        assert!(std::ptr::eq(first, prefixed(Some("staging"), "a.b")));
        assert_eq!(prefixed(Some("dev"), "a.b"), "dev.a.b");
    }

    #[test]
    fn bad_prefixes_say_what_to_write() {
        assert_eq!(prefix_problem("staging"), None);
        assert!(prefix_problem("staging.")
            .unwrap()
            .contains("write `staging`"));
        assert!(prefix_problem("").unwrap().contains("unset"));
        assert!(prefix_problem("dev/alice").unwrap().contains("`/`"));
    }
}
