use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub aggregate_id: String,
}

#[handler(backoff = "100ms...30s")]
async fn on_payment(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}
fn main() {}
