//! `job_insert_many`: the whole batch in one `BEGIN IMMEDIATE` transaction and as few
//! statements as possible.
//!
//! Ids are explicit (`first + position`), so `ids[i] = first + i` holds by construction and
//! follows input order. A batch is cut into *runs*: consecutive jobs sharing kind, queue,
//! priority, max attempts and `run_at` (a typical bulk enqueue is one run). Each run is one
//! `INSERT … SELECT … FROM json_each(?)` over a JSON array of integers, each packing the
//! offset and length of one job's args inside a single BLOB parameter (jobs of one run share
//! their metadata too, usually none: NULL): SQLite reads an
//! integer and slices the BLOB per row, parsing no JSON of the args. A batch of many short
//! runs (heterogeneous jobs) instead goes through one general statement, where each job is a
//! JSON array of all its fields.

use jobs::store::{JobInsertParams, NewJob};
use jobs::{JobId, JobState, Metadata, StoreError, Timestamp};
use serde_json::Value;
use sqlx::{Connection, SqliteConnection};

use crate::error::{during, invalid};

const OP: &str = "job_insert_many";

/// Above this many runs a batch uses the general statement.
const MAX_RUNS: usize = 8;

/// The next id (`AUTOINCREMENT` never reuses one, even after a prune).
const NEXT_ID: &str = "SELECT 1 + max( \
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0), \
    coalesce((SELECT max(id) FROM jobs), 0))";

/// One run: `?10` is a JSON array of `offset << 32 | length` of each job's args in BLOB `?4`;
/// `?11` the run's metadata (NULL: none).
const INSERT_RUN: &str = "INSERT INTO jobs \
    (id, kind, queue, args, priority, max_attempts, run_at, state, created_at, metadata) \
    SELECT ?1 + key, ?2, ?3, CAST(substr(?4, (value >> 32) + 1, value & 4294967295) AS TEXT), \
           ?5, ?6, ?7, ?8, ?9, ?11 \
    FROM json_each(?10)";

/// Any batch: each job a JSON array `[kind, queue, args, priority, max_attempts, run_at,
/// state, metadata or null]` (`->>` renders an object as its JSON text, and null as NULL).
const INSERT_ANY: &str = "INSERT INTO jobs \
    (id, kind, queue, args, priority, max_attempts, run_at, state, created_at, metadata) \
    SELECT ?1 + key, value ->> 0, value ->> 1, value -> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, ?2, value ->> 7 \
    FROM json_each(?3)";

/// What an insert did: the new ids (input order) and the queues that got available jobs.
#[derive(Debug)]
pub(crate) struct Inserted {
    pub(crate) ids: Vec<JobId>,
    pub(crate) woken: Vec<String>,
}

/// A job with its resolved `run_at` and state.
#[derive(Debug)]
struct Row<'a> {
    job: &'a NewJob,
    run_at: i64,
    state: JobState,
}

impl Row<'_> {
    /// Whether two jobs can share one run's statement.
    fn same_run(&self, other: &Row<'_>) -> bool {
        let (a, b) = (self.job, other.job);
        a.kind == b.kind
            && a.queue == b.queue
            && a.priority == b.priority
            && a.max_attempts == b.max_attempts
            && self.run_at == other.run_at
            && a.metadata == b.metadata
    }
}

/// Inserts `params.jobs` in one transaction.
pub(crate) async fn insert_many(
    conn: &mut SqliteConnection,
    params: &JobInsertParams,
) -> Result<Inserted, StoreError> {
    insert_in_transaction(conn, params, Begin::Immediate).await
}

/// Inserts `params.jobs` on the caller's connection: inside the caller's transaction (as a
/// savepoint), or in a transaction of its own if it has none.
pub(crate) async fn insert_in(
    conn: &mut SqliteConnection,
    params: &JobInsertParams,
) -> Result<Inserted, StoreError> {
    insert_in_transaction(conn, params, Begin::Nested).await
}

/// How an insert opens its transaction.
enum Begin {
    /// `BEGIN IMMEDIATE`: the store's own connection, never inside a transaction.
    Immediate,
    /// A savepoint inside the caller's transaction, or a plain `BEGIN` if it has none.
    Nested,
}

async fn insert_in_transaction(
    conn: &mut SqliteConnection,
    params: &JobInsertParams,
    begin: Begin,
) -> Result<Inserted, StoreError> {
    let rows = rows(&params.jobs, params.now);
    if rows.is_empty() {
        return Ok(Inserted {
            ids: Vec::new(),
            woken: Vec::new(),
        });
    }
    let mut tx = match begin {
        Begin::Immediate => conn.begin_with("BEGIN IMMEDIATE").await,
        Begin::Nested => conn.begin().await,
    }
    .map_err(during(OP))?;
    let inserted = insert_rows(&mut tx, &rows, params.now).await?;
    tx.commit().await.map_err(during(OP))?;
    Ok(inserted)
}

