//! The bus: configuration, registry, broker connection, publishing and the consumer groups of the
//! registered handlers, in one handle.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::broker::connect;
use crate::broker::embedded::EmbeddedBroker;
use crate::broker::topics;
use crate::command::{self, Command, Replies, RequestOptions};
use crate::config::policy::RetryPolicy;
use crate::config::{Brokers, Config};
use crate::consume::breaker::{Breaker, BreakerStatus};
use crate::consume::dynamic::{self, Callers, DynamicHandler};
use crate::consume::retry::RetryPolicies;
use crate::consume::retry_topic;
use crate::consume::{GroupRunner, GroupStop, Shared};
use crate::context::{Context, StateMap};
use crate::error::HandlerError;
use crate::error::{Error, Result};
use crate::event::envelope::Delivery;
use crate::event::envelope::PublishOptions;
use crate::event::{DynamicEvent, Event, HeraldEvent};
use crate::publish::mapped;
use crate::publish::memory::MemoryLog;
use crate::publish::{EncodedEvent, PublishRetry, Publisher};
use crate::registry::{HandlerDescriptor, Registry};
use crate::telemetry::in_flight::InFlight;
use crate::telemetry::stats::{Counters, Stats};
use crate::telemetry::{self, GroupHealth, Health, HealthOptions, Inspector, TopicInfo};

/// How long each broker request of [`Bus::topic_info`] and [`Bus::consumer_lag`] may take.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(5);

