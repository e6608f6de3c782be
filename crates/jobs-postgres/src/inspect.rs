//! Inspection and control: get, list, retry, cancel, queue stats.

use jobs::store::{JobCancelParams, JobListParams, JobRetryParams};
use jobs::{JobId, JobRecord, QueueStats, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::error::store_error;
use crate::lease::sql_limit;
use crate::pg_time::PgTime;
use crate::row::job_record;
use crate::sql::Queries;

/// One job, if it exists.
pub(crate) async fn get(
    pool: &PgPool,
    queries: &Queries,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let row = sqlx::query(&queries.get)
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(store_error)?;
    row.as_ref().map(job_record).transpose()
}

/// Jobs matching the filter, by id.
pub(crate) async fn list(
    pool: &PgPool,
    queries: &Queries,
    params: JobListParams,
) -> Result<Vec<JobRecord>, StoreError> {
    let limit = sql_limit(params.limit);
    let rows = sqlx::query(&queries.list)
        .bind(params.state.map(|s| s.as_str()))
        .bind(params.queue)
        .bind(params.after.map_or(i64::MIN, |id| id.0))
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter().map(job_record).collect()
}

/// Makes a dead or cancelled job available again.
pub(crate) async fn retry(
    pool: &PgPool,
    queries: &Queries,
    params: JobRetryParams,
) -> Result<bool, StoreError> {
    let row = sqlx::query(&queries.retry)
        .bind(params.id.0)
        .bind(PgTime(params.now))
        .bind(&queries.channel)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    let retried: i64 = row.try_get("retried").map_err(store_error)?;
    Ok(retried == 1)
}

/// Cancels a waiting job.
pub(crate) async fn cancel(
    pool: &PgPool,
    queries: &Queries,
    params: JobCancelParams,
) -> Result<bool, StoreError> {
    let done = sqlx::query(&queries.cancel)
        .bind(params.id.0)
        .bind(PgTime(params.now))
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

/// Counts per queue and state.
pub(crate) async fn queue_stats(
    pool: &PgPool,
    queries: &Queries,
) -> Result<Vec<QueueStats>, StoreError> {
    let rows = sqlx::query(&queries.stats)
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| stats_row(row).map_err(store_error))
        .collect()
}

fn stats_row(row: &PgRow) -> Result<QueueStats, sqlx::Error> {
    let count = |column: &str| -> Result<u64, sqlx::Error> {
        let n: i64 = row.try_get(column)?;
        Ok(u64::try_from(n).unwrap_or(0))
    };
    let oldest: Option<PgTime> = row.try_get("oldest_available_at")?;
    Ok(QueueStats {
        queue: row.try_get("queue")?,
        scheduled: count("scheduled")?,
        available: count("available")?,
        running: count("running")?,
        completed: count("completed")?,
        dead: count("dead")?,
        cancelled: count("cancelled")?,
        oldest_available_at: oldest.map(|t| t.0),
    })
}
