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

    /// Makes the next requests of kind `api` fail with `errors`, one error per request, in order.
    ///
    /// # Errors
    /// [`Error::State`] when the broker has stopped.
    pub fn fail_requests(&self, api: RDKafkaApiKey, errors: Vec<RDKafkaRespErr>) -> Result<()> {
        self.inject(Box::new(move |cluster| {
            cluster.request_errors(api, &errors);
            Ok(())
        }))
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
