//! `job_finish_many`: a batch of fenced finishes in one statement per kind of outcome, all
//! in one transaction.
//!
//! Completions, the hot path, are a JSON object `{"<job id>": <token>, …}` read with
//! `json_each` (one key and one integer per job, nothing to re-parse) by a statement with
//! no `CASE` and, when every lease holds (the common case), no `RETURNING` either: it
//! applies only if all do, and otherwise a second statement applies and names those that
//! do. Every other outcome goes through the general statement, where each finish is an
//! array `[job id, token, outcome, run_at or null, error or null]`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::OnceLock;

use jobs::store::{FinishOutcome, JobFinish, JobFinishParams};
use jobs::{AttemptError, JobState, StoreError};
use sqlx::{Connection, SqliteConnection};

use crate::error::{during, invalid};
use crate::row::ERRORS_TO_APPEND_TO;

const OP: &str = "job_finish_many";

/// The columns a completion sets.
const COMPLETED: &str = "state = 'completed', finalized_at = ?2, lease_owner = NULL, \
    lease_expires_at = NULL, checkpoint = NULL, suspect = 0";

/// The fence, for completions `?1` of owner `?3`: same id, same claim token, same owner,
/// still running.
const FENCE: &str = "jobs.id = CAST(f.key AS INTEGER) AND jobs.claims = f.value \
    AND jobs.lease_owner = ?3 AND jobs.state = 'running'";

/// Completes the batch only if every lease in it holds (`?4` = how many), reporting nothing:
/// the common case costs no `RETURNING`. The count is a constant subquery, evaluated before
/// any row changes.
fn complete_all_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE jobs NOT INDEXED SET {COMPLETED} FROM json_each(?1) AS f \
             WHERE {FENCE} AND ?4 = (SELECT count(*) FROM json_each(?1) AS f \
                                     JOIN jobs ON {FENCE})"
        )
    })
}

/// Completes the leases that hold and names them (when some did not).
fn complete_each_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE jobs NOT INDEXED SET {COMPLETED} FROM json_each(?1) AS f WHERE {FENCE} \
             RETURNING jobs.id, jobs.claims"
        )
    })
}

/// Every outcome, with CASE expressions picking the new state and columns.
fn finish_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "WITH f AS ( \
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
        suspect = CASE WHEN f.outcome = 'release' THEN suspect ELSE 0 END, \
        errors = CASE WHEN f.outcome IN ('retry', 'dead') \
            THEN json_insert({ERRORS_TO_APPEND_TO}, '$[#]', json(f.error)) ELSE errors END \
    FROM f \
    WHERE jobs.id = f.job_id AND jobs.claims = f.token AND jobs.lease_owner = ?3 \
      AND jobs.state = 'running' \
    RETURNING jobs.id, jobs.claims, jobs.state, jobs.queue"
        )
    })
}

/// One finish as the JSON array [`finish_sql`] reads.
type Entry<'a> = (
    i64,
    i64,
    &'static str,
    Option<i64>,
    Option<&'a AttemptError>,
);

/// What a finish batch did: per input whether it applied, and the queues that got jobs back.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) applied: Vec<bool>,
    pub(crate) woken: Vec<String>,
}

/// The leases a batch finished, and the queues whose jobs became available again.
#[derive(Debug, Default)]
struct Applied {
    leases: HashSet<(i64, i64)>,
    woken: Vec<String>,
}

/// Applies the finishes: completions and other outcomes each in one statement, both in one
/// `BEGIN IMMEDIATE` transaction when the batch holds both.
///
/// A lease named twice in one batch is finished once, by its first entry; later entries
/// report `false` (the first one ended the lease they name).
pub(crate) async fn finish_many(
    conn: &mut SqliteConnection,
    params: &JobFinishParams,
) -> Result<Finished, StoreError> {
    let firsts = params.first_of_each_lease();
    let unique = || {
        params
            .finishes
            .iter()
            .zip(&firsts)
            .filter(|(_, first)| **first)
            .map(|(finish, _)| finish)
    };
    let completions = completions(unique());
    let others = others_json(unique())?;
    let applied = match (completions, others) {
        (None, None) => Applied::default(),
        (Some(completions), None) => complete(conn, &completions, params).await?,
        (None, Some(others)) => finish_others(conn, &others, params).await?,
        (Some(completions), Some(others)) => {
            let mut tx = conn
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(during(OP))?;
            let mut applied = complete(&mut tx, &completions, params).await?;
            let more = finish_others(&mut tx, &others, params).await?;
            tx.commit().await.map_err(during(OP))?;
            applied.leases.extend(more.leases);
            applied.woken = more.woken;
            applied
        }
    };
    let done = params
        .finishes
        .iter()
        .zip(&firsts)
        .map(|(finish, first)| {
            *first
                && applied
                    .leases
                    .contains(&(finish.lease.job.0, finish.lease.token))
        })
        .collect();
    Ok(Finished {
        applied: done,
        woken: applied.woken,
    })
}

