//! The schema contract end to end on the events of this test: the export's files, the AsyncAPI
//! document validated against the AsyncAPI 3.0.0 JSON Schema, subjects of a shared topic, a
//! version bump that keeps the old file, compatible changes written in place and breaking ones
//! refused.

use std::fs;
use std::path::{Path, PathBuf};

use herald::prelude::*;
use herald::registry::{EventDescriptor, Registry};
use herald::schemas::{Contract, ProblemKind};
use serde_json::Value;

/// A user signed up.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(version = 1)]
pub struct UserCreated {
    #[event(key)]
    pub user_id: u64,
    pub email: String,
    pub address: Address,
}

/// Version 2 of `user.created`: `email` became `emails`.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(
    name = "user.created",
    topic = "integration-events.user_created",
    version = 2,
    compat = "full"
)]
pub struct UserCreatedV2 {
    #[event(key)]
    pub user_id: u64,
    pub emails: Vec<String>,
    pub address: Address,
}

/// Where a user lives.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Address {
    pub city: String,
}

/// Two event types on one topic.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(topic = "billing")]
pub enum InvoicePaid {
    Card { last4: String },
    Transfer,
}

/// The other type on `billing`; its own `Address` clashes by name with the users' one.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(topic = "billing")]
pub struct InvoiceSent {
    pub aggregate_id: u64,
    pub to: billing::Address,
}

mod billing {
    use herald::prelude::*;

    /// A billing address.
    #[derive(Serialize, Deserialize, JsonSchema)]
    pub struct Address {
        pub line: String,
        pub country: String,
    }
}

#[handler(group = "mailer")]
async fn welcome(_event: UserCreated) -> Result<(), HandlerError> {
    Ok(())
}

#[handler(group = "mailer")]
async fn welcome_v2(_event: UserCreatedV2) -> Result<(), HandlerError> {
    Ok(())
}

#[handler]
async fn book(_event: Event<InvoicePaid>) -> Result<(), HandlerError> {
    Ok(())
}

/// A directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("herald-schemas-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn contract() -> Contract {
    Contract::new(Registry::collect().unwrap(), "schema-test")
}

/// The registry without the given versions of `user.created`.
fn without_user_created(versions: &[u32]) -> Contract {
    let events: Vec<&'static EventDescriptor> = inventory_events()
        .into_iter()
        .filter(|e| !(e.event_type == "user.created" && versions.contains(&e.version)))
        .collect();
    let handlers = Registry::collect()
        .unwrap()
        .handlers()
        .iter()
        .copied()
        .filter(|h| !(h.event_type == "user.created" && versions.contains(&h.event_version)))
        .collect();
    Contract::new(
        Registry::from_parts(events, handlers).unwrap(),
        "schema-test",
    )
}

fn inventory_events() -> Vec<&'static EventDescriptor> {
    Registry::collect().unwrap().events().to_vec()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

fn validate_asyncapi(document: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(include_str!("data/asyncapi-3.0.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the AsyncAPI 3.0.0 schema compiles");
    validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn export_writes_every_file_and_then_checks_clean() {
    let dir = TempDir::new("export");
    let report = contract().export(&dir.0).unwrap();
    let mut written: Vec<String> = report
        .written
        .iter()
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "asyncapi.json",
            "billing/invoice.paid.v1.json",
            "billing/invoice.sent.v1.json",
            "integration-events.user_created/user.created.v1.json",
            "integration-events.user_created/user.created.v2.json",
            "registry.json",
        ]
    );
    contract().check(&dir.0).unwrap();
    let again = contract().export(&dir.0).unwrap();
    assert!(again.written.is_empty(), "{again:?}");
    let text = fs::read_to_string(dir.0.join("billing/invoice.sent.v1.json")).unwrap();
    assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn the_asyncapi_document_is_valid_asyncapi_3() {
    let document: Value =
        serde_json::from_str(&contract().files()[Path::new("asyncapi.json")]).unwrap();
    let errors = validate_asyncapi(&document);
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    assert_eq!(document["channels"]["billing"]["address"], "billing");
    let messages = document["channels"]["billing"]["messages"]
        .as_object()
        .unwrap();
    assert_eq!(
        messages.keys().collect::<Vec<_>>(),
        ["invoice.paid.v1", "invoice.sent.v1"]
    );
    let operations = document["operations"].as_object().unwrap();
    assert_eq!(operations["send.user.created.v2"]["action"], "send");
    let mailer = &operations["receive.mailer.integration-events.user_created"];
    assert_eq!(mailer["action"], "receive");
    assert_eq!(
        mailer["bindings"]["kafka"]["groupId"]["enum"],
        serde_json::json!(["mailer"])
    );
    assert_eq!(mailer["messages"].as_array().unwrap().len(), 2);
    assert!(operations.contains_key("receive.default-group.billing"));
    let message = &document["components"]["messages"]["user.created.v2"];
    assert_eq!(
        message["headers"]["properties"]["ce_schemaversion"]["const"],
        "2"
    );
    assert_eq!(message["bindings"]["kafka"]["key"]["type"], "string");
    // Two different `Address` definitions: the second is stored under its message's name.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(schemas.contains_key("Address"), "{:?}", schemas.keys());
    assert_eq!(schemas.len(), 2, "{:?}", schemas.keys());
    let refs = |message: &str| {
        document["components"]["messages"][message]["payload"]
            .to_string()
            .contains("#/components/schemas/")
    };
    assert!(refs("invoice.sent.v1") && refs("user.created.v1"));

    // An invalid document is caught: an operation without its channel.
    let mut broken = document.clone();
    broken["operations"]["send.user.created.v2"]
        .as_object_mut()
        .unwrap()
        .remove("channel");
    assert!(!validate_asyncapi(&broken).is_empty());
}

#[test]
fn the_committed_examples_asyncapi_document_is_valid_asyncapi_3() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/asyncapi.json");
    let errors = validate_asyncapi(&read_json(&path));
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn subjects_per_topic_or_per_type_when_types_share_a_topic() {
    let index: Value =
        serde_json::from_str(&contract().files()[Path::new("registry.json")]).unwrap();
    let subjects: Vec<(&str, &str)> = index["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subject"].as_str().unwrap(),
                s["strategy"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            ("billing-invoice.paid", "TopicRecordNameStrategy"),
            ("billing-invoice.sent", "TopicRecordNameStrategy"),
            ("integration-events.user_created-value", "TopicNameStrategy"),
        ]
    );
    let users = &index["subjects"][2]["versions"];
    assert_eq!(users[0]["version"], 1);
    assert_eq!(users[1]["version"], 2);
    assert_eq!(users[1]["compatibility"], "FULL");
    assert_eq!(users[1]["rustType"], "schemas::UserCreatedV2");
}

