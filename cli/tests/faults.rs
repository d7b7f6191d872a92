//! The fault suite: a publishing `herald-probe` and two consuming ones (one group) against a
//! three-node Apache Kafka (KRaft, replication factor 3, `min.insync.replicas=2`), while nodes are
//! killed, restarted and lost. Each test prints its numbers (published, acknowledged, handled,
//! duplicates, lost, recovery times) and asserts that no acknowledged event is lost.
//!
//! Run (the suite skips itself, saying so, without a three-node cluster):
//! `bash .ci/kafka/cluster.sh start /tmp/k3 --nodes 3 && source /tmp/k3/env &&
//! cargo test -p herald-cli --test faults -- --nocapture --test-threads=1`.

mod common;
#[path = "../../runtime/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::message::Message;
use support::cluster::{FaultCluster, NodeId};

const LONG: Duration = Duration::from_secs(180);
const PARTITIONS: i32 = 6;

/// One fault at a time: the tests share the cluster.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster, whole, for one test; `None` when there is none (the suite is skipped).
fn cluster(test: &str) -> Option<(FaultCluster, MutexGuard<'static, ()>)> {
    let cluster = FaultCluster::from_env(test)?;
    let guard = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    cluster.ensure_all_running();
    Some((cluster, guard))
}

/// One scenario: its topics (`{prefix}.probe.events` with six partitions, its dead-letter topic),
/// its group, the probes' shared log and a sampler of progress.
struct Scenario<'a> {
    name: &'static str,
    cluster: &'a FaultCluster,
    dir: TempDir,
    prefix: String,
    log: PathBuf,
    started: Instant,
    /// How many keys the publisher spreads the events over (`--keys`).
    keys: u64,
}

impl<'a> Scenario<'a> {
    fn new(cluster: &'a FaultCluster, name: &'static str) -> Self {
        let prefix = format!("fault-{name}-{}", std::process::id());
        cluster.create_topics(&[
            (&format!("{prefix}.probe.events"), PARTITIONS),
            (&format!("{prefix}.probe.events.dlq"), 1),
        ]);
        let dir = TempDir::new(&format!("fault-{name}"));
        let log = dir.path("handled.log");
        Self {
            name,
            cluster,
            dir,
            prefix,
            log,
            started: Instant::now(),
            keys: 8,
        }
    }

    fn topic(&self) -> String {
        format!("{}.probe.events", self.prefix)
    }

    fn dlq(&self) -> String {
        format!("{}.probe.events.dlq", self.prefix)
    }

