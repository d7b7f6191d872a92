//! The first contact with real brokers: one metadata request, through a client that records what
//! librdkafka reports, so that wrong credentials or an untrusted certificate fail within seconds
//! with an error that names the setting to fix, instead of every publish waiting out its delivery
//! timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{Brokers, Config};
use crate::error::{Error, Result};

/// The longest a bus waits at start-up for the brokers' first answer.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(10);

/// A client context that keeps the last authentication or TLS error librdkafka reported.
#[derive(Default)]
struct Recorder {
    refused: Mutex<Option<(RDKafkaErrorCode, String)>>,
}

impl ClientContext for Recorder {
    fn error(&self, error: KafkaError, reason: &str) {
        use RDKafkaErrorCode as C;
        let code = match error.rdkafka_error_code() {
            Some(code @ (C::Authentication | C::SaslAuthenticationFailed | C::SSL)) => code,
            // A broker that refuses the client's certificate ends the TLS session with an alert,
            // which reaches the client as a transport failure.
            Some(C::BrokerTransportFailure) if reason.contains("SSL routines") => C::SSL,
            _ => return,
        };
        *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some((code, reason.into()));
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// What the probe found.
#[derive(Debug)]
pub(crate) enum Probe {
    /// A broker answered.
    Answered,
    /// No broker answered within the wait.
    Unreachable(Duration),
}

/// Asks the brokers at `servers` for metadata once, waiting at most `limit`, on the calling
/// (blocking) thread.
///
/// # Errors
/// [`Error::Authentication`] when the brokers refused the credentials or the TLS handshake failed,
/// naming what to check; [`Error::Config`] when the client cannot be created.
pub(crate) fn probe(config: &Config, servers: &str, limit: Duration) -> Result<Probe> {
    // A producer's poll hands librdkafka's error events, with their text, to the context (a
    // consumer's turns them into bare codes); it never sends anything.
    let client: BaseProducer<Recorder> = config
        .admin_config(servers)
        .create_with_context(Recorder::default())
        .map_err(|e| Error::kafka("connecting to the brokers", e))?;
    let started = Instant::now();
    loop {
        let answered = client
            .client()
            .fetch_metadata(None, Duration::from_millis(500))
            .is_ok();
        client.poll(Duration::ZERO);
        let refused = client
            .context()
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((code, reason)) = refused {
            return Err(refusal(config, servers, code, &reason));
        }
        if answered {
            return Ok(Probe::Answered);
        }
        if started.elapsed() >= limit {
            return Ok(Probe::Unreachable(limit));
        }
    }
}

/// The error of brokers that refused the client, saying which settings to check.
fn refusal(config: &Config, servers: &str, code: RDKafkaErrorCode, reason: &str) -> Error {
    let security = &config.security;
    let check = if code == RDKafkaErrorCode::SSL {
        if security.ssl_certificate_location.is_some() {
            "the brokers' CA (KAFKA_SSL_CAFILE) and the client certificate and key the brokers must trust (KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)".to_owned()
        } else {
            "the CA that signed the brokers' certificates (KAFKA_SSL_CAFILE; without it the system's CA store is used), and whether the brokers require a client certificate (KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE)".to_owned()
        }
    } else {
        let mechanism = security.sasl_mechanism.as_deref().unwrap_or("none");
        match &security.sasl_username {
            Some(user) => format!(
                "the user name `{user}` and its password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD) and the mechanism {mechanism} (KAFKA_SASL_MECHANISM)"
            ),
            None => format!(
                "the SASL settings (KAFKA_SASL_MECHANISM is {mechanism}, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SASL_OAUTHBEARER_CONFIG) and the security protocol (KAFKA_SECURITY_PROTOCOL)"
            ),
        }
    };
    let mut reason = reason.to_owned();
    for secret in [
        security.sasl_password.as_ref(),
        security.ssl_key_password.as_ref(),
        security.sasl_oauthbearer_config.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        if !secret.expose().is_empty() {
            reason = reason.replace(secret.expose(), "***");
        }
    }
    Error::Authentication {
        servers: servers.to_owned(),
        reason,
        check,
    }
}

impl Config {
    /// Connects to the configured brokers once and asks for metadata, waiting at most `timeout`:
    /// what a bus does at start-up, for tools and readiness checks.
    ///
    /// # Errors
    /// [`Error::Authentication`] when the brokers refuse the credentials or the TLS handshake
    /// fails (the message names the settings to check); [`Error::BrokerUnreachable`] when none
    /// answered; [`Error::Config`] when no real brokers are configured or the configuration is
    /// invalid.
    pub async fn check_connection(&self, timeout: Duration) -> Result<()> {
        self.validate()?;
        let Brokers::Servers(servers) = &self.brokers else {
            return Err(Error::Config(
                "no real Kafka brokers are configured: set KAFKA_BOOTSTRAP_SERVERS (or `Config::bootstrap_servers`) to host:port,...".into(),
            ));
        };
        for warning in self.security_warnings() {
            tracing::warn!("{warning}");
        }
        let (config, servers) = (self.clone(), servers.clone());
        tokio::task::spawn_blocking(move || match probe(&config, &servers, timeout)? {
            Probe::Answered => Ok(()),
            Probe::Unreachable(waited) => Err(Error::BrokerUnreachable { servers, waited }),
        })
        .await
        .map_err(|_| Error::State("probing the brokers panicked"))?
    }

    /// The librdkafka properties of a plain client (no group, no producer settings) of these
    /// brokers: `bootstrap.servers`, the security settings and the pass-through properties, for
    /// tools that build their own Kafka client.
    pub fn client_properties(&self, bootstrap_servers: &str) -> Vec<(String, String)> {
        let mut properties: Vec<(String, String)> = self
            .admin_config(bootstrap_servers)
            .config_map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        properties.sort();
        properties
    }
}