/// herald's entry point: publishes events and runs the registered handlers.
///
/// Cloning is cheap; every clone is the same bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    registry: Registry,
    bootstrap_servers: String,
    publisher: Publisher,
    counters: Arc<Counters>,
    state: Arc<StateMap>,
    groups: Option<Vec<String>>,
    policies: RetryPolicies,
    breakers: Arc<std::sync::Mutex<Vec<Arc<Breaker>>>>,
    in_flight: Arc<InFlight>,
    /// Dead-letter and retry copies that failed and are being tried again.
    stalled_copies: Arc<InFlight>,
    /// The closures of the dynamic handlers.
    callers: Callers,
    running: Mutex<Vec<GroupRunner>>,
    /// The groups whose consumer failed, with the reason, kept after `shutdown` so that health
    /// goes on saying so: the service must be restarted.
    failed: std::sync::Mutex<Vec<(String, String)>>,
    /// The reply listener, started by the first request and stopped by `shutdown`.
    replies: std::sync::Mutex<Option<Arc<Replies>>>,
    /// Held while a reply listener starts, so concurrent first requests start one.
    replies_starting: Mutex<()>,
    // Dropped last: the embedded broker must outlive every client.
    broker: Option<Arc<EmbeddedBroker>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("config", &self.inner.config)
            .field("bootstrap_servers", &self.inner.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Bus`] with more than a configuration: shared state, a chosen broker, a subset of
/// consumer groups.
pub struct BusBuilder {
    config: Config,
    broker: Option<Arc<EmbeddedBroker>>,
    groups: Option<Vec<String>>,
    state: StateMap,
    policies: std::collections::HashMap<String, RetryPolicy>,
    dynamic: Vec<DynamicHandler>,
}

impl BusBuilder {
    /// Registers a handler built at run time (see [`DynamicHandler`]): it runs in its consumer
    /// group beside the group's `#[handler]` fns, under the same retries, dead letters, breakers
    /// and commits; start-up checks cover it (a legal topic, a unique name in its group, a known
    /// retry policy).
    pub fn handler(mut self, handler: DynamicHandler) -> Self {
        self.dynamic.push(handler);
        self
    }

    /// Handles the events of `event_type` on `topic` in consumer group `group` with `handler`,
    /// which receives the envelope with the data as JSON (seed 001's `subscribe`). Shorthand for
    /// [`BusBuilder::handler`] with [`DynamicHandler::new`].
    pub fn subscribe<F, Fut>(
        self,
        group: impl Into<String>,
        topic: impl Into<String>,
        event_type: impl Into<String>,
        handler: F,
    ) -> Self
    where
        F: Fn(Event<serde_json::Value>, Context) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        self.handler(DynamicHandler::new(group, topic, event_type, handler))
    }

    /// Handles every event on `topic`, whatever its type, in consumer group `group` (seed 001's
    /// `subscribe_all`). Shorthand for [`BusBuilder::handler`] with [`DynamicHandler::all`].
    pub fn subscribe_all<F, Fut>(
        self,
        group: impl Into<String>,
        topic: impl Into<String>,
        handler: F,
    ) -> Self
    where
        F: Fn(Event<serde_json::Value>, Context) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
    {
        self.handler(DynamicHandler::all(group, topic, handler))
    }

    /// Uses an embedded broker started by the caller (several buses can then share it). This asks
    /// for the embedded broker as [`Config::embedded`] does; it cannot be combined with bootstrap
    /// servers.
    pub fn embedded_broker(mut self, broker: Arc<EmbeddedBroker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Runs only the handlers of these consumer groups (default: all). A service binary that holds
    /// several roles can start one per process.
    pub fn only_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Shares a value with every handler: `ctx.state::<T>()` returns it.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Registers a named retry policy; a handler uses it with `#[handler(policy = "name")]` and can
    /// still override single settings (`retries`, `backoff`, `timeout`).
    pub fn retry_policy(mut self, name: impl Into<String>, policy: RetryPolicy) -> Self {
        self.policies.insert(name.into(), policy);
        self
    }

    /// Validates the configuration, the retry policies and the registry with the dynamic
    /// handlers, and the chosen groups: everything but the brokers.
    fn check(self) -> Result<Checked> {
        let config = self.config;
        config.validate()?;
        let policies = RetryPolicies {
            default: config.retry_policy(),
            named: self.policies,
        };
        policies.default.validate("default (Config)")?;
        for (name, policy) in &policies.named {
            policy.validate(name)?;
        }
        let (dynamic, callers) = dynamic::register(self.dynamic, config.topic_prefix.as_deref())?;
        let registry = Registry::collect()?
            .with_topic_prefix(config.topic_prefix.as_deref())
            .with_handlers(dynamic)?;
        for (group, handlers) in registry.handlers_by_group(config.default_group()) {
            if self
                .groups
                .as_ref()
                .is_none_or(|only| only.contains(&group))
            {
                for handler in handlers {
                    policies.for_handler(handler)?;
                }
            }
        }
        if let Some(groups) = &self.groups {
            let known = registry.handlers_by_group(config.default_group());
            if let Some(unknown) = groups.iter().find(|g| !known.contains_key(g.as_str())) {
                return Err(Error::Config(format!(
                    "no handler runs in consumer group `{unknown}`; the groups of this binary are: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(Checked {
            config,
            broker: self.broker,
            parts: Parts {
                groups: self.groups,
                state: self.state,
                policies,
                registry,
                callers,
            },
        })
    }

    /// Builds a bus whose publishes go to `memory` instead of a broker (`herald::testing`): the
    /// same checks as [`BusBuilder::build`], no connection, no topics created, no consumers.
    pub(crate) fn build_in_memory(self, memory: Arc<MemoryLog>) -> Result<Bus> {
        let Checked { config, parts, .. } = self.check()?;
        let counters = Arc::new(Counters::default());
        let publisher = Publisher::in_memory(&config, counters.clone(), memory)?;
        Ok(parts.into_bus(config, IN_MEMORY.into(), publisher, counters, None))
    }

    /// Validates the configuration and the registry, connects (or starts the embedded broker when
    /// it was asked for), creates missing topics and the dead-letter topics of the consumed ones
    /// when auto-creation is on, and returns the bus. Consumers start with [`Bus::start`].
    ///
    /// # Errors
    /// [`Error::Config`] (also when no brokers were chosen), [`Error::Registry`], [`Error::Topic`]
    /// or [`Error::Kafka`].
    pub async fn build(self) -> Result<Bus> {
        let Checked {
            config,
            broker,
            parts,
        } = self.check()?;
        let (groups, policies, registry) = (&parts.groups, &parts.policies, &parts.registry);
        let (config, broker, bootstrap_servers) = choose_broker(config, broker).await?;
        let answered = broker.is_some() || check_brokers(&config, &bootstrap_servers).await?;
        // Each consumed topic's dead-letter topic, and the retry topics of those whose handlers
        // retry through them; `running` marks those of the groups this bus runs.
        let mut forwarded: Vec<(String, bool)> = Vec::new();
        for (group, handlers) in registry.handlers_by_group(config.default_group()) {
            let running = groups.as_ref().is_none_or(|only| only.contains(&group));
            for handler in handlers {
                forwarded.push((config.dlq_topic(handler.topic), running));
                if policies
                    .for_handler(handler)
                    .is_ok_and(|p| p.mode == crate::config::policy::RetryMode::Topics)
                {
                    forwarded.extend(
                        retry_topic::retry_topics(handler.topic)
                            .into_iter()
                            .map(|t| (t, running)),
                    );
                }
            }
        }
        if config.creates_topics() {
            let mut wanted: Vec<&str> = registry.topics();
            wanted.extend(forwarded.iter().map(|(t, _)| t.as_str()));
            wanted.sort_unstable();
            wanted.dedup();
            topics::ensure_topics(&config, &bootstrap_servers, broker.as_deref(), &wanted).await?;
        }
        if broker.is_none() && answered {
            let mut written: Vec<String> = forwarded
                .into_iter()
                .filter_map(|(t, running)| running.then_some(t))
                .collect();
            written.sort_unstable();
            written.dedup();
            check_writable(&config, &bootstrap_servers, written).await?;
        }
        telemetry::metrics::describe();
        let counters = Arc::new(Counters::default());
        let publisher = Publisher::new(&config, &bootstrap_servers, counters.clone())?;
        counters.connected();
        telemetry::metrics::connections_active(1);
        Ok(parts.into_bus(config, bootstrap_servers, publisher, counters, broker))
    }
}

/// What the address of an in-memory bus's brokers reads (`herald::testing`).
pub(crate) const IN_MEMORY: &str = "in-memory";

/// A builder's settings, checked: what a bus is made of besides its brokers.
struct Checked {
    config: Config,
    broker: Option<Arc<EmbeddedBroker>>,
    parts: Parts,
}

struct Parts {
    groups: Option<Vec<String>>,
    state: StateMap,
    policies: RetryPolicies,
    registry: Registry,
    callers: Callers,
}

impl Parts {
    fn into_bus(
        self,
        config: Config,
        bootstrap_servers: String,
        publisher: Publisher,
        counters: Arc<Counters>,
        broker: Option<Arc<EmbeddedBroker>>,
    ) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                config,
                registry: self.registry,
                bootstrap_servers,
                publisher,
                counters,
                state: Arc::new(self.state),
                groups: self.groups,
                policies: self.policies,
                breakers: Arc::default(),
                in_flight: Arc::default(),
                stalled_copies: Arc::default(),
                callers: self.callers,
                running: Mutex::new(Vec::new()),
                failed: std::sync::Mutex::default(),
                replies: std::sync::Mutex::new(None),
                replies_starting: Mutex::new(()),
                broker,
            }),
        }
    }
}

