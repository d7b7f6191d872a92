//! The settings that are one field: each is named once in the table at the bottom, which makes its
//! setter, reads its environment variable and shows it in `Config`'s `Debug`. Adding such a
//! setting is its field (with its doc and default in `Config::new`) and one line here; `validate`
//! only when it has a rule. `the_environment_table_is_documented` keeps the README's variable
//! table and `Config::from_vars`'s list in step with it.

use std::fmt;
use std::time::Duration;

use super::{Config, ContentMode, GroupProtocol, OffsetReset};
use crate::error::{Error, Result};

/// The environment as `Config::from_vars` reads it: blank values count as unset; values are taken
/// as given (a password may end in a space), parsed ones trimmed.
pub(super) struct Vars<'v>(pub &'v dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// The value, as given.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value, trimmed.
    pub fn text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get(name).map(|v| v.trim().to_owned()))
    }

    /// A whole number, described as `what` in the error.
    pub fn whole(&self, name: &str, what: &str) -> Result<Option<u64>> {
        self.text(name)?
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| Error::Config(format!("{name}: `{v}` is not {what}")))
            })
            .transpose()
    }

    /// Milliseconds.
    pub fn millis(&self, name: &str) -> Result<Option<Duration>> {
        Ok(self
            .whole(name, "a whole number of milliseconds")?
            .map(Duration::from_millis))
    }

    /// A count that fits a `u32`.
    pub fn count(&self, name: &str) -> Result<Option<u32>> {
        self.whole(name, "a whole number")?
            .map(|n| {
                u32::try_from(n)
                    .map_err(|_| Error::Config(format!("{name}: `{n}` is more than {}", u32::MAX)))
            })
            .transpose()
    }

    /// A positive `i32`.
    pub fn positive(&self, name: &str) -> Result<Option<i32>> {
        self.whole(name, "a positive whole number")?
            .map(|n| match i32::try_from(n) {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Error::Config(format!(
                    "{name}: `{n}` is not a positive whole number up to {}",
                    i32::MAX
                ))),
            })
            .transpose()
    }

    /// A size in bytes.
    pub fn bytes(&self, name: &str) -> Result<Option<usize>> {
        Ok(self
            .whole(name, "a whole number of bytes")?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>> {
        self.text(name)?
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::Config(format!(
                    "{name}: `{v}` is not a boolean, use `true` or `false`"
                ))),
            })
            .transpose()
    }

    /// A share from 0.0 to 1.0 (the range is checked by `validate`).
    pub fn ratio(&self, name: &str) -> Result<Option<f64>> {
        self.text(name)?
            .map(|v| {
                v.parse().map_err(|_| {
                    Error::Config(format!("{name}: `{v}` is not a number from 0.0 to 1.0"))
                })
            })
            .transpose()
    }

    /// A consumer group protocol.
    pub fn group_protocol(&self, name: &str) -> Result<Option<GroupProtocol>> {
        self.text(name)?
            .map(|v| v.parse().map_err(|e| Error::Config(format!("{name}: {e}"))))
            .transpose()
    }

    /// Where a new consumer group starts.
    pub fn offset_reset(&self, name: &str) -> Result<Option<OffsetReset>> {
        self.text(name)?
            .map(|v| v.parse().map_err(|e| Error::Config(format!("{name}: {e}"))))
            .transpose()
    }

    /// How published events are written.
    pub fn content_mode(&self, name: &str) -> Result<Option<ContentMode>> {
        self.text(name)?
            .map(|v| v.parse().map_err(|e| Error::Config(format!("{name}: {e}"))))
            .transpose()
    }
}

/// The table: for each setting, its field, the setter's parameter type, how the field holds it
/// (`plain` or `some`, for an `Option` field set to `Some`), and its environment variable with the
/// `Vars` reader that parses it.
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $field:ident($param:ty) $hold:ident $(, $var:literal => $read:ident)?;
    )*) => {
        impl Config {
            $(
                $(#[$doc])*
                pub fn $field(mut self, value: $param) -> Self {
                    self.$field = settings!(@hold $hold value);
                    self
                }
            )*

            /// Sets every table setting whose environment variable is set.
            pub(super) fn read_settings(&mut self, vars: &Vars<'_>) -> Result<()> {
                $($(
                    if let Some(value) = vars.$read($var)? {
                        self.$field = settings!(@hold $hold value);
                    }
                )?)*
                Ok(())
            }

            /// Adds every table setting to a `Debug` of the configuration.
            pub(super) fn debug_settings(&self, out: &mut fmt::DebugStruct<'_, '_>) {
                $( out.field(stringify!($field), &self.$field); )*
            }
        }

        /// The environment variables of the table.
        #[cfg(test)]
        pub(super) const TABLE_VARIABLES: &[&str] = &[$($($var,)?)*];
    };
    (@hold plain $value:expr) => { ($value).into() };
    (@hold some $value:expr) => { Some(($value).into()) };
}

