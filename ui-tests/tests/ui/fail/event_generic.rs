use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Created<T> {
    pub item: T,
}

fn main() {}