    fn probe(&self, log: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut command = Command::new(PROBE);
        command
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.cluster.bootstrap)
            .env("KAFKA_TOPIC_PREFIX", &self.prefix)
            .env("KAFKA_GROUP_PREFIX", &self.prefix)
            .env("PROBE_LOG", log)
            .env("RUST_LOG", "warn");
        if support::consumer_protocol() {
            command.env("KAFKA_GROUP_PROTOCOL", "consumer");
        } else {
            // The broker's smallest session timeout: a killed member's partitions move in 6 s.
            command.env(
                "KAFKA_PROPERTIES",
                "session.timeout.ms=6000;heartbeat.interval.ms=1000",
            );
        }
        command.envs(envs.iter().copied());
        command
    }

    /// A consuming probe of the scenario's group, appending to the shared log.
    fn consumer(&self, name: &str, envs: &[(&str, &str)]) -> Proc {
        let command = self.probe(&self.log, &["consume"], envs);
        Proc::spawn(name, command, &self.dir.path(&format!("{name}.err")))
    }

    /// The publishing probe.
    fn publisher(&self, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut all = vec!["publish"];
        all.extend_from_slice(args);
        let command = self.probe(&self.dir.path("publisher.log"), &all, envs);
        Proc::spawn("publisher", command, &self.dir.path("publisher.err"))
    }

    fn handled(&self) -> Vec<u64> {
        handled(&self.log)
    }

    fn count(&self) -> usize {
        count(&self.log)
    }

    /// The partition with the most records now.
    fn busiest_partition(&self) -> i32 {
        let highs = support::committed_and_high(
            &self.cluster.bootstrap,
            &format!("{}.probe", self.prefix),
            &self.topic(),
        );
        highs
            .iter()
            .max_by_key(|(_, _, high)| *high)
            .map(|(p, _, _)| *p)
            .unwrap()
    }

    /// The distinct sequence numbers the topic holds, read to its high watermarks.
    fn stored(&self) -> BTreeSet<u64> {
        let total = support::message_count(&self.cluster.bootstrap, &self.topic());
        support::read_topic(&self.cluster.bootstrap, &self.topic(), total as usize)
            .iter()
            .map(seq_of)
            .collect()
    }

    /// Waits until every acknowledged event was handled, stops the consumers (SIGTERM), and
    /// returns the numbers every scenario prints.
    fn finish(&self, publisher: &mut Proc, consumers: Vec<Proc>) -> Outcome {
        assert!(
            publisher.wait_exit(LONG).success(),
            "the publisher failed: {}",
            std::fs::read_to_string(self.dir.path("publisher.err")).unwrap_or_default()
        );
        let lines = publisher.stdout();
        let acked = acknowledged(&lines);
        let waited = Instant::now();
        let drained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("every acknowledged event was handled", LONG, || {
                self.handled()
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .is_superset(&acked)
            })
        }));
        let drain = waited.elapsed();
        for mut consumer in consumers {
            stop(&mut consumer);
        }
        let handled = self.handled();
        let distinct: BTreeSet<u64> = handled.iter().copied().collect();
        let lost: Vec<u64> = acked.difference(&distinct).copied().collect();
        let stored = self.stored();
        let acked_not_stored: Vec<u64> = acked.difference(&stored).copied().collect();
        let outcome = Outcome {
            published: lines
                .iter()
                .find_map(|l| l.strip_prefix("published "))
                .map_or(0, |n| n.parse().unwrap()),
            acknowledged: acked.len(),
            failed: failed(&lines),
            handled: handled.len(),
            duplicates: handled.len() - distinct.len(),
            lost,
            acked_not_stored,
            out_of_order: out_of_order(&handled, self.keys),
            drain,
        };
        if drained.is_err() {
            panic!(
                "{}: acknowledged events never handled: {} (first {:?})",
                self.name,
                outcome.lost.len(),
                &outcome.lost[..outcome.lost.len().min(10)]
            );
        }
        outcome
    }

    /// Prints the scenario's line and asserts lost 0 and nothing acknowledged that is not stored.
    fn report(&self, outcome: &Outcome, details: &str) {
        println!(
            "{}: published {}, acknowledged {}, failed {}, handled {}, duplicates {}, lost {}, \
             acknowledged but not stored {}, keys out of order {}, {details}, drained {:.1} s \
             after the publisher, wall {:.1} s",
            self.name,
            outcome.published,
            outcome.acknowledged,
            outcome.failed,
            outcome.handled,
            outcome.duplicates,
            outcome.lost.len(),
            outcome.acked_not_stored.len(),
            outcome.out_of_order,
            outcome.drain.as_secs_f64(),
            self.started.elapsed().as_secs_f64()
        );
        assert!(
            outcome.lost.is_empty(),
            "lost {:?}",
            &outcome.lost[..outcome.lost.len().min(10)]
        );
        assert!(
            outcome.acked_not_stored.is_empty(),
            "acknowledged but not on the topic: {:?}",
            &outcome.acked_not_stored[..outcome.acked_not_stored.len().min(10)]
        );
        assert_eq!(
            outcome.out_of_order, 0,
            "a key's events were handled out of order"
        );
    }
}

/// What a scenario measured.
struct Outcome {
    published: u64,
    acknowledged: usize,
    failed: u64,
    handled: usize,
    duplicates: usize,
    lost: Vec<u64>,
    acked_not_stored: Vec<u64>,
    out_of_order: usize,
    drain: Duration,
}

fn seq_of(message: &rdkafka::message::OwnedMessage) -> u64 {
    let value: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
    value["seq"].as_u64().unwrap()
}

