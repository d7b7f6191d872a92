//! Topic creation: missing topics are created at start-up when auto-creation is on, through the
//! admin API of a real broker or directly in the embedded one.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};

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
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                config.topic_partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
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
