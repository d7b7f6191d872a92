//! A user service with a transactional outbox: each sign-up writes the user row and its
//! `UserCreated` event in one database transaction, so the event is published if and only if the
//! user was saved. A relay moves the events to Kafka; a handler sends the welcome mail once per
//! event (`processed_once` in the handler's own transaction), even when Kafka delivers it twice.
//!
//! `cargo run --example outbox` uses SQLite in a temporary file and herald's embedded broker; with
//! `DATABASE_URL=postgres://...` it uses PostgreSQL (tables `example_herald_outbox`, ...).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald::prelude::*;
use herald_outbox::{postgres, sqlite, OutboxStats, RelayConfig, RelayHandle};
use uuid::Uuid;

/// A user signed up. Topic `integration-events.user_signed_up`, type `user.signed_up`.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(
    version = 1,
    name = "user.signed_up",
    topic = "integration-events.user_signed_up"
)]
pub struct UserSignedUp {
    /// The partition key.
    #[event(key)]
    pub user_id: Uuid,
    /// Where to send the welcome mail.
    pub email: String,
}

static WELCOMED: AtomicUsize = AtomicUsize::new(0);

/// The service's database with its outbox: SQLite or PostgreSQL.
#[derive(Clone)]
enum Store {
    Sqlite(sqlite::Outbox),
    Postgres(postgres::Outbox),
}

/// The same code for either backend (`$outbox` is the backend's `Outbox`).
macro_rules! with_outbox {
    ($store:expr, |$outbox:ident| $body:expr) => {
        match $store {
            Store::Sqlite($outbox) => $body,
            Store::Postgres($outbox) => $body,
        }
    };
}

impl Store {
    /// The store, and the SQLite file to delete at the end.
    async fn open() -> Result<(Self, Option<std::path::PathBuf>), Box<dyn std::error::Error>> {
        let mut file = None;
        let store = match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => {
                let pool = sqlx::PgPool::connect(&url).await?;
                for table in ["users", "welcomes", "herald_outbox", "herald_processed"] {
                    sqlx::query(&format!("DROP TABLE IF EXISTS example_{table}"))
                        .execute(&pool)
                        .await?;
                }
                Store::Postgres(postgres::Outbox::with_prefix(pool, "example_")?)
            }
            _ => {
                let path =
                    std::env::temp_dir().join(format!("herald-outbox-{}.db", Uuid::new_v4()));
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(30));
                println!("SQLite database: {}", path.display());
                file = Some(path.clone());
                Store::Sqlite(sqlite::Outbox::with_prefix(
                    sqlx::SqlitePool::connect_with(options).await?,
                    "example_",
                )?)
            }
        };
        with_outbox!(&store, |outbox| {
            outbox.migrate().await?;
            for ddl in [
                "CREATE TABLE IF NOT EXISTS example_users (id TEXT PRIMARY KEY, email TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS example_welcomes (user_id TEXT NOT NULL, email TEXT NOT NULL)",
            ] {
                sqlx::query(ddl).execute(outbox.pool()).await?;
            }
        });
        Ok((store, file))
    }

    /// Saves the user and its event in one transaction; `commit: false` rolls both back.
    async fn sign_up(&self, bus: &Bus, email: &str, commit: bool) -> herald_outbox::Result<()> {
        let user_id = Uuid::new_v4();
        let event = UserSignedUp {
            user_id,
            email: email.into(),
        };
        with_outbox!(self, |outbox| {
            let mut tx = outbox.pool().begin().await?;
            sqlx::query("INSERT INTO example_users (id, email) VALUES ($1, $2)")
                .bind(user_id.to_string())
                .bind(email)
                .execute(&mut *tx)
                .await?;
            outbox.publish_transactional(&mut tx, bus, &event).await?;
            if commit {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
        });
        Ok(())
    }

    /// Records the welcome mail once per event id; `false` for a repeat.
    async fn welcome_once(
        &self,
        event_id: &str,
        user: &UserSignedUp,
    ) -> herald_outbox::Result<bool> {
        with_outbox!(self, |outbox| {
            let mut tx = outbox.pool().begin().await?;
            if !outbox
                .processed_once(&mut tx, "welcome-service", event_id)
                .await?
            {
                return Ok(false);
            }
            sqlx::query("INSERT INTO example_welcomes (user_id, email) VALUES ($1, $2)")
                .bind(user.user_id.to_string())
                .bind(&user.email)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn relay(&self, bus: &Bus) -> RelayHandle {
        let config = RelayConfig {
            poll_interval: Duration::from_millis(100),
            ..Default::default()
        };
        match self {
            Store::Sqlite(outbox) => sqlite::Relay::start(bus.clone(), outbox.clone(), config),
            Store::Postgres(outbox) => postgres::Relay::start(bus.clone(), outbox.clone(), config),
        }
    }

    async fn stats(&self) -> herald_outbox::Result<OutboxStats> {
        with_outbox!(self, |outbox| outbox.stats().await)
    }
}

/// Sends the welcome mail, once per event although Kafka delivers at least once.
#[handler(group = "welcome-service")]
async fn welcome(event: Event<UserSignedUp>, ctx: &Context) -> Result<(), HandlerError> {
    let store = ctx
        .state::<Store>()
        .expect("the store is shared with the handlers");
    if store.welcome_once(&event.meta.id, &event.data).await? {
        println!(
            "[welcome-service] welcome mail to {} (event {})",
            event.data.email, event.meta.id
        );
        WELCOMED.fetch_add(1, Ordering::SeqCst);
    } else {
        println!(
            "[welcome-service] event {} was handled before: skipped",
            event.meta.id
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (store, file) = Store::open().await?;
    let bus = Bus::builder(Config::new("user-service").embedded())
        .state(store.clone())
        .build()
        .await?;
    bus.start().await?;
    let relay = store.relay(&bus);

    store.sign_up(&bus, "ada@example.com", true).await?;
    store.sign_up(&bus, "grace@example.com", true).await?;
    store
        .sign_up(&bus, "rolled.back@example.com", false)
        .await?; // never published
    store.sign_up(&bus, "edsger@example.com", true).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while WELCOMED.load(Ordering::SeqCst) < 3 {
        if tokio::time::Instant::now() > deadline {
            return Err("the welcome mails did not arrive within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let totals = relay.stop().await;
    bus.shutdown().await?;
    let stats = store.stats().await?;
    println!(
        "relay published {} events; outbox: {} published, {} pending, {} dead; welcome mails: {}",
        totals.published,
        stats.published,
        stats.pending,
        stats.dead,
        WELCOMED.load(Ordering::SeqCst)
    );
    if let Store::Sqlite(outbox) = &store {
        outbox.pool().close().await;
    }
    if let Some(file) = file {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }
    Ok(())
}