settings! {
    /// Sets the default consumer group.
    consumer_group(impl Into<String>) some, "KAFKA_CONSUMER_GROUP" => text;
    /// Makes this instance a static member of its groups under this id (see
    /// [`Config::group_instance_id`](Config#structfield.group_instance_id)).
    group_instance_id(impl Into<String>) some, "KAFKA_GROUP_INSTANCE_ID" => text;
    /// Sets where a new consumer group starts.
    auto_offset_reset(OffsetReset) plain, "KAFKA_AUTO_OFFSET_RESET" => offset_reset;
    /// Sets the consumer group protocol: classic (the default) or the consumer protocol of
    /// Kafka 4 (KIP-848).
    group_protocol(GroupProtocol) plain, "KAFKA_GROUP_PROTOCOL" => group_protocol;
    /// Turns creation of missing topics on or off.
    auto_create_topics(bool) some, "KAFKA_AUTO_CREATE_TOPICS" => flag;
    /// Sets the partition count of topics herald creates.
    topic_partitions(i32) plain, "KAFKA_TOPIC_PARTITIONS" => positive;
    /// Sets the replication factor of topics herald creates on a real cluster (default: the
    /// cluster's default).
    replication_factor(i32) some, "KAFKA_REPLICATION_FACTOR" => positive;
    /// Sets how long graceful shutdown may take.
    shutdown_timeout(Duration) plain;
    /// Sets how long a publish may wait for the broker's acknowledgement.
    delivery_timeout(Duration) plain;
    /// Sets how often stored offsets are committed.
    commit_interval(Duration) plain;
    /// Sets how many times a failed handler is tried again before the message is dead-lettered.
    max_retries(u32) plain, "KAFKA_MAX_RETRIES" => count;
    /// Sets the first delay before a failed handler is tried again.
    retry_base_delay(Duration) plain, "KAFKA_RETRY_BASE_DELAY_MS" => millis;
    /// Sets the longest delay between tries of a failed handler.
    retry_max_delay(Duration) plain, "KAFKA_RETRY_MAX_DELAY_MS" => millis;
    /// Sets the randomized share of each retry delay, from 0.0 (none) to 1.0 (full jitter).
    retry_jitter(f64) plain, "KAFKA_RETRY_JITTER" => ratio;
    /// Sets how long one attempt of a handler may take before it counts as failed.
    handler_timeout(Duration) some, "KAFKA_HANDLER_TIMEOUT_MS" => millis;
    /// Sets the prefix put before every topic herald derives, joined with a dot: with `"staging"`,
    /// `domain.user.events` becomes `staging.domain.user.events` (see [`Config::topic_prefix`]).
    topic_prefix(impl Into<String>) some, "KAFKA_TOPIC_PREFIX" => text;
    /// Sets the prefix put before every consumer group id herald joins, joined with a dot: with
    /// `"staging"`, group `notification-service` joins as `staging.notification-service` (see
    /// [`Config::group_prefix`]).
    group_prefix(impl Into<String>) some, "KAFKA_GROUP_PREFIX" => text;
    /// Sets the suffix that names a topic's dead-letter topic.
    dlq_suffix(impl Into<String>) plain, "KAFKA_DLQ_TOPIC_SUFFIX" => text;
    /// Sets whether messages of event types no handler of the group takes are dead-lettered
    /// instead of skipped.
    dead_letter_unknown_types(bool) plain, "KAFKA_DLQ_UNKNOWN_TYPES" => flag;
    /// Sets how published events are written: binary (the default: attributes in `ce_*` headers)
    /// or structured (one JSON object holding attributes and data).
    content_mode(ContentMode) plain, "KAFKA_CONTENT_MODE" => content_mode;
    /// Sets the size in bytes above which a message is dead-lettered as oversized.
    max_message_bytes(usize) some, "KAFKA_MAX_MESSAGE_BYTES" => bytes;
    /// Sets how many messages a partition buffers before herald pauses fetching it.
    max_buffered_per_partition(usize) plain;
    /// Sets how many bytes a partition buffers before herald pauses fetching it.
    max_buffered_bytes_per_partition(usize) plain;
    /// Sets how many bytes one group's consumer buffers over all its partitions before the
    /// partitions that receive more are paused.
    max_buffered_bytes_per_consumer(usize) plain;
}

#[cfg(test)]
mod tests {
    use super::TABLE_VARIABLES;

    /// Every variable of the table is in the README's table and in `Config::from_vars`'s list, so
    /// a setting added here cannot go undocumented.
    #[test]
    fn the_environment_table_is_documented() {
        let readme = include_str!("../../../README.md");
        let from_vars = include_str!("mod.rs")
            .lines()
            .filter(|line| line.trim_start().starts_with("///"))
            .collect::<Vec<_>>()
            .join("\n");
        for variable in TABLE_VARIABLES {
            let quoted = format!("`{variable}`");
            assert!(
                readme.contains(&quoted),
                "{variable} is missing from the README"
            );
            assert!(
                from_vars.contains(&quoted),
                "{variable} is missing from Config::from_vars's documentation"
            );
        }
        assert_eq!(TABLE_VARIABLES.len(), 18);
    }
}
