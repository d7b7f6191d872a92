//! A command: the derive with every option, a handler returning its reply (with and without the
//! envelope and context), `bus.request`, `request_with` and fire-and-forget `publish`.
use herald::prelude::*;
use std::time::Duration;

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
pub struct UserCreatedReply {
    pub user_id: u64,
}

#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = UserCreatedReply, name = "user.create", topic = "users.commands", timeout = "5s", version = 2, crate = "herald")]
pub struct CreateUser {
    #[command(key)]
    pub email: String,
}

/// `()`: a bare acknowledgement; an enum command.
#[derive(Command, Serialize, Deserialize, JsonSchema)]
#[command(reply = ())]
pub enum Housekeeping {
    Vacuum,
    Reindex { table: String },
}

#[handler(group = "users", retries = 2)]
async fn create_user(
    command: Event<CreateUser>,
    _ctx: &Context,
) -> Result<UserCreatedReply, HandlerError> {
    Ok(UserCreatedReply {
        user_id: command.data.email.len() as u64,
    })
}

#[handler]
async fn housekeeping(command: Housekeeping) -> anyhow::Result<()> {
    let _ = command;
    Ok(())
}

async fn use_it(bus: &Bus) -> herald::Result<u64> {
    let reply: UserCreatedReply = bus
        .request(CreateUser {
            email: "a@b.c".into(),
        })
        .await?;
    bus.request_with(
        Housekeeping::Vacuum,
        RequestOptions::new()
            .timeout(Duration::from_secs(1))
            .correlation_id("c-1"),
    )
    .await?;
    bus.publish(Housekeeping::Reindex {
        table: "users".into(),
    })
    .await?;
    Ok(reply.user_id)
}

fn main() {
    assert_eq!(<CreateUser as HeraldEvent>::TOPIC, "users.commands");
    assert_eq!(<CreateUser as Command>::TIMEOUT, Duration::from_secs(5));
    assert_eq!(<Housekeeping as HeraldEvent>::TOPIC, "housekeeping.commands");
    let _ = use_it;
}
