//! `herald groups`: list consumer groups, describe one (state, members, their partitions, and its
//! committed offsets and lag), and move its offsets to replay a topic from a time or an offset, or
//! to skip to the end (`--dry-run` first); `replay` plans a bounded replay (records per partition
//! up to the current ends) into the group or into a new group, which `Bus::replay` then runs.

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use herald::offsets::{GroupAdmin, OffsetMove, OffsetTarget};
use herald::telemetry::Inspector;

use crate::Common;

/// What `herald groups` does.
#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Lists the consumer groups the brokers know (`herald broker` cannot list them).
    List,
    /// Shows a group's state, protocol and live members with their partitions.
    Describe {
        /// The consumer group.
        group: String,
    },
    /// Moves a group's committed offsets on every partition of a topic: its next start reads
    /// from there. Refused while the group has live members.
    Reset(ResetArgs),
    /// Plans a replay of a topic from a time or an offset: the records each partition holds from
    /// there to its current end. Into the group itself (a reset, refused while it has live
    /// members), or with `--as-group` into a new group whose offsets start there (a service's
    /// `Bus::replay` with that group goes on from them, up to the ends it takes when it starts).
    Replay(ReplayArgs),
}

/// Options of `herald groups replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The handlers' consumer group.
    #[arg(long, value_name = "GROUP")]
    group: String,
    /// The topic to replay.
    #[arg(long, value_name = "NAME")]
    topic: String,
    /// From the oldest record each partition holds.
    #[arg(long, group = "start")]
    from_earliest: bool,
    /// From the first record at or after this time: RFC 3339 (`2026-12-05T10:00:00Z`) or an age
    /// (`10m`, `2h`, `1d` ago).
    #[arg(long, group = "start", value_name = "TIME")]
    from_time: Option<String>,
    /// From this offset on every partition (clamped to what each holds).
    #[arg(long, group = "start", value_name = "OFFSET")]
    from_offset: Option<i64>,
    /// Only this partition (repeat for several).
    #[arg(long = "partition", value_name = "N")]
    partitions: Vec<i32>,
    /// Starts a new consumer group there instead of moving `--group`'s offsets; refused while it
    /// has live members.
    #[arg(long, value_name = "NEW_GROUP")]
    as_group: Option<String>,
    /// Prints the plan without committing.
    #[arg(long)]
    dry_run: bool,
    /// Skips the check for live members (for brokers that cannot describe groups, like
    /// `herald broker`).
    #[arg(long)]
    force: bool,
}

/// Options of `herald groups reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The consumer group.
    group: String,
    /// The topic whose offsets move.
    #[arg(long, value_name = "NAME")]
    topic: String,
    /// To the oldest record each partition holds: replay everything.
    #[arg(long, group = "target")]
    to_earliest: bool,
    /// To the end: skip everything not handled yet.
    #[arg(long, group = "target")]
    to_latest: bool,
    /// To the first record at or after this time: RFC 3339 (`2026-12-05T10:00:00Z`) or an age
    /// (`10m`, `2h`, `1d` ago).
    #[arg(long, group = "target", value_name = "TIME")]
    to_time: Option<String>,
    /// To this offset on every partition (clamped to what each holds).
    #[arg(long, group = "target", value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Prints the moves without making them.
    #[arg(long)]
    dry_run: bool,
    /// Skips the check for live members (for brokers that cannot describe groups, like
    /// `herald broker`): stop the group's services first.
    #[arg(long)]
    force: bool,
}