/// Logs what weakens the configuration's TLS, and asks the real brokers for metadata once: wrong
/// credentials or an untrusted certificate fail the build within seconds; brokers that do not
/// answer (yet) are only logged, since librdkafka keeps trying. Returns whether they answered.
async fn check_brokers(config: &Config, servers: &str) -> Result<bool> {
    for warning in config.security_warnings() {
        tracing::warn!("{warning}");
    }
    let (probe_config, probe_servers) = (config.clone(), servers.to_owned());
    let limit = connect::START_LIMIT.min(config.delivery_timeout);
    let probe =
        tokio::task::spawn_blocking(move || connect::probe(&probe_config, &probe_servers, limit))
            .await
            .map_err(|_| Error::State("probing the brokers panicked"))??;
    if let connect::Probe::Unreachable(waited) = probe {
        tracing::warn!(%servers, ?waited, "no Kafka broker answered yet; herald keeps trying (check KAFKA_BOOTSTRAP_SERVERS)");
        return Ok(false);
    }
    Ok(true)
}

/// Fails when this client's principal may not write one of the dead-letter and retry topics its
/// consumer groups copy messages to: a message that failed for good would otherwise hold its
/// partition while the copy is retried.
async fn check_writable(config: &Config, servers: &str, topics: Vec<String>) -> Result<()> {
    let (config, servers) = (config.clone(), servers.to_owned());
    let checked = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        topics::unwritable(&config, &servers, &names, connect::START_LIMIT)
    })
    .await
    .map_err(|_| Error::State("checking topic permissions panicked"))?;
    let denied = match checked {
        Ok(denied) => denied,
        // Only a definite "no" stops the start: brokers that cannot answer now are no reason to.
        Err(error) => {
            tracing::warn!(%error, "could not check the permissions on the dead-letter and retry topics");
            return Ok(());
        }
    };
    if denied.is_empty() {
        return Ok(());
    }
    Err(Error::Topic {
        topic: denied.join(", "),
        reason: "this client's principal may not write it (no WRITE permission): grant WRITE on it (kafka-acls --add --allow-principal ... --operation Write --topic ...), or a message that fails for good would hold its partition while herald retries the copy".into(),
    })
}

/// Settles which broker the bus talks to: the configured servers, the caller's embedded broker,
/// or a new embedded broker when the configuration asks for one. Returns the configuration (marked
/// embedded when the caller supplied the broker), the broker and the address to connect to.
async fn choose_broker(
    mut config: Config,
    supplied: Option<Arc<EmbeddedBroker>>,
) -> Result<(Config, Option<Arc<EmbeddedBroker>>, String)> {
    let broker = match (&config.brokers, supplied) {
        (Brokers::Servers(servers), None) => {
            let servers = servers.clone();
            return Ok((config, None, servers));
        }
        (Brokers::Servers(_), Some(_)) => {
            return Err(Error::Config(
                "both bootstrap servers and an embedded broker were given: choose one".into(),
            ))
        }
        (Brokers::Unset, None) => {
            return Err(Error::Config(
                "no Kafka brokers are configured: set KAFKA_BOOTSTRAP_SERVERS to the brokers (host:port,...), or to `embedded` for herald's in-memory development broker (Config::embedded)".into(),
            ))
        }
        (Brokers::Unset | Brokers::Embedded, Some(broker)) => broker,
        (Brokers::Embedded, None) => Arc::new(
            tokio::task::spawn_blocking(|| EmbeddedBroker::start(1))
                .await
                .map_err(|_| Error::State("starting the embedded broker panicked"))??,
        ),
    };
    config.brokers = Brokers::Embedded;
    let bootstrap_servers = broker.bootstrap_servers().to_owned();
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            %bootstrap_servers,
            "using herald's embedded in-process Kafka broker, for development only: it keeps nothing, and drops data past about 5 MiB per partition"
        );
    });
    Ok((config, Some(broker), bootstrap_servers))
}

impl Bus {
    /// A builder for a bus with `config`.
    pub fn builder(config: Config) -> BusBuilder {
        BusBuilder {
            config,
            broker: None,
            groups: None,
            state: StateMap::default(),
            policies: Default::default(),
            dynamic: Vec::new(),
        }
    }

    /// A bus configured from the environment (see [`Config::from_vars`]). `KAFKA_BOOTSTRAP_SERVERS`
    /// must name the brokers, or be `embedded` for herald's in-memory development broker.
    ///
    /// # Errors
    /// As [`BusBuilder::build`].
    pub async fn from_env(service_name: &str) -> Result<Self> {
        Self::builder(Config::from_env(service_name)?).build().await
    }

