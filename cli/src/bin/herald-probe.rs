//! `herald-probe`: the herald service that the crash-and-outage suite (`cli/tests/crash.rs`) starts,
//! kills and restarts. It is a test fixture, not a tool for users: install the CLI with
//! `cargo install --path cli --bin herald` to leave it out.
//!
//! - `herald-probe publish N [--first S] [--chunk C] [--pause-ms P] [--poison SEQ,..] [--fail SEQ,..]
//!   [--keys K]` publishes events `S..S+N` (keyed `key-{seq % K}`, K = 8 by default) in `publish_batch` chunks and prints `ack FIRST LAST` for each
//!   acknowledged run of sequence numbers, `failed K` for each unacknowledged chunk part, and
//!   finally `published N` and `acknowledged M`.
//! - `herald-probe consume` handles them until SIGTERM (graceful) or SIGKILL, printing `assigned`
//!   once it has partitions.
//!
//! Environment: `KAFKA_BOOTSTRAP_SERVERS` (the address `herald broker` printed), `PROBE_LOG` (each
//! handled event appends a line `SEQ`, written and flushed at once, so a SIGKILL loses at most the
//! line being written), `PROBE_FAILURES` (optional: a line `SEQ` for each failed attempt),
//! `PROBE_DELAY_MS` (a sleep before handling), `PROBE_DELIVERY_TIMEOUT_MS`, `PROBE_GROUP` (`probe`,
//! the default, handles one event of a partition at a time; `probe-keyed` eight keys at once), and every `KAFKA_*`
//! variable of `Config::from_env`.

#![warn(missing_docs)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context as _};
use herald::prelude::*;

/// The probe's event: sequence number `seq`, key spread over `--keys` keys (8 by default).
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone)]
#[event(topic = "probe.events")]
pub struct Probe {
    /// The sequence number the suite counts.
    pub seq: u64,
    /// The partition key.
    #[event(key)]
    pub key: String,
    /// The handler always fails: the event ends in `probe.events.dlq` after its retries.
    pub poison: bool,
    /// The handler fails this many times, then succeeds.
    pub fail_times: u32,
}

/// What the handler writes to and remembers.
struct Probes {
    log: Mutex<File>,
    failures: Option<Mutex<File>>,
    delay: Duration,
    attempts: Mutex<HashMap<u64, u32>>,
}

fn append(file: &Mutex<File>, seq: u64) -> std::io::Result<()> {
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    // One write call per line: an O_APPEND write is not interleaved with another process's.
    file.write_all(format!("{seq}\n").as_bytes())?;
    file.flush()
}

#[handler(group = "probe", retries = 3, backoff = "20ms..100ms")]
async fn handle_probe(event: Probe, ctx: &Context) -> Result<(), HandlerError> {
    handle(event, ctx).await
}

/// The same handler in a group of its own that runs up to eight keys of a partition at once
/// (`PROBE_GROUP=probe-keyed`).
#[handler(
    group = "probe-keyed",
    concurrency = 8,
    retries = 3,
    backoff = "20ms..100ms"
)]
async fn handle_probe_keyed(event: Probe, ctx: &Context) -> Result<(), HandlerError> {
    handle(event, ctx).await
}

async fn handle(event: Probe, ctx: &Context) -> Result<(), HandlerError> {
    let probes = ctx
        .state::<Probes>()
        .ok_or_else(|| HandlerError::msg("the probe's state is missing"))?;
    if !probes.delay.is_zero() {
        tokio::time::sleep(probes.delay).await;
    }
    let attempt = {
        let mut attempts = probes.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = attempts.entry(event.seq).or_default();
        *n += 1;
        *n
    };
    if event.poison || attempt <= event.fail_times {
        if let Some(failures) = &probes.failures {
            append(failures, event.seq).map_err(|e| HandlerError::from_boxed(Box::new(e)))?;
        }
        return Err(HandlerError::msg(format!(
            "probe {} fails on purpose (attempt {attempt})",
            event.seq
        )));
    }
    append(&probes.log, event.seq).map_err(|e| HandlerError::from_boxed(Box::new(e)))?;
    Ok(())
}

fn env_ms(name: &str) -> anyhow::Result<Option<Duration>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .with_context(|| format!("{name}: `{v}` is not a whole number of milliseconds"))
        })
        .transpose()
}

fn config() -> anyhow::Result<Config> {
    let mut config = Config::from_env("probe")?
        .auto_create_topics(false)
        .commit_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(15));
    if let Some(timeout) = env_ms("PROBE_DELIVERY_TIMEOUT_MS")? {
        config = config.delivery_timeout(timeout);
    }
    Ok(config)
}

fn open_log(name: &str) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(name)
        .with_context(|| format!("opening {name}"))
}

/// Options of `publish`.
struct Publish {
    count: u64,
    first: u64,
    chunk: usize,
    pause: Duration,
    poison: Vec<u64>,
    fail: Vec<u64>,
    keys: u64,
}

