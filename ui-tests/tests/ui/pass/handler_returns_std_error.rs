//! Any `Result<(), E>` with `E: std::error::Error + Send + Sync + 'static` is a handler result.
use herald::prelude::*;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct FileUploaded {
    pub path: String,
}

#[handler]
async fn index_file(event: FileUploaded) -> Result<(), std::io::Error> {
    if event.path.is_empty() {
        return Err(std::io::Error::other("empty path"));
    }
    Ok(())
}

/// A `Result` alias works too: the error type is inferred.
#[handler(name = "index-file-aliased")]
async fn index_file_aliased(event: Event<FileUploaded>) -> std::io::Result<()> {
    let _ = event;
    Ok(())
}

fn main() {}
