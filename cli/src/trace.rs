//! `herald trace CORRELATION_ID --topic T ...`: every event of one flow across topics, in time
//! order, each indented under the event that caused it (`ce_causationid`).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::bail;
use chrono::{DateTime, Utc};
use clap::Args;
use herald::browse::{Filter, Record, StartAt};

use crate::tail::{clip, open, order, parse_when, record_json, time_text};
use crate::Common;

/// Options of `herald trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The correlation id of the flow (ce_correlationid).
    correlation_id: String,
    /// A topic to search (repeatable; at least one).
    #[arg(long = "topic", value_name = "NAME", required = true)]
    topics: Vec<String>,
    /// Only records written at or after this time: RFC 3339 or a time ago (10m, 2h, 1d). Needs a
    /// real Kafka: `herald broker` finds no offset for a time and reads nothing.
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    from_time: Option<DateTime<Utc>>,
    /// Cut the data to this many characters in the human output (0: never).
    #[arg(long, default_value_t = 60, value_name = "CHARS")]
    width: usize,
}

/// Runs `herald trace`: reads each topic up to its high watermarks, keeps the events of the
/// correlation id, and prints them in time order.
///
/// # Errors
/// As `herald tail`, for each topic.
pub async fn run(args: TraceArgs, common: &Common) -> anyhow::Result<ExitCode> {
    if args.correlation_id.trim().is_empty() {
        bail!("the correlation id is empty: give the ce_correlationid of the flow to trace");
    }
    let start = args.from_time.map_or(StartAt::Beginning, StartAt::Time);
    let filter = Filter {
        correlation_id: Some(args.correlation_id.clone()),
        ..Filter::default()
    };
    let mut events = Vec::new();
    for topic in &args.topics {
        let reader = open(common, topic).await?;
        events.extend(reader.read(start, filter.clone()).await?.collect().await?);
    }
    events.sort_by(|a, b| order(a).cmp(&order(b)).then(a.topic.cmp(&b.topic)));
    let depths = depths(&events);
    if events.is_empty() && !common.json {
        eprintln!(
            "no event with correlation id `{}` in {}",
            args.correlation_id,
            args.topics.join(", ")
        );
    }
    for (record, depth) in events.iter().zip(depths) {
        if common.json {
            println!("{}", record_json(record, Some(depth)));
        } else {
            println!("{}", line(record, depth, args.width));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How deep each event sits in the chain of causes found among `events` (0: its cause is not
/// among them).
fn depths(events: &[Record]) -> Vec<usize> {
    let cause: HashMap<&str, Option<&str>> = events
        .iter()
        .filter_map(Record::event)
        .map(|m| (m.id.as_str(), m.causation_id.as_deref()))
        .collect();
    events
        .iter()
        .map(|record| {
            let mut depth = 0;
            let mut at = record.event().and_then(|m| m.causation_id.as_deref());
            // Bounded by the number of events, so a cycle of causes cannot loop forever.
            while let Some(id) = at.filter(|id| cause.contains_key(id) && depth < events.len()) {
                depth += 1;
                at = cause[id];
            }
            depth
        })
        .collect()
}

/// One event for people: `TIME  TOPIC/PARTITION@OFFSET  <indent>TYPE  ID  caused by ID  DATA`.
fn line(record: &Record, depth: usize, width: usize) -> String {
    let meta = record.event().expect("the filter keeps CloudEvents only");
    let cause = meta
        .causation_id
        .as_deref()
        .map(|c| format!("  caused by {c}"))
        .unwrap_or_default();
    format!(
        "{}  {}/{}@{}  {}{}  {}{cause}  {}",
        time_text(record.time()),
        record.topic,
        record.partition,
        record.offset,
        "  ".repeat(depth),
        meta.event_type,
        meta.id,
        clip(&record.data.to_line(), width)
    )
}