#[test]
fn a_version_bump_writes_a_new_file_and_keeps_the_old_one() {
    let dir = TempDir::new("bump");
    without_user_created(&[2]).export(&dir.0).unwrap();
    let v1 = dir
        .0
        .join("integration-events.user_created/user.created.v1.json");
    let v2 = dir
        .0
        .join("integration-events.user_created/user.created.v2.json");
    assert!(v1.exists() && !v2.exists());
    // v2 arrives, v1's type is deleted from the code: v1's file stays, the check passes.
    let report = without_user_created(&[1]).export(&dir.0).unwrap();
    assert!(report
        .written
        .iter()
        .any(|p| p.ends_with("user.created.v2.json")));
    assert!(v1.exists() && v2.exists());
    without_user_created(&[1]).check(&dir.0).unwrap();
}

#[test]
fn a_compatible_change_is_written_in_place_and_a_breaking_one_is_refused() {
    let dir = TempDir::new("inplace");
    contract().export(&dir.0).unwrap();
    let v1 = dir
        .0
        .join("integration-events.user_created/user.created.v1.json");

    // The committed v1 had an optional `nickname` the code dropped: readers of either shape do
    // without it, so the file is only out of date.
    let mut committed = read_json(&v1);
    committed["properties"]["nickname"] = serde_json::json!({ "type": ["string", "null"] });
    fs::write(&v1, serde_json::to_string_pretty(&committed).unwrap()).unwrap();
    let problems = contract().check(&dir.0).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::OutOfDate);
    let report = contract().export(&dir.0).unwrap();
    assert_eq!(report.written.len(), 1, "{report:?}");
    contract().check(&dir.0).unwrap();

    // The committed v1 had a required `phone` inside `address`: removing it breaks readers.
    let address = dir
        .0
        .join("integration-events.user_created/user.created.v1.json");
    let mut committed = read_json(&address);
    committed["$defs"]["Address"]["properties"]["phone"] = serde_json::json!({ "type": "string" });
    committed["$defs"]["Address"]["required"]
        .as_array_mut()
        .unwrap()
        .push("phone".into());
    let edited = serde_json::to_string_pretty(&committed).unwrap();
    fs::write(&address, &edited).unwrap();
    let problems = contract().export(&dir.0).unwrap_err();
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        ["UserCreated v1: field `address.phone` removed — bump `version` to 2 or keep the field"]
    );
    assert_eq!(
        fs::read_to_string(&address).unwrap(),
        edited,
        "a refused export writes nothing"
    );
}

#[test]
fn backward_allows_a_new_enum_variant_and_full_refuses_a_removed_field() {
    let dir = TempDir::new("full");
    contract().export(&dir.0).unwrap();
    // InvoicePaid (backward): the committed schema lacked `Transfer`, a variant the code added.
    let paid = dir.0.join("billing/invoice.paid.v1.json");
    let mut committed = read_json(&paid);
    committed["oneOf"]
        .as_array_mut()
        .unwrap()
        .retain(|v| v.to_string().contains("Card"));
    fs::write(&paid, serde_json::to_string_pretty(&committed).unwrap()).unwrap();
    let problems = contract().check(&dir.0).unwrap_err();
    assert_eq!(problems[0].kind, ProblemKind::OutOfDate, "{problems:?}");

    // UserCreatedV2 (full) had a required `nickname` the code dropped: refused, with the next
    // version to bump to.
    let v2 = dir
        .0
        .join("integration-events.user_created/user.created.v2.json");
    let mut committed = read_json(&v2);
    committed["required"]
        .as_array_mut()
        .unwrap()
        .push("nickname".into());
    committed["properties"]["nickname"] = serde_json::json!({ "type": "string" });
    fs::write(&v2, serde_json::to_string_pretty(&committed).unwrap()).unwrap();
    let problems = contract().check(&dir.0).unwrap_err();
    let v2_problems: Vec<&str> = problems
        .iter()
        .filter(|p| p.file.ends_with("user.created.v2.json"))
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(
        v2_problems,
        ["UserCreatedV2 v2: field `nickname` removed — bump `version` to 3 or keep the field"]
    );
}
