use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct PaymentCaptured {
    pub aggregate_id: String,
}

#[handler(
    group = "payments",
    name = "capture",
    retries = 5,
    backoff = "100ms..30s",
    timeout = "5s",
    policy = "payments",
    concurrency = 8
)]
async fn on_payment(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

#[handler(retries = 0, backoff = "2s", timeout = "1h")]
async fn fixed(event: PaymentCaptured) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {
    let descriptor = herald::registry::Registry::collect()
        .unwrap()
        .handlers()
        .iter()
        .find(|h| h.name == "capture")
        .copied()
        .unwrap();
    assert_eq!(descriptor.retry.max_retries, Some(5));
    assert_eq!(descriptor.concurrency, 8);
    let fixed = herald::registry::Registry::collect()
        .unwrap()
        .handlers()
        .iter()
        .find(|h| h.name == "fixed")
        .copied()
        .unwrap();
    assert_eq!(fixed.concurrency, 1, "the default");
}
