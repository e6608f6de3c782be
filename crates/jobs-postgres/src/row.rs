//! Decoding job rows (selected with `sql::job_columns`) into [`JobRecord`]s.

use jobs::{AttemptError, JobId, JobRecord, JobState, StoreError, Timestamp};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::store_error;
use crate::pg_time::PgTime;

/// One row as a job record; a value that does not fit is reported as [`StoreError::Corrupt`].
pub(crate) fn job_record(row: &PgRow) -> Result<JobRecord, StoreError> {
    let id: i64 = row.try_get("id").map_err(store_error)?;
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let get_u32 = |column: &str| -> Result<u32, StoreError> {
        let v: i32 = row.try_get(column).map_err(store_error)?;
        u32::try_from(v).map_err(|_| corrupt(format!("{column} is negative ({v})")))
    };
    let state: String = row.try_get("state").map_err(store_error)?;
    let errors: Value = row.try_get("errors").map_err(store_error)?;
    Ok(JobRecord {
        id: JobId(id),
        kind: row.try_get("kind").map_err(store_error)?,
        queue: row.try_get("queue").map_err(store_error)?,
        args: row.try_get("args").map_err(store_error)?,
        state: state
            .parse::<JobState>()
            .map_err(|e| corrupt(e.to_string()))?,
        priority: row.try_get("priority").map_err(store_error)?,
        attempts: get_u32("attempts")?,
        max_attempts: get_u32("max_attempts")?,
        rescues: get_u32("rescues")?,
        claims: row.try_get("claims").map_err(store_error)?,
        run_at: timestamp(row, "run_at")?.ok_or_else(|| corrupt("run_at is NULL".into()))?,
        created_at: timestamp(row, "created_at")?
            .ok_or_else(|| corrupt("created_at is NULL".into()))?,
        attempted_at: timestamp(row, "attempted_at")?,
        finalized_at: timestamp(row, "finalized_at")?,
        lease_owner: row.try_get("lease_owner").map_err(store_error)?,
        lease_expires_at: timestamp(row, "lease_expires_at")?,
        checkpoint: row.try_get("checkpoint").map_err(store_error)?,
        errors: serde_json::from_value::<Vec<AttemptError>>(errors)
            .map_err(|e| corrupt(format!("errors column: {e}")))?,
    })
}

fn timestamp(row: &PgRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    let time: Option<PgTime> = row.try_get(column).map_err(store_error)?;
    Ok(time.map(|t| t.0))
}
