//! Events whose topic and type are chosen at run time, not by a Rust type: what gateways,
//! bridges and audit sinks publish (`publish_event(topic, event_type, payload)` in the libraries
//! herald replaces). They travel in the same CloudEvents envelope as typed events, so a typed
//! `#[handler]` of the same type reads them.

use serde::Serialize;

/// An event built at run time: a topic, a CloudEvents type, a schema version, an optional partition
/// key and JSON data. Publish it with [`Bus::publish_dynamic`](crate::Bus::publish_dynamic); the
/// topic gets [`Config::topic_prefix`](crate::Config::topic_prefix) like a typed event's.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicEvent {
    /// The topic, before the configured prefix.
    pub topic: String,
    /// The CloudEvents `type` (`ce_type`), e.g. `user.created`.
    pub event_type: String,
    /// The schema version (`ce_schemaversion`), 1 unless set.
    pub version: u32,
    /// The partition key; `None` spreads the events over the partitions.
    pub key: Option<String>,
    /// The event's data: the record's value.
    pub data: serde_json::Value,
}

impl DynamicEvent {
    /// An event of `event_type` with `data`, for `topic`; version 1, no key.
    pub fn new(
        topic: impl Into<String>,
        event_type: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            topic: topic.into(),
            event_type: event_type.into(),
            version: 1,
            key: None,
            data,
        }
    }

    /// As [`DynamicEvent::new`], with the data of any `Serialize` value.
    ///
    /// # Errors
    /// The value's serialization error (a map with non-string keys, a failing `Serialize`).
    pub fn from_serialize<T: Serialize + ?Sized>(
        topic: impl Into<String>,
        event_type: impl Into<String>,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::new(topic, event_type, serde_json::to_value(data)?))
    }

    /// Sets the partition key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the schema version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Why the event cannot be published as it is, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(problem) = topic_problem(&self.topic) {
            return Some(format!("the topic `{}` {problem}", self.topic));
        }
        if self.event_type.trim().is_empty() {
            return Some("the event type is empty: name it, e.g. `user.created`".into());
        }
        if self.event_type.chars().any(char::is_control) {
            return Some(format!(
                "the event type {:?} holds a control character",
                self.event_type
            ));
        }
        if self.version == 0 {
            return Some("the version is 0: schema versions count from 1".into());
        }
        None
    }
}

/// Why `topic` is not a legal Kafka topic name, if it is not (Kafka's own rules: 1 to 249 ASCII
/// letters, digits, `.`, `_` and `-`, and neither `.` nor `..`).
pub(crate) fn topic_problem(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some("is empty".into());
    }
    if topic == "." || topic == ".." {
        return Some("is not a legal topic name".into());
    }
    if topic.len() > 249 {
        return Some(format!(
            "is {} characters long: Kafka allows 249",
            topic.len()
        ));
    }
    topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|bad| {
            format!(
                "contains `{bad}`: a topic name may only hold ASCII letters, digits, `.`, `_` and `-`"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_topics_types_and_versions_say_what_is_wrong() {
        let ok = DynamicEvent::new("user.events", "user.created", serde_json::json!({"id": 1}));
        assert_eq!(ok.problem(), None);
        let cases = [
            (
                DynamicEvent {
                    topic: String::new(),
                    ..ok.clone()
                },
                "is empty",
            ),
            (
                DynamicEvent {
                    topic: "user events".into(),
                    ..ok.clone()
                },
                "contains ` `",
            ),
            (
                DynamicEvent {
                    topic: "..".into(),
                    ..ok.clone()
                },
                "not a legal topic name",
            ),
            (
                DynamicEvent {
                    topic: "t".repeat(250),
                    ..ok.clone()
                },
                "Kafka allows 249",
            ),
            (
                DynamicEvent {
                    event_type: " ".into(),
                    ..ok.clone()
                },
                "event type is empty",
            ),
            (
                DynamicEvent {
                    event_type: "a\nb".into(),
                    ..ok.clone()
                },
                "control character",
            ),
            (ok.clone().version(0), "count from 1"),
        ];
        for (event, expected) in cases {
            let problem = event.problem().expect("refused");
            assert!(problem.contains(expected), "{problem}");
        }
    }

    #[test]
    fn any_serialize_value_is_data() {
        #[derive(Serialize)]
        struct Signup<'a> {
            email: &'a str,
        }
        let event =
            DynamicEvent::from_serialize("users", "user.signed_up", &Signup { email: "a@b" })
                .unwrap()
                .key("u1")
                .version(2);
        assert_eq!(event.data, serde_json::json!({"email": "a@b"}));
        assert_eq!((event.key.as_deref(), event.version), (Some("u1"), 2));
    }
}
