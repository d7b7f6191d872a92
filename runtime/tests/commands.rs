//! Commands with request/reply over the Kafka protocol (the test broker: embedded, or `HERALD_TEST_KAFKA`): `#[derive(Command)]`,
//! a `#[handler]` returning the reply, `bus.request(cmd)`. Proves the round trip and its wire
//! headers, typed replies, the timeout when nobody answers, that a late reply never reaches a
//! later request, that concurrent requests of two instances sharing one reply topic each get their
//! own reply, that a failing handler's caller gets `CommandFailed` at once while the command is
//! dead-lettered, that a fire-and-forget command is handled without a reply, and that a command
//! retried through the retry topics still gets its reply.

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald::headers::dlq;
use herald::prelude::*;
use herald::Error;
use rdkafka::message::Message;
use support::*;

/// A command with a struct reply, a 10 s default timeout and a keyed field.
#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = UserCreatedReply, name = "user.create", timeout = "10s")]
pub struct CreateUser {
    #[command(key)]
    pub user_id: String,
    pub email: String,
    /// How long the handler takes.
    pub delay_ms: u64,
    /// `Some("permanent")` or `Some("transient")`: the handler fails so.
    pub fail: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct UserCreatedReply {
    pub user_id: String,
    pub welcome: String,
    /// The correlation id the handler saw.
    pub correlation: Option<String>,
}

/// A command with a primitive reply and the default name, topic and timeout.
#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = u64)]
pub struct CountUsers {
    pub prefix: String,
}

/// A command nobody handles.
#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = (), name = "nobody.ping", timeout = "400ms")]
pub struct Unanswered {
    pub n: u32,
}

/// Every `CreateUser` a handler saw: user id → the `ce_replyto` it carried.
static SEEN: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());

fn seen(user_id: &str) -> Vec<Option<String>> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| id == user_id)
        .map(|(_, reply_to)| reply_to.clone())
        .collect()
}

#[handler(group = "user-service", retries = 1, backoff = "10ms")]
async fn create_user(command: Event<CreateUser>) -> Result<UserCreatedReply, HandlerError> {
    SEEN.lock().unwrap().push((
        command.data.user_id.clone(),
        command.meta.reply_to().map(str::to_owned),
    ));
    if command.data.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(command.data.delay_ms)).await;
    }
    match command.data.fail.as_deref() {
        Some("permanent") => {
            return Err(HandlerError::permanent(HandlerError::msg(
                "the email is taken",
            )))
        }
        Some(_) => return Err(HandlerError::msg("the database is down")),
        None => {}
    }
    // `huge:...`: a reply larger than the producer's `message.max.bytes` of the refusing test.
    let welcome = match command.data.email.strip_prefix("huge:") {
        Some(email) => email.repeat(1000),
        None => format!("welcome, {}", command.data.email),
    };
    Ok(UserCreatedReply {
        user_id: command.data.user_id.clone(),
        welcome,
        correlation: command.meta.correlation_id.clone(),
    })
}

/// A command whose handler retries through the retry topics.
#[derive(Command, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[command(reply = u32, name = "stock.reserve", timeout = "30s")]
pub struct ReserveStock {
    #[command(key)]
    pub sku: String,
}

/// Attempts of `reserve_stock` so far.
static RESERVE_ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Fails its first two attempts; the retries go through `stock.commands.retry.N`.
#[handler(group = "stock-service", policy = "through-topics")]
async fn reserve_stock(_command: ReserveStock) -> Result<u32, HandlerError> {
    let attempt = RESERVE_ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
    if attempt < 3 {
        return Err(HandlerError::msg("the warehouse is offline"));
    }
    Ok(attempt)
}

#[handler(group = "user-service")]
async fn count_users(command: CountUsers, _ctx: &Context) -> anyhow::Result<u64> {
    Ok(command.prefix.len() as u64 * 10)
}

fn config(service: &str) -> Config {
    Config::new(service)
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(20))
}

/// A bus of `service` on `kafka` running the command handlers, started and assigned.
async fn handling_bus(kafka: &TestKafka, service: &str) -> Bus {
    let bus = kafka
        .builder(config(service))
        .only_groups(["user-service"])
        .retry_policy("through-topics", through_topics())
        .build()
        .await
        .expect("bus builds");
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    bus
}

