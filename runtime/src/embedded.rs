//! The embedded broker: librdkafka's in-process mock cluster, used when no bootstrap servers are
//! configured. It speaks the real Kafka protocol, so every client path is the production one.
//!
//! # Limits
//! Each partition keeps only about 5 MiB or 100,000 message sets and silently drops older ones, and
//! a consumer group's first join waits about 3 s (its initial rebalance delay). It lives as long as
//! the [`EmbeddedBroker`] value and keeps nothing on disk. It is for development and tests, not for
//! production.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{Error, Result};

enum Command {
    CreateTopic {
        name: String,
        partitions: i32,
        reply: mpsc::Sender<Result<()>>,
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
                        Command::Stop => break,
                    }
                }
            })
            .map_err(|e| Error::Config(format!("cannot spawn the embedded broker thread: {e}")))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| Error::State("the embedded broker thread died while starting"))??;
        tracing::info!(
            %bootstrap_servers,
            "no KAFKA_BOOTSTRAP_SERVERS set: started herald's embedded Kafka broker (in-process, not for production)"
        );
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

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
