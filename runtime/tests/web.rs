//! `herald::web::BusScopeLayer` through real HTTP requests to an axum server: a route calls a
//! `#[domain_event]` function, which publishes through the bus (instead of panicking outside a
//! bus scope) with the request's correlation id from `x-correlation-id` or `traceparent`. On the
//! embedded broker or the real Kafka of `HERALD_TEST_KAFKA`.

mod support;

use herald::headers;
use herald::prelude::*;
use support::*;

#[domain_event(aggregate = "webuser", aggregate_id = user)]
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
pub struct WebUserRegistered {
    pub user: String,
}

#[domain_event]
async fn register(user: String) -> anyhow::Result<WebUserRegistered> {
    Ok(WebUserRegistered { user })
}

async fn register_route(axum::extract::Path(user): axum::extract::Path<String>) -> &'static str {
    match register(user).await {
        Ok(_) => "registered",
        Err(_) => "failed",
    }
}

/// Sends `POST /users/{user}` with `headers` and returns the response's status line.
async fn post(address: std::net::SocketAddr, user: &str, headers: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    let mut request = format!(
        "POST /users/{user} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\nconnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(response.ends_with("registered"), "{response}");
    response.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_publishes_domain_events_with_the_requests_correlation() {
    let kafka = TestKafka::start();
    let bus = kafka
        .builder(Config::new("web-test"))
        .build()
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/users/{user}", axum::routing::post(register_route))
        .layer(herald::web::BusScopeLayer::new(bus.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let statuses = [
        post(address, "ann", &[("x-correlation-id", "signup-42")]).await,
        post(address, "bob", &[("traceparent", trace)]).await,
        post(address, "cy", &[]).await,
    ];
    server.abort();
    for status in &statuses {
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
    let records = read_topic(
        bus.bootstrap_servers(),
        &kafka.topic("domain.webuser.events"),
        3,
    );
    let correlation = |user: &str| {
        let record = records
            .iter()
            .find(|r| header(r, headers::AGGREGATE_ID).as_deref() == Some(user))
            .unwrap_or_else(|| panic!("no event of {user}"));
        (
            header(record, headers::CORRELATION_ID).unwrap(),
            header(record, headers::ID).unwrap(),
        )
    };
    assert_eq!(correlation("ann").0, "signup-42");
    assert_eq!(correlation("bob").0, "4bf92f3577b34da6a3ce929d0e0e4736");
    let (cy_correlation, cy_id) = correlation("cy");
    assert_eq!(
        cy_correlation, cy_id,
        "without headers an event starts its own correlation"
    );
}
