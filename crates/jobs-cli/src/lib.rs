//! `jobs`: the command line of the jobs engine, for operators and scripts. It works on a
//! SQLite file or a PostgreSQL database through the public client API and the store seam, so
//! it sees and changes exactly what the application's `jobs::Client` would.
//!
//! ```text
//! jobs --database jobs.db migrate
//! export JOBS_DATABASE_URL=postgres://app@db/app      # or a SQLite path, or sqlite:PATH
//! jobs stats                                          # per queue: counts per state, latency
//! jobs list --state dead --queue mail --limit 20      # then --after ID for the next page
//! jobs list --kind email --older-than 1h --args-contain '{"user":42}'
//! jobs show 42                                        # args, attempts and errors, lease
//! jobs retry 42 ; jobs cancel 43
//! jobs enqueue email --args '{"to":"a@example.com"}' --queue mail --in 5m
//! jobs purge --older-than 7d --state completed --yes
//! ```
//!
//! `--database` (or `JOBS_DATABASE_URL`) names the store: a `postgres://` or
//! `postgresql://` URL, with `--schema` (or `JOBS_SCHEMA`, default `jobs`) for the schema
//! holding the job tables; otherwise a SQLite file, as a path or a `sqlite:PATH` URL. Only
//! `migrate` creates a SQLite file; every other command on a missing file fails.
//!
//! # Output
//!
//! Tables by default, without colours. `--json` prints one JSON document with stable field
//! names: `stats` gives `{"queues": [{"queue", "scheduled", "available", "running",
//! "completed", "dead", "cancelled", "oldest_available_at", "latency_seconds"}]}`; `list`
//! gives `{"jobs": [JOB...], "next_after": ID|null}`; `show` gives one JOB (`id`, `kind`,
//! `queue`, `state`, `priority`, `attempts`, `max_attempts`, `rescues`, `suspect`, `run_at`,
//! `created_at`, `attempted_at`, `finalized_at`, `lease_owner`, `lease_expires_at`, `args`,
//! `checkpoint`, `errors: [{attempt, at, message}]`, `metadata`, `unreadable`); `retry`,
//! `cancel` and `enqueue` give `{"id", "state"}`; `purge` gives `{"deleted", "states",
//! "finalized_before"}`; `migrate` gives `{"backend", "schema_version"}` (and `from`,
//! `applied` on PostgreSQL). Times are RFC 3339 in UTC.
//!
//! # Exit codes
//!
//! * 0: success.
//! * 1: the operation failed: unknown job id, a job in the wrong state (retrying a running
//!   job), a store error or an unreachable database. One line on stderr says which.
//! * 2: bad usage: an unknown option, invalid JSON, a bad duration, time or state, a bad
//!   database URL, path or schema name. One line on stderr says which.
//!
//! # Not here yet
//!
//! `discard`, `move`, `priority`, `pause`/`resume` and `workers` wait for the store
//! operations they need (being added to the `Store` seam); `purge` asks for confirmation on a
//! terminal and has no progress bar.

mod args;
mod commands;
mod database;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;
use crate::database::Target;
use crate::error::{CliError, EXIT_OK, EXIT_USAGE};

/// Parses the command line, runs the command and returns the exit code (see the crate docs);
/// the `jobs` binary is this function.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Io)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// `--help` and `--version` as clap prints them (the help for `jobs` alone, exit code 2); any other parse error as its first line
/// only (clap adds usage and a hint to try `--help`), exit code 2.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        // Printing the help or version is not a failure.
        let _ = error.print();
        return ExitCode::from(EXIT_OK);
    }
    if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // `jobs` alone: the help, as a usage error.
        let _ = error.print();
        return ExitCode::from(EXIT_USAGE);
    }
    let text = error.render().to_string();
    eprintln!(
        "{}",
        text.lines()
            .next()
            .unwrap_or("error: bad usage (see --help)")
    );
    ExitCode::from(EXIT_USAGE)
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let target = Target::parse(cli.database.as_deref(), cli.schema.as_deref())?;
    commands::run(cli.command, &target, cli.json).await
}
