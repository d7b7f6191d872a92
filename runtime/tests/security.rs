//! TLS, SASL and ACLs against a real Apache Kafka: the secured listeners that `.ci/kafka/cluster.sh`
//! starts (`HERALD_TEST_KAFKA_SASL_SSL`, `_SSL`, `_SASL_PLAINTEXT`, `_TLS_DIR`, user `alice`).
//! Each mode publishes and consumes end to end; a wrong password and an untrusted certificate fail
//! the bus's build within seconds with an error that names the setting and holds no secret; a
//! principal without WRITE on its dead-letter topic gets a clear error instead of a stall. Without
//! the variables each test says in one line that it was skipped (the embedded broker has no
//! authentication).

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use std::time::{Duration, Instant};

use herald::prelude::*;
use herald::Error;
use herald::{Secret, Security};
use support::*;

const PASSWORD: &str = "alice-secret";

/// The address of a secured listener, or `None` (with the line saying so) when there is none.
fn listener(variable: &str, test: &str) -> Option<String> {
    let found = std::env::var(variable).ok().filter(|v| !v.is_empty());
    if found.is_none() {
        say(&format!(
            "skipped {test}: it needs a secured Kafka listener in {variable} (bash .ci/kafka/cluster.sh start DIR; source DIR/env)"
        ));
    }
    found
}

fn tls(file: &str) -> String {
    format!(
        "{}/{file}",
        std::env::var("HERALD_TEST_KAFKA_TLS_DIR").expect("HERALD_TEST_KAFKA_TLS_DIR")
    )
}

/// A prefix under `sec.` (where alice's ACLs allow everything) of its own per test.
fn prefix(under: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{under}t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn scram(mechanism: &str, password: &str) -> Security {
    Security {
        protocol: Some("SASL_SSL".into()),
        sasl_mechanism: Some(mechanism.into()),
        sasl_username: Some("alice".into()),
        sasl_password: Some(Secret::new(password)),
        ssl_ca_location: Some(tls("ca.pem")),
        ..Security::default()
    }
}

fn mutual_tls(certificate: &str, key: &str) -> Security {
    Security {
        protocol: Some("SSL".into()),
        ssl_ca_location: Some(tls("ca.pem")),
        ssl_certificate_location: Some(tls(certificate)),
        ssl_key_location: Some(tls(key)),
        ..Security::default()
    }
}

fn plain() -> Security {
    Security {
        protocol: Some("SASL_PLAINTEXT".into()),
        sasl_mechanism: Some("PLAIN".into()),
        sasl_username: Some("alice".into()),
        sasl_password: Some(Secret::new(PASSWORD)),
        ..Security::default()
    }
}

fn oauthbearer() -> Security {
    Security {
        protocol: Some("SASL_PLAINTEXT".into()),
        sasl_mechanism: Some("OAUTHBEARER".into()),
        sasl_oauthbearer_config: Some(Secret::new("principal=alice")),
        ..Security::default()
    }
}

fn config(servers: &str, security: Security, topic_prefix: &str) -> Config {
    let mut config = Config::new("secured")
        .bootstrap_servers(servers)
        .topic_prefix(topic_prefix)
        .group_prefix(topic_prefix)
        .auto_create_topics(true)
        .topic_partitions(1)
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20));
    if security.sasl_mechanism.as_deref() == Some("OAUTHBEARER") {
        config = config.property("enable.sasl.oauthbearer.unsecure.jwt", "true");
    }
    config.security = security;
    config
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "security.notes")]
pub struct NoteFiled {
    #[event(key)]
    pub note: u64,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "security-notes")]
async fn file_note(event: NoteFiled) -> Result<(), HandlerError> {
    HANDLED.fetch_add(event.note, Ordering::SeqCst);
    Ok(())
}

