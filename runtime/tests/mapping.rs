//! Domain → integration mapping over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): publishing a domain
//! event also publishes every integration event declared `#[event(from = ...)]` for it — built by
//! `From` or by a `with` function —, each caused by the domain event and in its correlation,
//! from the bus, from a batch, from a handler's context and into an outbox's encoded records.

mod support;

use std::time::Duration;

use herald::prelude::*;
use rdkafka::message::Message;
use support::*;

#[domain_event(aggregate = "mapping-member", aggregate_id = member_id)]
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct MemberRegistered {
    pub member_id: String,
    pub email: String,
    pub password_hash: String,
}

/// Built with `From`: what other services may know of a new member (no password hash).
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(topic = "mapping-tests.members", from = MemberRegistered)]
pub struct MemberJoined {
    #[event(key)]
    pub member_id: String,
    pub email: String,
}

impl From<MemberRegistered> for MemberJoined {
    fn from(event: MemberRegistered) -> Self {
        Self {
            member_id: event.member_id,
            email: event.email,
        }
    }
}

/// Built by a function.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(topic = "mapping-tests.mails", from = MemberRegistered, with = welcome_mail)]
pub struct WelcomeMailRequested {
    pub to: String,
    pub template: String,
}

fn welcome_mail(event: &MemberRegistered) -> WelcomeMailRequested {
    WelcomeMailRequested {
        to: event.email.clone(),
        template: "welcome".into(),
    }
}

/// Handled to publish a domain event from a handler's context.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "mapping-tests.signups")]
pub struct SignupSubmitted {
    #[event(key)]
    pub member_id: String,
    pub email: String,
}

#[handler(group = "mapping-signups", retries = 0)]
async fn register_member(event: SignupSubmitted, ctx: &Context) -> Result<(), HandlerError> {
    ctx.publish(MemberRegistered {
        member_id: event.member_id,
        email: event.email,
        password_hash: "x".into(),
    })
    .await?;
    Ok(())
}

fn member(n: u32) -> MemberRegistered {
    MemberRegistered {
        member_id: format!("m-{n}"),
        email: format!("m{n}@example.com"),
        password_hash: "argon2$secret".into(),
    }
}

async fn bus(kafka: &TestKafka, groups: &[&str]) -> Bus {
    kafka
        .builder(
            Config::new("members")
                .commit_interval(Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(20)),
        )
        .only_groups(groups.iter().copied())
        .build()
        .await
        .expect("bus builds")
}

