//! Default names derived from a Rust type name: event types in dot case, topics in snake case.

/// Splits `UserCreated`, `HTTPRequestSent` or `Order2Shipped` into lower-case words.
fn words(ident: &str) -> Vec<String> {
    let chars: Vec<char> = ident.trim_start_matches("r#").chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        let boundary = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_uppercase() && next.is_some_and(char::is_lowercase))
            });
        if boundary && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.extend(c.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// `UserCreated` → `user.created` (the CloudEvents `type`).
pub fn dot_case(ident: &str) -> String {
    words(ident).join(".")
}

/// The topic of an aggregate's domain events, `domain.{aggregate}.events` (seed 000; the runtime's
/// `herald::naming::domain_events` says the same).
pub fn domain_topic(aggregate: &str) -> String {
    format!("domain.{aggregate}.events")
}

/// `UserCreated` → `user_created`.
pub fn snake_case(ident: &str) -> String {
    words(ident).join("_")
}

/// The default topic of an integration event (seed 002): `integration-events.{snake_case}`.
pub fn default_topic(ident: &str) -> String {
    format!("integration-events.{}", snake_case(ident))
}

/// The default topic of a command named `name` (seed 000/001's `notification.commands`):
/// `{domain}.commands`, the domain being the name's first dot-separated segment
/// (`user.create` → `user.commands`).
pub fn command_topic(name: &str) -> String {
    let domain = name.split('.').next().unwrap_or(name);
    format!("{domain}.commands")
}

/// Why `topic` is not a legal Kafka topic name, if it is not.
pub fn topic_problem(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some(
            "a topic name cannot be empty: leave `topic` out to use the default topic".into(),
        );
    }
    if topic == "." || topic == ".." {
        return Some(format!(
            "`{topic}` is not a legal Kafka topic name: name the topic with ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    if topic.len() > 249 {
        return Some(format!(
            "a Kafka topic name has at most 249 characters, this one has {}",
            topic.len()
        ));
    }
    illegal_char(topic).map(|what| {
        format!(
            "`{topic}` is not a legal Kafka topic name: {what} cannot appear in it; \
             use only ASCII letters, digits, `.`, `_` and `-`"
        )
    })
}

/// The first character of `topic` Kafka does not allow, described for a message.
pub fn illegal_char(topic: &str) -> Option<String> {
    topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|c| match c {
            ' ' => "a space".to_owned(),
            c if c.is_whitespace() || c.is_control() => format!("{c:?}"),
            c => format!("`{c}`"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_case_splits_camel_case_words() {
        assert_eq!(dot_case("UserCreated"), "user.created");
        assert_eq!(dot_case("OrderLineItemAdded"), "order.line.item.added");
        assert_eq!(dot_case("Created"), "created");
    }

    #[test]
    fn acronyms_stay_one_word() {
        assert_eq!(dot_case("HTTPRequestSent"), "http.request.sent");
        assert_eq!(snake_case("UserIDChanged"), "user_id_changed");
        assert_eq!(dot_case("SMS"), "sms");
    }

    #[test]
    fn digits_and_underscores() {
        assert_eq!(dot_case("Order2Shipped"), "order2.shipped");
        assert_eq!(snake_case("Legacy_Event"), "legacy_event");
        assert_eq!(snake_case("r#Type"), "type");
    }

    #[test]
    fn default_topic_follows_seed_convention() {
        assert_eq!(
            default_topic("UserCreated"),
            "integration-events.user_created"
        );
    }

    #[test]
    fn command_topic_is_the_domain_of_the_name() {
        assert_eq!(command_topic("user.create"), "user.commands");
        assert_eq!(command_topic("billing.invoice.send"), "billing.commands");
        assert_eq!(command_topic("ping"), "ping.commands");
    }

    #[test]
    fn topic_validation() {
        assert_eq!(topic_problem("users.events-v1_x"), None);
        assert!(topic_problem("").is_some());
        assert!(topic_problem("..").is_some());
        assert!(topic_problem("users events")
            .unwrap()
            .contains("a space cannot appear"));
        assert!(topic_problem("users/events").unwrap().contains("`/`"));
        assert!(topic_problem("événements").unwrap().contains("`é`"));
        assert!(topic_problem(&"a".repeat(250)).unwrap().contains("249"));
    }
}
