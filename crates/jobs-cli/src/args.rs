//! The command line: global options and subcommands, parsed by clap.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use jobs::{JobRecord, JobState, Timestamp};
use serde_json::Value;

use crate::error::EXIT_CODES_HELP;

/// Inspect and operate a jobs store: a SQLite file or a PostgreSQL database.
#[derive(Debug, Parser)]
#[command(name = "jobs", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// The store: a SQLite file path (or `sqlite:PATH`), or a `postgres://` URL.
    #[arg(long, short = 'd', env = "JOBS_DATABASE_URL", global = true)]
    pub(crate) database: Option<String>,
    /// The PostgreSQL schema holding the job tables (default `jobs`).
    #[arg(long, env = "JOBS_SCHEMA", global = true)]
    pub(crate) schema: Option<String>,
    /// Print one JSON document instead of tables, for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the job tables, or upgrade them to this version's schema.
    Migrate,
    /// Per queue: jobs in each state, and the latency (age of the oldest available job).
    Stats,
    /// Jobs by id, oldest first, with filters and paging.
    List(ListArgs),
    /// Everything the store has on one job.
    Show {
        /// The job's id.
        id: i64,
    },
    /// Run a dead or cancelled job again (attempts reset, errors kept).
    Retry {
        /// The job's id.
        id: i64,
    },
    /// Cancel a waiting (scheduled or available) job.
    Cancel {
        /// The job's id.
        id: i64,
    },
    /// Enqueue one job of any kind.
    Enqueue(EnqueueArgs),
    /// Delete finished jobs older than an age.
    Purge(PurgeArgs),
}

/// `jobs list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only jobs of this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// Only jobs in this state: scheduled, available, running, completed, dead, cancelled.
    #[arg(long, value_parser = parse_state)]
    pub(crate) state: Option<JobState>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,
    /// Only jobs created longer ago than this, such as `1h` or `2d`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) older_than: Option<Duration>,
    /// Only jobs whose args contain this JSON: the same values at the same keys, array
    /// elements anywhere in the array (as PostgreSQL's `@>`), e.g. `{"user":42}`.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub(crate) args_contain: Option<Value>,
    /// Only jobs with an id above this: the `next_after` of the previous page.
    #[arg(long, value_name = "ID")]
    pub(crate) after: Option<i64>,
}

impl ListArgs {
    /// Whether a filter applies that the store cannot (kind, age, args).
    pub(crate) fn filters_here(&self) -> bool {
        self.kind.is_some() || self.older_than.is_some() || self.args_contain.is_some()
    }

    /// Whether `job` passes the filters the store cannot apply, at `now`.
    pub(crate) fn matches(&self, job: &JobRecord, now: Timestamp) -> bool {
        self.kind.as_ref().is_none_or(|kind| &job.kind == kind)
            && self
                .older_than
                .is_none_or(|age| job.created_at <= now - age)
            && self
                .args_contain
                .as_ref()
                .is_none_or(|part| contains(&job.args, part))
    }
}

/// Whether `whole` contains `part`, as PostgreSQL's `jsonb @>`: equal scalars, objects whose
/// keys each contain `part`'s, arrays in which each element of `part` is contained by some
/// element.
fn contains(whole: &Value, part: &Value) -> bool {
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => part
            .iter()
            .all(|(key, value)| whole.get(key).is_some_and(|w| contains(w, value))),
        (Value::Array(whole), Value::Array(part)) => part
            .iter()
            .all(|value| whole.iter().any(|w| contains(w, value))),
        (whole, part) => whole == part,
    }
}

/// `jobs enqueue`.
#[derive(Debug, Args)]
pub(crate) struct EnqueueArgs {
    /// The job's kind (the `KIND` of its args type in the workers).
    pub(crate) kind: String,
    /// The job's args, as JSON.
    #[arg(long, default_value = "{}", value_parser = parse_json)]
    pub(crate) args: Value,
    /// The queue (default `default`).
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Priority: higher runs first (default 0).
    #[arg(long, allow_negative_numbers = true)]
    pub(crate) priority: Option<i16>,
    /// Attempts before the job goes to the dead set (default 20).
    #[arg(long)]
    pub(crate) max_attempts: Option<u32>,
    /// Run after this delay, such as `5m` or `1h 30m`.
    #[arg(long = "in", value_name = "DURATION", value_parser = parse_duration, conflicts_with = "at")]
    pub(crate) run_in: Option<Duration>,
    /// Run at this time, RFC 3339 (`2026-12-24T18:00:00Z`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) at: Option<Timestamp>,
}

/// `jobs purge`.
#[derive(Debug, Args)]
pub(crate) struct PurgeArgs {
    /// Delete jobs finished longer ago than this, such as `7d` or `12h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) older_than: Duration,
    /// Only jobs in this state (repeatable): completed, cancelled, dead. Default: completed
    /// and cancelled (the dead set is kept unless named).
    #[arg(long, value_parser = parse_finished_state)]
    pub(crate) state: Vec<JobState>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
}

fn parse_state(s: &str) -> Result<JobState, String> {
    s.parse::<JobState>().map_err(|e| {
        let states: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{e}: use one of {}", states.join(", "))
    })
}

fn parse_finished_state(s: &str) -> Result<JobState, String> {
    match parse_state(s)? {
        state if state.is_terminal() => Ok(state),
        state => Err(format!(
            "{state} jobs are not finished: use completed, cancelled or dead"
        )),
    }
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write it like \"90s\", \"5m\", \"7d\" or \"1h 30m\")"))
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    humantime::parse_rfc3339_weak(s)
        .map(Timestamp::from)
        .map_err(|e| format!("{e} (write it like 2026-12-24T18:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn states_parse_and_unknown_ones_list_the_known() {
        assert_eq!(parse_state("dead"), Ok(JobState::Dead));
        let error = parse_state("zombie").unwrap_err();
        assert!(error.contains("scheduled, available, running"), "{error}");
        assert!(parse_finished_state("running").is_err());
        assert_eq!(parse_finished_state("completed"), Ok(JobState::Completed));
    }

    #[test]
    fn args_containment_is_postgres_like() {
        use serde_json::json;
        let args = json!({"user": 42, "tags": ["a", "b"], "to": {"name": "Ada", "x": 1}});
        for part in [
            json!({}),
            json!({"user": 42}),
            json!({"tags": ["b"]}),
            json!({"to": {"name": "Ada"}}),
        ] {
            assert!(contains(&args, &part), "{part}");
        }
        for part in [
            json!({"user": 43}),
            json!({"tags": ["c"]}),
            json!({"missing": null}),
            json!(42),
        ] {
            assert!(!contains(&args, &part), "{part}");
        }
    }

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("soon").is_err());
        let at = parse_time("1970-01-01T00:00:01Z").unwrap();
        assert_eq!(at, Timestamp::from_micros(1_000_000));
        assert!(parse_time("tomorrow").is_err());
    }
}
