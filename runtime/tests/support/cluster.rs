//! The three-node Apache Kafka of the fault suite: the cluster `.ci/kafka/cluster.sh start DIR
//! --nodes 3` started (its `DIR/env` sourced: `HERALD_TEST_KAFKA_CLUSTER`, `HERALD_TEST_KAFKA_NODES=3`),
//! and the faults the suite inflicts on it through that script: SIGKILL, SIGTERM and restart of a
//! node by id, the active controller, partition leaders and in-sync replicas.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// A node's id (1, 2, 3).
pub type NodeId = i32;

/// The three-node cluster, and the script that controls its nodes.
pub struct FaultCluster {
    /// Its bootstrap servers (every node's plaintext listener).
    pub bootstrap: String,
    dir: PathBuf,
    script: PathBuf,
}

/// One partition as the cluster's metadata shows it.
#[derive(Debug, Clone)]
pub struct PartitionState {
    /// The partition.
    pub partition: i32,
    /// Its leader, -1 while it has none.
    pub leader: NodeId,
    /// Its in-sync replicas.
    pub isr: Vec<NodeId>,
}

impl FaultCluster {
    /// The cluster of `HERALD_TEST_KAFKA_CLUSTER` when it has three nodes; `None` (with one line
    /// saying what was skipped) otherwise.
    pub fn from_env(suite: &str) -> Option<Self> {
        let dir = std::env::var("HERALD_TEST_KAFKA_CLUSTER").ok();
        let nodes = std::env::var("HERALD_TEST_KAFKA_NODES").ok();
        let bootstrap = std::env::var(super::REAL_KAFKA).ok();
        match (dir, nodes.as_deref(), bootstrap) {
            (Some(dir), Some("3"), Some(bootstrap)) => Some(Self {
                bootstrap,
                dir: dir.into(),
                script: Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../.ci/kafka/cluster.sh")
                    .canonicalize()
                    .expect(".ci/kafka/cluster.sh exists"),
            }),
            _ => {
                super::say(&format!(
                    "skipped {suite}: it needs a three-node Kafka (`bash .ci/kafka/cluster.sh start DIR --nodes 3; source DIR/env`)"
                ));
                None
            }
        }
    }

    fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .expect("bash runs cluster.sh");
        assert!(
            out.status.success(),
            "cluster.sh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn dir(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 path")
    }

    /// SIGKILL node `id`.
    pub fn kill(&self, id: NodeId) {
        self.script(&["kill", self.dir(), &id.to_string()]);
    }

    /// SIGTERM node `id` and wait until it exited (a controlled shutdown: it hands its
    /// leaderships over first).
    pub fn term(&self, id: NodeId) {
        self.script(&["term", self.dir(), &id.to_string()]);
    }

    /// Starts node `id` again on its storage and waits until it serves.
    pub fn restart(&self, id: NodeId) {
        self.script(&["restart", self.dir(), &id.to_string()]);
    }

    /// Whether node `id` runs.
    pub fn is_running(&self, id: NodeId) -> bool {
        self.script(&["status", self.dir()])
            .lines()
            .any(|l| l.starts_with(&format!("node {id}: running")))
    }

    /// Starts every node that is down: a test leaves the cluster whole for the next.
    pub fn ensure_all_running(&self) {
        for id in 1..=3 {
            if !self.is_running(id) {
                self.restart(id);
            }
        }
    }

    /// The active controller (the KRaft quorum's leader), running. Read first from the running
    /// nodes' `quorum-state` files (no JVM to start: it answers at once on a loaded machine), else
    /// asked of the quorum tool; up to 120 s.
    pub fn active_controller(&self) -> NodeId {
        let started = Instant::now();
        loop {
            if let Some(id) = self.recorded_controller() {
                return id;
            }
            let id = self.script(&["controller", self.dir()]);
            if let Ok(id) = id.parse() {
                if self.is_running(id) {
                    return id;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no active controller for 120 s: the quorum tool said `{id}`, the quorum-state \
                 files {:?}",
                self.quorum_states()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Each running node's view of the quorum: `(node, leader, epoch)` from its `quorum-state`.
    fn quorum_states(&self) -> Vec<(NodeId, i64, i64)> {
        (1..=3)
            .filter(|&id| self.is_running(id))
            .filter_map(|id| {
                let path = self
                    .dir
                    .join(format!("node-{id}/data/__cluster_metadata-0/quorum-state"));
                let state: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
                Some((
                    id,
                    state["leaderId"].as_i64()?,
                    state["leaderEpoch"].as_i64()?,
                ))
            })
            .collect()
    }

    /// The leader of the newest epoch the running nodes recorded, when it is running itself.
    fn recorded_controller(&self) -> Option<NodeId> {
        let (_, leader, _) = self
            .quorum_states()
            .into_iter()
            .filter(|(_, leader, _)| *leader > 0)
            .max_by_key(|(_, _, epoch)| *epoch)?;
        let leader = NodeId::try_from(leader).ok()?;
        self.is_running(leader).then_some(leader)
    }

    /// Creates `topics` (`(name, partitions)`), each with three replicas.
    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(3)))
            .collect();
        let results = futures::executor::block_on(admin.create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
        }
        for (name, _) in topics {
            self.wait_in_sync(name, Duration::from_secs(60));
        }
    }

    /// Every partition of `topic`: leader and in-sync replicas.
    pub fn partitions(&self, topic: &str) -> Vec<PartitionState> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut states: Vec<PartitionState> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .map(|p| PartitionState {
                partition: p.id(),
                leader: p.leader(),
                isr: p.isr().to_vec(),
            })
            .collect();
        states.sort_by_key(|s| s.partition);
        states
    }

    /// The leader of `topic`'s `partition`.
    pub fn leader_of(&self, topic: &str, partition: i32) -> NodeId {
        self.partitions(topic)
            .iter()
            .find(|p| p.partition == partition)
            .map_or(-1, |p| p.leader)
    }

    /// Waits until every partition of `topic` has a leader and all three replicas in sync;
    /// returns how long that took.
    pub fn wait_in_sync(&self, topic: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let states = self.partitions(topic);
            if !states.is_empty() && states.iter().all(|s| s.leader > 0 && s.isr.len() == 3) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{topic} not fully in sync after {limit:?}: {states:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
