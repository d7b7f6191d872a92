//! Retries, backoff, jitter, attempt timeouts and version routing, on tokio's paused clock: every
//! wait is exact and nothing sleeps for real.

use std::cell::RefCell;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::Config;
use crate::consume::dynamic::Callers;
use crate::event::envelope::Metadata;
use crate::registry::{HandlerFuture, HandlerRetry};
use crate::wire::codec::encode_headers;

thread_local! {
    /// When each attempt of the test handlers started, on the paused clock.
    static ATTEMPTS: RefCell<Vec<Instant>> = const { RefCell::new(Vec::new()) };
}

fn attempts() -> Vec<Duration> {
    ATTEMPTS.with(|a| {
        let a = a.borrow();
        a.iter().map(|t| *t - a[0]).collect()
    })
}

fn gaps() -> Vec<Duration> {
    let at = attempts();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

fn failing(_: Incoming, _: Context) -> HandlerFuture {
    ATTEMPTS.with(|a| a.borrow_mut().push(Instant::now()));
    Box::pin(async {
        Err(DispatchError::Handler(HandlerError::msg(
            "the ledger is down",
        )))
    })
}

fn hanging(_: Incoming, _: Context) -> HandlerFuture {
    ATTEMPTS.with(|a| a.borrow_mut().push(Instant::now()));
    Box::pin(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(None)
    })
}

pub(crate) fn succeeding(_: Incoming, _: Context) -> HandlerFuture {
    Box::pin(async { Ok(None) })
}

pub(crate) const fn descriptor(
    name: &'static str,
    version: u32,
    call: fn(Incoming, Context) -> HandlerFuture,
) -> HandlerDescriptor {
    HandlerDescriptor {
        name,
        rust_path: name,
        group: None,
        event_type: "ledger.posted",
        event_version: version,
        topic: "ledger",
        event_rust_type: "LedgerPosted",
        command: false,
        concurrency: 1,
        call,
        retry: HandlerRetry {
            policy: None,
            max_retries: None,
            base_delay: None,
            max_delay: None,
            timeout: None,
        },
    }
}

static FAILING: HandlerDescriptor = descriptor("failing", 1, failing);
static HANGING: HandlerDescriptor = descriptor("hanging", 1, hanging);
static V1: HandlerDescriptor = descriptor("v1", 1, succeeding);
static V2: HandlerDescriptor = descriptor("v2", 2, succeeding);
static V4: HandlerDescriptor = descriptor("v4", 4, succeeding);

fn shared() -> Shared {
    Shared::for_test(&Config::new("dispatch-tests").embedded(), "127.0.0.1:1")
}

fn incoming() -> Incoming {
    let meta = Metadata {
        id: "e1".into(),
        event_type: "ledger.posted".into(),
        source: "tests".into(),
        spec_version: "1.0".into(),
        ..Metadata::default()
    };
    let position = crate::event::envelope::Position {
        topic: "ledger".into(),
        partition: 0,
        offset: 7,
    };
    Incoming::decode(Some(&encode_headers(&meta)), None, Some(b"{}"), position).unwrap()
}

fn policy(max_retries: u32, jitter: f64, timeout: Option<Duration>) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
        jitter,
        timeout,
        breaker: None,
        mode: Default::default(),
    }
}

async fn run(handler: &'static HandlerDescriptor, policy: RetryPolicy) -> HandlerOutcome {
    ATTEMPTS.with(|a| a.borrow_mut().clear());
    let route = Route {
        handler,
        call: Callers::default().of(handler),
        policy,
        breaker: None,
        durations: metrics::HandlerDurations::new("test"),
    };
    run_with_retries(
        &route,
        &incoming(),
        &shared(),
        &CancellationToken::new(),
        &|_| {},
        0,
    )
    .await
}

