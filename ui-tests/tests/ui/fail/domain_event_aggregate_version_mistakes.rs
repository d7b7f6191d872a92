use herald::prelude::*;

#[domain_event(aggregate = "cart", aggregate_id = cart_id, aggregate_version = revison)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ItemAdded {
    pub cart_id: String,
    pub revision: u32,
}

#[domain_event(aggregate = "cart", aggregate_id = cart_id, aggregate_version = label)]
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ItemRemoved {
    pub cart_id: String,
    pub label: String,
}

fn main() {}
