use herald::prelude::*;

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct OrderId(u64);

/// Without `#[event(key)]`, the field named `aggregate_id` is the partition key.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub aggregate_id: OrderId,
}

fn main() {}