/// Publishes through `security` and waits for the handler to take the event, then proves the
/// group committed it.
async fn round_trip(servers: &str, security: Security, note: u64) {
    let topic_prefix = prefix("sec.");
    let bus = Bus::builder(config(servers, security, &topic_prefix))
        .build()
        .await
        .expect("the secured bus builds");
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    let before = HANDLED.load(Ordering::SeqCst);
    let delivery = bus.publish(NoteFiled { note }).await.unwrap();
    assert_eq!(delivery.topic, format!("{topic_prefix}.security.notes"));
    wait_until("the handler took the note", || {
        HANDLED.load(Ordering::SeqCst) >= before + note
    })
    .await;
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_security_mode_publishes_and_consumes_end_to_end() {
    let test = "each_security_mode_publishes_and_consumes_end_to_end";
    let (Some(sasl_ssl), Some(ssl), Some(sasl_plaintext)) = (
        listener("HERALD_TEST_KAFKA_SASL_SSL", test),
        listener("HERALD_TEST_KAFKA_SSL", test),
        listener("HERALD_TEST_KAFKA_SASL_PLAINTEXT", test),
    ) else {
        return;
    };
    let modes = [
        (
            "SASL_SSL SCRAM-SHA-512",
            sasl_ssl.clone(),
            scram("SCRAM-SHA-512", PASSWORD),
        ),
        (
            "SASL_SSL SCRAM-SHA-256",
            sasl_ssl,
            scram("SCRAM-SHA-256", PASSWORD),
        ),
        (
            "SSL mutual TLS",
            ssl,
            mutual_tls("client.pem", "client.key"),
        ),
        ("SASL_PLAINTEXT PLAIN", sasl_plaintext.clone(), plain()),
        ("SASL_PLAINTEXT OAUTHBEARER", sasl_plaintext, oauthbearer()),
    ];
    for (note, (mode, servers, security)) in (1..).zip(modes) {
        let started = Instant::now();
        round_trip(&servers, security, note).await;
        println!("{mode}: published and handled in {:?}", started.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_build_within_seconds_naming_the_setting() {
    let test = "a_wrong_password_fails_the_build_within_seconds_naming_the_setting";
    let Some(servers) = listener("HERALD_TEST_KAFKA_SASL_SSL", test) else {
        return;
    };
    let wrong = "not-alices-password-42";
    let started = Instant::now();
    let err = Bus::builder(config(
        &servers,
        scram("SCRAM-SHA-512", wrong),
        &prefix("sec."),
    ))
    .build()
    .await
    .expect_err("a wrong password must not build a bus");
    let took = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
    assert!(
        text.contains("KAFKA_SASL_PASSWORD") && text.contains("`alice`"),
        "{text}"
    );
    assert!(!text.contains(wrong), "the password leaked: {text}");
    assert!(
        took < Duration::from_secs(10),
        "refused after {took:?}, not within seconds"
    );
    println!("wrong password refused in {took:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_within_seconds_naming_the_setting() {
    let test = "an_untrusted_certificate_fails_within_seconds_naming_the_setting";
    let (Some(ssl), Some(sasl_ssl)) = (
        listener("HERALD_TEST_KAFKA_SSL", test),
        listener("HERALD_TEST_KAFKA_SASL_SSL", test),
    ) else {
        return;
    };
    // The client does not trust the broker: its CA file is another CA.
    let mut distrusting = scram("SCRAM-SHA-512", PASSWORD);
    distrusting.ssl_ca_location = Some(tls("untrusted-ca.pem"));
    // The broker does not trust the client: its certificate is signed by another CA.
    let distrusted = mutual_tls("untrusted-client.pem", "untrusted-client.key");
    for (case, servers, security, setting) in [
        (
            "the broker's certificate",
            sasl_ssl,
            distrusting,
            "KAFKA_SSL_CAFILE",
        ),
        (
            "the client's certificate",
            ssl,
            distrusted,
            "KAFKA_SSL_CERTFILE",
        ),
    ] {
        let started = Instant::now();
        let err = Bus::builder(config(&servers, security, &prefix("sec.")))
            .build()
            .await
            .expect_err("an untrusted certificate must not build a bus");
        let took = started.elapsed();
        let text = err.to_string();
        assert!(
            matches!(err, Error::Authentication { .. }),
            "{case}: {err:?}"
        );
        assert!(text.contains(setting), "{case}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{case}: the password leaked: {text}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{case}: refused after {took:?}"
        );
        println!("untrusted {case} refused in {took:?}: {text}");
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "security.refunds")]
pub struct RefundFailed {
    #[event(key)]
    pub refund: u64,
}

#[handler(group = "security-refunds")]
async fn refund(_event: RefundFailed) -> Result<(), HandlerError> {
    Err(HandlerError::permanent(HandlerError::msg("always")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_that_cannot_write_its_dead_letter_topic_gets_a_clear_error() {
    let test = "a_principal_that_cannot_write_its_dead_letter_topic_gets_a_clear_error";
    let Some(servers) = listener("HERALD_TEST_KAFKA_SASL_SSL", test) else {
        return;
    };
    // Under `sec.nowrite.` alice may read and create, but not write.
    let topic_prefix = prefix("sec.nowrite.");
    let started = Instant::now();
    let result = Bus::builder(config(
        &servers,
        scram("SCRAM-SHA-512", PASSWORD),
        &topic_prefix,
    ))
    .only_groups(["security-refunds"])
    .build()
    .await;
    let bus = match result {
        Err(err) => {
            let text = err.to_string();
            assert!(
                text.contains(&format!("{topic_prefix}.security.refunds.dlq")),
                "the error names the dead-letter topic: {text}"
            );
            assert!(text.to_lowercase().contains("write"), "{text}");
            println!("refused at build in {:?}: {text}", started.elapsed());
            return;
        }
        Ok(bus) => bus,
    };
    bus.shutdown().await.unwrap();
    panic!("a bus whose principal cannot write its dead-letter topic was built");
}