/// A bus of `service` on `kafka` that only sends (no consumer groups started).
async fn requesting_bus(kafka: &TestKafka, service: &str) -> Bus {
    kafka
        .builder(config(service))
        .retry_policy("through-topics", through_topics())
        .build()
        .await
        .expect("bus builds")
}

fn create(user_id: &str) -> CreateUser {
    CreateUser {
        user_id: user_id.into(),
        email: format!("{user_id}@example.com"),
        delay_ms: 0,
        fail: None,
    }
}

#[test]
fn the_derive_sets_name_topic_timeout_and_reply() {
    assert_eq!(CreateUser::EVENT_TYPE, "user.create");
    assert_eq!(CreateUser::TOPIC, "user.commands");
    assert_eq!(
        <CreateUser as herald::Command>::TIMEOUT,
        Duration::from_secs(10)
    );
    const { assert!(CreateUser::IS_COMMAND) };
    assert_eq!(CountUsers::EVENT_TYPE, "count.users");
    assert_eq!(CountUsers::TOPIC, "count.commands");
    assert_eq!(
        <CountUsers as herald::Command>::TIMEOUT,
        Duration::from_secs(30)
    );
    assert_eq!(
        create("u-7").partition_key().as_deref(),
        Some("u-7"),
        "`#[command(key)]` is the partition key"
    );
    let handlers = herald::registry::Registry::collect().unwrap();
    let create_user = handlers
        .handlers()
        .iter()
        .find(|h| h.name == "create_user")
        .unwrap();
    assert!(create_user.command);
    assert_eq!(create_user.topic, "user.commands");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_gets_its_typed_reply_with_the_wire_headers_and_the_command_is_committed() {
    let kafka = TestKafka::start();
    let bus = handling_bus(&kafka, "signup").await;

    let reply = bus
        .request_with(
            create("u-round"),
            RequestOptions::new().correlation_id("corr-round"),
        )
        .await
        .unwrap();
    assert_eq!(
        reply,
        UserCreatedReply {
            user_id: "u-round".into(),
            welcome: "welcome, u-round@example.com".into(),
            correlation: Some("corr-round".into()),
        }
    );
    let count: u64 = bus
        .request(CountUsers {
            prefix: "abc".into(),
        })
        .await
        .unwrap();
    assert_eq!(count, 30);
    assert_eq!(bus.pending_requests(), 0);
    assert_eq!(seen("u-round"), [Some(kafka.topic("signup.replies"))]);
    // The handling side counts a reply once the broker acknowledged it, which may be just after
    // the requester read it.
    wait_until("both replies were counted", || {
        bus.stats().replies_sent == 2
    })
    .await;
    let stats = bus.stats();
    assert_eq!((stats.requests, stats.request_timeouts), (2, 0));

    // On the wire: the command names the reply topic; the reply answers its id, carries its
    // correlation and key.
    let servers = bus.bootstrap_servers().to_owned();
    let commands = read_topic(&servers, &kafka.topic("user.commands"), 1);
    let command = &commands[0];
    assert_eq!(
        header(command, "ce_replyto"),
        Some(kafka.topic("signup.replies"))
    );
    assert_eq!(header(command, "ce_timeoutms").as_deref(), Some("10000"));
    let replies = read_topic(&servers, &kafka.topic("signup.replies"), 2);
    let reply = replies
        .iter()
        .find(|r| header(r, "ce_type").as_deref() == Some("user.create.reply"))
        .expect("the reply of user.create");
    assert_eq!(header(reply, "ce_causationid"), header(command, "ce_id"));
    assert_eq!(
        header(reply, "ce_correlationid").as_deref(),
        Some("corr-round")
    );
    assert_eq!(reply.key(), Some(&b"u-round"[..]));
    assert_eq!(header(reply, "ce_source").as_deref(), Some("signup"));
    let count_reply = replies
        .iter()
        .find(|r| header(r, "ce_type").as_deref() == Some("count.users.reply"))
        .expect("the reply of count.users");
    assert_eq!(count_reply.payload(), Some(&b"30"[..]));

    bus.shutdown().await.unwrap();
    assert_all_committed(
        &servers,
        &kafka.group("user-service"),
        &kafka.topic("user.commands"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_answers_times_out_within_its_timeout() {
    // The first request of a bus starts its reply listener within its own timeout. On a broker
    // of its own: the request may time out before its command is sent, or just after.
    let first = TestKafka::start();
    let first_bus = requesting_bus(&first, "pinger").await;
    let started = Instant::now();
    let error = first_bus.request(Unanswered { n: 0 }).await.unwrap_err();
    let waited = started.elapsed();
    println!(
        "a 400 ms request nobody answers, the first of its bus: RequestTimeout after {waited:?}"
    );
    assert!(matches!(error, Error::RequestTimeout { .. }), "{error:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(900),
        "waited {waited:?}"
    );
    // The listener's start outlived the request: starting it again finds it running.
    first_bus.start_replies().await.unwrap();
    assert_eq!(first_bus.stats().request_timeouts, 1);

    let kafka = TestKafka::start();
    let bus = requesting_bus(&kafka, "pinger").await;
    bus.start_replies().await.unwrap();
    // The command's own timeout (400 ms).
    let started = Instant::now();
    let error = bus.request(Unanswered { n: 1 }).await.unwrap_err();
    let waited = started.elapsed();
    match &error {
        Error::RequestTimeout {
            command, timeout, ..
        } => {
            assert_eq!(*command, "nobody.ping");
            assert_eq!(*timeout, Duration::from_millis(400));
        }
        other => panic!("expected RequestTimeout, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_millis(900),
        "waited {waited:?}"
    );
    // A per-request timeout.
    let started = Instant::now();
    let error = bus
        .request_with(
            Unanswered { n: 2 },
            RequestOptions::new().timeout(Duration::from_millis(150)),
        )
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, Error::RequestTimeout { .. }), "{error:?}");
    println!("a 150 ms request nobody answers: RequestTimeout after {waited:?}");
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_millis(500),
        "waited {waited:?}"
    );
    assert_eq!(
        bus.pending_requests(),
        0,
        "timed-out requests are forgotten"
    );
    let stats = bus.stats();
    assert_eq!(
        (stats.requests, stats.request_timeouts, stats.late_replies),
        (2, 2, 0)
    );
    // `ce_replyto` is herald's: a caller cannot set it as an extension.
    let refused = bus
        .publish_with(
            Unanswered { n: 3 },
            PublishOptions::new().extension("replyto", "elsewhere"),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::Config(_)), "{refused:?}");
    // The commands were published all the same, with their reply topic.
    let commands = read_topic(bus.bootstrap_servers(), &kafka.topic("nobody.commands"), 2);
    assert!(commands
        .iter()
        .all(|c| header(c, "ce_replyto") == Some(kafka.topic("pinger.replies"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_reply_is_dropped_and_never_reaches_a_later_request() {
    let kafka = TestKafka::start();
    let bus = handling_bus(&kafka, "slowpoke").await;
    // Otherwise the first request's 300 ms include starting the listener, which on a real Kafka
    // waits until the brokers serve the new reply topic.
    bus.start_replies().await.unwrap();
    let mut slow = create("u-late");
    slow.delay_ms = 1500;
    let started = Instant::now();
    let error = bus
        .request_with(
            slow,
            RequestOptions::new().timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::RequestTimeout { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_millis(800));

    // The same key: the same command partition, so this command is handled after the slow one and
    // its request is waiting when the slow one's (late) reply arrives on the same reply partition.
    let mut next = create("u-late");
    next.email = "second@example.com".into();
    let reply = bus.request(next).await.unwrap();
    assert_eq!(reply.welcome, "welcome, second@example.com");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the later request was answered after the late reply came"
    );
    // Both replies are on the reply topic, the late one first.
    let replies = read_topic(bus.bootstrap_servers(), &kafka.topic("slowpoke.replies"), 2);
    let welcomes: Vec<String> = replies
        .iter()
        .map(|r| {
            serde_json::from_slice::<UserCreatedReply>(r.payload().unwrap())
                .unwrap()
                .welcome
        })
        .collect();
    assert_eq!(
        welcomes,
        ["welcome, u-late@example.com", "welcome, second@example.com"]
    );
    // The late reply was read before the later one, and dropped.
    let stats = bus.stats();
    assert_eq!(
        (stats.requests, stats.request_timeouts, stats.late_replies),
        (2, 1, 1)
    );
    assert_eq!(bus.pending_requests(), 0);
    bus.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_two_instances_each_get_their_own_reply() {
    let kafka = TestKafka::start();
    let handler = handling_bus(&kafka, "user-backend").await;
    // Two instances of one service: one reply topic, read by both.
    let first = requesting_bus(&kafka, "web").await;
    let second = requesting_bus(&kafka, "web").await;
    const EACH: usize = 100;
    let started = Instant::now();
    let requests = (0..2 * EACH).map(|i| {
        let bus = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move {
            let user_id = format!("u-{i}");
            let correlation = format!("corr-{i}");
            let reply = bus
                .request_with(
                    create(&user_id),
                    RequestOptions::new().correlation_id(correlation.clone()),
                )
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            (i, user_id, correlation, reply)
        }
    });
    let results = futures::future::join_all(requests).await;
    let elapsed = started.elapsed();
    for (i, user_id, correlation, reply) in &results {
        assert_eq!(&reply.user_id, user_id, "request {i} got another's reply");
        assert_eq!(reply.correlation.as_ref(), Some(correlation));
    }
    println!(
        "{} concurrent requests from two instances answered in {elapsed:?}",
        results.len()
    );
    // Every reply went to the shared topic; each instance completed only its own.
    let replies = read_topic(
        first.bootstrap_servers(),
        &kafka.topic("web.replies"),
        2 * EACH,
    );
    let mut causes: HashMap<String, usize> = HashMap::new();
    for reply in &replies {
        *causes
            .entry(header(reply, "ce_causationid").unwrap())
            .or_default() += 1;
    }
    assert_eq!(causes.len(), 2 * EACH, "one reply per command id");
    assert_eq!(
        (first.pending_requests(), second.pending_requests()),
        (0, 0)
    );
    for instance in [&first, &second] {
        let stats = instance.stats();
        assert_eq!(
            (stats.requests, stats.request_timeouts, stats.late_replies),
            (EACH as u64, 0, 0),
            "each instance ignores the other's replies without counting them late"
        );
    }
    wait_until("every reply was counted", || {
        handler.stats().replies_sent == 2 * EACH as u64
    })
    .await;
    handler.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_fails_the_request_at_once_and_dead_letters_the_command() {
    let kafka = TestKafka::start();
    let bus = handling_bus(&kafka, "registrar").await;

    let mut taken = create("u-taken");
    taken.fail = Some("permanent".into());
    let started = Instant::now();
    let error = bus.request(taken).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed at once, not at the 10 s timeout"
    );
    match &error {
        Error::CommandFailed {
            command,
            kind,
            handler,
            message,
            ..
        } => {
            assert_eq!(*command, "user.create");
            assert_eq!(kind, "permanent");
            assert_eq!(handler, "create_user");
            assert!(message.contains("the email is taken"), "{message}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }

    let mut down = create("u-down");
    down.fail = Some("transient".into());
    let error = bus.request(down).await.unwrap_err();
    assert!(
        matches!(&error, Error::CommandFailed { kind, .. } if kind == "retries-exhausted"),
        "{error:?}"
    );
    assert_eq!(seen("u-down").len(), 2, "tried once and retried once");

    let letters = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("user.commands.dlq"),
        2,
    );
    let mut kinds: Vec<String> = letters
        .iter()
        .map(|l| header(l, dlq::ERROR_KIND).unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["permanent", "retries-exhausted"]);
    wait_until("two error replies were counted", || {
        bus.stats().replies_sent == 2
    })
    .await;
    assert!(letters
        .iter()
        .all(|l| header(l, "ce_replyto") == Some(kafka.topic("registrar.replies"))));
    let servers = bus.bootstrap_servers().to_owned();
    bus.shutdown().await.unwrap();
    assert_all_committed(
        &servers,
        &kafka.group("user-service"),
        &kafka.topic("user.commands"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_and_forget_command_is_handled_without_a_reply() {
    let kafka = TestKafka::start();
    let bus = handling_bus(&kafka, "batch").await;
    bus.publish(create("u-forget")).await.unwrap();
    wait_until("the command was handled", || !seen("u-forget").is_empty()).await;
    assert_eq!(seen("u-forget"), [None], "no `ce_replyto`");
    let servers = bus.bootstrap_servers().to_owned();
    bus.shutdown().await.unwrap();
    assert_all_committed(
        &servers,
        &kafka.group("user-service"),
        &kafka.topic("user.commands"),
    );
    // No request was made: the bus never started its reply listener nor created its reply topic.
    assert_eq!(bus.pending_requests(), 0);
    let info = bus.topic_info(&kafka.topic("batch.replies")).await;
    assert!(info.is_err(), "no reply topic: {info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_whose_reply_the_broker_refuses_is_dead_lettered() {
    let kafka = TestKafka::start();
    // Replies of more than 2000 bytes are refused by the producer (the command is far smaller).
    let refusing = config("refusing").property("message.max.bytes", "2000");
    let bus = kafka
        .builder(refusing)
        .only_groups(["user-service"])
        .build()
        .await
        .expect("bus builds");
    bus.start().await.unwrap();
    bus.wait_for_assignment(WAIT).await.unwrap();
    // A command from another producer (plain CloudEvents headers) asking for a reply that cannot
    // be written: the handler runs, its reply is refused.
    let servers = bus.bootstrap_servers().to_owned();
    let producer = plain_producer(&servers);
    send_raw(
        &producer,
        &kafka.topic("user.commands"),
        Some(b"u-refused"),
        br#"{"user_id":"u-refused","email":"huge:0123456789","delay_ms":0,"fail":null}"#,
        &[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"cmd-refused"),
            ("ce_type", b"user.create"),
            ("ce_source", b"another-sdk"),
            ("ce_replyto", b"caller.replies"),
        ],
    )
    .await;
    let letters = read_topic(&servers, &kafka.topic("user.commands.dlq"), 1);
    assert_eq!(
        header(&letters[0], dlq::ERROR_KIND).as_deref(),
        Some("reply-undeliverable")
    );
    assert_eq!(header(&letters[0], "ce_id").as_deref(), Some("cmd-refused"));
    assert_eq!(seen("u-refused"), [Some("caller.replies".to_owned())]);
    bus.shutdown().await.unwrap();
    assert_all_committed(
        &servers,
        &kafka.group("user-service"),
        &kafka.topic("user.commands"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_retried_through_the_retry_topics_still_gets_its_reply() {
    let kafka = TestKafka::start();
    let handling = kafka
        .builder(config("stock"))
        .only_groups(["stock-service"])
        .retry_policy("through-topics", through_topics())
        .build()
        .await
        .expect("bus builds");
    handling.start().await.unwrap();
    handling.wait_for_assignment(WAIT).await.unwrap();
    let requesting = requesting_bus(&kafka, "shop").await;
    let reply = requesting
        .request(ReserveStock {
            sku: "sku-1".into(),
        })
        .await
        .expect("the reply comes after two retries through the retry topics");
    assert_eq!(reply, 3, "answered by the third attempt");
    // The failed attempts went through the first two retry tiers, not in place.
    let bootstrap = handling.bootstrap_servers().to_owned();
    for tier in ["stock.commands.retry.1", "stock.commands.retry.2"] {
        let copies = read_topic(&bootstrap, &kafka.topic(tier), 1);
        assert_eq!(
            header(&copies[0], "ce_replyto"),
            Some(kafka.topic("shop.replies")),
            "{tier} keeps the command's reply topic"
        );
    }
    handling.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_waiting_requests_and_a_later_request_starts_a_new_listener() {
    let kafka = TestKafka::start();
    let handling = handling_bus(&kafka, "users").await;
    let requesting = requesting_bus(&kafka, "crm").await;
    let first = requesting.request(create("u-s1")).await.expect("a reply");
    assert_eq!(first.user_id, "u-s1");

    // The handler takes 5 s; the request would wait up to its 10 s timeout.
    let waiting = tokio::spawn({
        let bus = requesting.clone();
        async move {
            let started = Instant::now();
            let slow = CreateUser {
                delay_ms: 5_000,
                ..create("u-s2")
            };
            (bus.request(slow).await, started.elapsed())
        }
    });
    wait_until("the slow request waits for its reply", || {
        requesting.pending_requests() == 1
    })
    .await;
    requesting.shutdown().await.expect("shutdown");
    let (result, took) = waiting.await.unwrap();
    assert!(
        matches!(result, Err(Error::State(_))),
        "the waiting request ends with the shutdown: {result:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "ended by the shutdown, not by the 5 s handler or the 10 s timeout: {took:?}"
    );
    assert_eq!(requesting.pending_requests(), 0);

    // A request after the shutdown starts a new listener and gets its own reply.
    let again = requesting
        .request(create("u-s3"))
        .await
        .expect("a reply through a new listener");
    assert_eq!(again.user_id, "u-s3");
    handling.shutdown().await.unwrap();
}
