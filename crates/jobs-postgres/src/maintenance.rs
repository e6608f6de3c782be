//! The maintenance statements: rescue expired leases, promote due scheduled jobs, prune.

use jobs::store::{
    JobExpireUnknownKindsParams, JobPromoteParams, JobPruneParams, JobRescueParams, RescueOutcome,
    RescuedJob, UnknownKinds,
};
use jobs::{JobState, StoreError};
use sqlx::{PgExecutor, PgPool, Row};

use crate::error::store_error;
use crate::lease::sql_limit;
use crate::lease_commit::LeaseCommit;
use crate::pg_time::PgTime;
use crate::row::job_record_in_part;
use crate::sql::Queries;

/// One atomic statement (SKIP LOCKED): expired leases go back to `available`, poison pills to
/// `dead`.
pub(crate) async fn rescue_expired(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobRescueParams,
    commit: LeaseCommit,
) -> Result<RescueOutcome, StoreError> {
    let limit = sql_limit(params.limit);
    let max_rescues = i32::try_from(params.max_rescues).unwrap_or(i32::MAX);
    let rows = sqlx::query(&queries.rescue)
        .bind(PgTime(params.now))
        .bind(limit)
        .bind(max_rescues)
        .bind(&queries.channel)
        .bind(params.now.as_micros())
        .bind(commit.is_async())
        .bind(jobs::store::POISON_PILL_MESSAGE)
        .fetch_all(conn)
        .await
        .map_err(store_error)?;
    let mut outcome = RescueOutcome::default();
    for row in &rows {
        // The rescue has already applied: a row whose JSON cannot be read is still reported
        // (its hook record without what could not be read), never an error for the batch.
        let (record, unreadable) = job_record_in_part(row)?;
        if let Some(problem) = unreadable {
            tracing::error!(job_id = record.id.0, problem = %problem, "a rescued job's stored row cannot be read in full");
        }
        if record.state == JobState::Dead {
            tracing::warn!(job_id = record.id.0, kind = %record.kind, rescues = record.rescues, "poison pill: job moved to the dead set");
            outcome.dead.push(record);
        } else {
            outcome.requeued.push(RescuedJob::of(&record));
        }
    }
    outcome.requeued.sort_unstable_by_key(|job| job.id);
    outcome.dead.sort_by_key(|job| job.id);
    Ok(outcome)
}

/// Expires available jobs of unknown kinds waiting too long, then counts the rest.
pub(crate) async fn expire_unknown_kinds(
    pool: &PgPool,
    queries: &Queries,
    params: JobExpireUnknownKindsParams,
) -> Result<UnknownKinds, StoreError> {
    let rows = sqlx::query(&queries.expire_unknown_kinds)
        .bind(PgTime(params.now))
        .bind(&*params.known)
        .bind(PgTime(params.waiting_since))
        .bind(sql_limit(params.limit))
        .bind(params.now.as_micros())
        .fetch_all(pool)
        .await
        .map_err(store_error)?;
    // The expiry has already applied: a row whose JSON cannot be read is still reported (its
    // hook record without what could not be read), never an error for the batch.
    let mut dead = Vec::with_capacity(rows.len());
    for row in &rows {
        let (record, unreadable) = job_record_in_part(row)?;
        if let Some(problem) = unreadable {
            tracing::error!(job_id = record.id.0, problem = %problem, "an expired job's stored row cannot be read in full");
        }
        dead.push(record);
    }
    dead.sort_by_key(|job| job.id);
    let waiting: i64 = sqlx::query_scalar(&queries.waiting_unknown_kinds)
        .bind(&*params.known)
        .fetch_one(pool)
        .await
        .map_err(store_error)?;
    Ok(UnknownKinds {
        dead,
        waiting: u64::try_from(waiting).unwrap_or(0),
    })
}

/// Makes due scheduled jobs available (and notifies their queues); returns how many.
pub(crate) async fn promote_scheduled(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobPromoteParams,
    commit: LeaseCommit,
) -> Result<u64, StoreError> {
    let limit = sql_limit(params.limit);
    let row = sqlx::query(&queries.promote)
        .bind(PgTime(params.now))
        .bind(limit)
        .bind(&queries.channel)
        .bind(commit.is_async())
        .fetch_one(conn)
        .await
        .map_err(store_error)?;
    let promoted: i64 = row.try_get("promoted").map_err(store_error)?;
    Ok(u64::try_from(promoted).unwrap_or(0))
}

/// Deletes up to `limit` jobs in terminal `states` finalized before the cut-off.
pub(crate) async fn prune(
    pool: &PgPool,
    queries: &Queries,
    params: JobPruneParams,
) -> Result<u64, StoreError> {
    let limit = sql_limit(params.limit);
    if params.states.is_empty() {
        return Ok(0);
    }
    let states: Vec<&str> = params.states.iter().map(|s| s.as_str()).collect();
    let done = sqlx::query(&queries.prune)
        .bind(states)
        .bind(PgTime(params.finalized_before))
        .bind(limit)
        .execute(pool)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected())
}
