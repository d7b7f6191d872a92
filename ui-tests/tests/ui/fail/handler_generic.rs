use herald::prelude::*;

#[handler]
async fn on_any<E: HeraldEvent>(event: E) -> Result<(), HandlerError> {
    let _ = event;
    Ok(())
}

fn main() {}
