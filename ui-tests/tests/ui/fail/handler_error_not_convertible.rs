use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(event: UserCreated) -> Result<(), u32> {
    let _ = event;
    Ok(())
}
fn main() {}

mod aliased {
    use super::*;

    /// Not an error type: neither `std::error::Error` nor convertible into a boxed one.
    pub struct Failure;

    type Outcome = Result<(), Failure>;

    #[handler]
    async fn on_user(event: UserCreated) -> Outcome {
        let _ = event;
        Ok(())
    }
}
