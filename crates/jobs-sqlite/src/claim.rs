//! `job_claim`: one script, `SELECT` the jobs a claim takes as one JSON row, then `UPDATE`
//! them, in one `BEGIN IMMEDIATE` transaction.

use std::sync::OnceLock;

use jobs::store::{ClaimedJob, JobClaimParams, Lease};
use jobs::StoreError;

use crate::connections::Writer;
use crate::error::during;
use crate::row::{decode_claimed, decode_in_part, Claim, BARE_RECORD, CLAIMED, RECORD};

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
             SELECT coalesce('[' || group_concat({CLAIMED}, ',') || ']', '[]'), \
                    coalesce(group_concat(id), '') \
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
        .map_err(|err| StoreError::other(format!("sqlite {OP}: kind list")).with_source(err))?;
    let rows: Vec<(String, String)> = sqlx::query_as(claim_sql(params.suspects))
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
    let (batch, ids) = rows
        .first()
        .map_or(("[]", ""), |(batch, ids)| (batch.as_str(), ids.as_str()));
    let mut claimed: Vec<ClaimedJob> = match decode_claimed(batch, &claim) {
        Ok(records) => records
            .into_iter()
            .map(|record| ClaimedJob::new(lease_of(&record), record))
            .collect(),
        Err(_) => read_one_by_one(conn, ids).await?,
    };
    claimed.sort_by_key(|job| {
        let record = &job.record;
        (std::cmp::Reverse(record.priority), record.run_at, record.id)
    });
    Ok(claimed)
}

fn lease_of(record: &jobs::JobRecord) -> Lease {
    Lease {
        job: record.id,
        token: record.claims,
    }
}

/// The jobs of a claimed batch whose rendering did not decode, read again one row at a time
/// (`ids`, comma-separated): the rows that decode are claimed as usual, a row whose stored
/// JSON does not is claimed [`unreadable`](ClaimedJob::unreadable), so the engine moves that
/// one job to the dead set and the rest of the batch runs. (Only a row written by something
/// else than this crate, or by an older version, can be undecodable; this costs nothing
/// unless one is claimed.)
async fn read_one_by_one(conn: &mut Writer<'_>, ids: &str) -> Result<Vec<ClaimedJob>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(reread_sql())
        .bind(format!("[{ids}]"))
        .fetch_all(&mut **conn)
        .await
        .map_err(during(OP))?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (whole, bare) in &rows {
        match decode_in_part(whole, bare) {
            Ok((record, None)) => claimed.push(ClaimedJob::new(lease_of(&record), record)),
            Ok((record, Some(problem))) => {
                tracing::error!(job_id = %record.id, problem = %problem,
                    "a claimed job's stored row cannot be read; it goes to the dead set");
                claimed.push(ClaimedJob::unreadable(lease_of(&record), record, problem));
            }
            // Not even its plain columns read (values out of range, written by hand): it
            // stays leased and is rescued when the lease expires; the rest still runs.
            Err(error) => {
                tracing::error!(%error, "a claimed job's stored row cannot be read at all")
            }
        }
    }
    Ok(claimed)
}

/// Each row of a claimed batch (`?1`, a JSON array of ids), whole and bare.
fn reread_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!("SELECT {RECORD}, {BARE_RECORD} FROM jobs WHERE id IN (SELECT value FROM json_each(?1))")
    })
}
