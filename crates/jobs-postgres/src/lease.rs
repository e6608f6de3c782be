//! Claiming jobs under a lease, and the fenced lease renewals: heartbeats and checkpoints.

use std::cmp::Reverse;
use std::collections::HashSet;

use jobs::store::{ClaimedJob, JobCheckpointParams, JobClaimParams, JobHeartbeatParams, Lease};
use jobs::StoreError;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgExecutor, Postgres, Row};

use crate::error::store_error;
use crate::lease_commit::LeaseCommit;
use crate::pg_time::PgTime;
use crate::row::{claimed_record, Leased};
use crate::sql::Queries;

/// A `limit` as SQL wants it (saturating).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The claim statement `sql` (or an `EXPLAIN` of it) with `params` bound.
pub(crate) fn claim_query<'q>(
    sql: &'q str,
    params: &'q JobClaimParams,
    limit: i64,
    commit: LeaseCommit,
) -> Query<'q, Postgres, PgArguments> {
    sqlx::query(sql)
        .bind(&params.queue)
        .bind(limit)
        .bind(PgTime(params.now))
        .bind(&params.owner)
        .bind(PgTime(params.now + params.lease_ttl))
        .bind(commit.is_async())
        .bind(params.kinds.as_deref())
}

/// One statement: lock up to `limit` available jobs (SKIP LOCKED) and lease them.
pub(crate) async fn claim(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobClaimParams,
    commit: LeaseCommit,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let limit = sql_limit(params.limit);
    let expires = params.now + params.lease_ttl;
    let sql = if params.suspects {
        &queries.claim_suspects
    } else {
        &queries.claim
    };
    let rows = claim_query(sql, &params, limit, commit)
        .fetch_all(conn)
        .await
        .map_err(store_error)?;
    let leased = Leased {
        queue: &params.queue,
        owner: &params.owner,
        attempted_at: params.now,
        expires_at: expires,
    };
    let mut claimed = rows
        .iter()
        .map(|row| {
            let (record, unreadable) = claimed_record(row, &leased)?;
            let lease = Lease {
                job: record.id,
                token: record.claims,
            };
            Ok(match unreadable {
                None => ClaimedJob::new(lease, record),
                Some(problem) => {
                    tracing::error!(job_id = %record.id, problem = %problem,
                        "a claimed job's stored row cannot be read; it goes to the dead set");
                    ClaimedJob::unreadable(lease, record, problem)
                }
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    claimed.sort_by_key(|c| (Reverse(c.record.priority), c.record.run_at, c.record.id));
    Ok(claimed)
}

/// One statement renewing every lease that still holds; per lease, in input order.
pub(crate) async fn heartbeat_many(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobHeartbeatParams,
    commit: LeaseCommit,
) -> Result<Vec<bool>, StoreError> {
    if params.leases.is_empty() {
        return Ok(Vec::new());
    }
    let expires = params.now + params.lease_ttl;
    let (ids, tokens) = lease_columns(&params.leases);
    let rows = sqlx::query(&queries.heartbeat)
        .bind(ids)
        .bind(tokens)
        .bind(PgTime(expires))
        .bind(commit.is_async())
        .bind(&params.owner)
        .fetch_all(conn)
        .await
        .map_err(store_error)?;
    let held = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<HashSet<(i64, i64)>, sqlx::Error>>()
        .map_err(store_error)?;
    Ok(applied_in_order(&params.leases, &held))
}

/// Saves a checkpoint and renews the lease, if it still holds.
pub(crate) async fn checkpoint(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobCheckpointParams,
    commit: LeaseCommit,
) -> Result<bool, StoreError> {
    let expires = params.now + params.lease_ttl;
    let done = sqlx::query(&queries.checkpoint)
        .bind(params.lease.job.0)
        .bind(params.lease.token)
        .bind(&params.checkpoint)
        .bind(PgTime(expires))
        .bind(commit.is_async())
        .bind(&params.owner)
        .execute(conn)
        .await
        .map_err(store_error)?;
    Ok(done.rows_affected() == 1)
}

/// The leases as two parallel arrays, for `UNNEST`.
pub(crate) fn lease_columns(leases: &[Lease]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|l| (l.job.0, l.token)).unzip()
}

/// For each lease, whether its (id, token) is among those the statement returned.
pub(crate) fn applied_in_order(leases: &[Lease], applied: &HashSet<(i64, i64)>) -> Vec<bool> {
    leases
        .iter()
        .map(|l| applied.contains(&(l.job.0, l.token)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs::JobId;

    #[test]
    fn huge_limits_saturate() {
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
        assert_eq!(sql_limit(5), 5);
    }

    #[test]
    fn results_follow_input_order() {
        let leases = [(1, 1), (2, 1), (1, 2)].map(|(job, token)| Lease {
            job: JobId(job),
            token,
        });
        let applied: HashSet<(i64, i64)> = [(1, 2), (2, 1)].into_iter().collect();
        assert_eq!(applied_in_order(&leases, &applied), vec![false, true, true]);
    }
}
