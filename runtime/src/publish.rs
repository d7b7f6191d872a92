//! Publishing: events become CloudEvents records; a publish returns only once the broker
//! acknowledged it.

use std::sync::Arc;

use chrono::Utc;
use futures::future::join_all;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::codec::{self, encode_headers};
use crate::config::Config;
use crate::envelope::{Metadata, PublishOptions};
use crate::error::{Error, Result};
use crate::event::HeraldEvent;
use crate::stats::Counters;

/// Where a published event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The event's id (`ce_id`).
    pub event_id: String,
}

/// An encoded event, ready to send.
struct Outgoing {
    topic: &'static str,
    event_type: &'static str,
    key: Option<String>,
    payload: Vec<u8>,
    meta: Metadata,
}

/// The idempotent producer shared by the bus and every handler context.
#[derive(Clone)]
pub(crate) struct Publisher {
    producer: FutureProducer,
    service: Arc<str>,
    timeout: std::time::Duration,
    counters: Arc<Counters>,
}

impl Publisher {
    pub fn new(config: &Config, bootstrap_servers: &str, counters: Arc<Counters>) -> Result<Self> {
        let producer = config
            .producer_config(bootstrap_servers)
            .create()
            .map_err(|e| Error::kafka("creating the producer", e))?;
        Ok(Self {
            producer,
            service: config.service_name.as_str().into(),
            timeout: config.delivery_timeout,
            counters,
        })
    }

    fn encode<E: HeraldEvent>(&self, event: &E, options: PublishOptions) -> Result<Outgoing> {
        if let Some(name) = options
            .extensions
            .keys()
            .find(|name| !codec::valid_extension_name(name))
        {
            return Err(Error::Config(format!(
                "extension attribute `{name}` is not a legal CloudEvents name: use 1 to 20 lower-case \
                 letters and digits, not one of herald's own attributes"
            )));
        }
        let payload = serde_json::to_vec(event).map_err(|source| Error::Encode {
            event_type: E::EVENT_TYPE,
            source,
        })?;
        let id = uuid::Uuid::new_v4().to_string();
        let key = options.key.or_else(|| event.partition_key());
        let meta = Metadata {
            correlation_id: Some(options.correlation_id.unwrap_or_else(|| id.clone())),
            id,
            event_type: E::EVENT_TYPE.into(),
            source: self.service.to_string(),
            spec_version: codec::SPEC_VERSION.into(),
            time: Some(Utc::now()),
            schema_version: Some(E::VERSION),
            causation_id: options.causation_id,
            aggregate_id: options.aggregate_id,
            aggregate_type: options.aggregate_type,
            aggregate_version: options.aggregate_version,
            subject: None,
            content_type: Some(codec::JSON.into()),
            extensions: options.extensions,
            key: key.clone(),
            position: None,
        };
        Ok(Outgoing {
            topic: E::TOPIC,
            event_type: E::EVENT_TYPE,
            key,
            payload,
            meta,
        })
    }

    #[tracing::instrument(name = "herald.publish", level = "debug", skip_all,
        fields(event_type = outgoing.event_type, topic = outgoing.topic, event_id = %outgoing.meta.id))]
    async fn send(&self, outgoing: Outgoing) -> Result<Delivery> {
        let mut record = FutureRecord::to(outgoing.topic)
            .payload(&outgoing.payload)
            .headers(encode_headers(&outgoing.meta));
        if let Some(key) = &outgoing.key {
            record = record.key(key);
        }
        match self
            .producer
            .send(record, Timeout::After(self.timeout))
            .await
        {
            Ok((partition, offset)) => {
                Counters::add(&self.counters.events_published, 1);
                Ok(Delivery {
                    topic: outgoing.topic.into(),
                    partition,
                    offset,
                    event_id: outgoing.meta.id,
                })
            }
            Err((source, _)) => {
                Counters::add(&self.counters.publish_failures, 1);
                Err(Error::Publish {
                    event_type: outgoing.event_type,
                    topic: outgoing.topic,
                    source,
                })
            }
        }
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    pub async fn publish<E: HeraldEvent>(
        &self,
        event: &E,
        options: PublishOptions,
    ) -> Result<Delivery> {
        let outgoing = self.encode(event, options)?;
        self.send(outgoing).await
    }

    /// Publishes events concurrently; encodes all of them before sending any.
    pub async fn publish_batch<E: HeraldEvent>(
        &self,
        events: impl IntoIterator<Item = E>,
        options: PublishOptions,
    ) -> Result<Vec<Delivery>> {
        let outgoing = events
            .into_iter()
            .map(|event| self.encode(&event, options.clone()))
            .collect::<Result<Vec<_>>>()?;
        let total = outgoing.len();
        let results = join_all(outgoing.into_iter().map(|o| self.send(o))).await;
        let mut delivered = Vec::with_capacity(total);
        let mut failures = Vec::new();
        for (index, result) in results.into_iter().enumerate() {
            match result {
                Ok(delivery) => delivered.push((index, delivery)),
                Err(error) => failures.push(error),
            }
        }
        if failures.is_empty() {
            Ok(delivered.into_iter().map(|(_, d)| d).collect())
        } else {
            Err(Error::Batch {
                total,
                failed: failures.len(),
                delivered,
                first_error: Box::new(failures.swap_remove(0)),
            })
        }
    }

    /// The underlying producer, for records herald forwards as they are (dead letters).
    pub(crate) fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Waits until every queued event was acknowledged or failed.
    pub fn flush(&self, timeout: std::time::Duration) -> Result<()> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(|e| Error::kafka("flushing the producer", e))
    }
}