fn ms(values: &[u64]) -> Vec<Duration> {
    values.iter().map(|v| Duration::from_millis(*v)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_backs_off_exponentially_up_to_the_cap_then_gives_up() {
    let HandlerOutcome::Failed(failure) = run(&FAILING, policy(5, 0.0, None)).await else {
        panic!("expected a failure")
    };
    assert_eq!(gaps(), ms(&[100, 200, 400, 500, 500]));
    assert_eq!(failure.kind, FailureKind::RetriesExhausted);
    assert_eq!(failure.attempts, 6);
    assert_eq!(failure.handlers, "failing");
    assert_eq!(failure.reason, "the ledger is down");
}

#[tokio::test(start_paused = true)]
async fn no_retries_means_one_attempt() {
    let HandlerOutcome::Failed(failure) = run(&FAILING, policy(0, 0.0, None)).await else {
        panic!("expected a failure")
    };
    assert_eq!((failure.attempts, attempts().len()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_each_delay_within_its_fraction() {
    fastrand::seed(7);
    let HandlerOutcome::Failed(_) = run(&FAILING, policy(4, 0.5, None)).await else {
        panic!("expected a failure")
    };
    let full = ms(&[100, 200, 400, 500]);
    let gaps = gaps();
    assert_eq!(gaps.len(), full.len());
    for (gap, full) in gaps.iter().zip(&full) {
        assert!(
            *gap <= *full && *gap >= *full / 2,
            "{gap:?} outside {full:?}/2..={full:?}"
        );
    }
    assert_ne!(gaps, full, "jitter changed nothing");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_outlives_its_timeout_fails_and_is_retried() {
    let started = Instant::now();
    let HandlerOutcome::Failed(failure) =
        run(&HANGING, policy(2, 0.0, Some(Duration::from_millis(250)))).await
    else {
        panic!("expected a failure")
    };
    // 250 ms attempt, 100 ms wait, 250 ms attempt, 200 ms wait, 250 ms attempt.
    assert_eq!(attempts(), ms(&[0, 350, 800]));
    assert_eq!(started.elapsed(), Duration::from_millis(1_050));
    assert_eq!(failure.attempts, 3);
    assert!(
        failure.reason.contains("timed out after 250ms"),
        "{}",
        failure.reason
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_the_wait_for_the_next_try() {
    ATTEMPTS.with(|a| a.borrow_mut().clear());
    let cancel = CancellationToken::new();
    let route = Route {
        handler: &FAILING,
        call: Callers::default().of(&FAILING),
        policy: RetryPolicy {
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            ..policy(10, 0.0, None)
        },
        breaker: None,
        durations: metrics::HandlerDurations::new("test"),
    };
    let stopper = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let outcome = run_with_retries(&route, &incoming(), &shared(), &cancel, &|_| {}, 0).await;
    stopper.await.unwrap();
    assert!(matches!(outcome, HandlerOutcome::Stopped));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(attempts().len(), 1);
}

#[test]
fn each_schema_version_goes_to_the_handlers_that_read_it() {
    let p = policy(0, 0.0, None);
    let routes: Vec<Route> = [&V1, &V2, &V4]
        .into_iter()
        .map(|handler| Route {
            handler,
            call: Callers::default().of(handler),
            policy: p,
            breaker: None,
            durations: metrics::HandlerDurations::new("test"),
        })
        .collect();
    let chosen = |version| -> Vec<&str> {
        for_version(&routes, version)
            .iter()
            .map(|r| r.handler.name)
            .collect()
    };
    assert_eq!(chosen(Some(1)), ["v1"]);
    assert_eq!(chosen(Some(2)), ["v2"]);
    assert_eq!(chosen(Some(3)), ["v2"], "the newest older reader");
    assert_eq!(chosen(Some(9)), ["v4"]);
    assert_eq!(
        chosen(Some(0)),
        ["v1"],
        "older than all: the oldest newer reader"
    );
    assert_eq!(chosen(None), ["v4"], "no version: the newest");
}
