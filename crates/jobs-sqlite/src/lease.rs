//! Fenced lease renewals: `job_heartbeat_many` (one statement per batch) and
//! `job_checkpoint`.

use std::collections::HashSet;

use jobs::store::{JobCheckpointParams, JobHeartbeatParams};
use jobs::StoreError;
use sqlx::SqliteConnection;

use crate::error::{during, invalid};

/// The leases are a JSON array of `[job id, token]` pairs, all of owner `?3`.
const HEARTBEAT: &str = "WITH h AS ( \
        SELECT value ->> 0 AS job_id, value ->> 1 AS token FROM json_each(?1)) \
    UPDATE jobs NOT INDEXED SET lease_expires_at = ?2 \
    FROM h \
    WHERE jobs.id = h.job_id AND jobs.claims = h.token AND jobs.lease_owner = ?3 \
      AND jobs.state = 'running' \
    RETURNING jobs.id, jobs.claims";

const CHECKPOINT: &str = "UPDATE jobs SET checkpoint = ?1, lease_expires_at = ?2 \
    WHERE id = ?3 AND claims = ?4 AND lease_owner = ?5 AND state = 'running'";

/// Renews every lease still held; returns, in input order, which are.
pub(crate) async fn heartbeat_many(
    conn: &mut SqliteConnection,
    params: &JobHeartbeatParams,
) -> Result<Vec<bool>, StoreError> {
    if params.leases.is_empty() {
        return Ok(Vec::new());
    }
    let pairs: Vec<(i64, i64)> = params
        .leases
        .iter()
        .map(|lease| (lease.job.0, lease.token))
        .collect();
    let batch = serde_json::to_string(&pairs).map_err(|err| {
        invalid(
            "job_heartbeat_many",
            format!("leases do not serialize: {err}"),
        )
    })?;
    let held: HashSet<(i64, i64)> = sqlx::query_as(HEARTBEAT)
        .bind(batch)
        .bind((params.now + params.lease_ttl).as_micros())
        .bind(&params.owner)
        .fetch_all(conn)
        .await
        .map_err(during("job_heartbeat_many"))?
        .into_iter()
        .collect();
    Ok(params
        .leases
        .iter()
        .map(|lease| held.contains(&(lease.job.0, lease.token)))
        .collect())
}

/// Saves the checkpoint and renews the lease if it is still held.
pub(crate) async fn checkpoint(
    conn: &mut SqliteConnection,
    params: &JobCheckpointParams,
) -> Result<bool, StoreError> {
    let text = serde_json::to_string(&params.checkpoint).map_err(|err| {
        invalid(
            "job_checkpoint",
            format!("checkpoint does not serialize: {err}"),
        )
    })?;
    let done = sqlx::query(CHECKPOINT)
        .bind(text)
        .bind((params.now + params.lease_ttl).as_micros())
        .bind(params.lease.job.0)
        .bind(params.lease.token)
        .bind(&params.owner)
        .execute(conn)
        .await
        .map_err(during("job_checkpoint"))?;
    Ok(done.rows_affected() == 1)
}
