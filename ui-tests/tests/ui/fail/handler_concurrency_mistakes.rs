use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub aggregate_id: String,
}

#[handler(concurrency = 0)]
async fn zero(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = 1025)]
async fn too_many(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = 100000)]
async fn far_too_many(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = 2.5)]
async fn fraction(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = "8")]
async fn quoted(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = -4)]
async fn negative(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(concurrency = many)]
async fn a_name(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(parallelism = 8)]
async fn other_word(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
