//! Liveness and readiness of a bus, for a service's HTTP probes: [`Bus::health`](crate::Bus::health).

use std::time::Duration;

/// What [`Bus::health_with`](crate::Bus::health_with) checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOptions {
    /// How long the broker probe (a metadata request) may take before the broker counts as
    /// unreachable.
    pub probe_timeout: Duration,
    /// A handler attempt running longer than this counts as stuck, and so does a dead-letter or
    /// retry-topic copy failing for longer: the bus is then not live.
    pub stuck_after: Duration,
}

impl Default for HealthOptions {
    /// A 2 s probe; stuck after 60 s.
    fn default() -> Self {
        Self {
            probe_timeout: Duration::from_secs(2),
            stuck_after: Duration::from_secs(60),
        }
    }
}

/// The bus's health. Serialize it for an HTTP probe; answer `live` to the liveness probe and `ready`
/// to the readiness probe.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Health {
    /// The process should keep running: no consumer group failed, no handler is stuck, the reply
    /// listener (once a request started it) runs. A broker
    /// outage does not make a bus dead (restarting would not help), only unready.
    pub live: bool,
    /// It can do its work: live, the broker answered the probe, and every consumer group of a
    /// started bus has partitions assigned.
    pub ready: bool,
    /// The broker answered a metadata request within the probe timeout.
    pub broker_reachable: bool,
    /// Whether the bus consumes ([`Bus::start`](crate::Bus::start) was called and it was not shut
    /// down).
    pub consuming: bool,
    /// Each running consumer group.
    pub groups: Vec<GroupHealth>,
    /// The longest-running handler attempt, if one runs: its handler and seconds so far.
    pub longest_handler: Option<(String, f64)>,
    /// Why the bus is not ready (or not live), for people; empty when it is ready.
    pub problems: Vec<String>,
}

/// One consumer group's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupHealth {
    /// The group.
    pub group: String,
    /// Partitions assigned to this member.
    pub assigned_partitions: usize,
    /// Its consumer stopped (a fatal error, a panicked task): the bus must be restarted.
    pub failed: bool,
}

impl Health {
    /// Puts the checks together into `live`, `ready` and the problems.
    pub(crate) fn assess(
        broker_reachable: bool,
        consuming: bool,
        reply_listener_dead: bool,
        groups: Vec<GroupHealth>,
        longest: Option<(&'static str, Duration)>,
        stalled_copy: Option<(&'static str, Duration)>,
        options: &HealthOptions,
    ) -> Self {
        let mut problems = Vec::new();
        let mut live = true;
        if reply_listener_dead {
            live = false;
            problems.push(
                "the reply listener stopped (its log says why): requests get no replies until the \
                 next request starts a new one"
                    .to_owned(),
            );
        }
        for group in &groups {
            if group.failed {
                live = false;
                problems.push(format!(
                    "the consumer of group `{}` stopped; restart the service (its log says why)",
                    group.group
                ));
            }
        }
        if let Some((handler, running)) = longest.filter(|(_, d)| *d > options.stuck_after) {
            live = false;
            problems.push(format!(
                "handler `{handler}` has run for {:.0} s, more than {:?}: it looks stuck; give it a \
                 `timeout` or look at what it waits for",
                running.as_secs_f64(),
                options.stuck_after
            ));
        }
        if let Some((what, failing)) = stalled_copy.filter(|(_, d)| *d > options.stuck_after) {
            live = false;
            problems.push(format!(
                "{what} has failed for {:.0} s, more than {:?}, and holds its partition: the log \
                 says why (the broker away, the topic refusing it)",
                failing.as_secs_f64(),
                options.stuck_after
            ));
        }
        if !broker_reachable {
            problems.push(format!(
                "the broker did not answer a metadata request within {:?}: check that Kafka runs \
                 and KAFKA_BOOTSTRAP_SERVERS",
                options.probe_timeout
            ));
        }
        for group in groups
            .iter()
            .filter(|g| !g.failed && g.assigned_partitions == 0)
        {
            problems.push(format!(
                "consumer group `{}` has no partitions assigned yet (joining, rebalancing, or more \
                 members than partitions)",
                group.group
            ));
        }
        let ready = live && problems.is_empty();
        Self {
            live,
            ready,
            broker_reachable,
            consuming,
            groups,
            longest_handler: longest.map(|(h, d)| (h.to_owned(), d.as_secs_f64())),
            problems,
        }
    }
}