/// The statements of an insert, in the transaction the caller opened.
async fn insert_rows(
    tx: &mut SqliteConnection,
    rows: &[Row<'_>],
    now: Timestamp,
) -> Result<Inserted, StoreError> {
    let runs = runs(rows);
    let first: i64 = sqlx::query_scalar(NEXT_ID)
        .fetch_one(&mut *tx)
        .await
        .map_err(during(OP))?;
    if runs.len() <= MAX_RUNS {
        for run in &runs {
            insert_run(&mut *tx, first, rows, run.clone(), now).await?;
        }
    } else {
        insert_any(&mut *tx, first, rows, now).await?;
    }
    Ok(Inserted {
        ids: (0..rows.len() as i64).map(|i| JobId(first + i)).collect(),
        woken: available_queues(rows),
    })
}

async fn insert_run(
    conn: &mut SqliteConnection,
    first: i64,
    rows: &[Row<'_>],
    run: std::ops::Range<usize>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (blob, slices) = args_blob(&rows[run.clone()])?;
    let head = &rows[run.start];
    let metadata = metadata_text(&head.job.metadata)?;
    sqlx::query(INSERT_RUN)
        .bind(first + run.start as i64)
        .bind(&head.job.kind)
        .bind(&head.job.queue)
        .bind(blob)
        .bind(head.job.priority)
        .bind(i64::from(head.job.max_attempts))
        .bind(head.run_at)
        .bind(head.state.as_str())
        .bind(now.as_micros())
        .bind(slices)
        .bind(metadata)
        .execute(conn)
        .await
        .map_err(during(OP))?;
    Ok(())
}

async fn insert_any(
    conn: &mut SqliteConnection,
    first: i64,
    rows: &[Row<'_>],
    now: Timestamp,
) -> Result<(), StoreError> {
    type Entry<'a> = (
        &'a str,
        &'a str,
        &'a Value,
        i16,
        u32,
        i64,
        &'static str,
        Option<&'a Metadata>,
    );
    let entries: Vec<Entry<'_>> = rows
        .iter()
        .map(|row| {
            let job = row.job;
            let state = row.state.as_str();
            (
                job.kind.as_str(),
                job.queue.as_str(),
                &job.args,
                job.priority,
                job.max_attempts,
                row.run_at,
                state,
                (!job.metadata.is_empty()).then_some(&job.metadata),
            )
        })
        .collect();
    let batch = serde_json::to_string(&entries)
        .map_err(|err| invalid(OP, format!("arguments do not serialize to JSON: {err}")))?;
    sqlx::query(INSERT_ANY)
        .bind(first)
        .bind(now.as_micros())
        .bind(batch)
        .execute(conn)
        .await
        .map_err(during(OP))?;
    Ok(())
}

/// The stored text of a job's metadata: `None` (NULL) when it has none.
fn metadata_text(metadata: &Metadata) -> Result<Option<String>, StoreError> {
    if metadata.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(metadata)
        .map(Some)
        .map_err(|err| invalid(OP, format!("metadata does not serialize to JSON: {err}")))
}

/// Every job's args rendered back to back into one BLOB, and the JSON array of their
/// `offset << 32 | length`.
fn args_blob(rows: &[Row<'_>]) -> Result<(Vec<u8>, String), StoreError> {
    let mut blob = Vec::with_capacity(rows.len() * 16);
    let mut slices = String::with_capacity(rows.len() * 12 + 2);
    slices.push('[');
    for (i, row) in rows.iter().enumerate() {
        let start = blob.len();
        serde_json::to_writer(&mut blob, &row.job.args)
            .map_err(|err| invalid(OP, format!("arguments do not serialize to JSON: {err}")))?;
        let packed = ((start as u64) << 32) | (blob.len() - start) as u64;
        if i > 0 {
            slices.push(',');
        }
        slices.push_str(&packed.to_string());
    }
    slices.push(']');
    if blob.len() > u32::MAX as usize {
        return Err(invalid(
            OP,
            "the batch's arguments exceed 4 GiB; insert it in parts",
        ));
    }
    Ok((blob, slices))
}

/// The batch cut into runs of jobs that share everything but their args.
fn runs(rows: &[Row<'_>]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if rows[run.start].same_run(row) => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

/// The jobs with their resolved `run_at` and state.
fn rows(jobs: &[NewJob], now: Timestamp) -> Vec<Row<'_>> {
    jobs.iter()
        .map(|job| {
            let run_at = job.run_at.unwrap_or(now);
            Row {
                job,
                run_at: run_at.as_micros(),
                state: JobState::waiting_for(run_at, now),
            }
        })
        .collect()
}

fn available_queues(rows: &[Row<'_>]) -> Vec<String> {
    let mut queues: Vec<String> = Vec::new();
    for row in rows.iter().filter(|row| row.state == JobState::Available) {
        if !queues.contains(&row.job.queue) {
            queues.push(row.job.queue.clone());
        }
    }
    queues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: &str, priority: i16, args: Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            args,
            queue: "q".into(),
            priority,
            max_attempts: 3,
            run_at: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn consecutive_alike_jobs_share_a_run() {
        let jobs = [
            job("a", 0, Value::Null),
            job("a", 0, Value::Bool(true)),
            job("b", 0, Value::Null),
            job("a", 0, Value::Null),
            job("a", 1, Value::Null),
        ];
        let rows = rows(&jobs, Timestamp::EPOCH);
        assert_eq!(runs(&rows), vec![0..2, 2..3, 3..4, 4..5]);
    }

    #[test]
    fn args_are_sliced_out_of_one_blob() {
        let jobs = [
            job("a", 0, serde_json::json!({ "n": 1 })),
            job("a", 0, serde_json::json!("é\"")),
            job("a", 0, serde_json::json!(null)),
        ];
        let rows = rows(&jobs, Timestamp::EPOCH);
        let (blob, slices) = args_blob(&rows).unwrap();
        let packed: Vec<u64> = serde_json::from_str(&slices).unwrap();
        let texts: Vec<&str> = packed
            .iter()
            .map(|p| {
                let (start, len) = ((p >> 32) as usize, (p & 0xffff_ffff) as usize);
                std::str::from_utf8(&blob[start..start + len]).unwrap()
            })
            .collect();
        assert_eq!(texts, vec![r#"{"n":1}"#, r#""é\"""#, "null"]);
    }
}
