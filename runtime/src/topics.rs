//! Topic creation: missing topics are created at start-up when auto-creation is on, through the
//! admin API of a real broker or directly in the embedded one.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};

/// The replication factor CreateTopics reads as "the cluster's `default.replication.factor`"
/// (Kafka 2.4 and newer).
const CLUSTER_DEFAULT_REPLICATION: i32 = -1;

/// The CreateTopics requests for `topics` on a real cluster: the configured partitions, and the
/// configured replication factor or else the cluster's default (not 1: one broker's loss would
/// then lose the topic's data).
fn new_topics<'a>(config: &Config, topics: &[&'a str]) -> Vec<NewTopic<'a>> {
    let replication = config
        .replication_factor
        .unwrap_or(CLUSTER_DEFAULT_REPLICATION);
    topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                config.topic_partitions,
                TopicReplication::Fixed(replication),
            )
        })
        .collect()
}

/// Creates the topics that do not exist yet.
pub(crate) async fn ensure_topics(
    config: &Config,
    bootstrap_servers: &str,
    embedded: Option<&EmbeddedBroker>,
    topics: &[&str],
) -> Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    if let Some(broker) = embedded {
        for topic in topics {
            match broker.create_topic(topic, config.topic_partitions) {
                Ok(()) | Err(Error::TopicExists { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config
        .admin_config(bootstrap_servers)
        .create()
        .map_err(|e| Error::kafka("creating the admin client", e))?;
    let new_topics = new_topics(config, topics);
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| Error::kafka("creating topics", e))?;
    for result in results {
        match result.map_err(admin_error) {
            Ok(topic) => {
                tracing::info!(%topic, partitions = config.topic_partitions, "created topic")
            }
            Err(Error::TopicExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error of creating one topic through the admin API.
fn admin_error((topic, code): (String, RDKafkaErrorCode)) -> Error {
    match code {
        RDKafkaErrorCode::TopicAlreadyExists => Error::TopicExists { topic },
        code => Error::Topic {
            topic,
            reason: format!(
                "could not be created ({code}); create it by hand or grant this client the right to"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replication(config: &Config) -> Vec<i32> {
        new_topics(config, &["a", "a.dlq"])
            .iter()
            .map(|t| match t.replication {
                TopicReplication::Fixed(n) => n,
                TopicReplication::Variable(_) => panic!("herald sends a fixed replication"),
            })
            .collect()
    }

    #[test]
    fn created_topics_use_the_clusters_replication_factor_unless_one_is_set() {
        let config = Config::new("s").bootstrap_servers("k:9092");
        assert_eq!(replication(&config), [-1, -1]);
        assert_eq!(replication(&config.clone().replication_factor(3)), [3, 3]);
        let topics = new_topics(&config.topic_partitions(6), &["a"]);
        assert_eq!((topics[0].name, topics[0].num_partitions), ("a", 6));
    }
}
