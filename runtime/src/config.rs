//! Configuration: by builder methods or from the environment, plus pass-through of any librdkafka
//! property. `Debug` never prints a secret.

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
    fn validate(&self) -> Result<()> {
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
        let settings: [(&str, Option<&str>); 8] = [
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
        ];
        for (key, value) in settings {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
    }
}

/// Properties herald sets itself; passing them through would break its guarantees.
const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "use `bootstrap_servers`"),
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
];

/// herald's configuration. Build it with [`Config::new`] and the setters, or read it with
/// [`Config::from_env`].
#[derive(Clone)]
pub struct Config {
    /// The service's name: the `ce_source` of what it publishes and its default consumer group.
    pub service_name: String,
    /// Kafka brokers, `host:port,...`; `None` starts the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// The consumer group of handlers that do not name one (default: the service name).
    pub consumer_group: Option<String>,
    /// Where a new consumer group starts.
    pub auto_offset_reset: OffsetReset,
    /// TLS and SASL.
    pub security: Security,
    /// Whether missing topics are created at start-up (default: only for the embedded broker).
    pub auto_create_topics: Option<bool>,
    /// Partitions of a topic herald creates.
    pub topic_partitions: i32,
    /// Replication factor of a topic herald creates.
    pub replication_factor: i32,
    /// How long a publish may wait for the broker's acknowledgement (librdkafka `message.timeout.ms`).
    pub delivery_timeout: Duration,
    /// How often stored offsets are committed.
    pub commit_interval: Duration,
    /// How long graceful shutdown may take.
    pub shutdown_timeout: Duration,
    /// First delay before a failed handler is tried again on the same message.
    pub retry_base_delay: Duration,
    /// Longest delay between tries of a failed handler.
    pub retry_max_delay: Duration,
    /// Messages buffered per partition before herald pauses fetching it (default 10,000: each pause
    /// makes librdkafka drop and refetch what it prefetched, so a small buffer costs throughput).
    pub max_buffered_per_partition: usize,
    /// Any other librdkafka property, passed through to every client.
    pub properties: BTreeMap<String, String>,
    /// TEMP
    pub max_retries: u32,
    /// TEMP
    pub retry_jitter: f64,
    /// TEMP
    pub handler_timeout: Option<Duration>,
    /// TEMP
    pub dlq_suffix: String,
    /// TEMP
    pub dead_letter_unknown_types: bool,
    /// TEMP
    pub max_message_bytes: Option<usize>,
}

