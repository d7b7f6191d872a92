//! Crash and outage across process boundaries: `herald broker` runs in a process of its own, and
//! `herald-probe` services are SIGKILLed, SIGTERMed and restarted around it, or the broker goes down
//! under them. Each test prints its numbers (`--nocapture`) and asserts that no event is lost.
//!
//! Run: `cargo test -p herald-cli --test crash -- --nocapture`.

mod common;
#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::message::Message;

const TOPICS: &[(&str, i32)] = &[("probe.events", 4), ("probe.events.dlq", 1)];
const LONG: Duration = Duration::from_secs(90);

fn all(n: u64) -> BTreeSet<u64> {
    (0..n).collect()
}

fn lost(expected: &BTreeSet<u64>, handled: &BTreeSet<u64>) -> Vec<u64> {
    expected.difference(handled).copied().collect()
}

/// Stops a consumer with SIGTERM and expects a clean exit.
fn stop(consumer: &mut Proc) {
    consumer.terminate();
    let status = consumer.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM",
        consumer.name
    );
}

#[test]
fn a_consumer_killed_five_times_loses_nothing() {
    const EVENTS: u64 = 20_000;
    const KILLS: usize = 5;
    let dir = TempDir::new("kills");
    let started = Instant::now();
    let broker = Broker::start(&dir, TOPICS);
    let log = dir.path("handled.log");
    let mut publisher = broker.publisher(
        &dir,
        &["20000", "--chunk", "1000", "--pause-ms", "100"],
        &[],
    );
    // About 1 ms per event and partition: the stream outlasts the five kills.
    let slow = [("PROBE_DELAY_MS", "1")];
    let mut consumer = broker.consumer(&dir, "consumer-0", &log, &slow);
    for kill in 1..=KILLS {
        let before = unique(&[&log]).len();
        let target = (kill * 3_000).max(before + 500);
        wait_until(
            &format!("{target} events were handled before kill {kill}"),
            LONG,
            || unique(&[&log]).len() >= target,
        );
        let (lag, high) = broker.lag_and_high("probe.events", "probe");
        println!(
            "kills: kill {kill} after {} distinct events handled; {} committed of {high} published",
            unique(&[&log]).len(),
            high - lag
        );
        consumer.kill();
        consumer = broker.consumer(&dir, &format!("consumer-{kill}"), &log, &slow);
    }
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    assert_eq!(acknowledged(&publisher.stdout()), all(EVENTS));
    wait_until("every event was handled", LONG, || {
        unique(&[&log]).len() as u64 == EVENTS
    });
    stop(&mut consumer);
    let handled = handled(&log);
    let distinct: BTreeSet<u64> = handled.iter().copied().collect();
    let lost = lost(&all(EVENTS), &distinct);
    println!(
        "kills: events {EVENTS}, kills {KILLS}, handled {} times, duplicates {}, lost {}, wall {:.1} s",
        handled.len(),
        handled.len() - distinct.len(),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "lost {} events, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn a_ten_second_broker_outage_mid_stream_loses_nothing_acknowledged() {
    let dir = TempDir::new("outage");
    let started = Instant::now();
    let mut broker = Broker::start(&dir, TOPICS);
    let log = dir.path("handled.log");
    let mut consumer = broker.consumer(&dir, "consumer", &log, &[]);
    consumer.wait_for_line("assigned", Duration::from_secs(30));
    // About 12 s of publishing at 100 events per 100 ms, the outage in the middle of it.
    let mut publisher = broker.publisher(
        &dir,
        &["12000", "--chunk", "100", "--pause-ms", "100"],
        &[("PROBE_DELIVERY_TIMEOUT_MS", "5000")],
    );
    wait_until("2,000 events were handled", LONG, || count(&log) >= 2_000);
    broker.control_ok("down");
    let down_at = Instant::now();
    let handled_at_down = count(&log);
    std::thread::sleep(Duration::from_secs(10)); // the outage itself, not a proof of absence
    broker.control_ok("up");
    let outage = down_at.elapsed();
    let handled_at_up = count(&log);
    let recovery = wait_until(
        "the consumer handled a new event after the outage",
        LONG,
        || count(&log) > handled_at_up,
    );
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    let lines = publisher.stdout();
    let acked = acknowledged(&lines);
    wait_until("every acknowledged event was handled", LONG, || {
        unique(&[&log]).is_superset(&acked)
    });
    stop(&mut consumer);
    let handled = handled(&log);
    let distinct: BTreeSet<u64> = handled.iter().copied().collect();
    let lost = lost(&acked, &distinct);
    println!(
        "outage: published 12000, acknowledged {}, reported failed {}, handled {} ({} distinct, \
         {} of them reported failed), handled during the outage {}, duplicates {}, lost {}, \
         recovery after `up` {:.2} s, outage {:.1} s, wall {:.1} s",
        acked.len(),
        failed(&lines),
        handled.len(),
        distinct.len(),
        distinct.difference(&acked).count(),
        handled_at_up - handled_at_down,
        handled.len() - distinct.len(),
        lost.len(),
        recovery.as_secs_f64(),
        outage.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(!acked.is_empty());
    assert!(
        lost.is_empty(),
        "acknowledged but never handled: {:?}",
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn a_killed_group_members_partitions_move_to_the_other() {
    const EVENTS: u64 = 12_000;
    let dir = TempDir::new("handover");
    let started = Instant::now();
    let broker = Broker::start(&dir, TOPICS);
    let mut publisher = broker.publisher(&dir, &["12000", "--chunk", "2000"], &[]);
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    let (a_log, b_log) = (dir.path("a.log"), dir.path("b.log"));
    let slow = [("PROBE_DELAY_MS", "1")];
    let mut a = broker.consumer(&dir, "a", &a_log, &slow);
    let mut b = broker.consumer(&dir, "b", &b_log, &slow);
    wait_until("both members handle events", LONG, || {
        count(&a_log) > 0 && count(&b_log) >= 300
    });
    b.kill();
    let killed_at = Instant::now();
    let b_keys: BTreeSet<u64> = handled(&b_log).iter().map(|s| s % 8).collect();
    let a_before = count(&a_log);
    wait_until("every event was handled", LONG, || {
        unique(&[&a_log, &b_log]).len() as u64 == EVENTS
    });
    let finished = killed_at.elapsed();
    stop(&mut a);
    let (a_seqs, b_seqs) = (handled(&a_log), handled(&b_log));
    let taken_over: BTreeSet<u64> = a_seqs[a_before..].iter().map(|s| s % 8).collect();
    let distinct = unique(&[&a_log, &b_log]);
    let lost = lost(&all(EVENTS), &distinct);
    println!(
        "handover: events {EVENTS}, a handled {}, b handled {} before its kill (keys {b_keys:?}), \
         duplicates {}, lost {}, done {:.1} s after the kill, wall {:.1} s",
        a_seqs.len(),
        b_seqs.len(),
        a_seqs.len() + b_seqs.len() - distinct.len(),
        lost.len(),
        finished.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(lost.is_empty(), "lost {:?}", &lost[..lost.len().min(10)]);
    assert!(
        b_keys.is_subset(&taken_over),
        "a never handled keys {b_keys:?} of the killed member after the kill (it handled {taken_over:?})"
    );
}

#[test]
fn poison_ends_in_the_dead_letter_topic_and_a_thrice_failing_handler_is_handled_once() {
    const EVENTS: u64 = 300;
    let poison: BTreeSet<u64> = [7, 150, 299].into();
    const FLAKY: u64 = 42;
    let dir = TempDir::new("poison");
    let broker = Broker::start(&dir, TOPICS);
    let mut publisher =
        broker.publisher(&dir, &["300", "--poison", "7,150,299", "--fail", "42"], &[]);
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    let (log, failures) = (dir.path("handled.log"), dir.path("failures.log"));
    let failures_env = failures.to_str().unwrap().to_owned();
    let mut consumer =
        broker.consumer(&dir, "consumer", &log, &[("PROBE_FAILURES", &failures_env)]);
    let expected: BTreeSet<u64> = all(EVENTS).difference(&poison).copied().collect();
    wait_until("every healthy event was handled", LONG, || {
        unique(&[&log]) == expected
    });
    wait_until("the group committed the whole topic", LONG, || {
        broker.lag_and_high("probe.events", "probe") == (0, EVENTS as i64)
    });
    stop(&mut consumer);

    let (_, dead) = broker.lag_and_high("probe.events.dlq", "probe");
    let letters = support::read_topic(&broker.bootstrap, "probe.events.dlq", poison.len());
    let dead_seqs: BTreeSet<u64> = letters
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            value["seq"].as_u64().unwrap()
        })
        .collect();
    let handled = handled(&log);
    let attempts = |seq: u64| handled_count(&failures, seq);
    println!(
        "poison: events {EVENTS}, handled {}, dead letters {dead} (seqs {dead_seqs:?}, kinds {:?}, \
         tries {:?}), failed attempts of {FLAKY}: {}, of the poison: {:?}",
        handled.len(),
        letters.iter().map(|m| support::header(m, "dlq_error_kind")).collect::<Vec<_>>(),
        letters.iter().map(|m| support::header(m, "dlq_retry_count")).collect::<Vec<_>>(),
        attempts(FLAKY),
        poison.iter().map(|s| attempts(*s)).collect::<Vec<_>>(),
    );
    assert_eq!(
        dead,
        poison.len() as i64,
        "nothing but the poison is dead-lettered"
    );
    assert_eq!(dead_seqs, poison);
    for letter in &letters {
        assert_eq!(
            support::header(letter, "dlq_error_kind").as_deref(),
            Some("retries-exhausted")
        );
        assert_eq!(
            support::header(letter, "dlq_consumer_group").as_deref(),
            Some("probe")
        );
    }
    assert_eq!(
        attempts(FLAKY),
        3,
        "{FLAKY} failed three times before it succeeded"
    );
    assert_eq!(
        handled.iter().filter(|s| **s == FLAKY).count(),
        1,
        "{FLAKY} handled once"
    );
    assert!(
        handled.iter().all(|s| !poison.contains(s)),
        "a poison event was handled"
    );
}

fn handled_count(log: &std::path::Path, seq: u64) -> usize {
    handled(log).iter().filter(|s| **s == seq).count()
}

#[test]
fn sigterm_with_events_in_flight_duplicates_none_beyond_those_in_flight() {
    const EVENTS: u64 = 5_000;
    let dir = TempDir::new("sigterm");
    let broker = Broker::start(&dir, TOPICS);
    let mut publisher = broker.publisher(&dir, &["5000", "--chunk", "1000"], &[]);
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    let log = dir.path("handled.log");
    let slow = [("PROBE_DELAY_MS", "2")];
    let mut first = broker.consumer(&dir, "first", &log, &slow);
    wait_until("1,000 events were handled", LONG, || count(&log) >= 1_000);
    // Read before the signal: anything handled from here to the exit counts as in flight, so
    // the bound can only be generous, never too tight.
    let at_signal = count(&log);
    stop(&mut first);
    let at_exit = count(&log);
    let in_flight = at_exit - at_signal;
    let mut second = broker.consumer(&dir, "second", &log, &slow);
    wait_until("every event was handled", LONG, || {
        unique(&[&log]).len() as u64 == EVENTS
    });
    wait_until("the group committed the whole topic", LONG, || {
        broker.lag_and_high("probe.events", "probe") == (0, EVENTS as i64)
    });
    stop(&mut second);
    let handled = handled(&log);
    let distinct: BTreeSet<u64> = handled.iter().copied().collect();
    let duplicates = handled.len() - distinct.len();
    let lost = lost(&all(EVENTS), &distinct);
    println!(
        "sigterm: events {EVENTS}, handled before the signal {at_signal}, finished after it \
         (in flight) {in_flight}, handled in total {}, duplicates {duplicates}, lost {}",
        handled.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost {:?}", &lost[..lost.len().min(10)]);
    // A graceful stop lets in-flight handlers finish and commits everything handled; only what
    // was in flight at the signal may come back (if its final commit is refused), nothing older.
    assert!(
        duplicates <= in_flight,
        "{duplicates} events were handled twice, more than the {in_flight} in flight at SIGTERM"
    );
}
