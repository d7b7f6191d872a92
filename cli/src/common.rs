//! The options every command shares, and the Kafka clients built from them.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use rdkafka::ClientConfig;

/// Global options of every `herald` command.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The Kafka brokers, `host:port,...` (for `herald broker`: the address it printed). Required by
    /// every command but `broker`.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        global = true,
        value_name = "HOST:PORT,..."
    )]
    pub bootstrap_servers: Option<String>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the brokers before giving up, in seconds.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECONDS")]
    pub timeout: u64,
}

impl Common {
    /// The bootstrap servers, or an error saying how to give them.
    ///
    /// # Errors
    /// When `--bootstrap-servers` / `KAFKA_BOOTSTRAP_SERVERS` is unset, blank or `embedded` (an
    /// embedded broker lives inside another process: run `herald broker` and use its address).
    pub fn bootstrap(&self) -> anyhow::Result<&str> {
        match self.bootstrap_servers.as_deref().map(str::trim) {
            None | Some("") => bail!(
                "no brokers given: pass --bootstrap-servers HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS \
                 (for a local broker run `herald broker` and use the address it prints)"
            ),
            Some(s) if s.eq_ignore_ascii_case("embedded") => bail!(
                "`embedded` names a broker inside a service's own process, which this tool cannot \
                 reach: run `herald broker` and pass the address it prints"
            ),
            Some(s) => Ok(s),
        }
    }

    /// The time limit of one request to the brokers.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    /// A client configuration for the brokers (plain text; no group joined).
    ///
    /// # Errors
    /// As [`Common::bootstrap`].
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap()?)
            .set("client.id", "herald-cli")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "0");
        Ok(config)
    }
}
