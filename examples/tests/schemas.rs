//! The examples' schemas committed in the repository's `schemas/` directory match the code: a
//! drift or a breaking change fails `cargo test --workspace`, and so CI. Update them with
//! `HERALD_UPDATE_SCHEMAS=1 cargo test -p herald-examples --test schemas` and commit the result.

use std::fs;
use std::path::{Path, PathBuf};

use herald::schemas::{check, ProblemKind};

// The events are in the library; the handlers are in the example programs, compiled here as
// modules so that the AsyncAPI document lists the groups that receive.
#[allow(dead_code)]
#[path = "../quickstart.rs"]
mod quickstart;
#[allow(dead_code)]
#[path = "../two_services.rs"]
mod two_services;

use herald_examples as _;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

#[test]
fn committed_schemas_match_the_examples() {
    herald::assert_schemas_up_to_date!("../schemas");
}

/// A copy of the committed schemas, removed on drop.
struct Copy(PathBuf);

impl Copy {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("herald-schemas-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        copy_dir(&committed(), &dir);
        Self(dir)
    }

    /// Rewrites one committed schema.
    fn edit(&self, file: &str, edit: impl FnOnce(&mut serde_json::Value)) {
        let path = self.0.join(file);
        let mut schema: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut schema);
        fs::write(&path, serde_json::to_string_pretty(&schema).unwrap()).unwrap();
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

const USER_CREATED: &str = "integration-events.user_created/user.created.v1.json";

#[test]
fn a_field_the_code_no_longer_has_fails_the_check_with_what_to_do() {
    let copy = Copy::new("removed");
    // The committed v1 had a required `phone` that the code no longer declares.
    copy.edit(USER_CREATED, |schema| {
        schema["properties"]["phone"] = serde_json::json!({ "type": "string" });
        schema["required"]
            .as_array_mut()
            .unwrap()
            .push("phone".into());
    });
    let problems = check(&copy.0, "herald-examples").unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        ["UserCreated v1: field `phone` removed — bump `version` to 2 or keep the field"]
    );
    assert_eq!(problems[0].kind, ProblemKind::Breaking);
}

#[test]
fn a_new_required_field_fails_and_a_new_description_is_only_drift() {
    let copy = Copy::new("added");
    copy.edit(USER_CREATED, |schema| {
        schema["properties"]
            .as_object_mut()
            .unwrap()
            .remove("email");
        schema["required"]
            .as_array_mut()
            .unwrap()
            .retain(|name| name != "email");
    });
    let problems = check(&copy.0, "herald-examples").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].message.starts_with(
            "UserCreated v1: new field `email` is required but events written before lack it"
        ),
        "{}",
        problems[0]
    );

    let copy = Copy::new("described");
    copy.edit(USER_CREATED, |schema| {
        schema["description"] = "an older wording".into();
    });
    let problems = check(&copy.0, "herald-examples").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::OutOfDate, "{}", problems[0]);
    assert!(problems[0].message.contains("HERALD_UPDATE_SCHEMAS=1"));
}
