use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

#[handler]
async fn on_user(event: UserCreated) -> Result<(), String> {
    let _ = event;
    Ok(())
}
fn main() {}

mod aliased {
    use super::*;

    type Outcome = Result<(), &'static str>;

    #[handler]
    async fn on_user(event: UserCreated) -> Outcome {
        let _ = event;
        Ok(())
    }
}
