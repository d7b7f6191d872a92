use herald::prelude::*;

#[derive(Serialize)]
pub struct Profile {
    pub name: String,
}

/// Not serializable, but skipped.
pub struct Connection;

pub struct Users;

impl Users {
    #[audit_event(action = "create_user", resource_type = "user", resource_id = user_id, include_args)]
    pub async fn create_user(
        &self,
        user_id: u64,
        profile: Profile,
        #[audit(redact)] password: String,
        #[audit(skip)] db: Connection,
    ) -> anyhow::Result<u64> {
        let _ = (profile, password, db);
        anyhow::ensure!(user_id > 0, "user id 0");
        Ok(user_id)
    }
}

#[audit_event(action = "delete_user", resource_type = "user")]
async fn delete_user(user_id: u64) -> Result<(), String> {
    if user_id == 0 {
        return Err("no user 0".into());
    }
    Ok(())
}

fn main() {
    let _ = (Users.create_user(1, Profile { name: "a".into() }, "pw".into(), Connection), delete_user(1));
}
