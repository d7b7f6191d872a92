//! `Bus::run_until_shutdown` in a real process: the test re-runs its own binary as a service, waits
//! until that service handled an event, sends it SIGTERM or SIGINT (Ctrl-C), and checks that it shut
//! down gracefully and exited successfully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald::prelude::*;

const CHILD: &str = "HERALD_SIGNAL_TEST_CHILD";

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

/// The service run in the child process.
fn service() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let bus = Bus::new(Config::new("signals").embedded()).await.unwrap();
        bus.publish(Ping { n: 1 }).await.unwrap();
        tokio::spawn(async {
            while PINGS.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            println!("\nherald-service-ready");
        });
        bus.run_until_shutdown().await.unwrap();
        println!("shut down with {} handled", bus.stats().events_handled);
    });
}

fn stop_with(signal: &str, test_name: &str) {
    if std::env::var_os(CHILD).is_some() {
        return service();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Watchdog: a hung service is killed, so the test fails instead of hanging.
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("herald-service-ready"));
    assert!(ready, "the service never handled its event");
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the service exited with {exit}: {rest:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        rest.iter().any(|line| line == "shut down with 1 handled"),
        "no graceful shutdown: {rest:?}"
    );
}

#[test]
fn sigterm_shuts_a_running_service_down_gracefully() {
    stop_with("-TERM", "sigterm_shuts_a_running_service_down_gracefully");
}

#[test]
fn ctrl_c_shuts_a_running_service_down_gracefully() {
    stop_with("-INT", "ctrl_c_shuts_a_running_service_down_gracefully");
}
