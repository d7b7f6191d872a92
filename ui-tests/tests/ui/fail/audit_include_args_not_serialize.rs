use herald::prelude::*;

pub struct Connection;

#[audit_event(action = "create_user", resource_type = "user", include_args)]
async fn create_user(user_id: String, db: Connection) -> Result<(), String> {
    let _ = (user_id, db);
    Ok(())
}

fn main() {}
