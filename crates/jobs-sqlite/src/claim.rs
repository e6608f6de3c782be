//! `job_claim`: one `UPDATE … WHERE id IN (SELECT … LIMIT ?) RETURNING …` statement.

use std::sync::OnceLock;

use jobs::{ClaimedJob, JobClaimParams, Lease, StoreError};
use sqlx::SqliteConnection;

use crate::error::{during, invalid};
use crate::row::{decode_claimed, Lease as Claim, CLAIMED};

const OP: &str = "job_claim";

/// The claim: a single write statement takes the write lock for its whole run, so two
/// claimers (connections or processes) are serialised and never both take a job.
fn claim_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE jobs SET state = 'running', claims = claims + 1, attempted_at = ?1, \
                 lease_owner = ?2, lease_expires_at = ?3 \
             WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_claim \
                          WHERE state = 'available' AND queue = ?4 \
                          ORDER BY priority DESC, run_at, id LIMIT ?5) \
             RETURNING {CLAIMED}"
        )
    })
}

/// Claims up to `params.limit` jobs, in claim order.
pub(crate) async fn claim(
    conn: &mut SqliteConnection,
    params: &JobClaimParams,
) -> Result<Vec<ClaimedJob>, StoreError> {
    validate(params)?;
    let claim = Claim {
        queue: &params.queue,
        owner: &params.owner,
        now: params.now,
        expires_at: params.now + params.lease_ttl,
    };
    let rows: Vec<String> = sqlx::query_scalar(claim_sql())
        .bind(params.now.as_micros())
        .bind(&params.owner)
        .bind(claim.expires_at.as_micros())
        .bind(&params.queue)
        .bind(crate::maintenance::limit(params.limit))
        .fetch_all(conn)
        .await
        .map_err(during(OP))?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            decode_claimed(row, &claim).map(|record| ClaimedJob {
                lease: Lease {
                    job: record.id,
                    token: record.claims,
                },
                record,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|job| {
        let record = &job.record;
        (std::cmp::Reverse(record.priority), record.run_at, record.id)
    });
    Ok(claimed)
}

fn validate(params: &JobClaimParams) -> Result<(), StoreError> {
    if params.queue.is_empty() {
        return Err(invalid(OP, "the queue name is empty"));
    }
    if params.limit == 0 {
        return Err(invalid(OP, "limit is 0; claim at least one job"));
    }
    Ok(())
}
