//! A two-step saga with compensation, choreographed through events (seed 004's saga events).
//!
//! Placing an order starts an `order-processing` saga. Step 1, inventory: stock is reserved.
//! Step 2, payment: the card is charged — or declined, for orders above 100.00. A declined payment
//! is compensated: the reserved stock is released and the order cancelled; a charged one confirms
//! the order. Every event carries the saga's id and type and the step it records
//! (`ce_sagaid`, `ce_sagatype`, `ce_sagastep`); handlers publish through their `Context`, which
//! keeps the saga (and the correlation), and name only their own step.
//!
//! Run it with `cargo run --example saga`: two orders, one confirmed and one compensated, each
//! saga's trail printed, on the embedded broker unless `KAFKA_BOOTSTRAP_SERVERS` is set. It checks
//! the trails it printed and fails if a saga did not end as expected.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::prelude::*;
use herald::Saga;

/// Above this, the payment service declines (in cents).
const CARD_LIMIT_CENTS: u64 = 10_000;

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.order.placed", topic = "shop.orders")]
pub struct OrderPlaced {
    #[event(key)]
    pub order_id: String,
    pub amount_cents: u64,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.inventory.reserved", topic = "shop.inventory")]
pub struct InventoryReserved {
    #[event(key)]
    pub order_id: String,
    pub amount_cents: u64,
}

/// The compensation of `InventoryReserved`.
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.inventory.released", topic = "shop.inventory")]
pub struct InventoryReleased {
    #[event(key)]
    pub order_id: String,
    pub reason: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.payment.charged", topic = "shop.payments")]
pub struct PaymentCharged {
    #[event(key)]
    pub order_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.payment.declined", topic = "shop.payments")]
pub struct PaymentDeclined {
    #[event(key)]
    pub order_id: String,
    pub reason: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.order.confirmed", topic = "shop.orders")]
pub struct OrderConfirmed {
    #[event(key)]
    pub order_id: String,
}

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(name = "shop.order.cancelled", topic = "shop.orders")]
pub struct OrderCancelled {
    #[event(key)]
    pub order_id: String,
    pub reason: String,
}

/// Each saga's steps as the handlers saw them, by saga id: what the example prints and checks.
#[derive(Default)]
struct Trails(Mutex<BTreeMap<String, Vec<String>>>);

impl Trails {
    /// Records the step of the handled event under its saga.
    fn record(&self, meta: &Metadata) {
        let saga = meta.saga().map(|s| s.id).unwrap_or_else(|| "-".into());
        let step = meta.saga_step().unwrap_or("-").to_owned();
        self.0.lock().unwrap().entry(saga).or_default().push(step);
    }

    fn of(&self, saga: &Saga) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .get(&saga.id)
            .cloned()
            .unwrap_or_default()
    }
}

fn trails(ctx: &Context) -> &Trails {
    ctx.state::<Arc<Trails>>()
        .expect("the trails are registered")
}

/// Step 1: reserve the stock.
#[handler(group = "inventory-service")]
async fn reserve_inventory(event: Event<OrderPlaced>, ctx: &Context) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    let order = event.data;
    ctx.publish_with(
        InventoryReserved {
            order_id: order.order_id,
            amount_cents: order.amount_cents,
        },
        PublishOptions::new().saga_step("inventory-reserved"),
    )
    .await?;
    Ok(())
}

/// Step 2: charge the card, or decline.
#[handler(group = "payment-service")]
async fn charge_payment(
    event: Event<InventoryReserved>,
    ctx: &Context,
) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    let reserved = event.data;
    if reserved.amount_cents <= CARD_LIMIT_CENTS {
        ctx.publish_with(
            PaymentCharged {
                order_id: reserved.order_id,
            },
            PublishOptions::new().saga_step("payment-charged"),
        )
        .await?;
    } else {
        ctx.publish_with(
            PaymentDeclined {
                order_id: reserved.order_id,
                reason: format!("{} cents is above the card limit", reserved.amount_cents),
            },
            PublishOptions::new().saga_step("payment-declined"),
        )
        .await?;
    }
    Ok(())
}

/// Compensation of step 1 when step 2 failed: release the stock.
#[handler(group = "inventory-service")]
async fn release_inventory(
    event: Event<PaymentDeclined>,
    ctx: &Context,
) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    ctx.publish_with(
        InventoryReleased {
            order_id: event.data.order_id,
            reason: event.data.reason,
        },
        PublishOptions::new().saga_step("inventory-released"),
    )
    .await?;
    Ok(())
}

/// The saga's end when the payment went through.
#[handler(group = "order-service")]
async fn confirm_order(event: Event<PaymentCharged>, ctx: &Context) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    ctx.publish_with(
        OrderConfirmed {
            order_id: event.data.order_id,
        },
        PublishOptions::new().saga_step("order-confirmed"),
    )
    .await?;
    Ok(())
}

/// The saga's end after the compensation.
#[handler(group = "order-service")]
async fn cancel_order(event: Event<InventoryReleased>, ctx: &Context) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    ctx.publish_with(
        OrderCancelled {
            order_id: event.data.order_id,
            reason: event.data.reason,
        },
        PublishOptions::new().saga_step("order-cancelled"),
    )
    .await?;
    Ok(())
}

/// Records the saga's last event.
#[handler(group = "order-service")]
async fn order_confirmed(event: Event<OrderConfirmed>, ctx: &Context) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    Ok(())
}

/// Records the saga's last event.
#[handler(group = "order-service")]
async fn order_cancelled(event: Event<OrderCancelled>, ctx: &Context) -> Result<(), HandlerError> {
    trails(ctx).record(&event.meta);
    Ok(())
}

#[tokio::main]
async fn main() -> herald::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "herald=warn".into()),
        )
        .init();

    let trails = Arc::new(Trails::default());
    let config = Config::from_env("shop")?.embedded_if_unset();
    let bus = Bus::builder(config).state(trails.clone()).build().await?;
    bus.start().await?;
    bus.wait_for_assignment(Duration::from_secs(30)).await?;

    let orders = [("order-1", 4_000), ("order-2", 25_000)];
    let mut sagas = Vec::new();
    for (order_id, amount_cents) in orders {
        let saga = Saga::start("order-processing");
        bus.publish_saga_event(
            OrderPlaced {
                order_id: order_id.into(),
                amount_cents,
            },
            &saga,
            "order-placed",
        )
        .await?;
        println!(
            "[order-service] {order_id} placed ({amount_cents} cents), saga {}",
            saga.id
        );
        sagas.push((order_id, saga));
    }

    let ends = ["order-confirmed", "order-cancelled"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !sagas.iter().all(|(_, saga)| {
        trails
            .of(saga)
            .last()
            .is_some_and(|step| ends.contains(&step.as_str()))
    }) {
        if tokio::time::Instant::now() > deadline {
            bus.shutdown().await?;
            panic!(
                "the sagas did not end within 60 s: {:?}",
                trails.0.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bus.shutdown().await?;

    let expected = [
        vec![
            "order-placed",
            "inventory-reserved",
            "payment-charged",
            "order-confirmed",
        ],
        vec![
            "order-placed",
            "inventory-reserved",
            "payment-declined",
            "inventory-released",
            "order-cancelled",
        ],
    ];
    for ((order_id, saga), expected) in sagas.iter().zip(expected) {
        let trail = trails.of(saga);
        println!("[saga {}] {order_id}: {}", saga.id, trail.join(" -> "));
        assert_eq!(trail, expected, "saga of {order_id}");
    }
    println!("both sagas ended as expected: one confirmed, one compensated");
    Ok(())
}
