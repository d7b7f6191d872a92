//! `herald topics`: for each topic its partitions and low/high watermarks, and for each consumer
//! group the committed offset and lag of every partition (seed 003's `get_topic_info`).

use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use herald::telemetry::{Inspector, TopicInfo};
use serde::Serialize;

use crate::Common;

/// Options of `herald topics`.
#[derive(Debug, Args)]
pub struct TopicsArgs {
    /// Only this topic (repeatable; default: every topic but Kafka's internal ones).
    #[arg(long = "topic", value_name = "NAME")]
    topics: Vec<String>,
    /// Shows the committed offsets and lag of this consumer group (repeatable). Default: the groups
    /// the broker lists that committed on the topic; `herald broker` cannot list groups, so name
    /// them there.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    topics: &'a [TopicInfo],
}

/// Runs `herald topics`.
///
/// # Errors
/// When the brokers are unreachable within the timeout (naming the address) or a topic named with
/// `--topic` does not exist.
pub async fn run(args: TopicsArgs, common: &Common) -> anyhow::Result<ExitCode> {
    common.bootstrap()?;
    let config = common.herald_config()?;
    if let Err(error @ herald::Error::Authentication { .. }) =
        config.check_connection(common.timeout()).await
    {
        // Refused credentials or certificates: say which setting to fix, not "unreachable".
        return Err(anyhow!(error));
    }
    let common = common.clone();
    let topics = tokio::task::spawn_blocking(move || collect(&args, &common))
        .await
        .context("the topics task panicked")??;
    if let Some(json) = topics.1 {
        println!("{json}");
    } else {
        print!("{}", table(&topics.0));
    }
    Ok(ExitCode::SUCCESS)
}

type Collected = (Vec<TopicInfo>, Option<String>);

fn collect(args: &TopicsArgs, common: &Common) -> anyhow::Result<Collected> {
    let bootstrap = common.bootstrap()?.to_owned();
    let timeout = common.timeout();
    let config = common
        .herald_config()?
        .bootstrap_servers(&bootstrap)
        .property("client.id", "herald-cli")
        .property("allow.auto.create.topics", "false")
        .property("log_level", "0");
    let inspector = Inspector::new(&config, timeout).context("creating a Kafka client")?;
    let existing = inspector.topics().map_err(|e| {
        anyhow!(
            "cannot reach the Kafka brokers at {bootstrap} within {} s ({e}): is `herald broker` or \
             Kafka running there? Check --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS",
            timeout.as_secs()
        )
    })?;
    let chosen: Vec<(String, Vec<i32>)> = if args.topics.is_empty() {
        existing.clone()
    } else {
        let mut chosen = Vec::new();
        for name in &args.topics {
            match existing.iter().find(|(t, _)| t == name) {
                Some(topic) => chosen.push(topic.clone()),
                None => bail!(
                    "topic `{name}` does not exist on {bootstrap}; it has: {}",
                    names(&existing)
                ),
            }
        }
        chosen
    };

    let (groups, listed) = if args.groups.is_empty() {
        match inspector.groups() {
            Ok(list) => (list, true),
            Err(e) => {
                eprintln!(
                    "note: the brokers at {bootstrap} do not list consumer groups ({e}); name them \
                     with --group to see committed offsets and lag"
                );
                (Vec::new(), false)
            }
        }
    } else {
        (args.groups.clone(), false)
    };

    let mut out = Vec::new();
    for (topic, ids) in chosen {
        let partitions = inspector
            .watermarks(&topic, &ids)
            .with_context(|| format!("reading the watermarks of {topic}"))?;
        let mut group_infos = Vec::new();
        for group in &groups {
            let info = inspector
                .group_position(group, &topic, &partitions)
                .with_context(|| {
                    format!("reading the committed offsets of group `{group}` on {topic}")
                })?;
            // Listed groups are shown only where they committed; named ones always.
            if listed && info.partitions.iter().all(|p| p.committed.is_none()) {
                continue;
            }
            group_infos.push(info);
        }
        out.push(TopicInfo {
            topic,
            partitions,
            groups: group_infos,
        });
    }
    let json = if common.json {
        Some(serde_json::to_string_pretty(&Report { topics: &out })?)
    } else {
        None
    };
    Ok((out, json))
}

fn names(topics: &[(String, Vec<i32>)]) -> String {
    if topics.is_empty() {
        return "no topics".into();
    }
    topics
        .iter()
        .map(|(t, _)| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The human-readable table: one row per partition, and per group shown.
fn table(topics: &[TopicInfo]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "TOPIC",
        "PARTITION",
        "LOW",
        "HIGH",
        "GROUP",
        "COMMITTED",
        "LAG",
    ]
    .map(String::from)];
    for topic in topics {
        for p in &topic.partitions {
            let base = |group: &str, committed: String, lag: String| {
                [
                    topic.topic.clone(),
                    p.partition.to_string(),
                    p.low.to_string(),
                    p.high.to_string(),
                    group.to_owned(),
                    committed,
                    lag,
                ]
            };
            if topic.groups.is_empty() {
                rows.push(base("-", "-".into(), "-".into()));
            }
            for group in &topic.groups {
                let gp = group.partitions.iter().find(|g| g.partition == p.partition);
                rows.push(base(
                    &group.group,
                    gp.and_then(|g| g.committed)
                        .map_or_else(|| "-".into(), |c| c.to_string()),
                    gp.map_or_else(|| "-".into(), |g| g.lag.to_string()),
                ));
            }
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if topics.is_empty() {
        out.push_str("(no topics)\n");
    }
    out
}