impl Config {
    /// Defaults for `service_name`, with the embedded broker.
    pub fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
            bootstrap_servers: None,
            consumer_group: None,
            auto_offset_reset: OffsetReset::Earliest,
            security: Security::default(),
            auto_create_topics: None,
            topic_partitions: 3,
            replication_factor: 1,
            delivery_timeout: Duration::from_secs(30),
            commit_interval: Duration::from_millis(500),
            shutdown_timeout: Duration::from_secs(30),
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(30),
            max_buffered_per_partition: 10_000,
            properties: BTreeMap::new(),
            max_retries: 3,
            retry_jitter: 0.1,
            handler_timeout: None,
            dlq_suffix: ".dlq".into(),
            dead_letter_unknown_types: false,
            max_message_bytes: None,
        }
    }

    /// Reads the configuration from the process environment; see [`Config::from_vars`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is invalid.
    pub fn from_env(service_name: impl Into<String>) -> Result<Self> {
        Self::from_vars(service_name, |name| std::env::var(name).ok())
    }

    /// Reads the configuration from variables: `KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_CONSUMER_GROUP`,
    /// `KAFKA_AUTO_OFFSET_RESET`, `KAFKA_SERVICE_NAME` (overrides `service_name`),
    /// `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`,
    /// `KAFKA_SSL_CAFILE`, `KAFKA_SSL_CERTFILE`, `KAFKA_SSL_KEYFILE`, `KAFKA_SSL_KEY_PASSWORD`,
    /// `KAFKA_AUTO_CREATE_TOPICS`, `KAFKA_TOPIC_PARTITIONS`, `KAFKA_REPLICATION_FACTOR`, and
    /// `KAFKA_PROPERTIES` (`key=value;key=value`, any librdkafka property).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is invalid.
    pub fn from_vars(
        service_name: impl Into<String>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut config =
            Self::new(get("KAFKA_SERVICE_NAME").unwrap_or_else(|| service_name.into()));
        config.bootstrap_servers = get("KAFKA_BOOTSTRAP_SERVERS");
        config.consumer_group = get("KAFKA_CONSUMER_GROUP");
        if let Some(reset) = get("KAFKA_AUTO_OFFSET_RESET") {
            config.auto_offset_reset = reset
                .parse()
                .map_err(|e| Error::Config(format!("KAFKA_AUTO_OFFSET_RESET: {e}")))?;
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
        };
        if let Some(value) = get("KAFKA_AUTO_CREATE_TOPICS") {
            config.auto_create_topics = Some(match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                other => {
                    return Err(Error::Config(format!(
                    "KAFKA_AUTO_CREATE_TOPICS: `{other}` is not a boolean, use `true` or `false`"
                )))
                }
            });
        }
        let positive = |name: &str| -> Result<Option<i32>> {
            get(name)
                .map(|v| match v.trim().parse::<i32>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::Config(format!(
                        "{name}: `{v}` is not a positive whole number"
                    ))),
                })
                .transpose()
        };
        if let Some(n) = positive("KAFKA_TOPIC_PARTITIONS")? {
            config.topic_partitions = n;
        }
        if let Some(n) = positive("KAFKA_REPLICATION_FACTOR")? {
            config.replication_factor = n;
        }
        if let Some(properties) = get("KAFKA_PROPERTIES") {
            for pair in properties.split(';').filter(|p| !p.trim().is_empty()) {
                let (key, value) = pair.split_once('=').ok_or_else(|| {
                    Error::Config(format!("KAFKA_PROPERTIES: `{pair}` is not `key=value`"))
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
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// Sets the default consumer group.
    pub fn consumer_group(mut self, group: impl Into<String>) -> Self {
        self.consumer_group = Some(group.into());
        self
    }

    /// Sets where a new consumer group starts.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets TLS and SASL.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Turns creation of missing topics on or off.
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.auto_create_topics = Some(on);
        self
    }

    /// Sets the partition count of topics herald creates.
    pub fn topic_partitions(mut self, partitions: i32) -> Self {
        self.topic_partitions = partitions;
        self
    }

    /// Sets how long graceful shutdown may take.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets how long a publish may wait for the broker's acknowledgement.
    pub fn delivery_timeout(mut self, timeout: Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Sets how often stored offsets are committed.
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// Sets the backoff between tries of a failed handler.
    pub fn retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// Passes a librdkafka property through to every client.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The bus-wide retry policy: `max_retries`, `retry_base_delay`, `retry_max_delay`,
    /// `retry_jitter` and `handler_timeout`.
    pub fn retry_policy(&self) -> crate::RetryPolicy {
        crate::RetryPolicy {
            max_retries: self.max_retries,
            base_delay: self.retry_base_delay,
            max_delay: self.retry_max_delay,
            jitter: self.retry_jitter,
            timeout: self.handler_timeout,
        }
    }

    /// The consumer group of handlers that do not name one.
    pub fn default_group(&self) -> &str {
        self.consumer_group.as_deref().unwrap_or(&self.service_name)
    }

    /// Whether the embedded broker is used (no bootstrap servers).
    pub fn is_embedded(&self) -> bool {
        self.bootstrap_servers.is_none()
    }

    /// Whether missing topics are created at start-up.
    pub fn creates_topics(&self) -> bool {
        self.auto_create_topics.unwrap_or(self.is_embedded())
    }

    /// Checks the configuration as a whole.
    ///
    /// # Errors
    /// [`Error::Config`] saying what is wrong and how to fix it.
    pub fn validate(&self) -> Result<()> {
        if self.service_name.trim().is_empty() {
            return Err(Error::Config(
                "the service name is empty: pass one to Config::new or set KAFKA_SERVICE_NAME"
                    .into(),
            ));
        }
        if self.topic_partitions < 1 || self.replication_factor < 1 {
            return Err(Error::Config(
                "topic partitions and replication factor must be at least 1".into(),
            ));
        }
        if self.retry_base_delay > self.retry_max_delay {
            return Err(Error::Config(
                "retry_base_delay is longer than retry_max_delay".into(),
            ));
        }
        if self.max_buffered_per_partition == 0 {
            return Err(Error::Config(
                "max_buffered_per_partition must be at least 1".into(),
            ));
        }
        for (key, why) in OWNED_PROPERTIES {
            if self.properties.contains_key(*key) {
                return Err(Error::Config(format!(
                    "property `{key}` is set by herald and cannot be passed through: {why}"
                )));
            }
        }
        self.security.validate()
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
            config.set("compression.type", "lz4");
        }
        self.with_properties(config)
    }

    /// A consumer's librdkafka configuration: offsets stored by herald after success, committed
    /// every `commit_interval`.
    pub(crate) fn consumer_config(&self, bootstrap_servers: &str, group: &str) -> ClientConfig {
        let mut config = self.client(bootstrap_servers);
        config
            .set("group.id", group)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.commit.interval.ms",
                self.commit_interval.as_millis().to_string(),
            )
            .set("auto.offset.reset", self.auto_offset_reset.as_str())
            .set("enable.partition.eof", "false");
        if self.is_embedded() {
            // The mock cluster holds a group that a member left for the members' session timeout
            // minus one second before a new member can join: keep restarts quick.
            config
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "1500");
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
        "secret",
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
        f.debug_struct("Config")
            .field("service_name", &self.service_name)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("consumer_group", &self.consumer_group)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("security", &self.security)
            .field("auto_create_topics", &self.auto_create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("replication_factor", &self.replication_factor)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("commit_interval", &self.commit_interval)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field(
                "max_buffered_per_partition",
                &self.max_buffered_per_partition,
            )
            .field("properties", &properties)
            .finish()
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
        assert_eq!(config.bootstrap_servers.as_deref(), Some("k1:9092,k2:9092"));
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
        assert!(config.is_embedded() && config.creates_topics());
    }

    #[test]
    fn invalid_values_name_the_variable() {
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
}
