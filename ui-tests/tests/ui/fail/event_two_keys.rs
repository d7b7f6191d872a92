use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    #[event(key)]
    pub order_id: u64,
    #[event(key)]
    pub customer_id: u64,
}

fn main() {}
