use herald::prelude::*;

#[domain_event(aggregate = "user", aggregate_id = user_id)]
#[derive(Serialize, Deserialize, JsonSchema, Clone)]
pub struct UserRegistered {
    pub user_id: String,
    pub email: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered)]
pub struct UserJoined {
    #[event(key)]
    pub user_id: String,
}

impl From<UserRegistered> for UserJoined {
    fn from(event: UserRegistered) -> Self {
        Self { user_id: event.user_id }
    }
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(from = UserRegistered, with = mails::welcome)]
#[event(from = UserJoined, with = mails::joined)]
pub struct MailRequested {
    pub to: String,
}

mod mails {
    use super::*;

    pub fn welcome(event: &UserRegistered) -> MailRequested {
        MailRequested { to: event.email.clone() }
    }

    pub fn joined(event: &UserJoined) -> MailRequested {
        MailRequested { to: event.user_id.clone() }
    }
}

fn main() {}
