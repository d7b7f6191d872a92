//! Configuration: by builder methods or from the environment, plus pass-through of any librdkafka
//! property. `Debug` never prints a secret.

pub(crate) mod policy;
mod settings;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::error::{Error, Result};

/// A secret string (password, key): `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which Kafka brokers herald talks to. The embedded broker is used only when asked for, so a
/// service whose `KAFKA_BOOTSTRAP_SERVERS` is missing fails at start-up instead of publishing into
/// memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Brokers {
    /// Nothing chosen: building a bus fails, asking for `KAFKA_BOOTSTRAP_SERVERS`.
    #[default]
    Unset,
    /// herald's in-process development broker ([`crate::EmbeddedBroker`]): keeps nothing, and drops
    /// data past about 5 MiB per partition. Asked for with `KAFKA_BOOTSTRAP_SERVERS=embedded`,
    /// [`Config::embedded`] or [`crate::BusBuilder::embedded_broker`].
    Embedded,
    /// Real brokers, `host:port,...`.
    Servers(String),
}

/// How the members of a consumer group agree on who reads which partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// The classic protocol: the members' client assigns (herald: eager `range`, or
    /// `cooperative-sticky` when asked for through `partition.assignment.strategy`).
    #[default]
    Classic,
    /// The consumer protocol of Kafka 4 (KIP-848): the broker assigns, incrementally; session
    /// timeout, heartbeat and assignor are the broker's settings (`group.consumer.*`).
    Consumer,
}

impl GroupProtocol {
    fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Consumer => "consumer",
        }
    }
}

impl std::str::FromStr for GroupProtocol {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(Self::Classic),
            "consumer" => Ok(Self::Consumer),
            other => Err(Error::Config(format!(
                "group protocol `{other}` is not known: use `classic` or `consumer`"
            ))),
        }
    }
}

/// The properties the consumer protocol (KIP-848) takes from the broker, not the client.
const BROKER_SIDE_UNDER_CONSUMER_PROTOCOL: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "partition.assignment.strategy",
    "group.protocol.type",
];

/// Where a consumer group without a committed offset starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the oldest retained event (the default: nothing published before the service's first
    /// start is missed).
    #[default]
    Earliest,
    /// From events published after the group's first start.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

impl std::str::FromStr for OffsetReset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" | "smallest" | "beginning" => Ok(Self::Earliest),
            "latest" | "largest" | "end" => Ok(Self::Latest),
            other => Err(Error::Config(format!(
                "auto offset reset `{other}` is not known: use `earliest` or `latest`"
            ))),
        }
    }
}

/// How herald writes the events it publishes (the CloudEvents Kafka binding's content modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContentMode {
    /// The attributes in `ce_*` headers, the value the event's JSON (the default).
    #[default]
    Binary,
    /// One `content-type: application/cloudevents+json` header, the attributes and the event's
    /// JSON as `data` in one JSON object, the value: for consumers that do not read headers, and
    /// seven fewer headers a record (less memory with many publishes in flight).
    Structured,
}

impl std::str::FromStr for ContentMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "binary" => Ok(Self::Binary),
            "structured" => Ok(Self::Structured),
            other => Err(Error::Config(format!(
                "content mode `{other}` is not known: use `binary` or `structured`"
            ))),
        }
    }
}

/// TLS and SASL settings (seed 003's security options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// `PLAINTEXT` (default), `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER` or `GSSAPI`.
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password.
    pub sasl_password: Option<Secret>,
    /// CA certificate file (PEM).
    pub ssl_ca_location: Option<String>,
    /// Client certificate file for mutual TLS (PEM).
    pub ssl_certificate_location: Option<String>,
    /// Client key file for mutual TLS (PEM).
    pub ssl_key_location: Option<String>,
    /// Password of the client key.
    pub ssl_key_password: Option<Secret>,
    /// OAUTHBEARER settings (librdkafka `sasl.oauthbearer.config`, e.g. `principal=alice` for
    /// librdkafka's unsecured JWT, turned on for development with
    /// `KAFKA_PROPERTIES=enable.sasl.oauthbearer.unsecure.jwt=true`). The OIDC method
    /// (`sasl.oauthbearer.method=oidc`) needs libcurl, which herald does not build.
    pub sasl_oauthbearer_config: Option<Secret>,
}

const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
const MECHANISMS: &[&str] = &[
    "PLAIN",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "OAUTHBEARER",
    "GSSAPI",
];

impl Security {
    /// Whether the connection is encrypted (`SSL` or `SASL_SSL`).
    fn uses_tls(&self) -> bool {
        matches!(self.protocol.as_deref(), Some("SSL" | "SASL_SSL"))
    }

    fn validate(&self) -> Result<()> {
        for (variable, path) in [
            ("KAFKA_SSL_CAFILE", &self.ssl_ca_location),
            ("KAFKA_SSL_CERTFILE", &self.ssl_certificate_location),
            ("KAFKA_SSL_KEYFILE", &self.ssl_key_location),
        ] {
            if let Some(path) = path {
                if let Err(e) = std::fs::File::open(path) {
                    return Err(Error::Config(format!(
                        "{variable}: cannot read `{path}` ({e}): give the path of a readable PEM file"
                    )));
                }
            }
        }
        if self.ssl_certificate_location.is_some() != self.ssl_key_location.is_some() {
            return Err(Error::Config(
                "mutual TLS needs both the client certificate and its key: set KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE together".into(),
            ));
        }
        let protocol = self.protocol.as_deref().unwrap_or("PLAINTEXT");
        if !PROTOCOLS.contains(&protocol) {
            return Err(Error::Config(format!(
                "security protocol `{protocol}` is not known: use one of {}",
                PROTOCOLS.join(", ")
            )));
        }
        let sasl = protocol.starts_with("SASL_");
        match (&self.sasl_mechanism, sasl) {
            (Some(m), true) if !MECHANISMS.contains(&m.as_str()) => {
                return Err(Error::Config(format!(
                    "SASL mechanism `{m}` is not known: use one of {}",
                    MECHANISMS.join(", ")
                )))
            }
            (None, true) => {
                return Err(Error::Config(format!(
                    "security protocol {protocol} needs a SASL mechanism: set KAFKA_SASL_MECHANISM (e.g. SCRAM-SHA-512)"
                )))
            }
            (Some(_), false) | (None, false)
                if self.sasl_username.is_some() || self.sasl_mechanism.is_some() =>
            {
                return Err(Error::Config(format!(
                    "SASL settings are given but the security protocol is {protocol}: set it to SASL_SSL or SASL_PLAINTEXT"
                )))
            }
            _ => {}
        }
        let needs_password = matches!(
            self.sasl_mechanism.as_deref(),
            Some("PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512")
        );
        if sasl && needs_password && (self.sasl_username.is_none() || self.sasl_password.is_none())
        {
            return Err(Error::Config(
                "SASL PLAIN and SCRAM need a user name and a password: set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD".into(),
            ));
        }
        Ok(())
    }

