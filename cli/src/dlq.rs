//! `herald dlq`: inspect and replay the dead letters of a topic (`{topic}.dlq`) without running a
//! service. Tables for people, `--json` for scripts; the exit code tells what went wrong.
//!
//! Exit codes: 0 done; 2 bad arguments or configuration; 3 no broker answered (or reading timed out): try again;
//! 4 the topic or the dead letter does not exist; 5 a replay failed or was refused (nothing after
//! it was replayed); 1 anything else.

use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use std::io::IsTerminal;

use herald::dlq::{DeadLetter, DeadLetters, Failure, ReplayAudience, ReplayFilter, ReplayReport};
use herald::{Delivery, Error};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::Common;

/// The arguments or the environment do not say what to do.
const EXIT_USAGE: u8 = 2;
/// The broker did not answer, or reading took too long: trying again may work.
const EXIT_UNREACHABLE: u8 = 3;
/// The topic or the dead letter does not exist.
const EXIT_NOT_FOUND: u8 = 4;
/// A replay failed or was refused.
const EXIT_REPLAY_FAILED: u8 = 5;

/// The `herald dlq` commands.
#[derive(clap::Subcommand, Debug)]
pub enum DlqCommand {
    /// List the oldest dead letters of a topic, across partitions.
    List {
        #[command(flatten)]
        target: Target,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Count the dead letters of a topic.
    Count {
        #[command(flatten)]
        target: Target,
    },
    /// Show one dead letter in full: headers, key, value and every failure.
    Show {
        #[command(flatten)]
        target: Target,
        /// Its partition in the dead-letter topic.
        partition: i32,
        /// Its offset in the dead-letter topic.
        offset: i64,
    },
    /// Send dead letters back to the topic they came from (they stay in the dead-letter topic).
    #[command(group = clap::ArgGroup::new("which").required(true).args(["all", "partition"]))]
    Replay {
        #[command(flatten)]
        target: Target,
        /// The partition of the one dead letter to replay (with --offset).
        #[arg(long, requires = "offset")]
        partition: Option<i32>,
        /// The offset of the one dead letter to replay (with --partition).
        #[arg(long, requires = "partition")]
        offset: Option<i64>,
        /// Replay every dead letter that matches the filters below.
        #[arg(long, conflicts_with_all = ["partition", "offset"])]
        all: bool,
        /// Only those consumed from this topic (dlq_original_topic).
        #[arg(long, conflicts_with = "partition")]
        original_topic: Option<String>,
        /// Only events of this CloudEvents type (ce_type).
        #[arg(long, conflicts_with = "partition")]
        event_type: Option<String>,
        /// Only this error kind: undecodable, incompatible, unknown-type, oversized, permanent,
        /// retries-exhausted.
        #[arg(long, conflicts_with = "partition")]
        error_kind: Option<String>,
        /// Only those dead-lettered at or after this time (RFC 3339, e.g. 2026-01-31T08:00:00Z).
        #[arg(long, conflicts_with = "partition", value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Only those dead-lettered before this time (RFC 3339).
        #[arg(long, conflicts_with = "partition", value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// Only this consumer group handles the replayed copies; the other groups of the topic
        /// skip them (default: every group, as for a new event).
        #[arg(long, conflicts_with = "failed_group")]
        group: Option<String>,
        /// Only the group that gave up on each dead letter (its dlq_consumer_group) handles it.
        #[arg(long)]
        failed_group: bool,
        /// Check every dead letter and say where it would go, writing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before replaying with --all on a terminal.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Which dead-letter topic, and how long to wait for the broker.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// The original topic; its dead letters are in `{topic}{suffix}`.
    topic: String,
    /// The dead-letter topic suffix (default: KAFKA_DLQ_TOPIC_SUFFIX, else `.dlq`).
    #[arg(long)]
    suffix: Option<String>,
    /// How long to wait for the broker, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: write an RFC 3339 time such as 2026-01-31T08:00:00Z"))
}

/// Runs one `herald dlq` command.
pub async fn run(command: DlqCommand, common: &Common) -> anyhow::Result<ExitCode> {
    match execute(command, common).await {
        Ok(code) => Ok(code),
        Err(error) => {
            let code = match &error {
                Error::BrokerUnreachable { .. }
                | Error::ReadTimeout { .. }
                | Error::Authentication { .. } => EXIT_UNREACHABLE,
                Error::TopicNotFound { .. } | Error::NoDeadLetter { .. } => EXIT_NOT_FOUND,
                Error::NotReplayable { .. } => EXIT_REPLAY_FAILED,
                Error::Config(_) => EXIT_USAGE,
                _ => return Err(error.into()),
            };
            eprintln!("error: {error}");
            Ok(ExitCode::from(code))
        }
    }
}

async fn execute(command: DlqCommand, common: &Common) -> herald::Result<ExitCode> {
    let json = common.json;
    match command {
        DlqCommand::List { target, limit } => {
            let letters = connect(&target, common).await?;
            let list = letters.list(limit).await?;
            if json {
                print_json(&Value::Array(list.iter().map(letter_json).collect()));
            } else {
                print_list(letters.topic(), &list);
            }
        }
        DlqCommand::Count { target } => {
            let letters = connect(&target, common).await?;
            let count = letters.count().await?;
            if json {
                print_json(&json!({ "topic": letters.topic(), "count": count }));
            } else {
                println!("{count} dead letters in {}", letters.topic());
            }
        }
        DlqCommand::Show {
            target,
            partition,
            offset,
        } => {
            let letters = connect(&target, common).await?;
            let letter = letters.get(partition, offset).await?;
            if json {
                print_json(&letter_json(&letter));
            } else {
                print_letter(&letter);
            }
        }
        DlqCommand::Replay {
            target,
            partition,
            offset,
            all,
            original_topic,
            event_type,
            error_kind,
            since,
            until,
            group,
            failed_group,
            dry_run,
            yes,
        } => {
            let audience = match (group, failed_group) {
                (Some(group), _) => ReplayAudience::Group(group),
                (None, true) => ReplayAudience::FailedGroup,
                (None, false) => ReplayAudience::EveryGroup,
            };
            let letters = connect(&target, common)
                .await?
                .audience(audience.clone())
                .dry_run(dry_run);
            if !all {
                let (Some(partition), Some(offset)) = (partition, offset) else {
                    unreachable!("clap requires --partition with --offset, or --all");
                };
                let delivery = letters.replay(partition, offset).await?;
                if dry_run {
                    println!(
                        "would replay {}[{partition}]@{offset} to {} ({})",
                        letters.topic(),
                        delivery.topic,
                        audience_text(&audience)
                    );
                } else if json {
                    print_json(&json!({ "partition": partition, "offset": offset,
                        "replayed_to": delivery_json(&delivery) }));
                } else {
                    println!(
                        "replayed {}[{partition}]@{offset} to {}[{}]@{}",
                        letters.topic(),
                        delivery.topic,
                        delivery.partition,
                        delivery.offset
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let filter = ReplayFilter {
                original_topic,
                event_type,
                error_kind,
                since,
                until,
            };
            if !dry_run && !yes && std::io::stdin().is_terminal() && !confirmed(&letters, &audience)
            {
                eprintln!("nothing replayed");
                return Ok(ExitCode::from(EXIT_REPLAY_FAILED));
            }
            let bar = if json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0).with_style(
                    ProgressStyle::with_template(
                        "{spinner} replaying {bar:40} {pos}/{len} dead letters read ({eta})",
                    )
                    .expect("a valid progress template"),
                )
            };
            let report = letters
                .replay_all(&filter, |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await;
            bar.finish_and_clear();
            let report = report?;
            if json {
                print_json(&report_json(&report));
            } else {
                print_report(letters.topic(), &report, dry_run);
            }
            if let Some(stopped) = &report.stopped {
                eprintln!(
                    "error: replay stopped at {}[{}]@{}: {}",
                    letters.topic(),
                    stopped.partition,
                    stopped.offset,
                    stopped.error
                );
                return Ok(ExitCode::from(EXIT_REPLAY_FAILED));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to the dead-letter topic of `target`: brokers from `--bootstrap-servers`, else the
/// environment (KAFKA_BOOTSTRAP_SERVERS, security variables, KAFKA_PROPERTIES) and the security
/// flags.
async fn connect(target: &Target, common: &Common) -> herald::Result<DeadLetters> {
    let mut config = common.herald_config()?;
    if let Some(suffix) = &target.suffix {
        config = config.dlq_suffix(suffix.clone());
    }
    if config.servers().is_none() {
        return Err(Error::Config(
            "no Kafka brokers given: pass --bootstrap-servers host:port,... or set KAFKA_BOOTSTRAP_SERVERS".into(),
        ));
    }
    let topic = config.dlq_topic(&target.topic);
    let timeout = Duration::from_secs(target.timeout);
    DeadLetters::connect_with_timeout(&config, &topic, timeout).await
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values serialize")
    );
}

/// Bytes as text when they are UTF-8, else as `{"base64": ...}`.
fn bytes_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) }),
        },
    }
}

fn time_text(time: Option<DateTime<Utc>>) -> Option<String> {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn failure_json(failure: &Failure) -> Value {
    json!({
        "original_topic": failure.original_topic,
        "original_partition": failure.original_partition,
        "original_offset": failure.original_offset,
        "consumer_group": failure.consumer_group,
        "handlers": failure.handlers,
        "error_kind": failure.error_kind,
        "error_message": failure.error_message,
        "retry_count": failure.retry_count,
        "failed_at": time_text(failure.failed_at),
    })
}

fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "timestamp_ms": letter.timestamp_ms,
        "ce_type": letter.ce_type,
        "ce_id": letter.ce_id,
        "replay_count": letter.replay_count,
        "failure": letter.failure().map(failure_json),
        "failures": letter.failures.iter().map(failure_json).collect::<Vec<_>>(),
        "key": bytes_json(letter.key.as_deref()),
        "value": bytes_json(letter.value.as_deref()),
        "headers": letter.headers.iter()
            .map(|h| json!({ "name": h.name, "value": bytes_json(h.value.as_deref()) }))
            .collect::<Vec<_>>(),
    })
}

