use herald::prelude::*;

#[derive(IntegrationEvent)]
pub union Payload {
    pub id: u64,
    pub ratio: f64,
}

fn main() {}
