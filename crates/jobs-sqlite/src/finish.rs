//! `job_finish_many`: every fenced finish of a batch in one `UPDATE … FROM json_each(?)`.

use std::collections::HashSet;

use jobs::{FinishOutcome, JobFinish, JobFinishParams, JobState, Lease, StoreError};
use sqlx::{Row, SqliteConnection};

use crate::error::{during, invalid};

const OP: &str = "job_finish_many";

/// One statement for every outcome: each finish is a JSON array
/// `[job id, token, outcome, run_at or null, error or null]`; CASE expressions pick the new
/// state and columns. The fence is the `WHERE`: same id, same claim token, still running.
const FINISH: &str = "WITH f AS ( \
        SELECT value ->> 0 AS job_id, value ->> 1 AS token, value ->> 2 AS outcome, \
               value ->> 3 AS due, value -> 4 AS error \
        FROM json_each(?1)) \
    UPDATE jobs NOT INDEXED SET \
        state = CASE f.outcome \
            WHEN 'completed' THEN 'completed' \
            WHEN 'dead' THEN 'dead' \
            WHEN 'release' THEN 'available' \
            ELSE CASE WHEN f.due <= ?2 THEN 'available' ELSE 'scheduled' END END, \
        attempts = attempts + (f.outcome IN ('retry', 'dead')), \
        run_at = CASE WHEN f.outcome IN ('retry', 'snooze') THEN f.due ELSE run_at END, \
        finalized_at = CASE WHEN f.outcome IN ('completed', 'dead') THEN ?2 END, \
        lease_owner = NULL, \
        lease_expires_at = NULL, \
        checkpoint = CASE WHEN f.outcome = 'completed' THEN NULL ELSE checkpoint END, \
        errors = CASE WHEN f.outcome IN ('retry', 'dead') \
            THEN json_insert(errors, '$[#]', json(f.error)) ELSE errors END \
    FROM f \
    WHERE jobs.id = f.job_id AND jobs.claims = f.token AND jobs.state = 'running' \
    RETURNING jobs.id, jobs.claims, jobs.state, jobs.queue";

/// One finish as the JSON array [`FINISH`] reads.
type Entry<'a> = (
    i64,
    i64,
    &'static str,
    Option<i64>,
    Option<&'a jobs::AttemptError>,
);

/// What a finish batch did: per input whether it applied, and the queues that got jobs back.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) applied: Vec<bool>,
    pub(crate) woken: Vec<String>,
}

/// Applies the finishes in one statement.
///
/// A lease named twice in one batch is finished once, by its first entry; later entries
/// report `false` (the first one ended the lease they name).
pub(crate) async fn finish_many(
    conn: &mut SqliteConnection,
    params: &JobFinishParams,
) -> Result<Finished, StoreError> {
    let firsts = first_occurrences(&params.finishes);
    let entries: Vec<Entry<'_>> = params
        .finishes
        .iter()
        .zip(&firsts)
        .filter(|(_, first)| **first)
        .map(|(finish, _)| entry(finish))
        .collect();
    if entries.is_empty() {
        return Ok(Finished {
            applied: Vec::new(),
            woken: Vec::new(),
        });
    }
    let batch = serde_json::to_string(&entries)
        .map_err(|err| invalid(OP, format!("an error does not serialize: {err}")))?;
    let rows = sqlx::query(FINISH)
        .bind(batch)
        .bind(params.now.as_micros())
        .fetch_all(conn)
        .await
        .map_err(during(OP))?;
    let mut done = HashSet::with_capacity(rows.len());
    let mut woken: Vec<String> = Vec::new();
    for row in &rows {
        let (lease, state, queue) = returned(row)?;
        done.insert(lease);
        if state == JobState::Available.as_str() && !woken.contains(&queue) {
            woken.push(queue);
        }
    }
    let applied = params
        .finishes
        .iter()
        .zip(&firsts)
        .map(|(finish, first)| *first && done.contains(&(finish.lease.job.0, finish.lease.token)))
        .collect();
    Ok(Finished { applied, woken })
}

/// A returned row: the finished lease `(id, token)`, the new state and the queue.
fn returned(row: &sqlx::sqlite::SqliteRow) -> Result<((i64, i64), String, String), StoreError> {
    let id: i64 = row.try_get(0).map_err(during(OP))?;
    let token: i64 = row.try_get(1).map_err(during(OP))?;
    let state: String = row.try_get(2).map_err(during(OP))?;
    let queue: String = row.try_get(3).map_err(during(OP))?;
    Ok(((id, token), state, queue))
}

fn first_occurrences(finishes: &[JobFinish]) -> Vec<bool> {
    let mut seen: HashSet<Lease> = HashSet::with_capacity(finishes.len());
    finishes
        .iter()
        .map(|finish| seen.insert(finish.lease))
        .collect()
}

fn entry(finish: &JobFinish) -> Entry<'_> {
    let (id, token) = (finish.lease.job.0, finish.lease.token);
    match &finish.outcome {
        FinishOutcome::Completed => (id, token, "completed", None, None),
        FinishOutcome::Retry { run_at, error } => {
            (id, token, "retry", Some(run_at.as_micros()), Some(error))
        }
        FinishOutcome::Dead { error } => (id, token, "dead", None, Some(error)),
        FinishOutcome::Snooze { run_at } => (id, token, "snooze", Some(run_at.as_micros()), None),
        FinishOutcome::Release => (id, token, "release", None, None),
    }
}