fn delivery_json(delivery: &Delivery) -> Value {
    json!({ "topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset })
}

fn report_json(report: &ReplayReport) -> Value {
    json!({
        "scanned": report.scanned,
        "matched": report.matched,
        "replayed": report.replayed.iter().map(|r| json!({
            "partition": r.partition, "offset": r.offset, "replayed_to": delivery_json(&r.delivery),
        })).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(|s| json!({
            "partition": s.partition, "offset": s.offset, "reason": s.reason,
        })).collect::<Vec<_>>(),
        "stopped": report.stopped.as_ref().map(|s| json!({
            "partition": s.partition, "offset": s.offset, "error": s.error.to_string(),
        })),
    })
}

/// Shortens `text` to `max` characters, marking the cut.
fn clip(text: &str, max: usize) -> String {
    let text = text.replace('\n', " ");
    if text.chars().count() <= max {
        return text;
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Prints rows as columns padded to their widest cell; the last column is not padded.
fn print_table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn print_list(topic: &str, letters: &[DeadLetter]) {
    if letters.is_empty() {
        println!("no dead letters in {topic}");
        return;
    }
    let mut rows = vec![[
        "PARTITION",
        "OFFSET",
        "FAILED AT",
        "KIND",
        "EVENT TYPE",
        "TRIES",
        "REPLAYS",
        "HANDLERS",
        "ERROR",
    ]
    .map(str::to_owned)
    .to_vec()];
    for letter in letters {
        let failure = letter.failure();
        rows.push(vec![
            letter.partition.to_string(),
            letter.offset.to_string(),
            letter
                .failed_at()
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_else(|| "-".into()),
            failure.map_or("-".into(), |f| f.error_kind.clone()),
            letter.ce_type.clone().unwrap_or_else(|| "-".into()),
            failure
                .and_then(|f| f.retry_count)
                .map_or("-".into(), |n| n.to_string()),
            letter.replay_count.to_string(),
            failure.map_or("-".into(), |f| clip(&f.handlers.join(","), 30)),
            failure.map_or("-".into(), |f| clip(&f.error_message, 60)),
        ]);
    }
    print_table(&rows);
}

fn print_letter(letter: &DeadLetter) {
    let text = |bytes: Option<&[u8]>| match bytes_json(bytes) {
        Value::Null => "(none)".to_owned(),
        Value::String(text) => text,
        other => other.to_string(),
    };
    let mut rows = vec![
        vec![
            "dead letter".into(),
            format!("{}[{}]@{}", letter.topic, letter.partition, letter.offset),
        ],
        vec![
            "event".into(),
            format!(
                "{} (id {})",
                letter.ce_type.as_deref().unwrap_or("-"),
                letter.ce_id.as_deref().unwrap_or("-")
            ),
        ],
        vec!["replays".into(), letter.replay_count.to_string()],
        vec!["key".into(), text(letter.key.as_deref())],
    ];
    for (n, failure) in letter.failures.iter().enumerate() {
        let position = |p: Option<i64>| p.map_or("?".into(), |p| p.to_string());
        rows.push(vec![
            format!("failure {}", n + 1),
            format!(
                "{} at {}",
                failure.error_kind,
                time_text(failure.failed_at).unwrap_or_else(|| "?".into())
            ),
        ]);
        rows.push(vec![
            "  from".into(),
            format!(
                "{}[{}]@{} by group {}",
                failure.original_topic,
                position(failure.original_partition.map(i64::from)),
                position(failure.original_offset),
                failure.consumer_group
            ),
        ]);
        rows.push(vec![
            "  handlers".into(),
            format!(
                "{} (tries: {})",
                if failure.handlers.is_empty() {
                    "none ran".into()
                } else {
                    failure.handlers.join(", ")
                },
                failure
                    .retry_count
                    .map_or("?".into(), |n: u32| n.to_string())
            ),
        ]);
        rows.push(vec!["  error".into(), failure.error_message.clone()]);
    }
    print_table(&rows);
    println!("headers:");
    for header in &letter.headers {
        println!("  {}: {}", header.name, text(header.value.as_deref()));
    }
    let value = letter.value.as_deref();
    let pretty = value
        .and_then(|v| serde_json::from_slice::<Value>(v).ok())
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    println!("value:\n{}", pretty.unwrap_or_else(|| text(value)));
}

/// Asks on the terminal whether to replay every matching dead letter of `letters`.
fn confirmed(letters: &DeadLetters, audience: &ReplayAudience) -> bool {
    use std::io::Write;
    eprint!(
        "replay every matching dead letter of {} ({})? run with --dry-run to see them first [y/N] ",
        letters.topic(),
        audience_text(audience)
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    // An unreadable answer is a no.
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Which groups a replay reaches, for people.
fn audience_text(audience: &ReplayAudience) -> String {
    match audience {
        ReplayAudience::EveryGroup => "every consumer group of the topic handles them again".into(),
        ReplayAudience::FailedGroup => "only the group that gave up on each handles it".into(),
        ReplayAudience::Group(group) => format!("only group `{group}` handles them"),
    }
}

fn print_report(topic: &str, report: &ReplayReport, dry_run: bool) {
    println!(
        "read {} dead letters of {topic}: {} matched, {} {}, {} skipped",
        report.scanned,
        report.matched,
        report.replayed.len(),
        if dry_run {
            "would be replayed"
        } else {
            "replayed"
        },
        report.skipped.len()
    );
    for replayed in &report.replayed {
        println!(
            "  {}@{} -> {}[{}]@{}",
            replayed.partition,
            replayed.offset,
            replayed.delivery.topic,
            replayed.delivery.partition,
            replayed.delivery.offset
        );
    }
    for skipped in &report.skipped {
        println!(
            "  skipped {}@{}: {}",
            skipped.partition, skipped.offset, skipped.reason
        );
    }
}