fn json<T: serde::de::DeserializeOwned>(message: &rdkafka::message::OwnedMessage) -> T {
    serde_json::from_slice(message.payload().expect("a value")).expect("the event's JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_a_domain_event_publishes_its_integration_counterparts_caused_by_it() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["mapping-signups"]).await;
    let bootstrap = bus.bootstrap_servers().to_owned();
    let delivery = bus.publish(member(1)).await.expect("published");
    assert_eq!(delivery.topic, kafka.topic("domain.mapping-member.events"));

    let domain = read_topic(&bootstrap, &kafka.topic("domain.mapping-member.events"), 1);
    let joined = read_topic(&bootstrap, &kafka.topic("mapping-tests.members"), 1);
    let mails = read_topic(&bootstrap, &kafka.topic("mapping-tests.mails"), 1);
    let domain_id = header(&domain[0], "ce_id").expect("ce_id");
    for counterpart in [&joined[0], &mails[0]] {
        assert_eq!(
            header(counterpart, "ce_causationid"),
            Some(domain_id.clone())
        );
        assert_eq!(
            header(counterpart, "ce_correlationid"),
            Some(domain_id.clone())
        );
        assert_ne!(header(counterpart, "ce_id"), Some(domain_id.clone()));
    }
    assert_eq!(
        json::<MemberJoined>(&joined[0]),
        MemberJoined {
            member_id: "m-1".into(),
            email: "m1@example.com".into()
        }
    );
    assert_eq!(joined[0].key(), Some(&b"m-1"[..]), "keyed by its own key");
    assert_eq!(
        header(&joined[0], "ce_type").as_deref(),
        Some("member.joined")
    );
    assert_eq!(
        json::<WelcomeMailRequested>(&mails[0]),
        WelcomeMailRequested {
            to: "m1@example.com".into(),
            template: "welcome".into()
        }
    );
    let raw_joined = String::from_utf8_lossy(joined[0].payload().unwrap()).into_owned();
    assert!(
        !raw_joined.contains("argon2"),
        "the mapping left the hash out: {raw_joined}"
    );

    // A caller's correlation is carried to the counterparts.
    bus.publish_with(member(2), PublishOptions::new().correlation_id("order-7"))
        .await
        .expect("published");
    let joined = read_topic(&bootstrap, &kafka.topic("mapping-tests.members"), 2);
    let second = joined
        .iter()
        .find(|m| json::<MemberJoined>(m).member_id == "m-2")
        .expect("m-2 joined");
    assert_eq!(
        header(second, "ce_correlationid").as_deref(),
        Some("order-7")
    );

    // Publishing an integration event directly maps nothing further (one level deep).
    bus.publish(MemberJoined {
        member_id: "m-3".into(),
        email: "m3@example.com".into(),
    })
    .await
    .expect("published");
    let _ = read_topic(&bootstrap, &kafka.topic("mapping-tests.members"), 3);
    assert_eq!(
        message_count(&bootstrap, &kafka.topic("domain.mapping-member.events")),
        2
    );
    assert_eq!(
        message_count(&bootstrap, &kafka.topic("mapping-tests.mails")),
        2
    );
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_domain_events_returns_their_own_deliveries_and_publishes_every_counterpart() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["mapping-signups"]).await;
    let bootstrap = bus.bootstrap_servers().to_owned();
    let deliveries = bus
        .publish_batch((1..=5).map(member))
        .await
        .expect("published");
    assert_eq!(deliveries.len(), 5);
    assert!(deliveries
        .iter()
        .all(|d| d.topic == kafka.topic("domain.mapping-member.events")));
    let joined = read_topic(&bootstrap, &kafka.topic("mapping-tests.members"), 5);
    let mut members: Vec<String> = joined
        .iter()
        .map(|m| json::<MemberJoined>(m).member_id)
        .collect();
    members.sort();
    assert_eq!(members, ["m-1", "m-2", "m-3", "m-4", "m-5"]);
    assert_eq!(
        message_count(&bootstrap, &kafka.topic("mapping-tests.mails")),
        5
    );
    // Each counterpart is caused by the domain event with its own member.
    let domain = read_topic(&bootstrap, &kafka.topic("domain.mapping-member.events"), 5);
    for message in &joined {
        let cause = header(message, "ce_causationid").expect("caused");
        let source = domain
            .iter()
            .find(|d| header(d, "ce_id").as_deref() == Some(cause.as_str()))
            .expect("the cause is one of the domain events");
        assert_eq!(
            json::<MemberRegistered>(source).member_id,
            json::<MemberJoined>(message).member_id
        );
    }
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoding_for_an_outbox_includes_the_counterparts_in_order() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["mapping-signups"]).await;
    let records = bus
        .encode_with_mapped(&member(9), PublishOptions::default())
        .expect("encodes");
    let types: Vec<&str> = records.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "member.registered",
            "member.joined",
            "welcome.mail.requested"
        ]
    );
    let causation = |r: &herald::EncodedEvent| {
        r.headers
            .iter()
            .find(|(name, _)| name == "ce_causationid")
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(causation(&records[0]), None);
    assert_eq!(causation(&records[1]), Some(records[0].id.clone()));
    assert_eq!(causation(&records[2]), Some(records[0].id.clone()));
    // Nothing was sent.
    assert_eq!(
        message_count(
            bus.bootstrap_servers(),
            &kafka.topic("mapping-tests.members")
        ),
        0
    );
    bus.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_event_published_by_a_handler_maps_in_the_handled_events_correlation() {
    let kafka = TestKafka::start();
    let bus = bus(&kafka, &["mapping-signups"]).await;
    let bootstrap = bus.bootstrap_servers().to_owned();
    bus.start().await.expect("starts");
    let signup = bus
        .publish_with(
            SignupSubmitted {
                member_id: "m-42".into(),
                email: "m42@example.com".into(),
            },
            PublishOptions::new().correlation_id("signup-flow-1"),
        )
        .await
        .expect("published");
    let _ = signup;
    let joined = read_topic(&bootstrap, &kafka.topic("mapping-tests.members"), 1);
    let domain = read_topic(&bootstrap, &kafka.topic("domain.mapping-member.events"), 1);
    assert_eq!(
        header(&joined[0], "ce_correlationid").as_deref(),
        Some("signup-flow-1")
    );
    assert_eq!(
        header(&domain[0], "ce_correlationid").as_deref(),
        Some("signup-flow-1")
    );
    assert_eq!(
        header(&joined[0], "ce_causationid"),
        header(&domain[0], "ce_id")
    );
    bus.shutdown().await.expect("shutdown");
}