    fn apply(&self, config: &mut ClientConfig) {
        let settings: [(&str, Option<&str>); 9] = [
            ("security.protocol", self.protocol.as_deref()),
            ("sasl.mechanism", self.sasl_mechanism.as_deref()),
            ("sasl.username", self.sasl_username.as_deref()),
            (
                "sasl.password",
                self.sasl_password.as_ref().map(Secret::expose),
            ),
            ("ssl.ca.location", self.ssl_ca_location.as_deref()),
            (
                "ssl.certificate.location",
                self.ssl_certificate_location.as_deref(),
            ),
            ("ssl.key.location", self.ssl_key_location.as_deref()),
            (
                "ssl.key.password",
                self.ssl_key_password.as_ref().map(Secret::expose),
            ),
            (
                "sasl.oauthbearer.config",
                self.sasl_oauthbearer_config.as_ref().map(Secret::expose),
            ),
        ];
        for (key, value) in settings {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        if self.uses_tls() && self.ssl_ca_location.is_none() {
            // The OpenSSL built into herald looks for CA certificates in its own compiled-in
            // directory, not the system's: let librdkafka find the system's store.
            config.set("ssl.ca.location", "probe");
        }
    }
}

/// Properties herald sets itself, with their librdkafka aliases; passing them through would break
/// its guarantees or silently override a checked setting.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    (
        "bootstrap.servers",
        "use `bootstrap_servers` or KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        "metadata.broker.list",
        "it is librdkafka's alias of bootstrap.servers: use `bootstrap_servers` or KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        "group.id",
        "use `consumer_group` or `#[handler(group = ...)]`",
    ),
    (
        "enable.auto.offset.store",
        "herald stores an offset only after the handlers succeeded",
    ),
    (
        "enable.auto.commit",
        "herald commits stored offsets itself; tune `commit_interval`",
    ),
    (
        "auto.commit.enable",
        "it is librdkafka's legacy alias of enable.auto.commit; herald commits stored offsets itself, tune `commit_interval`",
    ),
    (
        "auto.commit.interval.ms",
        "use `commit_interval` (0 here would stop committing altogether)",
    ),
    (
        "offset.store.method",
        "herald commits offsets to the broker, where a restarted group finds them",
    ),
    (
        "acks",
        "herald publishes with acks=all, so an acknowledged event survives the loss of a broker",
    ),
    (
        "request.required.acks",
        "it is what `acks` sets; herald publishes with acks=all, so an acknowledged event survives the loss of a broker",
    ),
    (
        "enable.idempotence",
        "herald's producer is idempotent, so its retries neither duplicate nor reorder events",
    ),
    (
        "message.timeout.ms",
        "use `delivery_timeout` (0 here would make a publish wait forever)",
    ),
    (
        "delivery.timeout.ms",
        "it is librdkafka's alias of message.timeout.ms: use `delivery_timeout` (0 would make a publish wait forever)",
    ),
    (
        "enable.partition.eof",
        "herald's consumer loop does not read end-of-partition events",
    ),
    (
        "security.protocol",
        "use KAFKA_SECURITY_PROTOCOL or `Config::security`, which herald checks (a pass-through could silently downgrade it)",
    ),
    (
        "sasl.mechanism",
        "use KAFKA_SASL_MECHANISM or `Config::security`",
    ),
    (
        "sasl.mechanisms",
        "it is librdkafka's alias of sasl.mechanism: use KAFKA_SASL_MECHANISM or `Config::security`",
    ),
    (
        "sasl.username",
        "use KAFKA_SASL_USERNAME or `Config::security`",
    ),
    (
        "sasl.password",
        "use KAFKA_SASL_PASSWORD or `Config::security`, which keeps it out of logs",
    ),
];

/// Properties that turn off the checks that make TLS safe; herald warns when one is set.
const UNSAFE_TLS_PROPERTIES: &[(&str, &str)] = &[
    ("enable.ssl.certificate.verification", "false"),
    ("ssl.endpoint.identification.algorithm", "none"),
];

/// herald's configuration. Build it with [`Config::new`] and the setters, or read it with
/// [`Config::from_env`].
#[derive(Clone)]
pub struct Config {
    /// The service's name: the `ce_source` of what it publishes and its default consumer group.
    pub service_name: String,
    /// The Kafka brokers, or the embedded broker when asked for; building a bus with
    /// [`Brokers::Unset`] fails.
    pub brokers: Brokers,
    /// The consumer group of handlers that do not name one (default: the service name).
    pub consumer_group: Option<String>,
    /// Static group membership: this instance's `group.instance.id` in every group it joins
    /// (unique per instance, stable across restarts, e.g. the pod's name). A restart within the
    /// session timeout then takes the member's partitions back without a rebalance.
    pub group_instance_id: Option<String>,
    /// Where a new consumer group starts.
    pub auto_offset_reset: OffsetReset,
    /// The consumer group protocol (default: classic).
    pub group_protocol: GroupProtocol,
    /// TLS and SASL.
    pub security: Security,
    /// Whether missing topics are created at start-up (default: only for the embedded broker).
    pub auto_create_topics: Option<bool>,
    /// Partitions of a topic herald creates.
    pub topic_partitions: i32,
    /// Replication factor of a topic herald creates on a real cluster. `None` (the default) leaves
    /// it to the cluster's `default.replication.factor` (herald sends -1; needs Kafka 2.4 or newer),
    /// which is what the operators chose for durability; a fixed 1 would lose the topic with one
    /// broker. The embedded broker always uses 1.
    pub replication_factor: Option<i32>,
    /// How long a publish may wait for the broker's acknowledgement (librdkafka `message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How often stored offsets are committed.
    pub commit_interval: Duration,
    /// How long graceful shutdown may take.
    pub shutdown_timeout: Duration,
    /// How many times a failed handler is tried again after its first attempt before the message is
    /// dead-lettered (default 3).
    pub max_retries: u32,
    /// First delay before a failed handler is tried again on the same message.
    pub retry_base_delay: Duration,
    /// Longest delay between tries of a failed handler.
    pub retry_max_delay: Duration,
    /// Share of each retry delay that is randomized, within `0.0..=1.0` (default 0.1; 1.0 is full
    /// jitter), so that failing consumers do not retry in lockstep.
    pub retry_jitter: f64,
    /// How long one attempt of a handler may take before it counts as failed (default: no limit).
    pub handler_timeout: Option<Duration>,
    /// A circuit breaker for every handler (default: none): after `failure_threshold` consecutive
    /// failures the handler is held for `cooldown`, its partitions paused at the broker.
    pub circuit_breaker: Option<policy::CircuitBreaker>,
    /// Appended to a topic's name to name its dead-letter topic (default `.dlq`).
    pub dlq_suffix: String,
    /// Whether a message whose event type no handler of the group takes is dead-lettered (`true`)
    /// or skipped (`false`, the default).
    pub dead_letter_unknown_types: bool,
    /// How published events are written (default: binary). Consumers read both modes.
    pub content_mode: ContentMode,
    /// A message larger than this many bytes is dead-lettered as oversized (default: no limit).
    pub max_message_bytes: Option<usize>,
    /// Messages buffered per partition before herald pauses fetching it (default 10,000: each pause
    /// makes librdkafka drop and refetch what it prefetched, so a small buffer costs throughput).
    pub max_buffered_per_partition: usize,
    /// Bytes (keys, values, headers) buffered per partition before herald pauses fetching it
    /// (default 16 MiB), so that large messages cannot make the consumer's memory grow without
    /// bound; whichever of the two bounds is reached first pauses the partition.
    pub max_buffered_bytes_per_partition: usize,
    /// Bytes buffered by one consumer group's consumer over all its partitions (default 256 MiB):
    /// past it, every partition that receives more is paused until the total is back to half, so
    /// that many partitions cannot add up to more memory than this.
    pub max_buffered_bytes_per_consumer: usize,
    /// Any other librdkafka property, passed through to every client.
    pub properties: BTreeMap<String, String>,
    /// A prefix per environment (`staging`, `dev-alice`) put before every topic herald derives:
    /// published, consumed, created, and the dead-letter and retry topics that follow from them
    /// (`staging.domain.user.events`, `staging.domain.user.events.dlq`). Default: none.
    pub topic_prefix: Option<String>,
    /// A prefix per environment put before every consumer group id herald joins, joined with a
    /// dot (`staging.notification-service`), so that instances of one service in two environments
    /// sharing a cluster do not join one group. Default: none. It is separate from
    /// [`topic_prefix`](Config::topic_prefix) because adding it moves a group's committed offsets
    /// to a new group id.
    pub group_prefix: Option<String>,
}

