use herald::prelude::*;

#[audit_event(action = "create_user", resource_id_field = "user_id", include_args = true)]
async fn create_user(#[audit(hide)] user_id: String) -> Result<(), String> {
    let _ = user_id;
    Ok(())
}

fn main() {}
