use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
}

async fn ask(bus: &Bus) -> herald::Result<()> {
    // An event has no reply: publish it.
    bus.request(UserCreated { user_id: 1 }).await?;
    Ok(())
}

fn main() {
    let _ = ask;
}
