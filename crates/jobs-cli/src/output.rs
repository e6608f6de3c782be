//! What the commands print: the JSON documents (stable field names, times in RFC 3339) and
//! the tables a person reads.

use std::time::Duration;

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};
use jobs::{JobRecord, QueueStats, Timestamp};
use serde::Serialize;
use serde_json::Value;

/// `jobs stats --json`.
#[derive(Debug, Serialize)]
pub(crate) struct StatsDocument {
    pub(crate) queues: Vec<QueueView>,
}

/// `jobs list --json`: a page of jobs, and the `--after` of the next page if there may be one.
#[derive(Debug, Serialize)]
pub(crate) struct ListDocument {
    pub(crate) jobs: Vec<JobView>,
    pub(crate) next_after: Option<i64>,
}

/// `jobs retry|cancel|enqueue --json`: the job and its state after the change.
#[derive(Debug, Serialize)]
pub(crate) struct ChangedDocument {
    pub(crate) id: i64,
    pub(crate) state: &'static str,
}

/// `jobs purge --json`.
#[derive(Debug, Serialize)]
pub(crate) struct PurgeDocument {
    pub(crate) deleted: u64,
    pub(crate) states: Vec<&'static str>,
    pub(crate) finalized_before: String,
}

/// One queue in `jobs stats --json`.
#[derive(Debug, Serialize)]
pub(crate) struct QueueView {
    queue: String,
    scheduled: u64,
    available: u64,
    running: u64,
    completed: u64,
    dead: u64,
    cancelled: u64,
    oldest_available_at: Option<String>,
    latency_seconds: f64,
}

impl QueueView {
    /// The view of `stats` at `now`.
    pub(crate) fn new(stats: &QueueStats, now: Timestamp) -> Self {
        QueueView {
            queue: stats.queue.clone(),
            scheduled: stats.scheduled,
            available: stats.available,
            running: stats.running,
            completed: stats.completed,
            dead: stats.dead,
            cancelled: stats.cancelled,
            oldest_available_at: stats.oldest_available_at.map(time),
            latency_seconds: stats.latency(now).as_secs_f64(),
        }
    }
}

/// One failed attempt in a [`JobView`].
#[derive(Debug, Serialize)]
struct ErrorView {
    attempt: u32,
    at: String,
    message: String,
}

/// One job in `jobs list --json` and `jobs show --json`.
#[derive(Debug, Serialize)]
pub(crate) struct JobView {
    id: i64,
    kind: String,
    queue: String,
    state: &'static str,
    priority: i16,
    attempts: u32,
    max_attempts: u32,
    rescues: u32,
    suspect: Option<u32>,
    run_at: String,
    created_at: String,
    attempted_at: Option<String>,
    finalized_at: Option<String>,
    lease_owner: Option<String>,
    lease_expires_at: Option<String>,
    args: Value,
    checkpoint: Option<Value>,
    errors: Vec<ErrorView>,
    metadata: serde_json::Map<String, Value>,
    unreadable: Option<String>,
}

impl From<&JobRecord> for JobView {
    fn from(job: &JobRecord) -> Self {
        JobView {
            id: job.id.0,
            kind: job.kind.clone(),
            queue: job.queue.clone(),
            state: job.state.as_str(),
            priority: job.priority,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            rescues: job.rescues,
            suspect: job.suspect,
            run_at: time(job.run_at),
            created_at: time(job.created_at),
            attempted_at: job.attempted_at.map(time),
            finalized_at: job.finalized_at.map(time),
            lease_owner: job.lease_owner.clone(),
            lease_expires_at: job.lease_expires_at.map(time),
            args: job.args.clone(),
            checkpoint: job.checkpoint.clone(),
            errors: job
                .errors
                .iter()
                .map(|e| ErrorView {
                    attempt: e.attempt,
                    at: time(e.at),
                    message: e.message.clone(),
                })
                .collect(),
            metadata: job
                .metadata
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::from(v)))
                .collect(),
            unreadable: job.unreadable.clone(),
        }
    }
}

/// A time for JSON: RFC 3339 in UTC, to the microsecond.
fn time(at: Timestamp) -> String {
    at.to_string()
}

/// A time for a table: RFC 3339 to the second.
fn short_time(at: Timestamp) -> String {
    humantime::format_rfc3339_seconds(at.into()).to_string()
}

