use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct BestellungGeändert {
    pub id: u64,
}

fn main() {}
