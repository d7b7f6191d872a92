//! `herald tail TOPIC`: the records of a topic, one line each (or one JSON object each), decoded
//! as CloudEvents where they are; the last few by default, or from the beginning, a time or an
//! offset, and with `--follow` every new one until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use herald::browse::{Filter, Record, RecordKind, StartAt, TopicReader};
use serde_json::{json, Value};

use crate::Common;

/// Options of `herald tail`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("start").args(["from_beginning", "from_time", "offset", "last"]))]
pub struct TailArgs {
    /// The topic (its full name, with the service's prefix if it sets one).
    topic: String,
    /// Start at the oldest record of each partition.
    #[arg(long)]
    from_beginning: bool,
    /// Start at the first record written at or after this time: RFC 3339
    /// (2026-01-31T08:00:00Z) or a time ago (90s, 10m, 2h, 1d). Needs a real Kafka: `herald
    /// broker` finds no offset for a time and starts at the end.
    #[arg(long, value_name = "TIME", value_parser = parse_when)]
    from_time: Option<DateTime<Utc>>,
    /// Start at this offset in every partition (clamped to what each partition holds).
    #[arg(long, value_name = "N")]
    offset: Option<i64>,
    /// Show the last N records (the default, with N = 10): the newest N of the last N of each
    /// partition, counted before the filters. With --follow, the last N of each partition.
    #[arg(long, value_name = "N")]
    last: Option<u64>,
    /// Keep reading new records until Ctrl-C.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only CloudEvents of this type (ce_type).
    #[arg(long = "type", value_name = "TYPE")]
    event_type: Option<String>,
    /// Only records with this key.
    #[arg(long)]
    key: Option<String>,
    /// Only CloudEvents of this correlation id (ce_correlationid).
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    /// Cut the data to this many characters in the human output (0: never).
    #[arg(long, default_value_t = 80, value_name = "CHARS")]
    width: usize,
}

/// How many records `herald tail` shows when no start is given.
const DEFAULT_LAST: u64 = 10;

