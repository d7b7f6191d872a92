//! Two services on one broker: `order-service` publishes orders, `fulfillment` consumes them with a
//! consumer group of two workers, and the partitions (and so the load) are spread between the two.
//!
//! Run it with `cargo run --example two_services`. With no `KAFKA_BOOTSTRAP_SERVERS` set the three
//! buses share one embedded development broker (`embedded_if_unset`); in production each would be
//! its own process, talking to a real Kafka.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::prelude::*;
use herald::EmbeddedBroker;
use herald_examples::OrderPlaced;

/// Which worker handled which orders, per partition.
#[derive(Default)]
struct Tally {
    worker: String,
    handled: Mutex<BTreeMap<i32, Vec<u64>>>,
}

#[handler(group = "fulfillment")]
async fn fulfil(event: Event<OrderPlaced>, ctx: &Context) -> Result<(), HandlerError> {
    let tally = ctx
        .state::<Arc<Tally>>()
        .expect("every worker registers its tally");
    let partition = event.meta.position.as_ref().map_or(-1, |p| p.partition);
    tally
        .handled
        .lock()
        .unwrap()
        .entry(partition)
        .or_default()
        .push(event.data.order_id);
    tokio::time::sleep(Duration::from_millis(2)).await; // pretend to work
    Ok(())
}

async fn worker(
    name: &str,
    config: &Config,
    broker: Option<&Arc<EmbeddedBroker>>,
) -> herald::Result<(Bus, Arc<Tally>)> {
    let tally = Arc::new(Tally {
        worker: name.into(),
        ..Tally::default()
    });
    let mut builder = Bus::builder(config.clone()).state(tally.clone());
    if let Some(broker) = broker {
        builder = builder.embedded_broker(broker.clone());
    }
    let bus = builder.build().await?;
    bus.start().await?;
    Ok((bus, tally))
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "herald=warn".into()),
        )
        .init();
    // Development only: without KAFKA_BOOTSTRAP_SERVERS, use the in-memory broker (herald logs a
    // warning). A production service leaves this out, so a missing variable fails at start-up.
    let base = Config::from_env("fulfillment")?
        .embedded_if_unset()
        .topic_partitions(6);
    let broker = match base.is_embedded() {
        true => Some(Arc::new(EmbeddedBroker::start(1)?)),
        false => None,
    };

    let (worker_1, tally_1) = worker("worker-1", &base, broker.as_ref()).await?;
    let (worker_2, tally_2) = worker("worker-2", &base, broker.as_ref()).await?;
    println!(
        "fulfillment: two workers joined consumer group `fulfillment`, waiting for partitions..."
    );
    worker_1
        .wait_for_assignment(Duration::from_secs(60))
        .await?;
    worker_2
        .wait_for_assignment(Duration::from_secs(60))
        .await?;

    let mut order_config = base.clone();
    order_config.service_name = "order-service".into();
    let mut orders = Bus::builder(order_config);
    if let Some(broker) = &broker {
        orders = orders.embedded_broker(broker.clone());
    }
    let orders = orders.only_groups(Vec::<String>::new()).build().await?;
    let customers: Vec<String> = (1..=24).map(|n| format!("customer-{n:02}")).collect();
    let total = 240u64;
    orders
        .publish_batch((0..total).map(|order_id| OrderPlaced {
            order_id,
            customer: customers[order_id as usize % customers.len()].clone(),
        }))
        .await?;
    println!("order-service: published {total} orders to `orders.placed`");

    let handled = |t: &Tally| {
        t.handled
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while handled(&tally_1) + handled(&tally_2) < total as usize {
        if tokio::time::Instant::now() > deadline {
            eprintln!(
                "timed out: {} of {total} orders handled",
                handled(&tally_1) + handled(&tally_2)
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both workers leave together: one rebalance instead of two.
    let (stopped_1, stopped_2) = tokio::join!(worker_1.shutdown(), worker_2.shutdown());
    stopped_1?;
    stopped_2?;
    for tally in [&tally_1, &tally_2] {
        let count = handled(tally);
        let handled_by = tally.handled.lock().unwrap();
        let partitions: Vec<String> = handled_by
            .iter()
            .map(|(p, orders)| format!("p{p}: {}", orders.len()))
            .collect();
        println!(
            "{}: handled {count:>3} orders  [{}]",
            tally.worker,
            partitions.join(", ")
        );
    }
    Ok(())
}
