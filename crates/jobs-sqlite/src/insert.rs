//! `job_insert_many`: the whole batch in one statement, passed as one JSON parameter.

use jobs::{JobId, JobInsertParams, JobState, NewJob, StoreError, Timestamp};
use serde_json::Value;
use sqlx::{Connection, SqliteConnection};

use crate::error::{during, invalid};

const OP: &str = "job_insert_many";

/// The next id: ids are explicit so that `ids[i] = first + i` holds by construction.
const NEXT_ID: &str = "SELECT 1 + max( \
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0), \
    coalesce((SELECT max(id) FROM jobs), 0))";

const INSERT: &str = "INSERT INTO jobs \
    (id, kind, queue, args, priority, max_attempts, run_at, state, created_at) \
    SELECT ?1 + key, value ->> 0, value ->> 1, value -> 2, value ->> 3, value ->> 4, \
           value ->> 5, value ->> 6, ?2 \
    FROM json_each(?3)";

/// One job as a JSON array: kind, queue, args, priority, max_attempts, run_at, state.
type Row<'a> = (&'a str, &'a str, &'a Value, i16, u32, i64, &'static str);

/// What an insert did: the new ids (input order) and the queues that got available jobs.
#[derive(Debug)]
pub(crate) struct Inserted {
    pub(crate) ids: Vec<JobId>,
    pub(crate) woken: Vec<String>,
}

/// Inserts `params.jobs` in one `BEGIN IMMEDIATE` transaction.
pub(crate) async fn insert_many(
    conn: &mut SqliteConnection,
    params: &JobInsertParams,
) -> Result<Inserted, StoreError> {
    let rows = rows(&params.jobs, params.now)?;
    if rows.is_empty() {
        return Ok(Inserted {
            ids: Vec::new(),
            woken: Vec::new(),
        });
    }
    let batch = serde_json::to_string(&rows)
        .map_err(|err| invalid(OP, format!("arguments do not serialize to JSON: {err}")))?;
    let first = write(conn, params.now, &batch).await?;
    let ids = (0..rows.len() as i64).map(|i| JobId(first + i)).collect();
    Ok(Inserted {
        ids,
        woken: available_queues(&rows),
    })
}

async fn write(
    conn: &mut SqliteConnection,
    now: Timestamp,
    batch: &str,
) -> Result<i64, StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(during(OP))?;
    let first: i64 = sqlx::query_scalar(NEXT_ID)
        .fetch_one(&mut *tx)
        .await
        .map_err(during(OP))?;
    sqlx::query(INSERT)
        .bind(first)
        .bind(now.as_micros())
        .bind(batch)
        .execute(&mut *tx)
        .await
        .map_err(during(OP))?;
    tx.commit().await.map_err(during(OP))?;
    Ok(first)
}

fn rows(jobs: &[NewJob], now: Timestamp) -> Result<Vec<Row<'_>>, StoreError> {
    jobs.iter()
        .enumerate()
        .map(|(index, job)| {
            validate(index, job)?;
            let run_at = job.run_at.unwrap_or(now);
            let state = if run_at > now {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            Ok((
                job.kind.as_str(),
                job.queue.as_str(),
                &job.args,
                job.priority,
                job.max_attempts,
                run_at.as_micros(),
                state.as_str(),
            ))
        })
        .collect()
}

fn validate(index: usize, job: &NewJob) -> Result<(), StoreError> {
    if job.kind.is_empty() {
        return Err(invalid(OP, format!("job {index} has an empty kind")));
    }
    if job.queue.is_empty() {
        return Err(invalid(
            OP,
            format!("job {index} ({}) has an empty queue name", job.kind),
        ));
    }
    if job.max_attempts == 0 {
        return Err(invalid(
            OP,
            format!(
                "job {index} ({}) has max_attempts 0; it must be at least 1",
                job.kind
            ),
        ));
    }
    Ok(())
}

fn available_queues(rows: &[Row<'_>]) -> Vec<String> {
    let mut queues: Vec<String> = Vec::new();
    for row in rows
        .iter()
        .filter(|row| row.6 == JobState::Available.as_str())
    {
        if !queues.iter().any(|queue| queue == row.1) {
            queues.push(row.1.to_owned());
        }
    }
    queues
}
