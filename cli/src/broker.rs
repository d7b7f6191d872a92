//! `herald broker`: librdkafka's mock cluster as a process of its own, so that a broker outlives the
//! services a test kills, and a developer gets a local Kafka with one command and no Docker.
//!
//! The first line on stdout is `bootstrap: HOST:PORT`; logs go to stderr. Stdin is a control
//! channel, one command a line, one reply line each (`ok` or `error: ...`).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context as _;
use clap::Args;
use herald::EmbeddedBroker;

/// Partitions of a `--topic NAME` without a count.
const DEFAULT_PARTITIONS: i32 = 3;

/// Options of `herald broker`.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct BrokerArgs {
    /// Creates a topic at start (repeatable); PARTITIONS defaults to 3.
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    topics: Vec<TopicSpec>,
    /// Brokers in the cluster (their addresses are all printed, comma-separated).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=16))]
    brokers: i32,
}

const AFTER_HELP: &str = "\
The first line on stdout is `bootstrap: HOST:PORT` once the broker is ready; point clients at that
address (KAFKA_BOOTSTRAP_SERVERS=HOST:PORT). The port is chosen by the operating system each run:
librdkafka's mock cluster binds an ephemeral loopback port and has no option to pick one, and a
fixed-port proxy would not help because the brokers advertise their own port in metadata.

Control commands on stdin, one a line, each answered by one line (`ok` or `error: ...`):
  down                     every broker refuses connections (the data is kept)
  up                       the brokers accept connections again
  topic NAME PARTITIONS    creates a topic
  quit                     stops the broker
End of input leaves the broker running until Ctrl-C or SIGTERM.

Limits: the mock cluster keeps nothing on disk, keeps only about 5 MiB or 100,000 message sets per
partition (older ones are dropped silently), has no CreateTopics or ListGroups API (create topics
here, run herald services with KAFKA_AUTO_CREATE_TOPICS=false, name groups to `herald topics`
with --group), and creates a topic it does not know on a metadata request that allows it
(librdkafka producers do by default) with 4 partitions, or on a produce to partition N with N+1
partitions. A consumer group's first join waits about 3 s.";

/// A topic to create: `NAME[:PARTITIONS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSpec {
    name: String,
    partitions: i32,
}

impl FromStr for TopicSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, partitions) = match s.rsplit_once(':') {
            Some((name, n)) => (name, parse_partitions(n)?),
            None => (s, DEFAULT_PARTITIONS),
        };
        if name.trim().is_empty() {
            return Err(format!(
                "`{s}` has no topic name: write NAME or NAME:PARTITIONS"
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            partitions,
        })
    }
}

fn parse_partitions(n: &str) -> Result<i32, String> {
    match n.parse::<i32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{n}` is not a partition count: give a whole number from 1 up"
        )),
    }
}

/// What one control line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Control {
    Down,
    Up,
    Topic(TopicSpec),
    Quit,
}

fn parse_control(line: &str) -> Result<Control, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["down"] => Ok(Control::Down),
        ["up"] => Ok(Control::Up),
        ["quit"] => Ok(Control::Quit),
        ["topic", name, partitions] => Ok(Control::Topic(TopicSpec {
            name: (*name).to_owned(),
            partitions: parse_partitions(partitions)?,
        })),
        ["topic", ..] => Err("usage: topic NAME PARTITIONS".into()),
        _ => Err(format!(
            "unknown command `{}`: use down, up, topic NAME PARTITIONS or quit",
            line.trim()
        )),
    }
}

fn apply(broker: &EmbeddedBroker, control: &Control) -> herald::Result<()> {
    match control {
        Control::Down => broker.broker_down(),
        Control::Up => broker.broker_up(),
        Control::Topic(topic) => broker.create_topic(&topic.name, topic.partitions),
        Control::Quit => Ok(()),
    }
}

/// Runs `herald broker` until `quit`, Ctrl-C or SIGTERM.
///
/// # Errors
/// When the mock cluster cannot start or a `--topic` cannot be created.
pub async fn run(args: BrokerArgs) -> anyhow::Result<ExitCode> {
    let broker = EmbeddedBroker::start(args.brokers).context("starting the mock cluster")?;
    for topic in &args.topics {
        broker
            .create_topic(&topic.name, topic.partitions)
            .with_context(|| format!("creating topic `{}`", topic.name))?;
        tracing::info!(topic = %topic.name, partitions = topic.partitions, "created topic");
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "bootstrap: {}", broker.bootstrap_servers())?;
        out.flush()?;
    }
    tracing::info!(
        bootstrap = broker.bootstrap_servers(),
        "herald broker is ready (development only: nothing is kept on disk)"
    );

    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Blocking stdin reads live on a thread of their own; at exit the process ends it.
    std::thread::Builder::new()
        .name("herald-broker-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        })
        .context("starting the stdin reader")?;

    let signal = herald::shutdown_signal();
    tokio::pin!(signal);
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    tracing::info!("stdin closed; running until Ctrl-C or SIGTERM");
                    continue;
                };
                if line.trim().is_empty() {
                    continue;
                }
                let reply = parse_control(&line).and_then(|control| {
                    apply(&broker, &control).map_err(|e| e.to_string())?;
                    Ok(control)
                });
                match reply {
                    Ok(control) => {
                        println!("ok");
                        tracing::info!(command = line.trim(), "done");
                        if control == Control::Quit {
                            break;
                        }
                    }
                    Err(e) => println!("error: {e}"),
                }
            }
            () = &mut signal => {
                tracing::info!("signal received; stopping the broker");
                break;
            }
        }
    }
    drop(broker);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs_and_control_lines_parse() {
        let spec: TopicSpec = "probe.events:4".parse().unwrap();
        assert_eq!((spec.name.as_str(), spec.partitions), ("probe.events", 4));
        let spec: TopicSpec = "orders".parse().unwrap();
        assert_eq!(spec.partitions, DEFAULT_PARTITIONS);
        assert!("x:0".parse::<TopicSpec>().is_err());
        assert!(":3".parse::<TopicSpec>().is_err());

        assert_eq!(parse_control(" down "), Ok(Control::Down));
        assert_eq!(
            parse_control("topic a.dlq 2"),
            Ok(Control::Topic(TopicSpec {
                name: "a.dlq".into(),
                partitions: 2
            }))
        );
        assert!(parse_control("topic a").unwrap_err().contains("usage"));
        assert!(parse_control("restart")
            .unwrap_err()
            .contains("unknown command"));
    }
}