async fn complete(
    conn: &mut SqliteConnection,
    completions: &Completions,
    params: &JobFinishParams,
) -> Result<Applied, StoreError> {
    let now = params.now.as_micros();
    let all = sqlx::query(complete_all_sql())
        .bind(&completions.json)
        .bind(now)
        .bind(&params.owner)
        .bind(completions.leases.len() as i64)
        .execute(&mut *conn)
        .await
        .map_err(during(OP))?;
    if all.rows_affected() == completions.leases.len() as u64 {
        return Ok(Applied {
            leases: completions.leases.iter().copied().collect(),
            woken: Vec::new(),
        });
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(complete_each_sql())
        .bind(&completions.json)
        .bind(now)
        .bind(&params.owner)
        .fetch_all(conn)
        .await
        .map_err(during(OP))?;
    Ok(Applied {
        leases: rows.into_iter().collect(),
        woken: Vec::new(),
    })
}

async fn finish_others(
    conn: &mut SqliteConnection,
    others: &str,
    params: &JobFinishParams,
) -> Result<Applied, StoreError> {
    let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(finish_sql())
        .bind(others)
        .bind(params.now.as_micros())
        .bind(&params.owner)
        .fetch_all(conn)
        .await
        .map_err(during(OP))?;
    let mut applied = Applied::default();
    for (id, token, state, queue) in rows {
        applied.leases.insert((id, token));
        if state == JobState::Available.as_str() && !applied.woken.contains(&queue) {
            applied.woken.push(queue);
        }
    }
    Ok(applied)
}

/// The completions of a batch: `{"<id>": <token>, …}` and the leases it names.
#[derive(Debug)]
struct Completions {
    json: String,
    leases: Vec<(i64, i64)>,
}

/// The completions of a batch, or `None` if there are none.
fn completions<'a>(finishes: impl Iterator<Item = &'a JobFinish>) -> Option<Completions> {
    let leases: Vec<(i64, i64)> = finishes
        .filter(|f| f.outcome == FinishOutcome::Completed)
        .map(|f| (f.lease.job.0, f.lease.token))
        .collect();
    if leases.is_empty() {
        return None;
    }
    let mut json = String::with_capacity(leases.len() * 24 + 2);
    json.push('{');
    for (i, (id, token)) in leases.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        // Writing to a String cannot fail.
        let _ = write!(json, "{comma}\"{id}\":{token}");
    }
    json.push('}');
    Some(Completions { json, leases })
}

/// Every other finish as a JSON array of [`Entry`]s, or `None` if there are none.
fn others_json<'a>(
    finishes: impl Iterator<Item = &'a JobFinish>,
) -> Result<Option<String>, StoreError> {
    let entries: Vec<Entry<'_>> = finishes
        .filter(|f| f.outcome != FinishOutcome::Completed)
        .map(entry)
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&entries)
        .map(Some)
        .map_err(|err| invalid(OP, format!("an error does not serialize: {err}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use jobs::store::Lease;
    use jobs::JobId;

    fn finish(job: i64, token: i64, outcome: FinishOutcome) -> JobFinish {
        JobFinish {
            lease: Lease {
                job: JobId(job),
                token,
            },
            outcome,
        }
    }

    #[test]
    fn completions_become_an_object_of_tokens() {
        let batch = [
            finish(7, 1, FinishOutcome::Completed),
            finish(8, 2, FinishOutcome::Release),
            finish(9, 3, FinishOutcome::Completed),
        ];
        let completed = completions(batch.iter()).unwrap();
        assert_eq!(completed.json, r#"{"7":1,"9":3}"#);
        assert_eq!(completed.leases, vec![(7, 1), (9, 3)]);
        let others = others_json(batch.iter()).unwrap().unwrap();
        assert_eq!(others, r#"[[8,2,"release",null,null]]"#);
        assert!(completions(batch[1..2].iter()).is_none());
        assert_eq!(others_json(batch[..1].iter()).unwrap(), None);
    }
}