    /// A bus with `config`.
    ///
    /// # Errors
    /// As [`BusBuilder::build`].
    pub async fn new(config: Config) -> Result<Self> {
        Self::builder(config).build().await
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The validated registry of events and handlers.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The brokers the bus talks to (the embedded broker's address when it runs one).
    pub fn bootstrap_servers(&self) -> &str {
        &self.inner.bootstrap_servers
    }

    /// A handle on the dead letters of `topic`, the *original* topic: it reads
    /// [`Config::dlq_topic`] of it, on this bus's brokers (the embedded one included), and keeps
    /// the bus alive.
    ///
    /// # Errors
    /// As [`DeadLetters::connect`](crate::dlq::DeadLetters::connect).
    pub async fn dead_letters(&self, topic: &str) -> Result<crate::dlq::DeadLetters> {
        let config = &self.inner.config;
        let dlq_topic = config.dlq_topic(topic);
        crate::dlq::DeadLetters::open(
            config,
            &self.inner.bootstrap_servers,
            &dlq_topic,
            crate::dlq::DEFAULT_TIMEOUT,
            Some(Box::new(self.clone())),
        )
        .await
    }

    /// Counters of what the bus did.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The ids of the consumer groups of this bus (those it runs, when limited with
    /// [`BusBuilder::only_groups`]) whose handlers consume `topic`.
    fn groups_of(&self, topic: &str) -> Vec<String> {
        let config = &self.inner.config;
        self.inner
            .registry
            .handlers_by_group(config.default_group())
            .into_iter()
            .filter(|(group, handlers)| {
                handlers.iter().any(|h| h.topic == topic)
                    && self.inner.groups.as_ref().is_none_or(|g| g.contains(group))
            })
            .map(|(group, _)| config.group_id(&group))
            .collect()
    }

    /// Reads the topics' information from the brokers on a blocking thread, recording each group's
    /// lag as the `kafka.eventbus.consumer.lag` gauge.
    async fn inspect(&self, topics: Vec<(String, Vec<String>)>) -> Result<Vec<TopicInfo>> {
        let client = self
            .inner
            .config
            .consumer_config(&self.inner.bootstrap_servers, "herald-inspector");
        let bus = self.clone(); // keeps an embedded broker alive while the thread reads it
        tokio::task::spawn_blocking(move || {
            let inspector = Inspector::with_client(client, INSPECT_TIMEOUT)?;
            let infos = topics
                .iter()
                .map(|(topic, groups)| inspector.topic_info(topic, groups))
                .collect::<Result<Vec<_>>>()?;
            for info in &infos {
                for group in &info.groups {
                    for p in &group.partitions {
                        telemetry::metrics::consumer_lag(
                            &info.topic,
                            p.partition,
                            &group.group,
                            p.lag,
                        );
                    }
                }
            }
            drop(bus);
            Ok(infos)
        })
        .await
        .map_err(|_| Error::State("reading topic information panicked"))?
    }

    /// `topic`'s partitions and watermarks, and the committed offsets and lag per partition of
    /// this service's consumer groups that consume it (seed 003's `get_topic_info`). Each broker
    /// request waits at most 5 s. Records the lag as `kafka.eventbus.consumer.lag`.
    ///
    /// # Errors
    /// [`Error::Config`] when the topic does not exist, [`Error::Kafka`] when the brokers do not
    /// answer in time.
    pub async fn topic_info(&self, topic: &str) -> Result<TopicInfo> {
        let groups = self.groups_of(topic);
        let mut infos = self.inspect(vec![(topic.to_owned(), groups)]).await?;
        Ok(infos.remove(0))
    }

    /// [`Bus::topic_info`] of every topic this bus's consumer groups consume: their lag per
    /// partition, also recorded as `kafka.eventbus.consumer.lag` (call it before rendering metrics,
    /// or on a timer).
    ///
    /// # Errors
    /// As [`Bus::topic_info`].
    pub async fn consumer_lag(&self) -> Result<Vec<TopicInfo>> {
        let mut topics: Vec<&'static str> = self
            .inner
            .registry
            .handlers()
            .iter()
            .map(|h| h.topic)
            .collect();
        topics.sort_unstable();
        topics.dedup();
        let wanted = topics
            .into_iter()
            .map(|t| (t.to_owned(), self.groups_of(t)))
            .filter(|(_, groups)| !groups.is_empty())
            .collect();
        self.inspect(wanted).await
    }

    /// Liveness and readiness with the default [`HealthOptions`] (a 2 s broker probe; a handler
    /// attempt running over 60 s counts as stuck).
    pub async fn health(&self) -> Health {
        self.health_with(HealthOptions::default()).await
    }

    /// Liveness and readiness: the broker answers a metadata request within
    /// `options.probe_timeout`, every consumer group of a started bus has partitions assigned, no
    /// group's consumer failed, and no handler attempt has run longer than `options.stuck_after`.
    pub async fn health_with(&self, options: HealthOptions) -> Health {
        let mut groups: Vec<GroupHealth> = {
            let running = self.inner.running.lock().await;
            running
                .iter()
                .map(|runner| {
                    let assignment = runner.assignment();
                    let assigned_partitions = *assignment.borrow();
                    GroupHealth {
                        group: runner.group.clone(),
                        assigned_partitions,
                        // The consumer loop holds the sender until it ends.
                        failed: assignment.has_changed().is_err(),
                    }
                })
                .collect()
        };
        for (group, _) in self.failed_groups() {
            if !groups.iter().any(|g| g.group == group) {
                groups.push(GroupHealth {
                    group,
                    assigned_partitions: 0,
                    failed: true,
                });
            }
        }
        let consuming = !groups.is_empty();
        let producer = self.inner.publisher.producer();
        let probe_topic = self.inner.registry.topics().first().copied();
        let timeout = options.probe_timeout;
        let bus = self.clone();
        let reachable = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            let reachable = producer
                .client()
                .fetch_metadata(probe_topic, timeout)
                .is_ok_and(|m| !m.brokers().is_empty());
            drop(bus);
            reachable
        })
        .await
        .unwrap_or(false);
        let reply_listener_dead = self.current_replies().is_some_and(|r| r.is_dead());
        Health::assess(
            reachable,
            consuming,
            reply_listener_dead,
            groups,
            self.inner.in_flight.longest(),
            self.inner.stalled_copies.longest(),
            &options,
        )
    }

