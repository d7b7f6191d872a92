//! The options every command shares, and the Kafka clients built from them.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use herald::Secret;
use herald::{Config, Error};
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
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` (default: KAFKA_SECURITY_PROTOCOL).
    #[arg(long, global = true, value_name = "PROTOCOL")]
    pub security_protocol: Option<String>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (default: KAFKA_SASL_MECHANISM).
    #[arg(long, global = true, value_name = "MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// The SASL user (default: KAFKA_SASL_USERNAME).
    #[arg(long, global = true, value_name = "USER")]
    pub sasl_username: Option<String>,
    /// A file holding the SASL password (default: KAFKA_SASL_PASSWORD); never pass a password as
    /// a flag, where other users of the machine can read it.
    #[arg(long, global = true, value_name = "PATH")]
    pub sasl_password_file: Option<std::path::PathBuf>,
    /// The CA certificate (PEM) the brokers' certificates are checked against (default:
    /// KAFKA_SSL_CAFILE, else the system's CA store).
    #[arg(long, global = true, value_name = "PATH")]
    pub ssl_ca: Option<String>,
    /// The client certificate (PEM) for mutual TLS (default: KAFKA_SSL_CERTFILE).
    #[arg(long, global = true, value_name = "PATH")]
    pub ssl_cert: Option<String>,
    /// The client certificate's key (PEM) for mutual TLS (default: KAFKA_SSL_KEYFILE).
    #[arg(long, global = true, value_name = "PATH")]
    pub ssl_key: Option<String>,
    /// Any other librdkafka property, `key=value` (repeatable; added to KAFKA_PROPERTIES).
    #[arg(long = "property", global = true, value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
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

    /// herald's configuration of the brokers: the `KAFKA_*` variables (security and
    /// `KAFKA_PROPERTIES` included), overridden by the flags.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable or flag that is invalid, or the password file that
    /// cannot be read.
    pub fn herald_config(&self) -> herald::Result<Config> {
        let mut config = Config::from_env("herald-cli")?;
        if let Some(servers) = self.bootstrap_servers.as_deref().map(str::trim) {
            if !servers.is_empty() && !servers.eq_ignore_ascii_case("embedded") {
                config = config.bootstrap_servers(servers);
            }
        }
        let security = &mut config.security;
        let flags = [
            (&mut security.protocol, &self.security_protocol, true),
            (&mut security.sasl_mechanism, &self.sasl_mechanism, true),
            (&mut security.sasl_username, &self.sasl_username, false),
            (&mut security.ssl_ca_location, &self.ssl_ca, false),
            (
                &mut security.ssl_certificate_location,
                &self.ssl_cert,
                false,
            ),
            (&mut security.ssl_key_location, &self.ssl_key, false),
        ];
        for (setting, flag, upper) in flags {
            if let Some(value) = flag {
                *setting = Some(if upper {
                    value.trim().to_ascii_uppercase()
                } else {
                    value.clone()
                });
            }
        }
        if let Some(path) = &self.sasl_password_file {
            let password = std::fs::read_to_string(path).map_err(|e| {
                Error::Config(format!(
                    "--sasl-password-file: cannot read `{}` ({e})",
                    path.display()
                ))
            })?;
            security.sasl_password = Some(Secret::new(password.trim_end_matches(['\r', '\n'])));
        }
        for (index, entry) in self.properties.iter().enumerate() {
            let Some((key, value)) = entry.split_once('=').filter(|(k, _)| !k.trim().is_empty())
            else {
                return Err(Error::Config(format!(
                    "--property number {} is not of the form key=value",
                    index + 1
                )));
            };
            config = config.property(key.trim(), value.trim());
        }
        config.validate()?;
        Ok(config)
    }

    /// A client configuration for the brokers (herald's security settings and properties; no
    /// group joined).
    ///
    /// # Errors
    /// As [`Common::bootstrap`] and [`Common::herald_config`].
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let bootstrap = self.bootstrap()?;
        let mut config = ClientConfig::new();
        for (key, value) in self.herald_config()?.client_properties(bootstrap) {
            config.set(key, value);
        }
        config
            .set("client.id", "herald-cli")
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "0");
        Ok(config)
    }
}
