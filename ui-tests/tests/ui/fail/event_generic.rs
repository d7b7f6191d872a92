use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Created<T> {
    pub item: T,
}

// Uses of the type compile against the fallback impl: the one error is the derive's.
fn publishes<E: HeraldEvent>(_: &E) {}

fn main() {
    publishes(&Created { item: 1u8 });
}