impl Config {
    /// Defaults for `service_name`. No brokers are chosen: call [`Config::bootstrap_servers`] or,
    /// for development, [`Config::embedded`].
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            brokers: Brokers::Unset,
            consumer_group: None,
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Earliest,
            group_protocol: GroupProtocol::Classic,
            security: Security::default(),
            auto_create_topics: None,
            topic_partitions: 3,
            replication_factor: None,
            delivery_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_millis(500),
            shutdown_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(30),
            retry_jitter: 0.1,
            handler_timeout: None,
            circuit_breaker: None,
            dlq_suffix: ".dlq".into(),
            dead_letter_unknown_types: false,
            content_mode: ContentMode::Binary,
            max_message_bytes: None,
            max_buffered_per_partition: 10_000,
            max_buffered_bytes_per_partition: 16 << 20,
            max_buffered_bytes_per_consumer: 256 << 20,
            properties: BTreeMap::new(),
            topic_prefix: None,
            group_prefix: None,
        }
    }

    /// Reads the configuration from the process environment; see [`Config::from_vars`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is invalid.
    pub fn from_env(service_name: impl Into<String>) -> Result<Self> {
        Self::from_vars(service_name, |name| std::env::var(name).ok())
    }

    /// Reads the configuration from variables (blank ones count as unset):
    ///
    /// - `KAFKA_BOOTSTRAP_SERVERS`: `host:port,...`, or `embedded` (any case) for herald's
    ///   in-memory development broker; unset, building a bus fails
    /// - `KAFKA_SERVICE_NAME` (overrides `service_name`), `KAFKA_CONSUMER_GROUP` (or seed 002's
    ///   `KAFKA_CONSUMER_GROUP_ID`),
    ///   `KAFKA_GROUP_INSTANCE_ID` (static membership), `KAFKA_GROUP_PROTOCOL` (`classic` or
    ///   `consumer`), `KAFKA_AUTO_OFFSET_RESET`
    /// - `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`,
    ///   `KAFKA_SASL_PASSWORD`, `KAFKA_SSL_CAFILE`, `KAFKA_SSL_CERTFILE`, `KAFKA_SSL_KEYFILE`,
    ///   `KAFKA_SSL_KEY_PASSWORD`, `KAFKA_SASL_OAUTHBEARER_CONFIG`
    /// - `KAFKA_AUTO_CREATE_TOPICS`, `KAFKA_TOPIC_PARTITIONS`, `KAFKA_REPLICATION_FACTOR` (unset:
    ///   the cluster's default)
    /// - `KAFKA_MAX_RETRIES`, `KAFKA_RETRY_BASE_DELAY_MS`, `KAFKA_RETRY_MAX_DELAY_MS`,
    ///   `KAFKA_RETRY_JITTER` (`0.0` to `1.0`), `KAFKA_HANDLER_TIMEOUT_MS`,
    ///   `KAFKA_BREAKER_FAILURES` and `KAFKA_BREAKER_COOLDOWN_MS` (default 30 s) for a circuit breaker,
    ///   `KAFKA_BREAKER_HOLD_LIMIT_MS` (default 5 min) for how long it spares a message's retries
    /// - `KAFKA_DLQ_TOPIC_SUFFIX`, `KAFKA_DLQ_UNKNOWN_TYPES` (boolean), `KAFKA_MAX_MESSAGE_BYTES`
    /// - `KAFKA_CONTENT_MODE`: `binary` (the default) or `structured`
    /// - `KAFKA_TOPIC_PREFIX`: put before every topic herald derives, joined with a dot
    /// - `KAFKA_GROUP_PREFIX`: put before every consumer group id, joined with a dot
    /// - `KAFKA_PROPERTIES`: `key=value;key=value`, any librdkafka property herald does not set
    ///   itself
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is invalid.
    pub fn from_vars(
        service_name: impl Into<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let vars = settings::Vars(&var);
        let get = |name: &str| vars.get(name);
        let mut config =
            Self::new(get("KAFKA_SERVICE_NAME").unwrap_or_else(|| service_name.into()));
        config.brokers = match vars.text("KAFKA_BOOTSTRAP_SERVERS")? {
            None => Brokers::Unset,
            Some(v) if v.eq_ignore_ascii_case("embedded") => Brokers::Embedded,
            Some(servers) => Brokers::Servers(servers),
        };
        config.read_settings(&vars)?;
        // Seed 002's name for the consumer group: read, and refused when it disagrees.
        if let Some(group) = vars.text("KAFKA_CONSUMER_GROUP_ID")? {
            match &config.consumer_group {
                Some(other) if *other != group => {
                    return Err(Error::Config(format!(
                        "KAFKA_CONSUMER_GROUP (`{other}`) and KAFKA_CONSUMER_GROUP_ID (`{group}`) \
                         name different consumer groups: set one of them"
                    )))
                }
                _ => config.consumer_group = Some(group),
            }
        }
        config.security = Security {
            protocol: get("KAFKA_SECURITY_PROTOCOL").map(|p| p.to_ascii_uppercase()),
            sasl_mechanism: get("KAFKA_SASL_MECHANISM").map(|m| m.to_ascii_uppercase()),
            sasl_username: get("KAFKA_SASL_USERNAME"),
            sasl_password: get("KAFKA_SASL_PASSWORD").map(Secret),
            ssl_ca_location: get("KAFKA_SSL_CAFILE"),
            ssl_certificate_location: get("KAFKA_SSL_CERTFILE"),
            ssl_key_location: get("KAFKA_SSL_KEYFILE"),
            ssl_key_password: get("KAFKA_SSL_KEY_PASSWORD").map(Secret),
            sasl_oauthbearer_config: get("KAFKA_SASL_OAUTHBEARER_CONFIG").map(Secret),
        };
        let failures = vars.whole("KAFKA_BREAKER_FAILURES", "a whole number of failures")?;
        let cooldown = vars.millis("KAFKA_BREAKER_COOLDOWN_MS")?;
        config.circuit_breaker = match (failures, cooldown) {
            (None, None) => None,
            (Some(failures), cooldown) => Some(policy::CircuitBreaker::new(
                u32::try_from(failures).unwrap_or(u32::MAX),
                cooldown.unwrap_or(Duration::from_secs(30)),
            )),
            (None, Some(_)) => {
                return Err(Error::Config(
                    "KAFKA_BREAKER_COOLDOWN_MS is set but KAFKA_BREAKER_FAILURES is not: set both to use a circuit breaker".into(),
                ))
            }
        };
        if let Some(limit) = vars.millis("KAFKA_BREAKER_HOLD_LIMIT_MS")? {
            let Some(breaker) = &mut config.circuit_breaker else {
                return Err(Error::Config(
                    "KAFKA_BREAKER_HOLD_LIMIT_MS is set but KAFKA_BREAKER_FAILURES is not: the hold limit belongs to a circuit breaker".into(),
                ));
            };
            breaker.hold_limit = limit;
        }
        if let Some(properties) = get("KAFKA_PROPERTIES") {
            // An entry's text is never echoed: it can hold a fragment of a password.
            for (index, entry) in properties.split(';').enumerate() {
                if entry.trim().is_empty() {
                    continue;
                }
                let (key, value) = entry
                    .split_once('=')
                    .filter(|(key, _)| !key.trim().is_empty())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "KAFKA_PROPERTIES: entry {} (counting from 1, entries separated by `;`) is not of the form `key=value`",
                            index + 1
                        ))
                    })?;
                config
                    .properties
                    .insert(key.trim().into(), value.trim().into());
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Sets the brokers (`host:port,...`).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.brokers = Brokers::Servers(servers.into());
        self
    }

    /// Uses herald's embedded in-process broker: for development and tests only (it keeps nothing
    /// and drops data past about 5 MiB per partition; the bus logs a warning saying so).
    pub fn embedded(mut self) -> Self {
        self.brokers = Brokers::Embedded;
        self
    }

    /// Development only: uses the embedded broker when no brokers were chosen (no
    /// `KAFKA_BOOTSTRAP_SERVERS`), so an example runs with no setup. The bus then logs a warning
    /// that it keeps nothing. A production service should not call this: without it, a missing
    /// `KAFKA_BOOTSTRAP_SERVERS` fails at start-up instead of publishing into memory.
    pub fn embedded_if_unset(mut self) -> Self {
        if self.brokers == Brokers::Unset {
            self.brokers = Brokers::Embedded;
        }
        self
    }

    /// Sets TLS and SASL.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Sets the backoff between tries of a failed handler.
    pub fn retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// Gives every handler a circuit breaker: after `failures` consecutive failed attempts the
    /// handler is held for `cooldown` (its partitions paused), then one probe attempt decides.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.circuit_breaker = Some(policy::CircuitBreaker::new(failures, cooldown));
        self
    }

    /// Sets how long one message may wait on the open circuit breaker with its failures not
    /// counted against its retries (see
    /// [`CircuitBreaker::hold_limit`](policy::CircuitBreaker::hold_limit)); needs a breaker set
    /// by [`Config::circuit_breaker`] first, and does nothing without one.
    pub fn breaker_hold_limit(mut self, limit: Duration) -> Self {
        if let Some(breaker) = &mut self.circuit_breaker {
            breaker.hold_limit = limit;
        }
        self
    }

    /// Passes a librdkafka property through to every client.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The bus-wide retry policy: `max_retries`, `retry_base_delay`, `retry_max_delay`,
    /// `retry_jitter` and `handler_timeout`.
    pub fn retry_policy(&self) -> policy::RetryPolicy {
        policy::RetryPolicy {
            max_retries: self.max_retries,
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay,
            jitter: self.retry_jitter,
            timeout: self.handler_timeout,
            breaker: self.circuit_breaker,
            mode: policy::RetryMode::InPlace,
        }
    }

    /// The consumer group of handlers that do not name one.
    pub fn default_group(&self) -> &str {
        self.consumer_group.as_deref().unwrap_or(&self.service_name)
    }

    /// The reply topic of this service's requests: `{service_name}.replies`, after the
    /// [`topic_prefix`](Config::topic_prefix) if there is one. Every instance of the service reads
    /// it (see `docs/commands.md`).
    pub fn reply_topic(&self) -> String {
        let topic = format!("{}.replies", self.service_name);
        match &self.topic_prefix {
            Some(prefix) => format!("{prefix}.{topic}"),
            None => topic,
        }
    }

    /// The consumer group id that `group` (a handler's group) joins: `group` after the
    /// [`group_prefix`](Config::group_prefix) if there is one.
    pub fn group_id(&self, group: &str) -> String {
        crate::event::naming::with_prefix(self.group_prefix.as_deref(), group)
    }

    /// The dead-letter topic of `topic`: `{topic}{dlq_suffix}`.
    pub fn dlq_topic(&self, topic: &str) -> String {
        format!("{topic}{}", self.dlq_suffix)
    }

    /// The configured brokers, when real ones are.
    pub fn servers(&self) -> Option<&str> {
        match &self.brokers {
            Brokers::Servers(servers) => Some(servers),
            Brokers::Unset | Brokers::Embedded => None,
        }
    }

    /// The configured brokers, or an [`Error::Config`] saying how to name them for `purpose`
    /// (e.g. "reading a topic"): a tool that works without a bus cannot find the embedded broker,
    /// whose address only its bus knows (`bus.bootstrap_servers()`).
    ///
    /// # Errors
    /// [`Error::Config`] when the brokers are unset or the embedded one.
    pub fn real_servers(&self, purpose: &str) -> Result<&str> {
        match &self.brokers {
            Brokers::Servers(servers) => Ok(servers),
            Brokers::Embedded => Err(Error::Config(format!(
                "{purpose} needs broker addresses, and this configuration asks for the embedded \
                 broker, whose address only its bus knows: give it with \
                 `Config::bootstrap_servers(bus.bootstrap_servers())`"
            ))),
            Brokers::Unset => Err(Error::Config(format!(
                "{purpose} needs broker addresses: set KAFKA_BOOTSTRAP_SERVERS (or \
                 `Config::bootstrap_servers`)"
            ))),
        }
    }

    /// Whether the embedded broker was asked for.
    pub fn is_embedded(&self) -> bool {
        self.brokers == Brokers::Embedded
    }

    /// Whether missing topics are created at start-up.
    pub fn creates_topics(&self) -> bool {
        self.auto_create_topics.unwrap_or(self.is_embedded())
    }

    /// Checks the configuration as a whole. An unset broker choice passes here (a caller may still
    /// choose); building a bus refuses it.
    ///
    /// # Errors
    /// [`Error::Config`] saying what is wrong and how to fix it.
    pub fn validate(&self) -> Result<()> {
        let fail = |message: String| Err(Error::Config(message));
        if self.service_name.trim().is_empty() {
            return fail(
                "the service name is empty: pass one to Config::new or set KAFKA_SERVICE_NAME"
                    .into(),
            );
        }
        if matches!(&self.brokers, Brokers::Servers(s) if s.trim().is_empty()) {
            return fail("the bootstrap servers are blank: set KAFKA_BOOTSTRAP_SERVERS to the brokers (host:port,...), or to `embedded` for herald's in-memory development broker".into());
        }
        if let Some(id) = &self.group_instance_id {
            if id.trim().is_empty() || id.chars().any(char::is_whitespace) {
                return fail(format!("the group instance id (KAFKA_GROUP_INSTANCE_ID) `{id}` is blank or holds whitespace: use a stable name per instance, such as the pod's"));
            }
            if self.properties.contains_key("group.instance.id") {
                return fail("group.instance.id is set both as a property and as the group instance id (KAFKA_GROUP_INSTANCE_ID): keep one".into());
            }
        }
        if self.topic_partitions < 1 {
            return fail("topic partitions (KAFKA_TOPIC_PARTITIONS) must be at least 1".into());
        }
        if matches!(self.replication_factor, Some(n) if n < 1) {
            return fail("the replication factor (KAFKA_REPLICATION_FACTOR) must be at least 1; leave it unset for the cluster's default".into());
        }
        // librdkafka takes these two in whole milliseconds and reads 0 as "never".
        if self.delivery_timeout.as_millis() == 0 {
            return fail("delivery_timeout is under 1 ms, which librdkafka reads as `wait forever`: set it to how long a publish may wait (default 30 s)".into());
        }
        if self.commit_interval.as_millis() == 0 {
            return fail("commit_interval is under 1 ms, which librdkafka reads as `never commit`: set it to at least 1 ms (default 500 ms)".into());
        }
        if self.shutdown_timeout.is_zero() {
            return fail("shutdown_timeout is 0, so shutdown could not let any handler finish: set it to how long shutdown may take (default 30 s)".into());
        }
        if self.retry_base_delay.is_zero() {
            return fail("retry_base_delay (KAFKA_RETRY_BASE_DELAY_MS) is 0, so a failing handler would be retried in a tight loop: set it to at least 1 ms (default 100 ms)".into());
        }
        if self.retry_base_delay > self.retry_max_delay {
            return fail("retry_base_delay (KAFKA_RETRY_BASE_DELAY_MS) is longer than retry_max_delay (KAFKA_RETRY_MAX_DELAY_MS): raise the maximum or lower the base".into());
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return fail(format!(
                "retry_jitter (KAFKA_RETRY_JITTER) is {}: it must be from 0.0 (no jitter) to 1.0 (full jitter)",
                self.retry_jitter
            ));
        }
        if self.handler_timeout.is_some_and(|t| t.is_zero()) {
            return fail("handler_timeout (KAFKA_HANDLER_TIMEOUT_MS) is 0, so every attempt would time out: set a positive timeout, or leave it unset for none".into());
        }
        if self.dlq_suffix.is_empty() {
            return fail("the dead-letter topic suffix (KAFKA_DLQ_TOPIC_SUFFIX) is empty, which would dead-letter into the topic itself: use e.g. `.dlq`".into());
        }
        if let Some(bad) = self
            .dlq_suffix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return fail(format!(
                "the dead-letter topic suffix (KAFKA_DLQ_TOPIC_SUFFIX) contains `{bad}`: a topic name may only hold ASCII letters, digits, `.`, `_` and `-`"
            ));
        }
        if let Some(prefix) = &self.topic_prefix {
            if let Some(problem) = crate::event::naming::prefix_problem(prefix) {
                return fail(format!(
                    "the topic prefix (KAFKA_TOPIC_PREFIX) `{prefix}` {problem}"
                ));
            }
        }
        if let Some(prefix) = &self.group_prefix {
            if let Some(problem) = crate::event::naming::prefix_problem(prefix) {
                return fail(format!(
                    "the group prefix (KAFKA_GROUP_PREFIX) `{prefix}` {problem}"
                ));
            }
        }
        if self.max_message_bytes == Some(0) {
            return fail("max_message_bytes (KAFKA_MAX_MESSAGE_BYTES) is 0, so every message would be dead-lettered: set a positive size, or leave it unset for no limit".into());
        }
        if self.max_buffered_per_partition == 0 {
            return fail("max_buffered_per_partition must be at least 1".into());
        }
        if self.max_buffered_bytes_per_partition == 0 {
            return fail("max_buffered_bytes_per_partition must be at least 1".into());
        }
        if self.max_buffered_bytes_per_consumer == 0 {
            return fail("max_buffered_bytes_per_consumer must be at least 1".into());
        }
        for (key, value) in &self.properties {
            let normalized = key.trim().to_ascii_lowercase();
            if let Some((owned, why)) = OWNED_PROPERTIES.iter().find(|(k, _)| *k == normalized) {
                return fail(format!(
                    "property `{owned}` is set by herald and cannot be passed through: {why}"
                ));
            }
            if normalized == "group.protocol" {
                return fail(format!(
                    "property `group.protocol={}` is set through the group protocol setting: use `Config::group_protocol` or KAFKA_GROUP_PROTOCOL",
                    value.trim()
                ));
            }
            if normalized == "partition.assignment.strategy"
                && value
                    .split(',')
                    .any(|s| s.trim().eq_ignore_ascii_case("cooperative-sticky"))
            {
                return fail(format!(
                    "property `partition.assignment.strategy={}` asks for incremental rebalancing on the classic protocol, which herald does not test: for incremental rebalancing use the consumer group protocol (KAFKA_GROUP_PROTOCOL=consumer), or leave it unset (eager `range`)",
                    value.trim()
                ));
            }
            if self.group_protocol == GroupProtocol::Consumer
                && BROKER_SIDE_UNDER_CONSUMER_PROTOCOL.contains(&normalized.as_str())
            {
                return fail(format!(
                    "property `{normalized}` is refused under the consumer group protocol (KIP-848): the broker decides it (`group.consumer.*` settings on the broker); remove it, or use the classic protocol"
                ));
            }
            if normalized == "sasl.oauthbearer.method" && value.trim().eq_ignore_ascii_case("oidc")
            {
                return fail("sasl.oauthbearer.method=oidc needs libcurl, which herald's librdkafka is built without: pass a token through KAFKA_SASL_OAUTHBEARER_CONFIG instead".into());
            }
        }
        self.security.validate()
    }

    /// What in this configuration weakens TLS (certificate or host name verification turned
    /// off), one sentence each; herald logs them as warnings when it builds a bus.
    pub fn security_warnings(&self) -> Vec<String> {
        self.properties
            .iter()
            .filter_map(|(key, value)| {
                let key = key.trim().to_ascii_lowercase();
                UNSAFE_TLS_PROPERTIES
                    .iter()
                    .find(|(k, v)| *k == key && value.trim().eq_ignore_ascii_case(v))
                    .map(|(k, v)| format!("{k}={v} turns off a TLS check: a machine in the middle can read and change everything herald sends and receives; use it only against a test broker"))
            })
            .collect()
    }

    fn client(&self, bootstrap_servers: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap_servers)
            .set("client.id", &self.service_name);
        self.security.apply(&mut config);
        config
    }

    fn with_properties(&self, mut config: ClientConfig) -> ClientConfig {
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The producer's librdkafka configuration: idempotent, `acks=all`.
    pub(crate) fn producer_config(&self, bootstrap_servers: &str) -> ClientConfig {
        let mut config = self.client(bootstrap_servers);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.delivery_timeout.as_millis().to_string(),
            );
        if self.is_embedded() {
            // The mock cluster keeps about 5 MiB per partition and drops older message sets
            // silently; lz4 batches fit about five times as many events into that window
            // (about 80,000 instead of 16,500 small events, measured with benches/throughput.rs).
            // Nothing crosses a network: waiting 5 ms to fill batches costs latency and buys
            // little (p99 at 10,000 events/s: 16 ms with 5 ms linger and 10 ms fetch waits, see
            // docs/performance.md).
            config.set("compression.type", "lz4").set("linger.ms", "1");
        }
        self.with_properties(config)
    }

    /// What the consumer groups take from this configuration.
    pub(crate) fn consume_settings(&self) -> ConsumeSettings {
        ConsumeSettings {
            max_buffered: self.max_buffered_per_partition,
            max_buffered_bytes: self.max_buffered_bytes_per_partition,
            max_buffered_bytes_per_consumer: self.max_buffered_bytes_per_consumer,
            shutdown_timeout: self.shutdown_timeout,
            dead_letter_unknown_types: self.dead_letter_unknown_types,
            max_message_bytes: self.max_message_bytes,
            dlq_suffix: self.dlq_suffix.clone(),
            delivery_timeout: self.delivery_timeout,
            default_group: self.default_group().to_owned(),
        }
    }

    /// A consumer's librdkafka configuration: offsets stored by herald after success, committed
    /// every `commit_interval`.
    pub(crate) fn consumer_config(&self, bootstrap_servers: &str, group: &str) -> ClientConfig {
        let mut config = self.client(bootstrap_servers);
        config
            .set("group.id", self.group_id(group))
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                self.commit_interval.as_millis().to_string(),
            )
            .set("auto.offset.reset", self.auto_offset_reset.as_str())
            .set("enable.partition.eof", "false")
            .set("group.protocol", self.group_protocol.as_str());
        if let Some(id) = &self.group_instance_id {
            config.set("group.instance.id", id);
        }
        if self.is_embedded() && self.group_protocol == GroupProtocol::Classic {
            // The mock cluster holds a group that a member left for the members' session timeout
            // minus one second before a new member can join: keep restarts quick.
            // It also holds every fetch for `fetch.wait.max.ms` (500 ms by default) instead of
            // answering when data arrives, so each resume of a paused partition and each new event
            // waited up to half a second.
            config
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "1500")
                .set("fetch.wait.max.ms", "4");
        }
        self.with_properties(config)
    }

    /// An admin client's librdkafka configuration.
    pub(crate) fn admin_config(&self, bootstrap_servers: &str) -> ClientConfig {
        self.with_properties(self.client(bootstrap_servers))
    }
}