fn parse_publish(mut args: impl Iterator<Item = String>) -> anyhow::Result<Publish> {
    let number = |v: Option<String>, what: &str| -> anyhow::Result<u64> {
        let v = v.with_context(|| format!("{what} needs a value"))?;
        v.parse()
            .with_context(|| format!("{what}: `{v}` is not a whole number"))
    };
    let list = |v: Option<String>| -> anyhow::Result<Vec<u64>> {
        v.context("a list needs a value")?
            .split(',')
            .map(|s| {
                s.parse()
                    .with_context(|| format!("`{s}` is not a sequence number"))
            })
            .collect()
    };
    let mut publish = Publish {
        count: number(args.next(), "publish N")?,
        first: 0,
        chunk: 500,
        pause: Duration::ZERO,
        poison: Vec::new(),
        fail: Vec::new(),
        keys: 8,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--first" => publish.first = number(args.next(), "--first")?,
            "--chunk" => publish.chunk = number(args.next(), "--chunk")?.max(1) as usize,
            "--pause-ms" => {
                publish.pause = Duration::from_millis(number(args.next(), "--pause-ms")?)
            }
            "--poison" => publish.poison = list(args.next())?,
            "--fail" => publish.fail = list(args.next())?,
            "--keys" => publish.keys = number(args.next(), "--keys")?.max(1),
            other => bail!("unknown option `{other}`"),
        }
    }
    Ok(publish)
}

async fn publish(bus: &Bus, options: Publish) -> anyhow::Result<()> {
    let mut acknowledged = 0u64;
    let seqs: Vec<u64> = (options.first..options.first + options.count).collect();
    for chunk in seqs.chunks(options.chunk) {
        let events = chunk.iter().map(|&seq| Probe {
            seq,
            key: format!("key-{}", seq % options.keys),
            poison: options.poison.contains(&seq),
            fail_times: if options.fail.contains(&seq) { 3 } else { 0 },
        });
        let acked: Vec<u64> = match bus.publish_batch(events).await {
            Ok(_) => chunk.to_vec(),
            Err(herald::Error::Batch {
                delivered,
                failures,
                ..
            }) => {
                println!("failed {}", failures.len());
                for (_, error) in failures.iter().take(1) {
                    eprintln!("probe: {} events not acknowledged: {error}", failures.len());
                }
                delivered.iter().map(|(i, _)| chunk[*i]).collect()
            }
            Err(e) => {
                println!("failed {}", chunk.len());
                eprintln!("probe: a chunk was not published: {e}");
                Vec::new()
            }
        };
        // Runs of consecutive sequence numbers, one line each.
        let mut i = 0;
        while i < acked.len() {
            let mut j = i;
            while j + 1 < acked.len() && acked[j + 1] == acked[j] + 1 {
                j += 1;
            }
            println!("ack {} {}", acked[i], acked[j]);
            i = j + 1;
        }
        acknowledged += acked.len() as u64;
        if !options.pause.is_zero() {
            tokio::time::sleep(options.pause).await;
        }
    }
    println!("published {}", options.count);
    println!("acknowledged {acknowledged}");
    Ok(())
}

async fn consume(bus: Bus) -> anyhow::Result<()> {
    let runner = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.run_until_shutdown().await })
    };
    // `run_until_shutdown` starts the consumers; report once they have partitions.
    let reporter = {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                match bus.wait_for_assignment(Duration::from_secs(60)).await {
                    Ok(()) => {
                        println!("assigned");
                        return;
                    }
                    Err(herald::Error::NotRunning) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(e) => {
                        eprintln!("probe: no partitions assigned: {e}");
                        return;
                    }
                }
            }
        })
    };
    let result = runner.await.context("the consumer task panicked")?;
    reporter.abort();
    result?;
    eprintln!("probe: stopped gracefully; {:?}", bus.stats());
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let log = std::env::var("PROBE_LOG").unwrap_or_else(|_| "/dev/null".into());
    let probes = Probes {
        log: Mutex::new(open_log(&log)?),
        failures: match std::env::var("PROBE_FAILURES") {
            Ok(name) => Some(Mutex::new(open_log(&name)?)),
            Err(_) => None,
        },
        delay: env_ms("PROBE_DELAY_MS")?.unwrap_or_default(),
        attempts: Mutex::default(),
    };
    let group = std::env::var("PROBE_GROUP").unwrap_or_else(|_| "probe".into());
    let bus = Bus::builder(config()?)
        .state(probes)
        .only_groups([group])
        .build()
        .await?;
    match mode.as_str() {
        "publish" => publish(&bus, parse_publish(args)?).await?,
        "consume" => consume(bus.clone()).await?,
        _ => bail!("usage: herald-probe publish N [options] | herald-probe consume"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}
