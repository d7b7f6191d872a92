//! `Bus::run_until_shutdown` in a real process: the test re-runs its own binary as a service, waits
//! until that service handled an event (or is about to start its groups), sends it SIGTERM or
//! SIGINT (Ctrl-C), and checks that it shut down gracefully and exited successfully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald::prelude::*;

const CHILD: &str = "HERALD_SIGNAL_TEST_CHILD";
const EARLY: &str = "HERALD_SIGNAL_TEST_EARLY";

#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema)]
pub struct Ping {
    pub n: u64,
}

static PINGS: AtomicU64 = AtomicU64::new(0);

#[handler(group = "signals")]
async fn on_ping(ping: Ping) -> Result<(), HandlerError> {
    PINGS.fetch_add(ping.n, Ordering::SeqCst);
    Ok(())
}

/// Says `herald-service-starting` when a consumer group logs that it subscribed, inside
/// `run_until_shutdown` while it starts the groups, and holds the start there for half a second.
struct SayWhenSubscribed;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SayWhenSubscribed {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 |= format!("{value:?}") == "consumer subscribed";
                }
            }
        }
        let mut message = Message(false);
        event.record(&mut message);
        if message.0 {
            use std::io::Write;
            println!("\nherald-service-starting");
            let _ = std::io::stdout().flush();
            // A start that takes a while (many groups, a slow broker): the signal comes during it.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The service run in the child process. With `HERALD_SIGNAL_TEST_EARLY` it publishes nothing and
/// says `herald-service-starting` while `run_until_shutdown` starts its groups, so the signal comes
/// then.
fn service() {
    let early = std::env::var_os(EARLY).is_some();
    if early {
        use tracing_subscriber::layer::SubscriberExt;
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(SayWhenSubscribed),
        )
        .unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let bus = Bus::new(Config::new("signals").embedded()).await.unwrap();
        if !early {
            bus.publish(Ping { n: 1 }).await.unwrap();
            tokio::spawn(async {
                while PINGS.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                println!("\nherald-service-ready");
            });
        }
        bus.run_until_shutdown().await.unwrap();
        println!("shut down with {} handled", bus.stats().events_handled);
    });
}

/// Runs this test's binary as the service, sends it `signal` once it printed `ready`, and checks
/// that it shut down gracefully, having handled `handled` events.
fn stop_with(signal: &str, test_name: &str, ready: &str, handled: u64) {
    if std::env::var_os(CHILD).is_some() {
        return service();
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if ready == "herald-service-starting" {
        command.env(EARLY, "1");
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(ready));
    assert!(seen, "the service never said `{ready}`");
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    // The rest of its output, read on a thread of its own so that a hung service is noticed.
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    // Waited for here, and killed through its handle if it hangs: never `kill` by a pid that may
    // have been reused.
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let rest = rest.join().unwrap();
    assert!(exit.success(), "the service exited with {exit}: {rest:?}");
    let expected = format!("shut down with {handled} handled");
    assert!(rest.contains(&expected), "no graceful shutdown: {rest:?}");
}

#[test]
fn sigterm_shuts_a_running_service_down_gracefully() {
    stop_with(
        "-TERM",
        "sigterm_shuts_a_running_service_down_gracefully",
        "herald-service-ready",
        1,
    );
}

#[test]
fn ctrl_c_shuts_a_running_service_down_gracefully() {
    stop_with(
        "-INT",
        "ctrl_c_shuts_a_running_service_down_gracefully",
        "herald-service-ready",
        1,
    );
}

/// A SIGTERM that comes while `run_until_shutdown` starts the groups shuts the service down
/// gracefully too. Before, the handlers were installed only after the start, and such a signal
/// killed the process with the default action.
#[test]
fn sigterm_while_the_groups_start_shuts_down_gracefully() {
    stop_with(
        "-TERM",
        "sigterm_while_the_groups_start_shuts_down_gracefully",
        "herald-service-starting",
        0,
    );
}
