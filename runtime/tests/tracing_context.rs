//! W3C trace context across services (the `otel` feature, on for herald's tests): a publish in
//! service A and the handler in service B, two buses on one test broker (embedded, or `HERALD_TEST_KAFKA`), end up in one trace,
//! the handler's `process` span a child of the `publish` span, both attributed per the
//! OpenTelemetry messaging conventions. Spans are collected by an in-memory exporter.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use herald::prelude::*;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::*;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

const TOPIC: &str = "telemetry.traced";
const GROUP: &str = "trace-consumers";

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug)]
#[event(topic = "telemetry.traced")]
pub struct OrderPlaced {
    #[event(key)]
    pub order_id: u64,
    pub aggregate_id: String,
}

static HANDLED: AtomicU64 = AtomicU64::new(0);

#[handler(group = "trace-consumers")]
async fn on_order(event: OrderPlaced) -> Result<(), HandlerError> {
    tracing::info!(order = event.order_id, "handling");
    HANDLED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The in-memory exporter behind this binary's global subscriber (an OpenTelemetry layer).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    &EXPORTER
        .get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("herald-tests"));
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
                .expect("the only global subscriber of this binary");
            (exporter, provider)
        })
        .0
}

fn spans() -> Vec<SpanData> {
    exporter().get_finished_spans().expect("exporter readable")
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn string(span: &SpanData, key: &str) -> String {
    match attribute(span, key) {
        Some(value) => value.as_str().into_owned(),
        None => panic!("span `{}` has no attribute {key}: {span:?}", span.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_in_one_service_and_its_handler_in_another_share_one_trace() {
    exporter();
    let kafka = TestKafka::start();
    let service_b = kafka
        .builder(Config::new("service-b"))
        .build()
        .await
        .unwrap();
    service_b.start().await.unwrap();
    service_b
        .wait_for_assignment(Duration::from_secs(30))
        .await
        .unwrap();
    let service_a = kafka
        .builder(Config::new("service-a"))
        .only_groups(Vec::<String>::new())
        .build()
        .await
        .unwrap();

    let request = tracing::info_span!("http.request");
    let request_trace = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        request.context().span().span_context().trace_id()
    };
    let delivery = service_a
        .publish(OrderPlaced {
            order_id: 42,
            aggregate_id: "order-42".into(),
        })
        .instrument(request)
        .await
        .unwrap();
    wait_until("service B handled the event", || {
        HANDLED.load(Ordering::SeqCst) == 1
    })
    .await;
    let topic = kafka.topic(TOPIC);
    let process_name = format!("process {topic}");
    wait_until("the handler's span ended", || {
        spans().iter().any(|s| s.name == process_name)
    })
    .await;

    let spans = spans();
    let publish = spans
        .iter()
        .find(|s| s.name == format!("publish {topic}"))
        .unwrap_or_else(|| panic!("no publish span among {spans:#?}"));
    let process = spans.iter().find(|s| s.name == process_name).unwrap();

    // One trace, from the caller's span through the publish span to the handler span.
    assert_eq!(publish.span_context.trace_id(), request_trace);
    assert_eq!(process.span_context.trace_id(), request_trace);
    assert_eq!(process.parent_span_id, publish.span_context.span_id());
    assert!(process.parent_span_is_remote);

    // What went over the wire: the CloudEvents distributed-tracing extension.
    let record = read_topic(kafka.bootstrap(), &topic, 1);
    assert_eq!(
        header(&record[0], "ce_traceparent").as_deref(),
        Some(
            format!(
                "00-{}-{}-01",
                publish.span_context.trace_id(),
                publish.span_context.span_id()
            )
            .as_str()
        )
    );

    // The messaging semantic conventions.
    assert_eq!(publish.span_kind, SpanKind::Producer);
    assert_eq!(process.span_kind, SpanKind::Consumer);
    for span in [publish, process] {
        assert_eq!(string(span, "messaging.system"), "kafka");
        assert_eq!(
            string(span, "messaging.destination.name"),
            kafka.topic(TOPIC)
        );
        assert_eq!(string(span, "messaging.message.id"), delivery.event_id);
        assert_eq!(string(span, "cloudevents.event_type"), "order.placed");
        assert_eq!(string(span, "messaging.kafka.message.key"), "42");
        assert_eq!(string(span, "aggregate.id"), "order-42");
        assert_eq!(
            string(span, "messaging.destination.partition.id"),
            delivery.partition.to_string()
        );
        assert_eq!(
            attribute(span, "messaging.kafka.offset"),
            Some(&Value::I64(delivery.offset))
        );
    }
    assert_eq!(string(publish, "messaging.operation.type"), "publish");
    assert_eq!(string(process, "messaging.operation.type"), "process");
    assert_eq!(string(process, "messaging.consumer.group.name"), GROUP);
    assert_eq!(string(process, "herald.handler"), "on_order");

    service_b.shutdown().await.unwrap();
    service_a.shutdown().await.unwrap();
}
