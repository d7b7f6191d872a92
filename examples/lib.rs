//! Runnable examples of herald: `cargo run --example quickstart` and `cargo run --example two_services`.
//!
//! The examples' events are declared here, in the library, so that the schema test
//! (`tests/schemas.rs`) links them: `inventory` registers only what a binary links. That test checks
//! the exported schemas committed in the repository's `schemas/` directory.

use herald::prelude::*;
use uuid::Uuid;

/// A user signed up. Topic `integration-events.user_created`, type `user.created`.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(version = 1)]
pub struct UserCreated {
    /// The partition key: every event of one user lands in one partition, in order.
    #[event(key)]
    pub user_id: Uuid,
    /// Where to send the welcome mail.
    pub email: String,
}

/// A welcome mail was sent; published by a handler, so it carries the user's correlation id.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "notification.welcome.sent", topic = "notifications")]
pub struct WelcomeSent {
    /// The user who was welcomed.
    #[event(key)]
    pub user_id: Uuid,
}

/// An order was placed; keyed by customer, so one customer's orders stay in order.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "orders.placed")]
pub struct OrderPlaced {
    /// The order's number.
    pub order_id: u64,
    /// The customer, and the partition key.
    #[event(key)]
    pub customer: String,
}