    /// The circuit breaker of every running handler that has one (see `RetryPolicy::breaker`),
    /// with its state.
    pub fn breakers(&self) -> Vec<BreakerStatus> {
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|b| b.status())
            .collect()
    }

    /// Publishes an event and waits until the broker acknowledged it. The event starts a new
    /// correlation (its correlation id is its own id).
    ///
    /// # Errors
    /// [`Error::Encode`] when the event does not serialize, [`Error::Publish`] when the broker did not
    /// acknowledge it within the delivery timeout.
    pub async fn publish<E: HeraldEvent>(&self, event: E) -> Result<Delivery> {
        // Encoded now; the event itself is not kept while the broker answers.
        let sending = mapped::publish(&self.inner.publisher, &event, PublishOptions::default());
        drop(event);
        sending.await
    }

    /// Publishes an event with caller-given metadata (correlation, causation, aggregate, key,
    /// extensions).
    ///
    /// # Errors
    /// As [`Bus::publish`], and [`Error::Config`] for an illegal extension name.
    pub async fn publish_with<E: HeraldEvent>(
        &self,
        event: E,
        options: PublishOptions,
    ) -> Result<Delivery> {
        let sending = self.publish_ref(&event, options);
        drop(event);
        sending.await
    }

    /// [`Bus::publish_with`] of a borrowed event.
    pub(crate) fn publish_ref<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> impl std::future::Future<Output = Result<Delivery>> + Send + '_ {
        mapped::publish(&self.inner.publisher, event, options)
    }

    /// Publishes an event of `saga` that records `step` (seed 004's `publish_saga_event`): the
    /// saga's id, type and the step travel as `ce_sagaid`, `ce_sagatype`, `ce_sagastep`; handlers
    /// read them with `Metadata::saga` and keep them when publishing through their `Context`.
    ///
    /// # Errors
    /// As [`Bus::publish`].
    pub async fn publish_saga_event<E: HeraldEvent>(
        &self,
        event: E,
        saga: &crate::event::saga::Saga,
        step: &str,
    ) -> Result<Delivery> {
        let sending = self.publish_ref(&event, saga.step(step));
        drop(event);
        sending.await
    }

    /// Publishes an event, trying again with exponential backoff while the error is retriable
    /// (broker unreachable, timed out); a permanent error (message too large, not authorized) is
    /// returned at once. Every try carries the same event id.
    ///
    /// # Errors
    /// The last try's error after `retry.max_attempts` tries, or the first permanent one.
    pub async fn publish_with_retry<E: HeraldEvent>(
        &self,
        event: E,
        options: PublishOptions,
        retry: PublishRetry,
    ) -> Result<Delivery> {
        mapped::publish_with_retry(&self.inner.publisher, &event, options, retry).await
    }

    /// Publishes events and waits for all acknowledgements; deliveries come back in input order.
    /// Records are enqueued strictly in order (waiting while the producer's queue is full), so
    /// events with one key keep their order: when one cannot be sent, the later events of its
    /// key are held back ([`Error::HeldBack`]) rather than overtake it. Nothing is sent if any
    /// event fails to serialize.
    ///
    /// # Errors
    /// [`Error::Batch`] listing what was delivered and why each other event was not.
    pub async fn publish_batch<E: HeraldEvent>(
        &self,
        events: impl IntoIterator<Item = E>,
    ) -> Result<Vec<Delivery>> {
        mapped::publish_batch(&self.inner.publisher, events, PublishOptions::default()).await
    }

    /// Encodes an event into the CloudEvents record herald would send, without sending it: store
    /// it (a transactional outbox) and send it later, as it is and with the same `ce_id`, with
    /// [`Bus::publish_encoded`].
    ///
    /// # Errors
    /// [`Error::Encode`] when the event does not serialize, [`Error::Config`] for an illegal
    /// extension name.
    pub fn encode_event<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<EncodedEvent> {
        self.inner.publisher.encode_event(event, options)
    }

    /// Encodes an event and its integration counterparts (`#[event(from = ...)]`, see
    /// [`IntegrationEvent`](crate::IntegrationEvent)): the event first, then each counterpart caused
    /// by it.
    /// A transactional outbox stores all of them in one transaction.
    ///
    /// # Errors
    /// As [`Bus::encode_event`], for the event or any counterpart.
    pub fn encode_with_mapped<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<Vec<EncodedEvent>> {
        mapped::encode_with_mapped(&self.inner.publisher, event, options, mapped::of::<E>())
    }

    /// Sends an event encoded by [`Bus::encode_event`] as it is (same id, headers and payload) and
    /// waits until the broker acknowledged it.
    ///
    /// # Errors
    /// As [`Bus::publish`].
    pub async fn publish_encoded(&self, event: &EncodedEvent) -> Result<Delivery> {
        self.inner.publisher.publish_encoded(event).await
    }

    /// Sends encoded events as they are, enqueued strictly in order (events with one key keep their
    /// order, as in [`Bus::publish_batch`]), and waits for all acknowledgements; deliveries come
    /// back in input order.
    ///
    /// # Errors
    /// [`Error::Batch`] listing what was delivered and why each other event was not.
    pub async fn publish_encoded_batch(&self, events: &[EncodedEvent]) -> Result<Vec<Delivery>> {
        self.inner.publisher.publish_encoded_batch(events).await
    }

    /// Publishes an event whose topic and type are chosen at run time (a gateway, a bridge, an
    /// audit sink), in the envelope typed events travel in: a `#[handler]` of the same type on
    /// that topic reads it as its own. The topic gets the configured prefix.
    ///
    /// # Errors
    /// [`Error::Config`] for an illegal topic, an empty event type or version 0 (nothing is sent);
    /// otherwise as [`Bus::publish`].
    pub async fn publish_dynamic(&self, event: &DynamicEvent) -> Result<Delivery> {
        self.publish_dynamic_with(event, PublishOptions::default())
            .await
    }

    /// [`Bus::publish_dynamic`] with caller-given metadata (correlation, causation, aggregate,
    /// key, extensions, topic).
    ///
    /// # Errors
    /// As [`Bus::publish_dynamic`].
    pub async fn publish_dynamic_with(
        &self,
        event: &DynamicEvent,
        options: PublishOptions,
    ) -> Result<Delivery> {
        let encoded = self.inner.publisher.encode_dynamic(event, options)?;
        self.inner.publisher.publish_encoded(&encoded).await
    }

    /// Publishes run-time events of any types and topics in one batch, enqueued strictly in order
    /// (as [`Bus::publish_batch`]); nothing is sent if one is refused.
    ///
    /// # Errors
    /// As [`Bus::publish_dynamic`] for a refused event; [`Error::Batch`] as
    /// [`Bus::publish_batch`].
    pub async fn publish_dynamic_batch(&self, events: &[DynamicEvent]) -> Result<Vec<Delivery>> {
        let encoded = events
            .iter()
            .map(|event| self.encode_dynamic(event, PublishOptions::default()))
            .collect::<Result<Vec<_>>>()?;
        self.inner.publisher.publish_encoded_batch(&encoded).await
    }

    /// Encodes a run-time event without sending it (a transactional outbox stores it), as
    /// [`Bus::encode_event`] does a typed one.
    ///
    /// # Errors
    /// As [`Bus::publish_dynamic`], before anything is sent.
    pub fn encode_dynamic(
        &self,
        event: &DynamicEvent,
        options: PublishOptions,
    ) -> Result<EncodedEvent> {
        self.inner.publisher.encode_dynamic(event, options)
    }

    /// Sends a command and waits for its typed reply, at most the command's timeout
    /// (`#[command(timeout = "...")]`, default 30 s), publishing included. See
    /// [`Bus::request_with`].
    ///
    /// # Errors
    /// As [`Bus::request_with`].
    pub async fn request<C: Command>(&self, command: C) -> Result<C::Reply> {
        self.request_with(command, RequestOptions::default()).await
    }

    /// Sends a command with `ce_replyto` = this service's reply topic ([`Config::reply_topic`])
    /// and a fresh id, and waits for the reply whose `ce_causationid` is that id. The first request
    /// of a bus starts its reply listener (and creates the reply topic when topic creation is on);
    /// that counts toward the timeout too.
    ///
    /// The reply of a request that timed out or was dropped is never delivered to another
    /// request: it is dropped with a log line when it comes.
    ///
    /// # Errors
    /// [`Error::RequestTimeout`] when no reply came in time; [`Error::CommandFailed`] when the
    /// command was dead-lettered by its handler's service; [`Error::ReplyDecode`] when the reply
    /// does not fit `C::Reply`; the errors of [`Bus::publish_with`]; [`Error::TopicNotFound`] when
    /// the reply topic does not exist and topic creation is off.
    pub async fn request_with<C: Command>(
        &self,
        command: C,
        options: RequestOptions,
    ) -> Result<C::Reply> {
        let timeout = options.timeout.unwrap_or(C::TIMEOUT);
        let deadline = tokio::time::Instant::now() + timeout;
        let id = uuid::Uuid::new_v4().to_string();
        let timed_out = || {
            Counters::add(&self.inner.counters.request_timeouts, 1);
            Error::RequestTimeout {
                command: C::EVENT_TYPE,
                id: id.clone(),
                timeout,
            }
        };
        let replies = tokio::time::timeout_at(deadline, self.replies())
            .await
            .map_err(|_| timed_out())??;
        let waiting = replies.wait_for(&id);
        let publish = PublishOptions {
            id: Some(id.clone()),
            correlation_id: options.correlation_id,
            causation_id: options.causation_id,
            key: options.key,
            extensions: options.extensions,
            ..PublishOptions::default()
        };
        tokio::time::timeout_at(
            deadline,
            self.inner
                .publisher
                .publish_command(&command, publish, replies.topic(), timeout),
        )
        .await
        .map_err(|_| timed_out())??;
        Counters::add(&self.inner.counters.requests, 1);
        match waiting.reply(deadline).await? {
            Some(reply) => command::read_reply::<C>(&reply, &id),
            None => {
                tracing::debug!(command = C::EVENT_TYPE, command_id = %id, ?timeout,
                    "request timed out");
                Err(timed_out())
            }
        }
    }

    /// How many requests of this bus wait for their replies now.
    pub fn pending_requests(&self) -> usize {
        self.current_replies().map_or(0, |r| r.waiting())
    }

    /// The running reply listener, if any.
    fn current_replies(&self) -> Option<Arc<Replies>> {
        self.inner
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts the reply listener now instead of on the first request, whose timeout otherwise
    /// includes it: the reply topic is created when topic creation is on, and the listener waits
    /// until the brokers serve it. Does nothing when it runs already.
    ///
    /// # Errors
    /// [`Error::TopicNotFound`] when the reply topic does not exist and topic creation is off;
    /// [`Error::Kafka`] when the brokers do not answer; [`Error::Config`] on an in-process test bus.
    pub async fn start_replies(&self) -> Result<()> {
        self.replies().await.map(drop)
    }

    /// The reply listener, started on first use (and again after a shutdown, or when the
    /// running one died). The start runs in a task of its own: a request that times out while
    /// it runs does not cancel it, and the next request finds the listener running.
    async fn replies(&self) -> Result<Arc<Replies>> {
        if self.inner.publisher.memory().is_some() {
            return Err(Error::Config(
                "request/reply needs a broker for its reply topic; an in-process test bus has none: use `TestBus::with_real` (the embedded broker will do)".into(),
            ));
        }
        let alive = |replies: &Arc<Replies>| !replies.is_dead();
        if let Some(replies) = self.current_replies().filter(alive) {
            return Ok(replies);
        }
        let bus = self.clone();
        tokio::spawn(async move {
            let _starting = bus.inner.replies_starting.lock().await;
            if let Some(replies) = bus.current_replies().filter(alive) {
                return Ok(replies);
            }
            let inner = &bus.inner;
            let started = Arc::new(
                Replies::start(
                    &inner.config,
                    &inner.bootstrap_servers,
                    inner.broker.as_deref(),
                    inner.counters.clone(),
                )
                .await?,
            );
            *inner.replies.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.clone());
            Ok(started)
        })
        .await
        .map_err(|_| Error::State("starting the reply listener panicked"))?
    }

    /// The topics the brokers have now (none when they do not answer within 5 s): the groups read
    /// the retry tiers among them also when no handler retries through them any more.
    async fn existing_topics(&self) -> std::collections::BTreeSet<String> {
        let producer = self.inner.publisher.producer();
        let listed = tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer;
            producer
                .client()
                .fetch_metadata(None, std::time::Duration::from_secs(5))
                .map(|m| {
                    m.topics()
                        .iter()
                        .map(|t| t.name().to_owned())
                        .collect::<std::collections::BTreeSet<_>>()
                })
        })
        .await;
        match listed {
            Ok(Ok(topics)) => topics,
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not list the topics; retry tiers of handlers that no longer retry through them are not read this time");
                Default::default()
            }
            Err(_) => Default::default(),
        }
    }

    /// What the consumer groups share: a new one per start.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::new(self.shared_with(self.inner.breakers.clone()))
    }

    /// The consumer groups this bus runs, each with its handlers.
    pub(crate) fn running_groups(&self) -> Vec<(String, Vec<&'static HandlerDescriptor>)> {
        let only = self.inner.groups.as_ref();
        self.inner
            .registry
            .handlers_by_group(self.inner.config.default_group())
            .into_iter()
            .filter(|(group, _)| only.is_none_or(|only| only.contains(group)))
            .collect()
    }

    /// The publisher, for a handler context built outside a consumer group (`herald::testing`).
    pub(crate) fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    /// The state shared with handlers.
    pub(crate) fn state_map(&self) -> &Arc<StateMap> {
        &self.inner.state
    }

    /// Starts one consumer per consumer group of the registered handlers. If one cannot start,
    /// those already started are stopped again before the error is returned.
    ///
    /// # Errors
    /// [`Error::AlreadyRunning`] when already started, [`Error::Kafka`] when a consumer cannot be
    /// created, [`Error::Config`] when a handler's retry policy is invalid.
    pub async fn start(&self) -> Result<()> {
        let mut running = self.inner.running.lock().await;
        if !running.is_empty() {
            return Err(Error::AlreadyRunning);
        }
        if self.inner.publisher.memory().is_some() {
            tracing::info!("an in-process test bus: its handlers run when the test settles it, no consumer starts");
            return Ok(());
        }
        let config = &self.inner.config;
        let shared = self.shared();
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let existing = self.existing_topics().await;
        let mut started = Vec::new();
        for (group, handlers) in self.running_groups() {
            let client = config.consumer_config(&self.inner.bootstrap_servers, &group);
            match GroupRunner::start(group, handlers, client, shared.clone(), &existing) {
                Ok(runner) => started.push(runner),
                Err(error) => {
                    let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
                    futures::future::join_all(started.into_iter().map(|r| r.stop(deadline))).await;
                    return Err(error);
                }
            }
        }
        if started.is_empty() {
            tracing::info!("no handlers registered: the bus only publishes");
        }
        telemetry::metrics::connections_active(1 + started.len());
        *running = started;
        Ok(())
    }

    /// What a group's consumer shares with its workers, its circuit breakers listed in `breakers`.
    fn shared_with(&self, breakers: Arc<std::sync::Mutex<Vec<Arc<Breaker>>>>) -> Shared {
        Shared {
            publisher: self.inner.publisher.clone(),
            state: self.inner.state.clone(),
            counters: self.inner.counters.clone(),
            policies: self.inner.policies.clone(),
            settings: self.inner.config.consume_settings(),
            breakers,
            in_flight: self.inner.in_flight.clone(),
            stalled_copies: self.inner.stalled_copies.clone(),
            callers: self.inner.callers.clone(),
        }
    }

    /// Runs a consumer group's handlers over a range of a topic, under a consumer group of its
    /// own, and returns once every partition reached the high watermark taken at the start: see
    /// [`crate::replay`]. Independent of [`Bus::start`]: the live groups may run meanwhile, and
    /// their offsets are untouched. Dropping the future stops the replay; what was handled is
    /// committed, and running it again goes on from there.
    ///
    /// # Errors
    /// [`Error::Config`] when no handler of the group consumes the topic, when the replay group
    /// is the live group or has live members (a replay of it runs); [`Error::TopicNotFound`];
    /// [`Error::ConsumerFailed`] when the replay's consumer failed or stopped before the end;
    /// [`Error::Kafka`] when the brokers do not answer.
    pub async fn replay(
        &self,
        replay: crate::replay::Replay,
    ) -> Result<crate::replay::ReplayReport> {
        let inner = &self.inner;
        let wiring = crate::replay::Wiring {
            config: &inner.config,
            servers: &inner.bootstrap_servers,
            groups: inner
                .registry
                .handlers_by_group(inner.config.default_group()),
            shared: Arc::new(self.shared_with(Arc::default())),
        };
        crate::replay::run(replay, wiring).await
    }

    /// Waits until every consumer group has partitions assigned (the embedded broker's first join
    /// takes about 3 s). Does not hold up a concurrent [`Bus::shutdown`].
    ///
    /// # Errors
    /// [`Error::NotRunning`] when the bus is not consuming or was shut down while waiting,
    /// [`Error::AssignmentTimeout`] when `timeout` passed first.
    pub async fn wait_for_assignment(&self, timeout: Duration) -> Result<()> {
        let assignments: Vec<_> = {
            let running = self.inner.running.lock().await;
            if running.is_empty() {
                return Err(Error::NotRunning);
            }
            running.iter().map(GroupRunner::assignment).collect()
        };
        let all = futures::future::join_all(
            assignments
                .into_iter()
                .map(crate::consume::wait_until_assigned),
        );
        match tokio::time::timeout(timeout, all).await {
            Ok(assigned) if assigned.iter().all(|a| *a) => Ok(()),
            Ok(_) => Err(Error::NotRunning),
            Err(_) => Err(Error::AssignmentTimeout(timeout)),
        }
    }

    /// Stops consuming gracefully: stops fetching, lets in-flight handlers finish, commits what was
    /// handled and leaves the groups; stops the reply listener, so requests still waiting for
    /// their replies end at once with an error (a later request starts a new listener); then
    /// flushes the producer. All of it within the configured `shutdown_timeout`, counted from the
    /// call.
    ///
    /// # Errors
    /// [`Error::ShutdownTimeout`] when handlers did not finish in time (their events were not
    /// committed and will be redelivered); [`Error::ConsumerFailed`] naming the group whose consumer
    /// failed (a fatal librdkafka error, a panicked task).
    pub async fn shutdown(&self) -> Result<()> {
        let timeout = self.inner.config.shutdown_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let runners: Vec<GroupRunner> = std::mem::take(&mut *self.inner.running.lock().await);
        telemetry::metrics::connections_active(1);
        let stops = futures::future::join_all(runners.into_iter().map(|runner| {
            let group = runner.group.clone();
            async move { (group, runner.stop(deadline).await) }
        }))
        .await;
        // Requests still waiting end now, with an error, rather than at their timeouts; a later
        // request starts a new listener.
        let replies = self
            .inner
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(replies) = replies {
            let _ = tokio::task::spawn_blocking(move || replies.stop()).await;
        }
        let publisher = self.inner.publisher.clone();
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::task::spawn_blocking(move || publisher.flush(remaining))
            .await
            .map_err(|_| Error::State("flushing the producer panicked"))??;
        let abandoned = stops.iter().any(|(_, stop)| *stop == GroupStop::Abandoned);
        let failed: Vec<(String, String)> = stops
            .into_iter()
            .filter_map(|(group, stop)| match stop {
                GroupStop::Failed(reason) => Some((group, reason)),
                _ => None,
            })
            .collect();
        if let Some((group, reason)) = failed.first().cloned() {
            tracing::error!(%group, %reason, "consumer group failed");
            self.inner
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(failed);
            return Err(Error::ConsumerFailed { group, reason });
        }
        if abandoned {
            return Err(Error::ShutdownTimeout(timeout));
        }
        Ok(())
    }

    /// Starts consuming, runs until Ctrl-C or SIGTERM or until a consumer group fails for good,
    /// then shuts down gracefully.
    ///
    /// # Errors
    /// As [`Bus::start`] and [`Bus::shutdown`]: [`Error::ConsumerFailed`] when a group failed.
    pub async fn run_until_shutdown(&self) -> Result<()> {
        // Listening before the groups start: a SIGTERM while they start (a deploy that changes its
        // mind) is a graceful shutdown, not the default action that kills the process.
        let signal = shutdown_signal();
        let mut signal = std::pin::pin!(signal);
        // The first poll installs the handlers.
        let _ = futures::poll!(signal.as_mut());
        let started = tokio::select! {
            started = self.start() => started,
            _ = signal.as_mut() => {
                tracing::info!("shutdown requested while starting");
                return self.shutdown().await;
            }
        };
        started?;
        tokio::select! {
            _ = signal => {
                tracing::info!("shutdown requested; finishing in-flight events");
            }
            group = self.first_failure() => {
                tracing::error!(%group, "a consumer group failed; shutting down");
            }
        }
        self.shutdown().await
    }

    /// The groups whose consumer failed, with the reason (kept after `shutdown`).
    fn failed_groups(&self) -> Vec<(String, String)> {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resolves with the name of the first running group whose consumer ends on its own (it
    /// failed); pending while none does.
    async fn first_failure(&self) -> String {
        let watched: Vec<(String, tokio::sync::watch::Receiver<usize>)> = {
            let running = self.inner.running.lock().await;
            running
                .iter()
                .map(|r| (r.group.clone(), r.assignment()))
                .collect()
        };
        if watched.is_empty() {
            return std::future::pending().await;
        }
        let ends = watched.into_iter().map(|(group, mut assignment)| {
            Box::pin(async move {
                // The consumer loop holds the sender until it ends.
                while assignment.changed().await.is_ok() {}
                group
            })
        });
        futures::future::select_all(ends).await.0
    }
}

/// Resolves on Ctrl-C or SIGTERM: what [`Bus::run_until_shutdown`] waits for, for programs that
/// run something else until then.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply listener whose thread died makes the bus not live and is replaced by the next
    /// request's listener. Before, health stayed live and every later request waited out its
    /// timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_reply_listener_shows_in_health_and_is_replaced() {
        let bus = Bus::builder(Config::new("replies-health").embedded())
            .build()
            .await
            .unwrap();
        let first = bus.replies().await.unwrap();
        assert!(bus.health().await.live);
        let waiting = first.wait_for("never-answered");
        let poison = EncodedEvent {
            id: "poison".into(),
            event_type: "test.poison".into(),
            topic: first.topic().to_owned(),
            key: Some(command::PANIC_LISTENER.into()),
            payload: b"{}".to_vec(),
            headers: Vec::new(),
        };
        bus.publish_encoded(&poison).await.unwrap();
        let far = tokio::time::Instant::now() + Duration::from_secs(60);
        let ended = tokio::time::timeout(Duration::from_secs(10), waiting.reply(far))
            .await
            .expect("the waiting request ends when the listener dies");
        assert!(
            matches!(ended, Err(Error::State(reason)) if reason.contains("listener")),
            "{ended:?}"
        );
        let health = bus.health().await;
        assert!(!health.live, "{health:?}");
        assert!(
            health.problems.iter().any(|p| p.contains("reply listener")),
            "{health:?}"
        );
        let second = bus.replies().await.unwrap();
        assert!(!Arc::ptr_eq(&first, &second), "a new listener");
        assert!(bus.health().await.live);
    }
}
