//! Consuming: one consumer per consumer group ([`group`]), each message handled to a verdict
//! ([`dispatch`]) under its handlers' retry policies ([`retry`]), and what cannot be handled copied
//! to a dead-letter topic ([`dead_letter`]) before its offset is committed. A bounded run (a
//! replay) is the same consumer stopping at end offsets ([`bounded`]).

use std::sync::Arc;

use crate::config::ConsumeSettings;
use crate::context::StateMap;
use crate::publish::Publisher;
use crate::telemetry::stats::Counters;

pub(crate) mod bounded;
pub mod breaker;
mod contiguous;
mod dead_letter;
pub(crate) mod dispatch;
pub mod dynamic;
mod forward;
mod group;
pub mod retry;
pub mod retry_topic;
pub(crate) mod settle;

pub(crate) use group::{assigned as wait_until_assigned, GroupRunner, GroupStop};

/// Everything a group's consumer shares with its partition workers.
pub(crate) struct Shared {
    pub publisher: Publisher,
    pub state: Arc<StateMap>,
    pub counters: Arc<Counters>,
    /// The bus-wide and named retry policies.
    pub policies: retry::RetryPolicies,
    /// What the groups take from `Config`.
    pub settings: ConsumeSettings,
    /// Every handler's circuit breaker, for [`Bus::breakers`](crate::Bus::breakers).
    pub breakers: Arc<std::sync::Mutex<Vec<Arc<breaker::Breaker>>>>,
    /// The handler attempts running now, for [`Bus::health`](crate::Bus::health).
    pub in_flight: Arc<crate::telemetry::in_flight::InFlight>,
    /// The dead-letter and retry copies that failed and are tried again, for
    /// [`Bus::health`](crate::Bus::health): each holds its partition.
    pub stalled_copies: Arc<crate::telemetry::in_flight::InFlight>,
    /// The closures of the bus's dynamic handlers.
    pub callers: dynamic::Callers,
}

#[cfg(test)]
impl Shared {
    /// What a group shares, for tests: a publisher to `servers`, small buffers, 1 s timeouts.
    pub(crate) fn for_test(config: &crate::config::Config, servers: &str) -> Self {
        let counters = Arc::new(Counters::default());
        Self {
            publisher: Publisher::new(config, servers, counters.clone()).unwrap(),
            state: Default::default(),
            counters,
            policies: Default::default(),
            settings: ConsumeSettings {
                max_buffered: 10,
                max_buffered_bytes: 1 << 20,
                max_buffered_bytes_per_consumer: 1 << 24,
                shutdown_timeout: std::time::Duration::from_secs(1),
                dead_letter_unknown_types: false,
                max_message_bytes: None,
                dlq_suffix: ".dlq".into(),
                delivery_timeout: std::time::Duration::from_secs(1),
                default_group: config.service_name.clone(),
            },
            breakers: Default::default(),
            in_flight: Default::default(),
            stalled_copies: Default::default(),
            callers: Default::default(),
        }
    }
}
