//! A service that exposes its metrics and health over HTTP: `GET /metrics` (Prometheus text, seed
//! 003's `kafka.eventbus.*` metrics, rendered from a `metrics-exporter-prometheus` handle) and
//! `GET /health` (JSON; 200 when ready, 503 when not) and `GET /health/live` (200 while live), with
//! axum. It publishes a `UserCreated` every 200 ms and handles it, on the embedded broker unless
//! `KAFKA_BOOTSTRAP_SERVERS` is set.
//!
//! `cargo run --example observability`, then `curl localhost:9464/metrics` (the address is
//! `HERALD_EXAMPLE_ADDR`, default `127.0.0.1:9464`). With `HERALD_EXAMPLE_EXIT_AFTER_SECS=N` it
//! scrapes itself after N seconds, prints what it got, and exits.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use herald::prelude::*;
use herald_examples::UserCreated;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

#[handler(group = "observability-service")]
async fn greet(event: UserCreated) -> Result<(), HandlerError> {
    tracing::debug!(user = %event.user_id, "greeted");
    Ok(())
}

#[derive(Clone)]
struct App {
    bus: Bus,
    metrics: PrometheusHandle,
}

/// Prometheus text; the consumer lag is read from the broker first, so each scrape sees it fresh.
async fn render_metrics(State(app): State<App>) -> impl IntoResponse {
    if let Err(error) = app.bus.consumer_lag().await {
        tracing::warn!(%error, "could not read the consumer lag for this scrape");
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// Readiness, with the reasons when not ready.
async fn health(State(app): State<App>) -> impl IntoResponse {
    let health = app.bus.health().await;
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string_pretty(&health).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// Liveness: restart the process when this fails.
async fn live(State(app): State<App>) -> StatusCode {
    if app.bus.health().await.live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// A plain HTTP/1.1 GET over loopback, for the self-check.
async fn get_text(address: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    // The recorder first, so the bus describes its metrics to it.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let bus = Bus::new(Config::from_env("observability-service")?.embedded_if_unset()).await?;
    bus.start().await?;

    let publisher = bus.clone();
    let publishing = tokio::spawn(async move {
        for n in 0u64.. {
            let event = UserCreated {
                user_id: Uuid::new_v4(),
                email: format!("user{n}@example.com"),
            };
            if let Err(error) = publisher.publish(event).await {
                tracing::warn!(%error, "publish failed");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .with_state(App {
            bus: bus.clone(),
            metrics,
        });
    let address = std::env::var("HERALD_EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:9464".into());
    let listener = tokio::net::TcpListener::bind(&address).await.map_err(|e| {
        format!("cannot listen on {address} ({e}): set HERALD_EXAMPLE_ADDR to a free address")
    })?;
    let address = listener.local_addr()?;
    println!("serving http://{address}/metrics and http://{address}/health");

    let exit_after = std::env::var("HERALD_EXAMPLE_EXIT_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    match exit_after {
        Some(seconds) => {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let health = get_text(address, "/health").await?;
            let metrics = get_text(address, "/metrics").await?;
            println!("GET /health -> {}", health.lines().next().unwrap_or(""));
            println!("{}", health.split("\r\n\r\n").nth(1).unwrap_or(""));
            println!("GET /metrics -> {}", metrics.lines().next().unwrap_or(""));
            for line in metrics.lines().filter(|l| {
                l.starts_with("kafka_eventbus_messages_")
                    || l.starts_with("kafka_eventbus_consumer_lag")
            }) {
                println!("  {line}");
            }
            if !health.starts_with("HTTP/1.1 200")
                || !metrics.contains("kafka_eventbus_messages_consumed")
            {
                return Err(format!(
                    "after {seconds} s the service was not ready or consumed nothing: give it more \
                     time with HERALD_EXAMPLE_EXIT_AFTER_SECS (the embedded broker's first group \
                     join takes about 3 s)"
                )
                .into());
            }
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    publishing.abort();
    let _ = stop.send(());
    server.await??;
    bus.shutdown().await?;
    println!("stats: {}", serde_json::to_string(&bus.stats())?);
    Ok(())
}