/// Runs `herald groups`.
///
/// # Errors
/// When the brokers cannot be reached, the topic does not exist, the group has live members, or
/// no target was given.
pub async fn run(command: GroupsCommand, common: &Common) -> anyhow::Result<ExitCode> {
    common.bootstrap()?;
    let config = common.herald_config()?;
    let timeout = common.timeout();
    let json = common.json;
    tokio::task::spawn_blocking(move || match command {
        GroupsCommand::List => {
            let inspector = Inspector::new(&config, timeout)?;
            let groups = inspector.groups().map_err(|e| {
                anyhow!(
                    "listing the consumer groups failed ({e}); `herald broker` cannot list them"
                )
            })?;
            if json {
                println!("{}", serde_json::to_string(&groups)?);
            } else {
                for group in groups {
                    println!("{group}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GroupsCommand::Describe { group } => {
            let admin = GroupAdmin::new(&config, timeout)?;
            let description = admin.describe(&group)?;
            if json {
                println!("{}", serde_json::to_string(&description)?);
            } else {
                println!(
                    "group {}: {}{}, {} member(s)",
                    description.group,
                    description.state,
                    if description.protocol.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", description.protocol)
                    },
                    description.members.len()
                );
                for member in &description.members {
                    let partitions: Vec<String> = member
                        .assignment
                        .iter()
                        .map(|(t, p)| format!("{t}/{p}"))
                        .collect();
                    println!(
                        "  {} {} {}: {}",
                        member.client_id,
                        member.host,
                        member.id,
                        partitions.join(" ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        GroupsCommand::Reset(args) => reset(&args, &config, timeout, json),
        GroupsCommand::Replay(args) => replay(&args, &config, timeout, json),
    })
    .await
    .context("the groups task panicked")?
}

fn reset(
    args: &ResetArgs,
    config: &herald::Config,
    timeout: std::time::Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let target = if args.to_earliest {
        OffsetTarget::Earliest
    } else if args.to_latest {
        OffsetTarget::Latest
    } else if let Some(offset) = args.to_offset {
        OffsetTarget::Offset(offset)
    } else if let Some(time) = &args.to_time {
        OffsetTarget::Time(parse_time(time, Utc::now())?)
    } else {
        bail!("say where to: --to-earliest, --to-latest, --to-time TIME or --to-offset N");
    };
    let admin = GroupAdmin::new(config, timeout)?;
    let moves = if args.dry_run {
        admin.plan_reset(&args.group, &args.topic, target)?
    } else if args.force {
        admin.reset_unchecked(&args.group, &args.topic, target)?
    } else {
        admin.reset(&args.group, &args.topic, target)?
    };
    if json {
        println!("{}", serde_json::to_string(&moves)?);
    } else {
        print!("{}", table(&moves, args.dry_run));
    }
    Ok(ExitCode::SUCCESS)
}

/// One partition of a replay plan.
#[derive(Debug, serde::Serialize)]
struct Planned {
    topic: String,
    partition: i32,
    /// The replaying group's committed offset before (`None`: it never committed there).
    committed: Option<i64>,
    /// The first offset replayed.
    from: i64,
    /// The partition's end now (exclusive).
    to: i64,
    /// `to - from`.
    records: i64,
}

fn replay(
    args: &ReplayArgs,
    config: &herald::Config,
    timeout: std::time::Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let target = if args.from_earliest {
        OffsetTarget::Earliest
    } else if let Some(offset) = args.from_offset {
        OffsetTarget::Offset(offset)
    } else if let Some(time) = &args.from_time {
        OffsetTarget::Time(parse_time(time, Utc::now())?)
    } else {
        bail!("say where from: --from-earliest, --from-time TIME or --from-offset N");
    };
    let group = args.as_group.as_deref().unwrap_or(&args.group);
    if args.as_group.as_deref() == Some(args.group.as_str()) {
        bail!("--as-group names the group itself: leave it out to replay into `{group}`");
    }
    let admin = GroupAdmin::new(config, timeout)?;
    let mut moves = admin.plan_reset(group, &args.topic, target)?;
    if !args.partitions.is_empty() {
        if let Some(missing) = args
            .partitions
            .iter()
            .find(|p| !moves.iter().any(|m| m.partition == **p))
        {
            bail!(
                "topic `{}` has no partition {missing} (it has {})",
                args.topic,
                moves.len()
            );
        }
        moves.retain(|m| args.partitions.contains(&m.partition));
    }
    if !args.dry_run {
        if !args.force {
            let description = admin.describe(group).map_err(|e| {
                anyhow!(
                    "cannot check that `{group}` has no live members ({e}); stop them and use --force"
                )
            })?;
            if !description.members.is_empty() {
                bail!(
                    "consumer group `{group}` has {} live member(s): stop them before replaying \
                     into it, or their commits would undo the new offsets",
                    description.members.len()
                );
            }
        }
        admin.commit_moves(group, &moves)?;
    }
    let planned: Vec<Planned> = moves
        .iter()
        .map(|m| Planned {
            topic: m.topic.clone(),
            partition: m.partition,
            committed: m.from,
            from: m.to,
            to: m.high,
            records: m.high - m.to,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&planned)?);
    } else {
        print!("{}", plan_table(&planned, group, args.dry_run));
    }
    Ok(ExitCode::SUCCESS)
}

/// A replay plan as a table, and the total.
fn plan_table(planned: &[Planned], group: &str, dry_run: bool) -> String {
    let mut out = format!(
        "{:<40} {:>12} {:>12} {:>12} {:>10}\n",
        "TOPIC/PARTITION", "COMMITTED", "FROM", "TO", "RECORDS"
    );
    for p in planned {
        let committed = p
            .committed
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        out.push_str(&format!(
            "{:<40} {:>12} {:>12} {:>12} {:>10}\n",
            format!("{}/{}", p.topic, p.partition),
            committed,
            p.from,
            p.to,
            p.records
        ));
    }
    let total: i64 = planned.iter().map(|p| p.records).sum();
    out.push_str(&format!(
        "{total} record(s) to replay in group `{group}` up to the current ends{}\n",
        if dry_run {
            " (dry run: nothing committed)"
        } else {
            ""
        }
    ));
    out
}

/// The moves as a table, with the number of records each partition replays (+) or skips (-).
fn table(moves: &[OffsetMove], dry_run: bool) -> String {
    let mut out = format!(
        "{:<40} {:>9} {:>12} {:>12} {:>10}\n",
        "TOPIC/PARTITION", "", "COMMITTED", "NEW", "RECORDS"
    );
    for m in moves {
        let from = m.from.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let change = m.from.unwrap_or(m.low) - m.to;
        out.push_str(&format!(
            "{:<40} {:>9} {:>12} {:>12} {:>+10}\n",
            format!("{}/{}", m.topic, m.partition),
            if dry_run { "(dry run)" } else { "" },
            from,
            m.to,
            change
        ));
    }
    out
}

/// An RFC 3339 time, or an age before `now` (`30s`, `10m`, `2h`, `1d`).
fn parse_time(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<i64>() {
        Ok(n) if seconds > 0 && n >= 0 => Ok(now - chrono::Duration::seconds(n * seconds)),
        _ => bail!(
            "`{text}` is neither an RFC 3339 time (2026-12-05T10:00:00Z) nor an age (30s, 10m, 2h, 1d)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time("2026-12-05T10:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-12-05T10:00:00+00:00"
        );
        assert_eq!(
            parse_time("2h", now).unwrap().to_rfc3339(),
            "2026-12-05T10:00:00+00:00"
        );
        assert_eq!(
            parse_time("30s", now).unwrap().to_rfc3339(),
            "2026-12-05T11:59:30+00:00"
        );
        for bad in ["yesterday", "10x", "-5m", ""] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_table_counts_records_replayed_and_skipped() {
        let moves = [
            OffsetMove {
                topic: "orders".into(),
                partition: 0,
                from: Some(10),
                to: 4,
                low: 0,
                high: 10,
            },
            OffsetMove {
                topic: "orders".into(),
                partition: 1,
                from: None,
                to: 7,
                low: 2,
                high: 7,
            },
        ];
        let table = table(&moves, true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[1].contains("orders/0") && lines[1].trim_end().ends_with("+6"),
            "{table}"
        );
        assert!(
            lines[2].contains("orders/1") && lines[2].trim_end().ends_with("-5"),
            "{table}"
        );
        assert!(lines[1].contains("(dry run)"));
    }
}
