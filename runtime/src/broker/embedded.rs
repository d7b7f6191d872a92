//! The embedded broker: librdkafka's in-process mock cluster, used only when asked for
//! (`KAFKA_BOOTSTRAP_SERVERS=embedded`, `Config::embedded`, `BusBuilder::embedded_broker`). It
//! speaks the real Kafka protocol, so every client path is the production one.
//!
//! # Limits
//! Each partition keeps only about 5 MiB or 100,000 message sets and silently drops older ones, and
//! a consumer group's first join waits about 3 s (its initial rebalance delay). It lives as long as
//! the [`EmbeddedBroker`] value and keeps nothing on disk. It is for development and tests, not for
//! production.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};

type Cluster = MockCluster<'static, DefaultProducerContext>;
type Fault = Box<dyn FnOnce(&Cluster) -> KafkaResult<()> + Send>;

use crate::error::{Error, Result};

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<()>>,
    },
    Fault {
        fault: Fault,
        reply: mpsc::Sender<KafkaResult<()>>,
    },
    Stop,
}

/// An in-process Kafka cluster (librdkafka's mock cluster) on loopback.
///
/// The mock cluster's handle is not thread-safe to share, so it lives on a thread of its own and
/// this handle talks to it over a channel.
pub struct EmbeddedBroker {
    bootstrap_servers: String,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a mock cluster of `brokers` brokers.
    ///
    /// # Errors
    /// [`Error::Kafka`] when librdkafka cannot start it.
    pub fn start(brokers: i32) -> Result<Self> {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String>>();
        let thread = std::thread::Builder::new()
            .name("herald-embedded-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::kafka("starting the embedded broker", e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                while let Ok(command) = inbox.recv() {
                    match command {
                        Command::CreateTopic {
                            name,
                            partitions,
                            reply,
                        } => {
                            let result = match cluster.create_topic(&name, partitions, 1) {
                                Ok(()) => Ok(()),
                                Err(KafkaError::MockCluster(
                                    RDKafkaErrorCode::TopicAlreadyExists,
                                )) => Err(Error::TopicExists { topic: name }),
                                Err(e) => Err(Error::Topic {
                                    topic: name,
                                    reason: format!("the embedded broker could not create it: {e}"),
                                }),
                            };
                            let _ = reply.send(result);
                        }
                        Command::Fault { fault, reply } => {
                            let _ = reply.send(fault(&cluster));
                        }
                        Command::Stop => break,
                    }
                }
            })
            .map_err(|e| Error::Config(format!("cannot spawn the embedded broker thread: {e}")))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| Error::State("the embedded broker thread died while starting"))??;
        // The bus that uses it warns once that it is for development only.
        tracing::debug!(%bootstrap_servers, "started herald's embedded Kafka broker");
        Ok(Self {
            bootstrap_servers,
            commands,
            thread: Some(thread),
        })
    }

    /// The `host:port` list clients connect to.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// [`Error::TopicExists`] when it exists already, [`Error::Topic`] when the mock cluster
    /// refuses otherwise.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::CreateTopic {
                name: name.to_owned(),
                partitions,
                reply,
            })
            .map_err(|_| Error::State("the embedded broker has stopped"))?;
        answer
            .recv()
            .map_err(|_| Error::State("the embedded broker has stopped"))?
    }
}

