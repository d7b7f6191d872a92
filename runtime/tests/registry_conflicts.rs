//! The registry validates the whole set of registered events and handlers at start-up: this binary
//! deliberately registers two Rust types for one event type and two handlers with one name.

use herald::prelude::*;
use herald::Error;

mod billing {
    use herald::prelude::*;

    #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
    pub struct InvoicePaid {
        pub id: u64,
    }
}

mod accounting {
    use herald::prelude::*;

    #[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
    pub struct InvoicePaid {
        pub invoice: String,
    }

    #[handler(name = "on_paid")]
    pub async fn record(_event: InvoicePaid) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[handler(name = "on_paid")]
async fn notify(_event: billing::InvoicePaid) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::test]
async fn conflicting_registrations_fail_at_start_up_naming_both_items() {
    let err = Bus::new(Config::new("ledger").embedded())
        .await
        .unwrap_err();
    let Error::Registry(conflicts) = &err else {
        panic!("expected a registry error, got {err:?}");
    };
    assert_eq!(
        conflicts.len(),
        2,
        "one duplicate event type and one duplicate handler name: {conflicts}"
    );
    let message = conflicts.to_string();
    for needle in [
        "invoice.paid",
        "registry_conflicts::billing::InvoicePaid",
        "registry_conflicts::accounting::InvoicePaid",
        "registry_conflicts::accounting::record",
        "registry_conflicts::notify",
        "on_paid",
    ] {
        assert!(
            message.contains(needle),
            "`{needle}` missing from: {message}"
        );
    }
}
