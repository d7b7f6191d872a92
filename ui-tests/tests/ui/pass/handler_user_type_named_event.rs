// A user type named `Event` is an ordinary event: herald tells its own `Event<T>` apart through the
// type system, not by the name.
use herald::{handler, HandlerError, IntegrationEvent};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
#[event(name = "calendar.event")]
pub struct Event {
    pub title: String,
}

#[handler]
async fn on_calendar_event(event: Event) -> Result<(), HandlerError> {
    let _ = event.title;
    Ok(())
}

mod envelope {
    use super::Event as CalendarEvent;
    use herald::{handler, Event, HandlerError};

    #[handler]
    async fn on_calendar_envelope(event: Event<CalendarEvent>) -> Result<(), HandlerError> {
        let _ = (event.meta.id, event.data.title);
        Ok(())
    }
}

fn main() {}
