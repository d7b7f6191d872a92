use herald::prelude::*;

mod model {
    #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct UserCreated {
        pub user_id: u64,
    }
}

#[handler]
async fn on_user(event: Event<model::UserCreated>) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
