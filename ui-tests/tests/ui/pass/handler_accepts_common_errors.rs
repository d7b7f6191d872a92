// Every error type Rust services usually return is a handler error: anything that converts into
// `Box<dyn std::error::Error + Send + Sync>`, plus `HandlerError` itself.
use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn with_anyhow(event: UserCreated) -> anyhow::Result<()> {
    anyhow::ensure!(event.user_id > 0, "user id 0");
    Ok(())
}

#[handler]
async fn with_boxed(event: UserCreated) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = event;
    Err("boxed".into())
}

#[handler]
async fn with_string(event: Event<UserCreated>) -> Result<(), String> {
    Err(format!("no user {}", event.data.user_id))
}

#[handler]
async fn with_str(event: UserCreated) -> Result<(), &'static str> {
    let _ = event;
    Err("static text")
}

#[handler]
async fn with_io(event: UserCreated) -> std::io::Result<()> {
    let _ = event;
    Ok(())
}

/// Like `eyre::Report`: not a `std::error::Error` itself, but convertible into a boxed one.
pub struct Report(String);

impl From<Report> for Box<dyn std::error::Error + Send + Sync> {
    fn from(report: Report) -> Self {
        report.0.into()
    }
}

#[handler]
async fn with_report(event: UserCreated) -> Result<(), Report> {
    let _ = event;
    Err(Report("eyre-like".into()))
}

#[handler]
async fn with_permanent(event: UserCreated) -> Result<(), HandlerError> {
    let _ = event;
    Err(HandlerError::permanent(HandlerError::msg("bad input")))
}

fn main() {}
