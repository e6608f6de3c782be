//! Scheduler and operator writes: promote due jobs, retry, cancel, prune.

use jobs::store::{JobCancelParams, JobPromoteParams, JobPruneParams, JobRetryParams};
use jobs::StoreError;
use sqlx::SqliteConnection;

use crate::error::{during, invalid};

const PROMOTE: &str = "UPDATE jobs SET state = 'available' \
    WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_promote \
                 WHERE state = 'scheduled' AND run_at <= ?1 \
                 ORDER BY run_at, id LIMIT ?2) \
    RETURNING queue";

const RETRY: &str = "UPDATE jobs SET state = 'available', run_at = ?2, attempts = 0, \
        rescues = 0, suspect = min(suspect, 1), finalized_at = NULL, lease_owner = NULL, \
        lease_expires_at = NULL \
    WHERE id = ?1 AND state IN ('dead', 'cancelled') \
    RETURNING queue";

const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', finalized_at = ?2 \
    WHERE id = ?1 AND state IN ('scheduled', 'available')";

const PRUNE: &str = "DELETE FROM jobs WHERE id IN ( \
    SELECT id FROM jobs INDEXED BY jobs_finalized \
    WHERE finalized_at IS NOT NULL AND finalized_at < ?2 \
        AND state IN (SELECT value FROM json_each(?1)) \
    LIMIT ?3)";

/// Makes due scheduled jobs available; returns how many, and their queues (distinct).
pub(crate) async fn promote_scheduled(
    conn: &mut SqliteConnection,
    params: &JobPromoteParams,
) -> Result<(u64, Vec<String>), StoreError> {
    let queues: Vec<String> = sqlx::query_scalar(PROMOTE)
        .bind(params.now.as_micros())
        .bind(limit(params.limit))
        .fetch_all(conn)
        .await
        .map_err(during("job_promote_scheduled"))?;
    let count = queues.len() as u64;
    let mut distinct: Vec<String> = Vec::new();
    for queue in queues {
        if !distinct.contains(&queue) {
            distinct.push(queue);
        }
    }
    Ok((count, distinct))
}

/// Runs a dead or cancelled job again; returns its queue if it did.
pub(crate) async fn retry(
    conn: &mut SqliteConnection,
    params: &JobRetryParams,
) -> Result<Option<String>, StoreError> {
    sqlx::query_scalar(RETRY)
        .bind(params.id.0)
        .bind(params.now.as_micros())
        .fetch_optional(conn)
        .await
        .map_err(during("job_retry"))
}

/// Cancels a waiting job; whether it did.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    params: &JobCancelParams,
) -> Result<bool, StoreError> {
    let done = sqlx::query(CANCEL)
        .bind(params.id.0)
        .bind(params.now.as_micros())
        .execute(conn)
        .await
        .map_err(during("job_cancel"))?;
    Ok(done.rows_affected() == 1)
}

/// Deletes up to `limit` old finalized jobs of the given terminal states.
pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    params: &JobPruneParams,
) -> Result<u64, StoreError> {
    if params.states.is_empty() {
        return Ok(0);
    }
    let states: Vec<&str> = params.states.iter().map(|state| state.as_str()).collect();
    let states = serde_json::to_string(&states)
        .map_err(|err| invalid("job_prune", format!("states do not serialize: {err}")))?;
    let done = sqlx::query(PRUNE)
        .bind(states)
        .bind(params.finalized_before.as_micros())
        .bind(limit(params.limit))
        .execute(conn)
        .await
        .map_err(during("job_prune"))?;
    Ok(done.rows_affected())
}

/// A `usize` limit as SQLite's integer.
pub(crate) fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_limits_saturate() {
        assert_eq!(limit(usize::MAX), i64::MAX);
        assert_eq!(limit(100), 100);
    }
}
