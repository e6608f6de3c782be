//! `job_claim`: one script, `SELECT` the jobs a claim takes as one JSON row, then `UPDATE`
//! them, in one `BEGIN IMMEDIATE` transaction.

use std::sync::OnceLock;

use jobs::store::{ClaimedJob, JobClaimParams, Lease};
use jobs::StoreError;

use crate::connections::Writer;
use crate::error::during;
use crate::row::{decode_claimed, Claim, CLAIMED};

const OP: &str = "job_claim";

/// The jobs a normal claim takes, in claim order: no suspect, and (unless `?6` is NULL) only
/// the kinds of the JSON array `?6`. `kind` is in the index, so the filter costs no table
/// read.
const TAKE: &str = "SELECT id FROM jobs INDEXED BY jobs_claim \
    WHERE state = 'available' AND suspect = 0 AND queue = ?4 \
      AND (?6 IS NULL OR kind IN (SELECT value FROM json_each(?6))) \
    ORDER BY priority DESC, run_at, id LIMIT ?5";

/// The jobs a quarantine claim takes: suspects only (rare, and claimed one at a time).
const TAKE_SUSPECTS: &str = "SELECT id FROM jobs INDEXED BY jobs_suspect \
    WHERE state = 'available' AND suspect > 0 AND queue = ?4 \
      AND (?6 IS NULL OR kind IN (SELECT value FROM json_each(?6))) \
    ORDER BY priority DESC, run_at, id LIMIT ?5";

/// The claim: one script, one `BEGIN IMMEDIATE` transaction, one round trip. It renders the
/// jobs it is about to take as one JSON array (a single row, rather than a row per job
/// streamed from `UPDATE … RETURNING`), then takes them. Holding the write lock from the
/// start, both statements see the same jobs, and two claimers (connections or processes)
/// are serialised and never both take a job.
fn claim_sql(suspects: bool) -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    static SUSPECTS: OnceLock<String> = OnceLock::new();
    let (sql, take) = if suspects {
        (&SUSPECTS, TAKE_SUSPECTS)
    } else {
        (&SQL, TAKE)
    };
    sql.get_or_init(|| {
        format!(
            "BEGIN IMMEDIATE; \
             SELECT coalesce('[' || group_concat({CLAIMED}, ',') || ']', '[]') \
                 FROM jobs WHERE id IN ({take}); \
             UPDATE jobs SET state = 'running', claims = claims + 1, attempted_at = ?1, \
                 lease_owner = ?2, lease_expires_at = ?3 \
             WHERE id IN ({take}); \
             COMMIT;"
        )
    })
}

/// Claims up to `params.limit` jobs, in claim order.
pub(crate) async fn claim(
    conn: &mut Writer<'_>,
    params: &JobClaimParams,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let claim = Claim {
        queue: &params.queue,
        owner: &params.owner,
        now: params.now,
        expires_at: params.now + params.lease_ttl,
    };
    conn.begin_script();
    // `fetch_all`, not `fetch_one`: the script must run to its COMMIT, past its one row.
    let kinds = params
        .kinds
        .as_ref()
        .map(|kinds| serde_json::to_string(&**kinds))
        .transpose()
        .map_err(|err| StoreError::Other(format!("sqlite {OP}: kind list: {err}")))?;
    let rows: Vec<String> = sqlx::query_scalar(claim_sql(params.suspects))
        .bind(params.now.as_micros())
        .bind(&params.owner)
        .bind(claim.expires_at.as_micros())
        .bind(&params.queue)
        .bind(crate::maintenance::limit(params.limit))
        .bind(kinds)
        .fetch_all(&mut **conn)
        .await
        .map_err(during(OP))?;
    conn.end_script();
    let batch = rows.first().map_or("[]", String::as_str);
    let records = match decode_claimed(batch, &claim) {
        Ok(records) => records,
        Err(err) => return Err(corrupt(conn, &claim, err).await),
    };
    let mut claimed: Vec<ClaimedJob> = records
        .into_iter()
        .map(|record| ClaimedJob {
            lease: Lease {
                job: record.id,
                token: record.claims,
            },
            record,
        })
        .collect();
    claimed.sort_by_key(|job| {
        let record = &job.record;
        (std::cmp::Reverse(record.priority), record.run_at, record.id)
    });
    Ok(claimed)
}

/// Names the job of a claimed batch whose stored row does not decode.
///
/// (Only a row written by something else than this crate can be undecodable. Its batch stays
/// claimed; the rescuer returns it once the lease expires, and buries the job as a poison
/// pill if it keeps failing.)
async fn corrupt(conn: &mut Writer<'_>, claim: &Claim<'_>, err: serde_json::Error) -> StoreError {
    let id: Option<i64> = sqlx::query_scalar(CORRUPT)
        .bind(claim.owner)
        .bind(claim.now.as_micros())
        .fetch_optional(&mut **conn)
        .await
        .ok()
        .flatten();
    tracing::error!(job_id = ?id, error = %err, "a claimed job's stored row does not decode");
    crate::error::corrupt(
        id.unwrap_or(0),
        format!("its stored row does not decode: {err}"),
    )
}

/// A job of this claim whose stored JSON columns are not JSON.
const CORRUPT: &str = "SELECT id FROM jobs \
    WHERE state = 'running' AND lease_owner = ?1 AND attempted_at = ?2 \
        AND NOT (json_valid(args) AND json_valid(errors) \
                 AND json_valid(coalesce(checkpoint, 'null'))) \
    ORDER BY id LIMIT 1";
