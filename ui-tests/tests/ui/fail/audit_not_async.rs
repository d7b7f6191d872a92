use herald::prelude::*;

#[audit_event(action = "create_user", resource_type = "user")]
fn create_user(user_id: String) -> Result<(), String> {
    let _ = user_id;
    Ok(())
}

fn main() {}
