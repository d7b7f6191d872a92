//! Topic creation: missing topics are created at start-up when auto-creation is on, through the
//! admin API of a real broker or directly in the embedded one.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::broker::embedded::EmbeddedBroker;
use crate::config::Config;
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
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    tokio::task::spawn_blocking(move || wait_until_served(&admin, topics))
        .await
        .map_err(|_| Error::State("waiting for created topics panicked"))
}

/// How long start-up waits for created topics to show in the brokers' metadata.
const SERVED_WITHIN: Duration = Duration::from_secs(30);

/// Waits until the brokers serve every one of `topics` (see [`is_served`]).
/// Kafka answers CreateTopics once the controller has committed a topic, before the brokers have
/// it: a client that reads the topic at once is told it does not exist. After
/// [`SERVED_WITHIN`] start-up goes on with a warning (the clients retry on their own).
fn wait_until_served(admin: &AdminClient<DefaultClientContext>, mut topics: Vec<String>) {
    let deadline = std::time::Instant::now() + SERVED_WITHIN;
    loop {
        topics.retain(|topic| !is_served(admin, topic));
        if topics.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                ?topics,
                "created topics are not in the brokers' metadata after {SERVED_WITHIN:?}; going on"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a metadata request shows `topic` without error and with a leader for every partition,
/// and each leader answers for its partition's offsets (a broker takes up leadership after the
/// metadata shows it).
fn is_served(admin: &AdminClient<DefaultClientContext>, topic: &str) -> bool {
    let client = admin.inner();
    let timeout = Duration::from_secs(5);
    let Ok(metadata) = client.fetch_metadata(Some(topic), timeout) else {
        return false;
    };
    let Some(shown) = metadata.topics().iter().find(|shown| shown.name() == topic) else {
        return false;
    };
    shown.error().is_none()
        && !shown.partitions().is_empty()
        && shown
            .partitions()
            .iter()
            .all(|p| p.leader() >= 0 && client.fetch_watermarks(topic, p.id(), timeout).is_ok())
}

/// Of `topics`, those this client's principal may not write (or not even describe), asked with
/// one DescribeTopics request that includes the authorized operations (KIP-430). Blocks for up to
/// `timeout`. A broker without an authorizer, or one that does not report the operations, allows
/// everything. rust-rdkafka has no DescribeTopics, so this calls librdkafka's admin API directly.
///
/// # Errors
/// [`Error::Config`] when the client cannot be created; [`Error::Topic`] when the request fails.
pub(crate) fn unwritable(
    config: &Config,
    bootstrap_servers: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<String>> {
    use rdkafka::bindings as rd;
    use std::ffi::{CStr, CString};
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let client: rdkafka::consumer::BaseConsumer =
        config
            .admin_config(bootstrap_servers)
            .create()
            .map_err(|e| Error::kafka("creating the client that checks topic permissions", e))?;
    let names: Vec<CString> = topics
        .iter()
        .map(|t| CString::new(*t).expect("topic names hold no NUL"))
        .collect();
    let mut pointers: Vec<*const std::ffi::c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let failed = |reason: String| Error::Topic {
        topic: topics.join(", "),
        reason: format!("could not check that this client may write it ({reason})"),
    };
    let started = std::time::Instant::now();
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(&client, None, timeout)
        .map_err(|e| failed(e.to_string()))?;
    let rk = rdkafka::consumer::Consumer::client(&client).native_ptr();
    let left = timeout.saturating_sub(started.elapsed());
    // SAFETY: `rk` is a live client handle for the duration of the call.
    let controller = unsafe {
        rd::rd_kafka_controllerid(rk, i32::try_from(left.as_millis()).unwrap_or(i32::MAX))
    };
    if !metadata.brokers().iter().any(|b| b.id() == controller) {
        // librdkafka sends DescribeTopics to the controller; librdkafka's mock cluster names one
        // (id 0) that is none of its brokers, so no answer would come.
        tracing::debug!(
            controller,
            "the cluster names no reachable controller: topic permissions not checked"
        );
        return Ok(Vec::new());
    }
    // SAFETY: every pointer passed to librdkafka is valid for the call: `rk` lives as long as
    // `client`, `pointers` and `names` outlive the request (librdkafka copies the names), and each
    // object librdkafka returns is destroyed once, after its last use. The result's descriptions
    // live as long as `event`, which is destroyed after they were read.
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let collection =
            rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len());
        let options = rd::rd_kafka_AdminOptions_new(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let error = rd::rd_kafka_AdminOptions_set_include_authorized_operations(options, 1);
        if !error.is_null() {
            rd::rd_kafka_error_destroy(error);
        }
        rd::rd_kafka_DescribeTopics(rk, collection, options, queue);
        let left = timeout.saturating_sub(started.elapsed());
        let event =
            rd::rd_kafka_queue_poll(queue, i32::try_from(left.as_millis()).unwrap_or(i32::MAX));
        rd::rd_kafka_AdminOptions_destroy(options);
        rd::rd_kafka_TopicCollection_destroy(collection);
        let outcome = if event.is_null() {
            Err(failed(format!("no answer within {timeout:?}")))
        } else if rd::rd_kafka_event_error(event)
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            let text = CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                .to_string_lossy()
                .into_owned();
            Err(failed(text))
        } else {
            let result = rd::rd_kafka_event_DescribeTopics_result(event);
            let mut count = 0;
            let descriptions = rd::rd_kafka_DescribeTopics_result_topics(result, &mut count);
            let mut denied = Vec::new();
            for i in 0..count {
                let description = *descriptions.add(i);
                let name = CStr::from_ptr(rd::rd_kafka_TopicDescription_name(description))
                    .to_string_lossy()
                    .into_owned();
                let error = rd::rd_kafka_TopicDescription_error(description);
                let code = (!error.is_null()).then(|| rd::rd_kafka_error_code(error));
                if code
                    == Some(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
                {
                    denied.push(name);
                    continue;
                }
                if code == Some(rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                    // Not a refusal: a broker that creates topics on first write takes it.
                    tracing::warn!(topic = %name, "this dead-letter or retry topic does not exist: unless the brokers create topics on first write, a message that fails for good stops its consumer group; create it, or turn on KAFKA_AUTO_CREATE_TOPICS");
                    continue;
                }
                let mut ops_count = 0;
                let ops = rd::rd_kafka_TopicDescription_authorized_operations(
                    description,
                    &mut ops_count,
                );
                if ops.is_null() || ops_count == 0 {
                    continue; // not reported: nothing to hold against the client
                }
                let ops = std::slice::from_raw_parts(ops, ops_count);
                let writes = ops.iter().any(|op| {
                    matches!(
                        op,
                        rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE
                            | rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ALL
                    )
                });
                if !writes {
                    denied.push(name);
                }
            }
            Ok(denied)
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        outcome
    }
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

#[cfg(test)]
mod on_a_real_broker {
    use super::*;
    use futures::FutureExt;
    use rdkafka::consumer::{BaseConsumer, Consumer};

    /// A topic `ensure_topics` returned for is usable at once: a new client's metadata shows it
    /// with a leader for every partition, and each leader answers for the partition's offsets.
    /// Kafka answers CreateTopics once the controller has committed the topic, before every
    /// broker's metadata has it; a reply listener that asked
    /// at that moment failed with TopicNotFound (seen in CI on a loaded machine, and here with
    /// forty services at once, before `ensure_topics` waited for the brokers).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_created_topic_is_in_every_new_clients_metadata_with_its_leaders() {
        let Ok(servers) = std::env::var("HERALD_TEST_KAFKA") else {
            eprintln!("skipped: it needs a real Kafka; set HERALD_TEST_KAFKA=host:port to run it");
            return;
        };
        let config = Config::new("topics-test")
            .bootstrap_servers(&servers)
            .topic_partitions(3);
        let run = uuid::Uuid::new_v4().simple().to_string();
        // Forty services starting at once, each creating its topics and reading them at once.
        let starts = (0..40).map(|service| {
            let (config, servers) = (config.clone(), servers.clone());
            let topics: Vec<String> = (0..4)
                .map(|t| format!("herald-created-{run}-{service}-{t}"))
                .collect();
            let created = topics.clone();
            tokio::spawn(async move {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                ensure_topics(&config, &servers, None, &names)
                    .await
                    .unwrap();
                let client: BaseConsumer = config.admin_config(&servers).create().unwrap();
                for topic in &topics {
                    let metadata = client
                        .fetch_metadata(Some(topic), Duration::from_secs(10))
                        .unwrap();
                    let shown = &metadata.topics()[0];
                    assert_eq!(shown.error(), None, "{topic}");
                    let leaders: Vec<i32> = shown.partitions().iter().map(|p| p.leader()).collect();
                    assert_eq!(leaders.len(), 3, "{topic}");
                    assert!(leaders.iter().all(|l| *l >= 0), "{topic}: {leaders:?}");
                    for partition in 0..3 {
                        let watermarks =
                            client.fetch_watermarks(topic, partition, Duration::from_secs(10));
                        assert_eq!(watermarks.unwrap(), (0, 0), "{topic} [{partition}]");
                    }
                }
            })
            .map(move |checked| (checked, created))
        });
        let (checks, created): (Vec<_>, Vec<_>) =
            futures::future::join_all(starts).await.into_iter().unzip();
        // The 480 partitions go again, checked or not: the suite's broker has a small heap.
        let admin: AdminClient<DefaultClientContext> =
            config.admin_config(&servers).create().unwrap();
        let created: Vec<String> = created.into_iter().flatten().collect();
        let names: Vec<&str> = created.iter().map(String::as_str).collect();
        let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
        for checked in checks {
            checked.unwrap();
        }
    }
}