/// Whether a librdkafka property holds a secret.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passphrase",
        "secret",
        "token",
        "credentials",
        "private.key",
        "oauthbearer.config",
        "key.pem",
        "sasl.jaas",
    ]
    .iter()
    .any(|s| key.contains(s))
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_property(k) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        let mut out = f.debug_struct("Config");
        out.field("service_name", &self.service_name)
            .field("brokers", &self.brokers)
            .field("security", &self.security)
            .field("circuit_breaker", &self.circuit_breaker);
        self.debug_settings(&mut out);
        out.field("properties", &properties).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn kafka_consumer_group_id_names_the_default_group_too() {
        let config = Config::from_vars(
            "a",
            vars(&[("KAFKA_CONSUMER_GROUP_ID", "user-service-group")]),
        )
        .unwrap();
        assert_eq!(config.default_group(), "user-service-group");
        let same = [
            ("KAFKA_CONSUMER_GROUP", "g"),
            ("KAFKA_CONSUMER_GROUP_ID", "g"),
        ];
        assert_eq!(
            Config::from_vars("a", vars(&same)).unwrap().default_group(),
            "g"
        );
        let different = [
            ("KAFKA_CONSUMER_GROUP", "g"),
            ("KAFKA_CONSUMER_GROUP_ID", "h"),
        ];
        let error = Config::from_vars("a", vars(&different)).unwrap_err();
        assert!(error.to_string().contains("set one of them"), "{error}");
    }

    #[test]
    fn topic_prefix_comes_from_kafka_topic_prefix_and_is_validated() {
        let config = Config::from_vars("a", vars(&[("KAFKA_TOPIC_PREFIX", " staging ")])).unwrap();
        assert_eq!(config.topic_prefix.as_deref(), Some("staging"));
        let err = Config::from_vars("a", vars(&[("KAFKA_TOPIC_PREFIX", "staging.")])).unwrap_err();
        assert!(err.to_string().contains("write `staging`"), "{err}");
        assert_eq!(Config::new("a").topic_prefix, None);
    }

    #[test]
    fn group_prefix_comes_from_kafka_group_prefix_and_names_the_joined_group() {
        let config = Config::from_vars("a", vars(&[("KAFKA_GROUP_PREFIX", "staging")])).unwrap();
        assert_eq!(config.group_id("billing"), "staging.billing");
        let consumer = config.consumer_config("k:9092", "billing");
        assert_eq!(consumer.get("group.id"), Some("staging.billing"));
        assert_eq!(Config::new("a").group_id("billing"), "billing");
        let err = Config::from_vars("a", vars(&[("KAFKA_GROUP_PREFIX", "a b")])).unwrap_err();
        assert!(err.to_string().contains("KAFKA_GROUP_PREFIX"), "{err}");
    }

    #[test]
    fn reads_the_environment() {
        let config = Config::from_vars(
            "orders",
            vars(&[
                ("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092"),
                ("KAFKA_CONSUMER_GROUP", "orders-workers"),
                ("KAFKA_AUTO_OFFSET_RESET", "latest"),
                ("KAFKA_TOPIC_PARTITIONS", "12"),
                (
                    "KAFKA_PROPERTIES",
                    "compression.type=zstd; fetch.max.bytes=1048576",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(config.servers(), Some("k1:9092,k2:9092"));
        assert!(!config.is_embedded());
        assert_eq!(config.default_group(), "orders-workers");
        assert_eq!(config.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(config.topic_partitions, 12);
        assert_eq!(config.properties["compression.type"], "zstd");
        assert!(!config.creates_topics());
        let consumer = config.consumer_config("k1:9092", "g");
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("fetch.max.bytes"), Some("1048576"));
    }

    #[test]
    fn service_name_from_environment_wins() {
        let config = Config::from_vars("a", vars(&[("KAFKA_SERVICE_NAME", "b")])).unwrap();
        assert_eq!(config.service_name, "b");
        assert_eq!(config.default_group(), "b");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = Config::from_vars("a", vars(&[("KAFKA_CONTENT_MODE", "csv")])).unwrap_err();
        assert!(err.to_string().contains("KAFKA_CONTENT_MODE"), "{err}");
        let config = Config::from_vars("a", vars(&[("KAFKA_CONTENT_MODE", " Structured ")]));
        assert_eq!(config.unwrap().content_mode, ContentMode::Structured);
        let err =
            Config::from_vars("a", vars(&[("KAFKA_AUTO_OFFSET_RESET", "soonest")])).unwrap_err();
        assert!(err.to_string().contains("KAFKA_AUTO_OFFSET_RESET"), "{err}");
        let err = Config::from_vars("a", vars(&[("KAFKA_TOPIC_PARTITIONS", "0")])).unwrap_err();
        assert!(err.to_string().contains("KAFKA_TOPIC_PARTITIONS"), "{err}");
        let err = Config::from_vars("a", vars(&[("KAFKA_PROPERTIES", "group.id=x")])).unwrap_err();
        assert!(err.to_string().contains("group.id"), "{err}");
    }

    #[test]
    fn sasl_needs_mechanism_and_credentials() {
        let err =
            Config::from_vars("a", vars(&[("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")])).unwrap_err();
        assert!(err.to_string().contains("KAFKA_SASL_MECHANISM"), "{err}");
        let err = Config::from_vars(
            "a",
            vars(&[
                ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("KAFKA_SASL_PASSWORD"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let config = Config::from_vars(
            "a",
            vars(&[
                ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
                ("KAFKA_SASL_USERNAME", "svc"),
                ("KAFKA_SASL_PASSWORD", "hunter2"),
                ("KAFKA_SSL_KEY_PASSWORD", "k3y"),
                ("KAFKA_PROPERTIES", "sasl.oauthbearer.client.secret=s3cr3t"),
            ]),
        )
        .unwrap();
        let debug = format!("{config:?} {config:#?}");
        for secret in ["hunter2", "k3y", "s3cr3t"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("svc"));
        assert_eq!(
            config.producer_config("b:1").get("sasl.password"),
            Some("hunter2")
        );
    }

    fn config_error(result: Result<Config>) -> String {
        match result {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    fn refusal(config: &Config) -> String {
        match config.validate() {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn zero_durations_are_refused_with_a_reason() {
        let base = || Config::new("a").embedded();
        let cases = [
            (
                base().retry_delays(Duration::ZERO, Duration::from_secs(1)),
                "retry_base_delay",
                "tight loop",
            ),
            (
                base().commit_interval(Duration::ZERO),
                "commit_interval",
                "never commit",
            ),
            (
                base().commit_interval(Duration::from_micros(500)),
                "commit_interval",
                "never commit",
            ),
            (
                base().delivery_timeout(Duration::ZERO),
                "delivery_timeout",
                "wait forever",
            ),
            (
                base().delivery_timeout(Duration::from_micros(999)),
                "delivery_timeout",
                "wait forever",
            ),
            (
                base().shutdown_timeout(Duration::ZERO),
                "shutdown_timeout",
                "shutdown",
            ),
            (
                base().handler_timeout(Duration::ZERO),
                "handler_timeout",
                "time out",
            ),
        ];
        for (config, field, reason) in cases {
            let message = refusal(&config);
            assert!(
                message.contains(field) && message.contains(reason),
                "{field}: {message}"
            );
        }
        assert!(base()
            .retry_delays(Duration::from_millis(1), Duration::from_millis(1))
            .commit_interval(Duration::from_millis(1))
            .delivery_timeout(Duration::from_millis(1))
            .shutdown_timeout(Duration::from_millis(1))
            .handler_timeout(Duration::from_millis(1))
            .validate()
            .is_ok());
        let message = config_error(Config::from_vars(
            "a",
            vars(&[("KAFKA_RETRY_BASE_DELAY_MS", "0")]),
        ));
        assert!(message.contains("KAFKA_RETRY_BASE_DELAY_MS"), "{message}");
    }

    #[test]
    fn the_embedded_broker_is_used_only_when_asked_for() {
        let unset = Config::from_vars("a", vars(&[])).unwrap();
        assert_eq!(unset.brokers, Brokers::Unset);
        assert!(!unset.is_embedded() && !unset.creates_topics());
        let blank = Config::from_vars("a", vars(&[("KAFKA_BOOTSTRAP_SERVERS", "  ")])).unwrap();
        assert_eq!(blank.brokers, Brokers::Unset);
        assert!(!Config::new("a").is_embedded());

        for asked in ["embedded", "EMBEDDED", " Embedded "] {
            let config =
                Config::from_vars("a", vars(&[("KAFKA_BOOTSTRAP_SERVERS", asked)])).unwrap();
            assert!(config.is_embedded() && config.creates_topics(), "{asked}");
            assert_eq!(config.servers(), None);
        }
        assert!(Config::new("a").embedded().is_embedded());
        assert!(Config::new("a").embedded_if_unset().is_embedded());

        let real = Config::new("a").bootstrap_servers("k:9092");
        assert!(!real.clone().embedded_if_unset().is_embedded());
        assert_eq!(real.embedded_if_unset().servers(), Some("k:9092"));
        let from_env =
            Config::from_vars("a", vars(&[("KAFKA_BOOTSTRAP_SERVERS", "k:9092")])).unwrap();
        assert_eq!(
            from_env.embedded_if_unset().brokers,
            Brokers::Servers("k:9092".into())
        );

        let message = refusal(&Config::new("a").bootstrap_servers(" "));
        assert!(message.contains("KAFKA_BOOTSTRAP_SERVERS"), "{message}");
        let debug = format!("{:?}", Config::new("a").bootstrap_servers("k:9092"));
        assert!(debug.contains(r#"brokers: Servers("k:9092")"#), "{debug}");
    }

    #[test]
    fn the_group_protocol_is_a_setting_and_the_consumer_protocol_refuses_broker_side_properties() {
        let config =
            Config::from_vars("a", vars(&[("KAFKA_GROUP_PROTOCOL", " Consumer ")])).unwrap();
        assert_eq!(config.group_protocol, GroupProtocol::Consumer);
        let client = config.consumer_config("h:1", "g");
        assert_eq!(client.get("group.protocol"), Some("consumer"));
        assert_eq!(client.get("session.timeout.ms"), None);
        assert_eq!(
            Config::new("a")
                .consumer_config("h:1", "g")
                .get("group.protocol"),
            Some("classic")
        );
        assert!(config_error(Config::from_vars(
            "a",
            vars(&[("KAFKA_GROUP_PROTOCOL", "eager")])
        ))
        .contains("KAFKA_GROUP_PROTOCOL"));
        for key in [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
        ] {
            let message = refusal(
                &Config::new("a")
                    .group_protocol(GroupProtocol::Consumer)
                    .property(key, "1"),
            );
            assert!(
                message.contains("KIP-848") && message.contains(key),
                "{key}: {message}"
            );
        }
        let message = refusal(&Config::new("a").property("GROUP.PROTOCOL", " consumer "));
        assert!(message.contains("KAFKA_GROUP_PROTOCOL"), "{message}");
        for strategy in ["cooperative-sticky", "range, cooperative-sticky"] {
            let cooperative = Config::new("a")
                .embedded()
                .property("partition.assignment.strategy", strategy);
            assert!(refusal(&cooperative).contains("KAFKA_GROUP_PROTOCOL=consumer"));
        }
        let eager = Config::new("a").property("partition.assignment.strategy", "roundrobin");
        assert!(eager.validate().is_ok());
    }

    #[test]
    fn properties_that_break_guarantees_are_refused() {
        let refused = [
            ("acks", "1", "acks=all"),
            ("request.required.acks", "0", "acks=all"),
            ("enable.idempotence", "false", "idempotent"),
            ("metadata.broker.list", "k:9092", "bootstrap"),
            ("bootstrap.servers", "k:9092", "bootstrap"),
            ("enable.partition.eof", "true", "end-of-partition"),
            ("enable.auto.commit", "false", "commit_interval"),
            ("auto.commit.enable", "false", "commit_interval"),
            ("auto.commit.interval.ms", "0", "commit_interval"),
            ("enable.auto.offset.store", "true", "after the handlers"),
            ("offset.store.method", "file", "broker"),
            ("message.timeout.ms", "0", "delivery_timeout"),
            ("delivery.timeout.ms", "0", "delivery_timeout"),
            ("group.id", "g", "consumer_group"),
        ];
        for (key, value, reason) in refused {
            let built = Config::new("a").embedded().property(key, value);
            let message = refusal(&built);
            assert!(
                message.contains(&format!("`{key}`")) && message.contains(reason),
                "{key}: {message}"
            );
            let upper = Config::new("a").property(key.to_ascii_uppercase(), value);
            assert!(upper.validate().is_err(), "{key} in upper case");
            let message = config_error(Config::from_vars(
                "a",
                vars(&[("KAFKA_PROPERTIES", &format!("linger.ms=1; {key} = {value}"))]),
            ));
            assert!(message.contains(&format!("`{key}`")), "{key}: {message}");
        }
        let allowed = Config::new("a")
            .property("group.instance.id", "pod-1")
            .property("compression.type", "zstd");
        assert!(allowed.validate().is_ok());
    }

    #[test]
    fn a_group_instance_id_reaches_every_group_consumer_and_is_checked() {
        let config =
            Config::from_vars("a", vars(&[("KAFKA_GROUP_INSTANCE_ID", " pod-1 ")])).unwrap();
        assert_eq!(config.group_instance_id.as_deref(), Some("pod-1"));
        let client = config.consumer_config("localhost:9092", "billing");
        assert_eq!(client.get("group.instance.id"), Some("pod-1"));
        assert_eq!(
            Config::new("a")
                .consumer_config("h:1", "g")
                .get("group.instance.id"),
            None
        );
        assert!(refusal(&Config::new("a").group_instance_id("pod 1")).contains("whitespace"));
        let both = Config::new("a")
            .group_instance_id("pod-1")
            .property("group.instance.id", "pod-2");
        assert!(refusal(&both).contains("keep one"));
    }

    #[test]
    fn replication_factor_defaults_to_the_clusters() {
        assert_eq!(Config::new("a").replication_factor, None);
        let config = Config::from_vars("a", vars(&[("KAFKA_REPLICATION_FACTOR", "3")])).unwrap();
        assert_eq!(config.replication_factor, Some(3));
        assert_eq!(
            Config::new("a").replication_factor(2).replication_factor,
            Some(2)
        );
        assert!(Config::new("a").replication_factor(0).validate().is_err());
        let message = config_error(Config::from_vars(
            "a",
            vars(&[("KAFKA_REPLICATION_FACTOR", "-1")]),
        ));
        assert!(message.contains("KAFKA_REPLICATION_FACTOR"), "{message}");
    }

    #[test]
    fn a_malformed_property_entry_is_not_echoed() {
        for (properties, entry) in [
            ("linger.ms=5;hunter2-fragment", 2),
            ("hunter2-fragment", 1),
            ("a=1;;=hunter2-fragment", 3),
        ] {
            let message = config_error(Config::from_vars(
                "a",
                vars(&[("KAFKA_PROPERTIES", properties)]),
            ));
            assert!(!message.contains("hunter2"), "{message}");
            assert!(
                message.contains("KAFKA_PROPERTIES")
                    && message.contains(&format!("entry {entry} "))
                    && message.contains("key=value"),
                "{message}"
            );
        }
    }

    #[test]
    fn debug_redacts_every_secret_looking_property() {
        let keys = [
            "sasl.oauthbearer.assertion.private.key.passphrase",
            "sasl.oauthbearer.assertion.private.key.pem",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.client.credentials.client.secret",
            "sasl.oauthbearer.config",
            "sasl.jaas.config",
            "sasl.oauthbearer.token",
            "custom.credentials",
        ];
        let mut config = Config::new("a").property("client.rack", "rack-visible");
        for (i, key) in keys.iter().enumerate() {
            config = config.property(*key, format!("leak{i}"));
        }
        let debug = format!("{config:?} {config:#?}");
        for (i, key) in keys.iter().enumerate() {
            assert!(
                !debug.contains(&format!("leak{i}")),
                "{key} leaked: {debug}"
            );
            assert!(debug.contains(key), "{key} is not listed");
        }
        assert!(debug.contains("rack-visible"));
    }

    #[test]
    fn tools_without_a_bus_say_how_to_name_the_brokers() {
        let unset = Config::new("a")
            .real_servers("reading a topic")
            .unwrap_err();
        assert!(
            unset
                .to_string()
                .contains("reading a topic needs broker addresses: set KAFKA_BOOTSTRAP_SERVERS"),
            "{unset}"
        );
        let embedded = Config::new("a")
            .embedded()
            .real_servers("reading a topic")
            .unwrap_err();
        assert!(
            embedded.to_string().contains("bus.bootstrap_servers()"),
            "{embedded}"
        );
        let real = Config::new("a").bootstrap_servers("k:9092");
        assert_eq!(real.real_servers("reading a topic").unwrap(), "k:9092");
    }

    #[test]
    fn secrets_are_taken_as_given_and_numbers_trimmed() {
        let config = Config::from_vars(
            "a",
            vars(&[
                ("KAFKA_SASL_PASSWORD", " pass word "),
                ("KAFKA_MAX_RETRIES", " 5 "),
                ("KAFKA_BOOTSTRAP_SERVERS", " k:9092 "),
            ]),
        )
        .unwrap();
        let password = config.security.sasl_password.as_ref().unwrap();
        assert_eq!(password.expose(), " pass word ");
        assert_eq!(config.max_retries, 5);
        assert_eq!(config.servers(), Some("k:9092"));
    }

    #[test]
    fn secret_display_and_debug_print_stars() {
        let secret = Secret::new("hunter2");
        assert_eq!(secret.to_string(), "***");
        assert_eq!(format!("{secret:?}"), r#""***""#);
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn retry_and_dead_letter_settings_have_defaults() {
        let config = Config::new("a");
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.retry_base_delay, Duration::from_millis(100));
        assert_eq!(config.retry_max_delay, Duration::from_secs(30));
        assert_eq!(config.retry_jitter, 0.1);
        assert_eq!(config.handler_timeout, None);
        assert_eq!(config.dlq_suffix, ".dlq");
        assert!(!config.dead_letter_unknown_types);
        assert_eq!(config.max_message_bytes, None);
        assert_eq!(config.dlq_topic("orders.placed"), "orders.placed.dlq");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn retry_and_dead_letter_settings_from_builder_and_environment() {
        let built = Config::new("a")
            .max_retries(7)
            .retry_delays(Duration::from_millis(5), Duration::from_millis(50))
            .retry_jitter(1.0)
            .handler_timeout(Duration::from_secs(2))
            .dlq_suffix("-dead_letters")
            .dead_letter_unknown_types(true)
            .max_message_bytes(1024);
        let read = Config::from_vars(
            "a",
            vars(&[
                ("KAFKA_MAX_RETRIES", "7"),
                ("KAFKA_RETRY_BASE_DELAY_MS", "5"),
                ("KAFKA_RETRY_MAX_DELAY_MS", "50"),
                ("KAFKA_RETRY_JITTER", "1.0"),
                ("KAFKA_HANDLER_TIMEOUT_MS", "2000"),
                ("KAFKA_DLQ_TOPIC_SUFFIX", "-dead_letters"),
                ("KAFKA_DLQ_UNKNOWN_TYPES", "yes"),
                ("KAFKA_MAX_MESSAGE_BYTES", "1024"),
            ]),
        )
        .unwrap();
        for config in [&built, &read] {
            assert!(config.validate().is_ok());
            assert_eq!(config.max_retries, 7);
            assert_eq!(config.retry_base_delay, Duration::from_millis(5));
            assert_eq!(config.retry_max_delay, Duration::from_millis(50));
            assert_eq!(config.retry_jitter, 1.0);
            assert_eq!(config.handler_timeout, Some(Duration::from_secs(2)));
            assert!(config.dead_letter_unknown_types);
            assert_eq!(config.max_message_bytes, Some(1024));
            assert_eq!(config.dlq_topic("t"), "t-dead_letters");
        }
        let debug = format!("{read:?}");
        for shown in [
            "max_retries: 7",
            "retry_jitter: 1.0",
            "handler_timeout: Some(2s)",
            "dlq_suffix: \"-dead_letters\"",
            "dead_letter_unknown_types: true",
            "max_message_bytes: Some(1024)",
        ] {
            assert!(debug.contains(shown), "{shown} missing: {debug}");
        }
        let zero_retries = Config::from_vars("a", vars(&[("KAFKA_MAX_RETRIES", "0")])).unwrap();
        assert_eq!(zero_retries.max_retries, 0);
    }

    #[test]
    fn bad_retry_and_dead_letter_values_name_the_variable() {
        for (name, value) in [
            ("KAFKA_MAX_RETRIES", "three"),
            ("KAFKA_MAX_RETRIES", "-1"),
            ("KAFKA_MAX_RETRIES", "4294967296"),
            ("KAFKA_RETRY_BASE_DELAY_MS", "1.5"),
            ("KAFKA_RETRY_BASE_DELAY_MS", "0"),
            ("KAFKA_RETRY_MAX_DELAY_MS", "soon"),
            ("KAFKA_RETRY_MAX_DELAY_MS", "10"),
            ("KAFKA_RETRY_JITTER", "lots"),
            ("KAFKA_RETRY_JITTER", "1.5"),
            ("KAFKA_RETRY_JITTER", "-0.1"),
            ("KAFKA_RETRY_JITTER", "NaN"),
            ("KAFKA_HANDLER_TIMEOUT_MS", "0"),
            ("KAFKA_HANDLER_TIMEOUT_MS", "2s"),
            ("KAFKA_DLQ_TOPIC_SUFFIX", "/dlq"),
            ("KAFKA_DLQ_TOPIC_SUFFIX", ".dead letters"),
            ("KAFKA_DLQ_UNKNOWN_TYPES", "maybe"),
            ("KAFKA_MAX_MESSAGE_BYTES", "0"),
            ("KAFKA_MAX_MESSAGE_BYTES", "1MB"),
            ("KAFKA_AUTO_CREATE_TOPICS", "sometimes"),
        ] {
            let message = config_error(Config::from_vars("a", vars(&[(name, value)])));
            assert!(message.contains(name), "{name}={value}: {message}");
        }
        assert!(Config::new("a").dlq_suffix("").validate().is_err());
        assert!(Config::new("a").retry_jitter(f64::NAN).validate().is_err());
        assert!(Config::new("a").retry_jitter(0.0).validate().is_ok());
    }

    /// A PEM file of the unit tests' own CA and client certificate (CN=alice).
    fn tls_file(name: &str) -> String {
        format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn secured(protocol: &str, mechanism: Option<&str>) -> Config {
        let mut config = Config::new("secure").bootstrap_servers("127.0.0.1:1");
        config.security = Security {
            protocol: Some(protocol.into()),
            sasl_mechanism: mechanism.map(Into::into),
            sasl_username: mechanism
                .filter(|m| *m != "OAUTHBEARER")
                .map(|_| "alice".into()),
            sasl_password: mechanism
                .filter(|m| *m != "OAUTHBEARER")
                .map(|_| Secret::new("alice-secret")),
            ssl_ca_location: protocol.ends_with("SSL").then(|| tls_file("ca.pem")),
            ..Security::default()
        };
        config
    }

    /// Every security setting herald advertises creates a producer and a consumer: librdkafka is
    /// built with TLS, SASL (PLAIN, SCRAM, OAUTHBEARER) and zstd. Before TLS was compiled in,
    /// each of these failed with "OpenSSL not available at build time".
    #[test]
    fn a_producer_and_a_consumer_are_created_with_each_security_setting() {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::producer::BaseProducer;
        let mut mutual_tls = secured("SSL", None);
        mutual_tls.security.ssl_certificate_location = Some(tls_file("client.pem"));
        mutual_tls.security.ssl_key_location = Some(tls_file("client.key"));
        let mut oauth = secured("SASL_SSL", Some("OAUTHBEARER"))
            .property("enable.sasl.oauthbearer.unsecure.jwt", "true");
        oauth.security.sasl_oauthbearer_config = Some(Secret::new("principal=alice"));
        let cases = [
            ("SSL with a CA file", secured("SSL", None)),
            ("mutual TLS", mutual_tls),
            (
                "SASL_SSL SCRAM-SHA-256",
                secured("SASL_SSL", Some("SCRAM-SHA-256")),
            ),
            (
                "SASL_SSL SCRAM-SHA-512",
                secured("SASL_SSL", Some("SCRAM-SHA-512")),
            ),
            ("SASL_SSL PLAIN", secured("SASL_SSL", Some("PLAIN"))),
            (
                "SASL_PLAINTEXT PLAIN",
                secured("SASL_PLAINTEXT", Some("PLAIN")),
            ),
            ("SASL_SSL OAUTHBEARER (unsecured JWT)", oauth),
            (
                "SSL, no CA file (system store)",
                Config {
                    security: Security {
                        ssl_ca_location: None,
                        ..secured("SSL", None).security
                    },
                    ..secured("SSL", None)
                },
            ),
            (
                "zstd compression",
                Config::new("z")
                    .bootstrap_servers("127.0.0.1:1")
                    .property("compression.type", "zstd"),
            ),
        ];
        for (name, config) in cases {
            config.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let producer: Result<BaseProducer, _> = config.producer_config("127.0.0.1:1").create();
            assert!(producer.is_ok(), "{name}: producer: {:?}", producer.err());
            let consumer: Result<BaseConsumer, _> =
                config.consumer_config("127.0.0.1:1", "g").create();
            assert!(consumer.is_ok(), "{name}: consumer: {:?}", consumer.err());
        }
    }

    #[test]
    fn properties_cannot_downgrade_security_and_weakened_tls_is_reported() {
        let vars = vars(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_USERNAME", "alice"),
            ("KAFKA_SASL_PASSWORD", "alice-secret"),
            ("KAFKA_PROPERTIES", "security.protocol=PLAINTEXT"),
        ]);
        let err = Config::from_vars("a", vars).unwrap_err();
        assert!(err.to_string().contains("KAFKA_SECURITY_PROTOCOL"), "{err}");
        for key in ["sasl.password", "sasl.mechanisms", "sasl.username"] {
            let err = Config::new("a").property(key, "x").validate().unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = Config::new("a")
            .property("sasl.oauthbearer.method", "oidc")
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("libcurl"), "{err}");

        let weakened = Config::new("a")
            .property("enable.ssl.certificate.verification", "false")
            .property("ssl.endpoint.identification.algorithm", "none");
        let warnings = weakened.security_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("enable.ssl.certificate.verification=false"));
        assert!(Config::new("a").security_warnings().is_empty());
    }

    #[test]
    fn tls_without_a_ca_file_finds_the_system_store_and_bad_files_are_refused() {
        let system = Config {
            security: Security {
                ssl_ca_location: None,
                ..secured("SSL", None).security
            },
            ..secured("SSL", None)
        };
        assert_eq!(
            system.admin_config("k:1").get("ssl.ca.location"),
            Some("probe")
        );
        let own = secured("SSL", None);
        assert_eq!(
            own.admin_config("k:1").get("ssl.ca.location"),
            Some(tls_file("ca.pem").as_str())
        );
        assert_eq!(
            Config::new("a").admin_config("k:1").get("ssl.ca.location"),
            None
        );

        let missing = Config {
            security: Security {
                ssl_ca_location: Some("/no/such/ca.pem".into()),
                ..secured("SSL", None).security
            },
            ..secured("SSL", None)
        };
        let err = missing.validate().unwrap_err().to_string();
        assert!(
            err.contains("KAFKA_SSL_CAFILE") && err.contains("/no/such/ca.pem"),
            "{err}"
        );
        let mut half = secured("SSL", None);
        half.security.ssl_certificate_location = Some(tls_file("client.pem"));
        let err = half.validate().unwrap_err().to_string();
        assert!(err.contains("KAFKA_SSL_KEYFILE"), "{err}");
    }

    #[test]
    fn a_refused_property_names_its_key_and_never_its_value() {
        use rdkafka::producer::BaseProducer;
        let config = Config::new("a")
            .bootstrap_servers("k:1")
            .property("ssl.key.pasword", "hunter2-secret");
        let err = match config.producer_config("k:1").create::<BaseProducer>() {
            Ok(_) => panic!("librdkafka took an unknown property"),
            Err(e) => Error::kafka("creating the producer", e),
        };
        let text = err.to_string();
        assert!(text.contains("ssl.key.pasword"), "{text}");
        assert!(!text.contains("hunter2"), "the value leaked: {text}");
        let err = Config::new("a")
            .bootstrap_servers("k:1")
            .property("security.protocol", "SASL_SSL")
            .validate();
        assert!(err.is_err());
    }
}

/// The settings the consumer groups use, taken from a [`Config`] in one place.
#[derive(Debug, Clone)]
pub(crate) struct ConsumeSettings {
    /// Messages buffered per partition before it is paused at the broker.
    pub max_buffered: usize,
    /// Bytes buffered per partition before it is paused at the broker.
    pub max_buffered_bytes: usize,
    /// Bytes buffered by one group's consumer over all its partitions before the partitions that
    /// receive more are paused.
    pub max_buffered_bytes_per_consumer: usize,
    /// How long in-flight handlers may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// Dead-letter messages whose event type no handler of the group takes (else skip them).
    pub dead_letter_unknown_types: bool,
    /// Dead-letter messages larger than this.
    pub max_message_bytes: Option<usize>,
    /// `{topic}{dlq_suffix}` is a topic's dead-letter topic.
    pub dlq_suffix: String,
    /// How long one write to a dead-letter topic may wait for the broker.
    pub delivery_timeout: Duration,
    /// The group of handlers that name none.
    pub default_group: String,
}
