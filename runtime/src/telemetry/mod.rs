//! Observability: OpenTelemetry-conventional `tracing` spans, W3C trace context through Kafka
//! headers (the `otel` feature), metrics through the `metrics` facade under seed 003's names, topic
//! information with consumer lag, and health for probes. `docs/observability.md` shows how to wire
//! an exporter.

pub mod health;
pub(crate) mod in_flight;
pub mod metrics;
pub mod propagation;
pub(crate) mod spans;
pub(crate) mod stats;
pub mod topic_info;

pub use health::{GroupHealth, Health, HealthOptions};
pub use topic_info::{GroupInfo, GroupPartition, Inspector, PartitionInfo, TopicInfo};