/// Runs `herald tail`.
///
/// # Errors
/// No brokers given, the brokers unreachable or refusing the credentials, the topic missing, or
/// reading timing out; each message says what to do.
pub async fn run(args: TailArgs, common: &Common) -> anyhow::Result<ExitCode> {
    check(&args)?;
    let reader = open(common, &args.topic).await?;
    let filter = Filter {
        event_type: args.event_type.clone(),
        key: args.key.clone(),
        correlation_id: args.correlation_id.clone(),
    };
    let last = match (args.from_beginning, args.from_time, args.offset, args.last) {
        (true, ..) | (_, Some(_), ..) | (_, _, Some(_), _) => None,
        (_, _, _, last) => Some(last.unwrap_or(DEFAULT_LAST)),
    };
    let start = if args.from_beginning {
        StartAt::Beginning
    } else if let Some(time) = args.from_time {
        StartAt::Time(time)
    } else if let Some(offset) = args.offset {
        StartAt::Offset(offset)
    } else {
        StartAt::Last(last.unwrap_or(DEFAULT_LAST))
    };
    let max = args.max.unwrap_or(usize::MAX);
    let print = |record: &Record| {
        if common.json {
            println!("{}", record_json(record, None));
        } else {
            println!("{}", line(record, args.width));
        }
    };

    if !args.follow {
        let mut records = reader.read(start, filter).await?.collect().await?;
        records.sort_by_key(order);
        if let Some(last) = last {
            let keep = usize::try_from(last).unwrap_or(usize::MAX);
            records.drain(..records.len().saturating_sub(keep));
        }
        records.iter().take(max).for_each(print);
        return Ok(ExitCode::SUCCESS);
    }

    let mut records = reader.follow(start, filter).await?;
    eprintln!("following {} (Ctrl-C to stop)", reader.topic());
    let mut printed = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while printed < max {
        tokio::select! {
            _ = &mut interrupted => break,
            next = records.next() => match next {
                Some(record) => {
                    print(&record?);
                    printed += 1;
                }
                None => break,
            },
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens `topic` with the global options' brokers and security.
pub(crate) async fn open(common: &Common, topic: &str) -> anyhow::Result<TopicReader> {
    let servers = common.bootstrap()?.to_owned();
    let config = common.herald_config()?.bootstrap_servers(&servers);
    TopicReader::open_with_timeout(&config, topic, common.timeout())
        .await
        .with_context(|| format!("opening topic `{topic}` on {servers}"))
}

/// The order records are shown in: time, then partition and offset.
pub(crate) fn order(record: &Record) -> (Option<DateTime<Utc>>, i32, i64) {
    (record.time(), record.partition, record.offset)
}

/// A time on one line, to the millisecond.
pub(crate) fn time_text(time: Option<DateTime<Utc>>) -> String {
    time.map_or_else(
        || "-".into(),
        |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
    )
}

/// Shortens `text` to `max` characters (0: no limit), marking the cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if max == 0 || text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// One record for people: `PARTITION/OFFSET  TIME  TYPE  ID  key=KEY  correlation=ID  DATA`.
fn line(record: &Record, width: usize) -> String {
    let (event_type, id, correlation) = match record.event() {
        Some(meta) => (
            meta.event_type.as_str(),
            meta.id.as_str(),
            meta.correlation_id.as_deref().unwrap_or("-"),
        ),
        None => ("(not a CloudEvent)", "-", "-"),
    };
    format!(
        "{}/{}  {}  {event_type}  {id}  key={}  correlation={correlation}  {}",
        record.partition,
        record.offset,
        time_text(record.time()),
        record.key_text().as_deref().unwrap_or("-"),
        clip(&record.data.to_line(), width)
    )
}

/// One record as a JSON object; `depth` (for `herald trace`) is its place in the causation chain.
pub(crate) fn record_json(record: &Record, depth: Option<usize>) -> Value {
    let mut object = json!({
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        "key": record.key_text(),
        "cloudevent": record.event().is_some(),
    });
    let fields = object.as_object_mut().expect("an object");
    match &record.kind {
        RecordKind::Event(meta) => {
            let extra = json!({
                "id": meta.id,
                "type": meta.event_type,
                "source": meta.source,
                "time": meta.time.map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true)),
                "subject": meta.subject,
                "correlation_id": meta.correlation_id,
                "causation_id": meta.causation_id,
                "schema_version": meta.schema_version,
                "extensions": meta.extensions,
            });
            fields.extend(extra.as_object().expect("an object").clone());
        }
        RecordKind::NotEvent { reason } => {
            fields.insert("not_cloudevent_reason".into(), reason.clone().into());
        }
    }
    if let Some(depth) = depth {
        fields.insert("depth".into(), depth.into());
    }
    fields.insert("data".into(), record.data.to_json());
    object
}

/// A time given as RFC 3339 or as a time ago: a whole number and `s`, `m`, `h` or `d`.
pub(crate) fn parse_when(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = relative(text).ok_or_else(|| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-01-31T08:00:00Z) nor a time ago such as 90s, 10m, 2h or 1d"
        )
    })?;
    Ok(Utc::now() - ago)
}

fn relative(text: &str) -> Option<chrono::Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let duration = Duration::from_secs(number.checked_mul(seconds)?);
    chrono::Duration::from_std(duration).ok()
}

/// Refuses `--max 0`, which would print nothing.
fn check(args: &TailArgs) -> anyhow::Result<()> {
    if args.max == Some(0) {
        bail!("--max 0 prints nothing: give a number above 0, or leave --max out");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_time_ago() {
        let at = parse_when("2026-01-31T08:00:00Z").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-31T08:00:00+00:00");
        let ago = Utc::now() - parse_when("2h").unwrap();
        assert!((ago.num_seconds() - 7200).abs() <= 5, "{ago}");
        assert!(parse_when("10x")
            .unwrap_err()
            .contains("90s, 10m, 2h or 1d"));
        assert!(parse_when("m").is_err());
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcdef", 0), "abcdef");
    }
}