/// Fault injection, for tests of what clients do when the broker misbehaves.
impl EmbeddedBroker {
    fn inject(&self, fault: Fault) -> Result<()> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::Fault { fault, reply })
            .map_err(|_| Error::State("the embedded broker has stopped"))?;
        answer
            .recv()
            .map_err(|_| Error::State("the embedded broker has stopped"))?
            .map_err(|e| Error::kafka("injecting a fault into the embedded broker", e))
    }

    /// Takes every broker of the cluster down: connections are refused until
    /// [`EmbeddedBroker::broker_up`]. The data stays.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the mock cluster refuses.
    pub fn broker_down(&self) -> Result<()> {
        self.inject(Box::new(|cluster| cluster.broker_down(-1)))
    }

    /// Brings every broker back up.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the mock cluster refuses.
    pub fn broker_up(&self) -> Result<()> {
        self.inject(Box::new(|cluster| cluster.broker_up(-1)))
    }

    /// Delays every broker's responses by `delay`, as a slow or distant broker would;
    /// `Duration::ZERO` ends it.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the mock cluster refuses.
    pub fn round_trip_time(&self, delay: std::time::Duration) -> Result<()> {
        self.inject(Box::new(move |cluster| {
            cluster.broker_round_trip_time(-1, delay)
        }))
    }

    /// Makes the next `times` requests of kind `request` fail with `fault`.
    ///
    /// # Errors
    /// [`Error::State`] when the broker has stopped.
    pub fn fail_requests(
        &self,
        request: KafkaRequest,
        fault: BrokerFault,
        times: usize,
    ) -> Result<()> {
        let api = request.api_key();
        let errors = vec![fault.code(); times];
        self.inject(Box::new(move |cluster| {
            cluster.request_errors(api, &errors);
            Ok(())
        }))
    }
}

/// A kind of Kafka request, for [`EmbeddedBroker::fail_requests`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KafkaRequest {
    /// Produce.
    Produce,
    /// Fetch.
    Fetch,
    /// ListOffsets.
    ListOffsets,
    /// Metadata.
    Metadata,
    /// OffsetCommit.
    OffsetCommit,
    /// OffsetFetch.
    OffsetFetch,
    /// FindCoordinator.
    FindCoordinator,
    /// JoinGroup.
    JoinGroup,
    /// Heartbeat.
    Heartbeat,
    /// SyncGroup.
    SyncGroup,
}

impl KafkaRequest {
    fn api_key(self) -> RDKafkaApiKey {
        match self {
            Self::Produce => RDKafkaApiKey::Produce,
            Self::Fetch => RDKafkaApiKey::Fetch,
            Self::ListOffsets => RDKafkaApiKey::ListOffsets,
            Self::Metadata => RDKafkaApiKey::Metadata,
            Self::OffsetCommit => RDKafkaApiKey::OffsetCommit,
            Self::OffsetFetch => RDKafkaApiKey::OffsetFetch,
            Self::FindCoordinator => RDKafkaApiKey::FindCoordinator,
            Self::JoinGroup => RDKafkaApiKey::JoinGroup,
            Self::Heartbeat => RDKafkaApiKey::Heartbeat,
            Self::SyncGroup => RDKafkaApiKey::SyncGroup,
        }
    }
}

/// An error the embedded broker can answer a request with ([`EmbeddedBroker::fail_requests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerFault {
    /// The client may not write to (or read) the topic.
    TopicAuthorizationFailed,
    /// Fewer in-sync replicas than `min.insync.replicas`.
    NotEnoughReplicas,
    /// The partition's leader moved.
    NotLeaderForPartition,
    /// The partition has no leader right now.
    LeaderNotAvailable,
    /// The broker timed the request out.
    RequestTimedOut,
    /// The record is larger than the topic takes.
    MessageTooLarge,
    /// The topic or partition does not exist.
    UnknownTopicOrPartition,
    /// The group's coordinator moved.
    NotCoordinator,
    /// The group's coordinator is not available.
    CoordinatorNotAvailable,
    /// The group is rebalancing.
    RebalanceInProgress,
}

impl BrokerFault {
    fn code(self) -> RDKafkaRespErr {
        use RDKafkaRespErr as E;
        match self {
            Self::TopicAuthorizationFailed => E::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            Self::NotEnoughReplicas => E::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            Self::NotLeaderForPartition => E::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            Self::LeaderNotAvailable => E::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
            Self::RequestTimedOut => E::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            Self::MessageTooLarge => E::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
            Self::UnknownTopicOrPartition => E::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            Self::NotCoordinator => E::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            Self::CoordinatorNotAvailable => E::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            Self::RebalanceInProgress => E::RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