/// A duration for a table, to the second (`0s` below one).
fn short_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// A borderless table with `header`, the `numeric` columns right-aligned.
fn table(header: &[&str], rows: Vec<Vec<String>>, numeric: &[usize]) -> String {
    let mut table = Table::new();
    table.load_preset(NOTHING);
    if !header.is_empty() {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row);
    }
    for &index in numeric {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let text = table.to_string();
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `jobs stats`.
pub(crate) fn stats_table(stats: &[QueueStats], now: Timestamp) -> String {
    if stats.is_empty() {
        return "no jobs".to_owned();
    }
    let rows = stats
        .iter()
        .map(|q| {
            let mut row = vec![q.queue.clone()];
            row.extend(jobs::JobState::ALL.iter().map(|s| q.count(*s).to_string()));
            row.push(short_duration(q.latency(now)));
            row
        })
        .collect();
    let header = [
        "QUEUE",
        "SCHEDULED",
        "AVAILABLE",
        "RUNNING",
        "COMPLETED",
        "DEAD",
        "CANCELLED",
        "LATENCY",
    ];
    table(&header, rows, &[1, 2, 3, 4, 5, 6, 7])
}

/// `jobs list`.
pub(crate) fn jobs_table(jobs: &[JobRecord]) -> String {
    if jobs.is_empty() {
        return "no jobs".to_owned();
    }
    let rows = jobs
        .iter()
        .map(|job| {
            vec![
                job.id.to_string(),
                job.kind.clone(),
                job.queue.clone(),
                job.state.to_string(),
                job.priority.to_string(),
                format!("{}/{}", job.attempts, job.max_attempts),
                short_time(job.run_at),
            ]
        })
        .collect();
    let header = [
        "ID", "KIND", "QUEUE", "STATE", "PRIORITY", "ATTEMPTS", "RUN AT",
    ];
    table(&header, rows, &[0, 4, 5])
}

/// `jobs show`: one field a line, then the args, checkpoint and errors.
pub(crate) fn job_detail(job: &JobRecord) -> String {
    let or_dash = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), short_time);
    let mut fields = vec![
        ("id", job.id.to_string()),
        ("kind", job.kind.clone()),
        ("queue", job.queue.clone()),
        ("state", job.state.to_string()),
        ("priority", job.priority.to_string()),
        (
            "attempts",
            format!("{} of {}", job.attempts, job.max_attempts),
        ),
        ("rescues", job.rescues.to_string()),
        ("run at", short_time(job.run_at)),
        ("created at", short_time(job.created_at)),
        ("attempted at", or_dash(job.attempted_at)),
        ("finalized at", or_dash(job.finalized_at)),
        (
            "lease owner",
            job.lease_owner.clone().unwrap_or_else(|| "-".into()),
        ),
        ("lease expires", or_dash(job.lease_expires_at)),
    ];
    if let Some(strikes) = job.suspect {
        fields.push(("suspect", format!("yes, {strikes} strikes")));
    }
    fields.extend(
        job.metadata
            .iter()
            .map(|(k, v)| ("metadata", format!("{k}={v}"))),
    );
    if let Some(problem) = &job.unreadable {
        fields.push(("unreadable", problem.clone()));
    }
    let rows = fields
        .into_iter()
        .map(|(name, value)| vec![format!("{name}:"), value])
        .collect();
    let mut out = table(&[], rows, &[]);
    out.push_str("\nargs:\n");
    out.push_str(&indent(&pretty(&job.args)));
    if let Some(checkpoint) = &job.checkpoint {
        out.push_str("\ncheckpoint:\n");
        out.push_str(&indent(&pretty(checkpoint)));
    }
    if !job.errors.is_empty() {
        let rows = job
            .errors
            .iter()
            .map(|e| vec![e.attempt.to_string(), short_time(e.at), e.message.clone()])
            .collect();
        out.push_str("\nerrors:\n");
        out.push_str(&indent(&table(&["ATTEMPT", "AT", "ERROR"], rows, &[0])));
    }
    out.truncate(out.trim_end().len());
    out
}

/// `value` as indented JSON.
pub(crate) fn pretty(value: &Value) -> String {
    // Serializing a `Value` to a string cannot fail (no non-string keys, no I/O).
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// Prints `document` as one JSON document on stdout.
pub(crate) fn print_json(document: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(document).map_err(std::io::Error::other)?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs::{JobId, JobState};

    fn job() -> JobRecord {
        let at = Timestamp::from_micros(1_700_000_000_000_000);
        jobs::store::NewJob {
            kind: "email".into(),
            args: serde_json::json!({"to": "a@example.com"}),
            queue: "mail".into(),
            priority: 3,
            max_attempts: 5,
            run_at: None,
            metadata: Default::default(),
        }
        .into_record(JobId(7), at)
    }

    #[test]
    fn a_job_lists_as_one_row_and_shows_its_args_pretty() {
        let listed = jobs_table(&[job()]);
        let lines: Vec<_> = listed.lines().collect();
        assert_eq!(lines.len(), 2, "{listed}");
        assert!(
            lines[0].contains("KIND") && lines[1].contains("email"),
            "{listed}"
        );
        assert!(lines[1].contains("2023-11-14T22:13:20Z"), "{listed}");
        let shown = job_detail(&job());
        assert!(shown.contains("\"to\": \"a@example.com\""), "{shown}");
        assert!(
            shown.contains("attempts:") && shown.contains("0 of 5"),
            "{shown}"
        );
    }

    #[test]
    fn json_views_keep_times_as_rfc3339() {
        let view = serde_json::to_value(JobView::from(&job())).unwrap();
        assert_eq!(view["state"], JobState::Available.as_str());
        assert_eq!(view["run_at"], "2023-11-14T22:13:20.000000Z");
        assert_eq!(view["lease_owner"], Value::Null);
    }

    #[test]
    fn stats_show_latency_to_the_second() {
        let now = Timestamp::from_micros(100_000_000);
        let stats = QueueStats {
            queue: "default".into(),
            available: 2,
            oldest_available_at: Some(Timestamp::from_micros(10_500_000)),
            ..QueueStats::default()
        };
        let text = stats_table(&[stats], now);
        assert!(text.contains("1m 29s"), "{text}");
    }
}