/// How many keys (the probe's key is `seq % keys`) saw an event handled for the first time after
/// a later event of the key: within a key, first handlings must come in publishing order (an event
/// handled again after a crash is a duplicate, not a reordering).
fn out_of_order(handled: &[u64], keys: u64) -> usize {
    let mut seen = BTreeSet::new();
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let mut bad = BTreeSet::new();
    for &seq in handled {
        if !seen.insert(seq) {
            continue;
        }
        let key = seq % keys;
        if last.get(&key).is_some_and(|&l| l > seq) {
            bad.insert(key);
        }
        last.insert(key, seq);
    }
    bad.len()
}

/// Stops a consumer with SIGTERM and expects a clean exit.
fn stop(consumer: &mut Proc) {
    consumer.terminate();
    let status = consumer.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "{} exited with {status} after SIGTERM",
        consumer.name
    );
}

/// Samples the handled count every 50 ms in the background; says how long the longest stretch
/// without progress was between two instants.
struct Progress {
    samples: Arc<Mutex<Vec<(Instant, usize)>>>,
    running: Arc<AtomicBool>,
}

impl Progress {
    fn watch(log: PathBuf) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        {
            let (samples, running) = (samples.clone(), running.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::Relaxed) {
                    let n = count(&log);
                    samples.lock().unwrap().push((Instant::now(), n));
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        Self { samples, running }
    }

    /// The longest time after `from` during which the handled count did not grow, up to the
    /// first sample after `until`.
    fn longest_stall(&self, from: Instant, until: Instant) -> Duration {
        let samples = self.samples.lock().unwrap();
        let mut longest = Duration::ZERO;
        let mut since: Option<(Instant, usize)> = None;
        for &(at, n) in samples.iter().filter(|(at, _)| *at >= from) {
            match since {
                Some((start, m)) if n == m => longest = longest.max(at - start),
                _ => since = Some((at, n)),
            }
            if at > until {
                break;
            }
        }
        longest
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

/// Polls until `topic`'s `partition` has a leader other than `old`; how long that took.
fn new_leader(
    cluster: &FaultCluster,
    topic: &str,
    partition: i32,
    old: NodeId,
) -> (NodeId, Duration) {
    let started = Instant::now();
    loop {
        let leader = cluster.leader_of(topic, partition);
        if leader > 0 && leader != old {
            return (leader, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{topic}/{partition} got no new leader"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_partition_leader_loses_nothing() {
    let Some((cluster, _whole)) = cluster("a_killed_partition_leader_loses_nothing") else {
        return;
    };
    let run = Scenario::new(&cluster, "leader-kill");
    let progress = Progress::watch(run.log.clone());
    let consumers = vec![run.consumer("a", &[]), run.consumer("b", &[])];
    let mut publisher = run.publisher(&["20000", "--chunk", "250", "--pause-ms", "40"], &[]);
    wait_until("5,000 events were handled", LONG, || run.count() >= 5_000);
    let partition = run.busiest_partition();
    let leader = cluster.leader_of(&run.topic(), partition);
    let killed_at = Instant::now();
    cluster.kill(leader);
    let (successor, election) = new_leader(&cluster, &run.topic(), partition, leader);
    wait_until("2,000 more events were handled", LONG, || {
        run.count() >= 7_000
    });
    let stall = progress.longest_stall(killed_at, Instant::now());
    cluster.restart(leader);
    let back = cluster.wait_in_sync(&run.topic(), LONG);
    let outcome = run.finish(&mut publisher, consumers);
    run.report(
        &outcome,
        &format!(
            "killed node {leader} (leader of partition {partition}) at 5,000 handled; new leader \
             {successor} after {:.2} s; longest handling stall {:.2} s; restarted and in sync \
             again {:.1} s later",
            election.as_secs_f64(),
            stall.as_secs_f64(),
            back.as_secs_f64()
        ),
    );
}

#[test]
fn a_rolling_restart_loses_nothing() {
    let Some((cluster, _whole)) = cluster("a_rolling_restart_loses_nothing") else {
        return;
    };
    let run = Scenario::new(&cluster, "rolling-restart");
    let progress = Progress::watch(run.log.clone());
    let consumers = vec![run.consumer("a", &[]), run.consumer("b", &[])];
    let mut publisher = run.publisher(&["20000", "--chunk", "100", "--pause-ms", "100"], &[]);
    wait_until("1,000 events were handled", LONG, || run.count() >= 1_000);
    let mut steps = Vec::new();
    for id in 1..=3 {
        let at = Instant::now();
        cluster.term(id);
        let down = at.elapsed();
        cluster.restart(id);
        let in_sync = cluster.wait_in_sync(&run.topic(), LONG);
        steps.push(format!(
            "node {id}: stopped in {:.1} s, back and in sync {:.1} s later, longest stall {:.2} s",
            down.as_secs_f64(),
            (at.elapsed() - down).as_secs_f64(),
            progress.longest_stall(at, Instant::now()).as_secs_f64()
        ));
        let _ = in_sync;
    }
    let handled_during = run.count();
    let outcome = run.finish(&mut publisher, consumers);
    run.report(
        &outcome,
        &format!(
            "SIGTERM and restart of each node in turn ({}), {handled_during} handled by the end of the restarts",
            steps.join("; ")
        ),
    );
}

#[test]
fn a_killed_active_controller_loses_nothing() {
    let Some((cluster, _whole)) = cluster("a_killed_active_controller_loses_nothing") else {
        return;
    };
    let run = Scenario::new(&cluster, "controller-kill");
    let progress = Progress::watch(run.log.clone());
    let consumers = vec![run.consumer("a", &[]), run.consumer("b", &[])];
    let mut publisher = run.publisher(&["10000", "--chunk", "200", "--pause-ms", "50"], &[]);
    wait_until("2,000 events were handled", LONG, || run.count() >= 2_000);
    let controller = cluster.active_controller();
    let killed_at = Instant::now();
    cluster.kill(controller);
    let successor = loop {
        let now = cluster.active_controller();
        if now != controller {
            break now;
        }
        assert!(killed_at.elapsed() < LONG, "no new controller");
        std::thread::sleep(Duration::from_millis(200));
    };
    let election = killed_at.elapsed();
    wait_until("1,000 more events were handled", LONG, || {
        run.count() >= 3_000
    });
    let stall = progress.longest_stall(killed_at, Instant::now());
    cluster.restart(controller);
    let back = cluster.wait_in_sync(&run.topic(), LONG);
    let outcome = run.finish(&mut publisher, consumers);
    run.report(
        &outcome,
        &format!(
            "killed node {controller} (the active controller) at 2,000 handled; node {successor} \
             led the quorum {:.1} s later (read from the nodes' quorum-state files every 0.2 s); longest \
             handling stall {:.2} s; restarted and in sync again {:.1} s later",
            election.as_secs_f64(),
            stall.as_secs_f64(),
            back.as_secs_f64()
        ),
    );
}

#[test]
fn two_nodes_down_fail_publishing_clearly_and_the_backlog_drains_after() {
    let Some((cluster, _whole)) =
        cluster("two_nodes_down_fail_publishing_clearly_and_the_backlog_drains_after")
    else {
        return;
    };
    let run = Scenario::new(&cluster, "two-down");
    let consumers = vec![run.consumer("a", &[]), run.consumer("b", &[])];
    // About 40 s of publishing; the outage takes about 15 s of it.
    let mut publisher = run.publisher(
        &["8000", "--chunk", "100", "--pause-ms", "400"],
        &[("PROBE_DELIVERY_TIMEOUT_MS", "5000")],
    );
    wait_until("1,000 events were handled", LONG, || run.count() >= 1_000);
    let acked_before = acknowledged(&publisher.stdout()).len();
    let down_at = Instant::now();
    cluster.kill(2);
    cluster.kill(3);
    wait_until("a publish failed", LONG, || failed(&publisher.stdout()) > 0);
    let first_failure = down_at.elapsed();
    std::thread::sleep(Duration::from_secs(8)); // the outage itself, not a proof of absence
    let acked_during = acknowledged(&publisher.stdout()).len() - acked_before;
    let up_at = Instant::now();
    cluster.restart(2);
    cluster.restart(3);
    let acked_at_up = acknowledged(&publisher.stdout()).len();
    wait_until("publishing succeeded again", LONG, || {
        acknowledged(&publisher.stdout()).len() > acked_at_up
    });
    let publishing_again = up_at.elapsed();
    let outcome = run.finish(&mut publisher, consumers);
    let errors = std::fs::read_to_string(run.dir.path("publisher.err")).unwrap_or_default();
    let error = errors
        .lines()
        .find(|l| l.contains("not acknowledged") || l.contains("not published"))
        .unwrap_or("")
        .to_owned();
    run.report(
        &outcome,
        &format!(
            "nodes 2 and 3 killed; first failed publish {:.1} s later (delivery timeout 5 s); \
             acknowledged during the outage {acked_during}; publishing again {:.1} s after the \
             restarts began; the error: `{error}`",
            first_failure.as_secs_f64(),
            publishing_again.as_secs_f64()
        ),
    );
    assert!(
        outcome.failed > 0,
        "nothing failed with two of three nodes down"
    );
    assert!(
        first_failure < Duration::from_secs(20),
        "the first failure came {first_failure:?} after the loss, long past the 5 s delivery timeout"
    );
    assert!(!error.is_empty(), "no error was reported: {errors}");
}

#[test]
fn a_consumer_killed_five_times_with_a_leader_move_loses_nothing() {
    let Some((cluster, _whole)) =
        cluster("a_consumer_killed_five_times_with_a_leader_move_loses_nothing")
    else {
        return;
    };
    let run = Scenario::new(&cluster, "consumer-kills");
    let slow = [("PROBE_DELAY_MS", "1")];
    let mut members = vec![run.consumer("a-0", &slow), run.consumer("b-0", &slow)];
    let mut publisher = run.publisher(&["20000", "--chunk", "500", "--pause-ms", "200"], &[]);
    let mut moved = String::new();
    for kill in 1..=5usize {
        let target = kill * 2_500;
        wait_until(&format!("{target} events were handled"), LONG, || {
            run.count() >= target
        });
        let victim = kill % 2;
        members[victim].kill();
        let name = format!("{}-{kill}", if victim == 0 { "a" } else { "b" });
        members[victim] = run.consumer(&name, &slow);
        if kill == 2 {
            // A leader move between two kills: a controlled shutdown of partition 0's leader.
            let leader = cluster.leader_of(&run.topic(), 0);
            cluster.term(leader);
            let (successor, took) = new_leader(&cluster, &run.topic(), 0, leader);
            cluster.restart(leader);
            moved = format!(
                "partition 0's leader moved from node {leader} to {successor} ({:.2} s) after kill 2",
                took.as_secs_f64()
            );
        }
    }
    let outcome = run.finish(&mut publisher, members);
    run.report(
        &outcome,
        &format!("5 SIGKILLs alternating between the two members; {moved}"),
    );
}

#[test]
fn dead_letters_written_during_a_leader_election_are_all_there() {
    let Some((cluster, _whole)) =
        cluster("dead_letters_written_during_a_leader_election_are_all_there")
    else {
        return;
    };
    let run = Scenario::new(&cluster, "dlq-election");
    let poison: BTreeSet<u64> = (0..4_000).filter(|s| s % 40 == 7).collect();
    let list = poison
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let consumers = vec![run.consumer("a", &[]), run.consumer("b", &[])];
    let mut publisher = run.publisher(
        &[
            "4000",
            "--chunk",
            "100",
            "--pause-ms",
            "100",
            "--poison",
            &list,
        ],
        &[],
    );
    let dlq = run.dlq();
    wait_until("20 dead letters were written", LONG, || {
        support::message_count(&cluster.bootstrap, &dlq) >= 20
    });
    let leader = cluster.leader_of(&dlq, 0);
    let killed_at = Instant::now();
    cluster.kill(leader);
    let (successor, election) = new_leader(&cluster, &dlq, 0, leader);
    let letters_at_kill = support::message_count(&cluster.bootstrap, &dlq);
    cluster.restart(leader);
    let _ = killed_at;
    let healthy: BTreeSet<u64> = (0..4_000).filter(|s| !poison.contains(s)).collect();
    assert!(publisher.wait_exit(LONG).success(), "the publisher failed");
    let acked = acknowledged(&publisher.stdout());
    assert_eq!(acked.len(), 4_000, "every event was acknowledged");
    wait_until("every healthy event was handled", LONG, || {
        run.handled().into_iter().collect::<BTreeSet<_>>() == healthy
    });
    wait_until("every poison event was dead-lettered", LONG, || {
        support::message_count(&cluster.bootstrap, &dlq) >= poison.len() as i64
    });
    wait_until("the group committed the whole topic", LONG, || {
        support::committed_and_high(
            &cluster.bootstrap,
            &format!("{}.probe", run.prefix),
            &run.topic(),
        )
        .iter()
        .all(|(_, committed, high)| committed == high)
    });
    for mut consumer in consumers {
        stop(&mut consumer);
    }
    let total = support::message_count(&cluster.bootstrap, &dlq);
    let letters = support::read_topic(&cluster.bootstrap, &dlq, total as usize);
    let lettered: Vec<u64> = letters.iter().map(seq_of).collect();
    let distinct: BTreeSet<u64> = lettered.iter().copied().collect();
    let handled = run.handled();
    println!(
        "{}: published 4000, poison {}, dead letters {} ({} distinct, duplicates {}, missing {}), \
         healthy handled {} (duplicates {}), killed node {leader} (leader of the dead-letter \
         partition) after {letters_at_kill} letters, new leader {successor} after {:.2} s, \
         wall {:.1} s",
        run.name,
        poison.len(),
        lettered.len(),
        distinct.len(),
        lettered.len() - distinct.len(),
        poison.difference(&distinct).count(),
        handled.len(),
        handled.len() - handled.iter().collect::<BTreeSet<_>>().len(),
        election.as_secs_f64(),
        run.started.elapsed().as_secs_f64()
    );
    assert_eq!(
        distinct, poison,
        "the dead-letter topic holds exactly the poison"
    );
}

#[test]
fn per_key_concurrency_keeps_each_key_in_order_through_a_leader_kill_and_a_consumer_kill() {
    let Some((cluster, _whole)) = cluster(
        "per_key_concurrency_keeps_each_key_in_order_through_a_leader_kill_and_a_consumer_kill",
    ) else {
        return;
    };
    let mut run = Scenario::new(&cluster, "keyed");
    run.keys = 96;
    // Eight keys of a partition at once, each event 5 ms.
    let keyed = [("PROBE_GROUP", "probe-keyed"), ("PROBE_DELAY_MS", "5")];
    let mut members = vec![run.consumer("a", &keyed), run.consumer("b", &keyed)];
    let mut publisher = run.publisher(
        &[
            "20000",
            "--chunk",
            "250",
            "--pause-ms",
            "40",
            "--keys",
            "96",
        ],
        &[],
    );
    wait_until("4,000 events were handled", LONG, || run.count() >= 4_000);
    let partition = run.busiest_partition();
    let leader = cluster.leader_of(&run.topic(), partition);
    cluster.kill(leader);
    let (successor, election) = new_leader(&cluster, &run.topic(), partition, leader);
    wait_until("8,000 events were handled", LONG, || run.count() >= 8_000);
    members[1].kill();
    members[1] = run.consumer("b-1", &keyed);
    cluster.restart(leader);
    let outcome = run.finish(&mut publisher, members);
    run.report(
        &outcome,
        &format!(
            "group probe-keyed (concurrency 8, 5 ms handler, 96 keys); killed node {leader} \
             (leader of partition {partition}) at 4,000 handled, new leader {successor} after \
             {:.2} s; SIGKILLed member b at 8,000 handled",
            election.as_secs_f64()
        ),
    );
}

/// The order check itself, without a cluster: a key whose later event was first handled before an
/// earlier one counts; an event handled again later (a redelivery) does not.
#[test]
fn the_order_check_counts_keys_whose_events_were_first_handled_out_of_order() {
    assert_eq!(
        out_of_order(&[0, 1, 2, 3, 4, 5, 2, 3], 2),
        0,
        "redeliveries"
    );
    assert_eq!(
        out_of_order(&[0, 1, 2, 5, 4, 3], 2),
        1,
        "key 1 went 5 then 3"
    );
    assert_eq!(out_of_order(&[2, 0, 3, 1], 2), 2);
}
