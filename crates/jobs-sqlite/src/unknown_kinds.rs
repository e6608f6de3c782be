//! `job_expire_unknown_kinds`: available jobs of kinds no process claimed for too long go to
//! the dead set; the rest of those kinds are counted.

use std::sync::OnceLock;

use jobs::store::{JobExpireUnknownKindsParams, UnknownKinds};
use jobs::StoreError;
use sqlx::SqliteConnection;

use crate::error::during;
use crate::row::{decode_in_part, BARE_RECORD, ERRORS_TO_APPEND_TO, RECORD};

const OP: &str = "job_expire_unknown_kinds";

/// `?1` now, `?2` known kinds (JSON array), `?3` waiting since, `?4` limit.
fn expire_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE jobs SET state = 'dead', finalized_at = ?1, \
                 errors = json_insert({ERRORS_TO_APPEND_TO}, '$[#]', json_object('attempt', 0, 'at', ?1, \
                     'message', 'no running process has a worker for kind ' || json_quote(kind) \
                     || ': the job waited longer than the pool''s unknown_kind_ttl without being \
                     claimed, so it was moved to the dead set (deploy a worker for the kind and \
                     retry it)')) \
             WHERE id IN (SELECT id FROM jobs \
                          WHERE state = 'available' AND run_at < ?3 \
                            AND kind NOT IN (SELECT value FROM json_each(?2)) \
                          ORDER BY run_at, id LIMIT ?4) \
             RETURNING {RECORD}, {BARE_RECORD}"
        )
    })
}

/// Available jobs of the kinds not in `?1` (read from the claim indexes, which hold `kind`
/// or are small).
const WAITING: &str = "SELECT count(*) FROM jobs \
    WHERE state = 'available' AND kind NOT IN (SELECT value FROM json_each(?1))";

/// Expires up to `params.limit` jobs, then counts those still waiting.
pub(crate) async fn expire(
    conn: &mut SqliteConnection,
    params: &JobExpireUnknownKindsParams,
) -> Result<UnknownKinds, StoreError> {
    let known = serde_json::to_string(&*params.known)
        .map_err(|err| StoreError::other(format!("sqlite {OP}: kind list")).with_source(err))?;
    let rows: Vec<(String, String)> = sqlx::query_as(expire_sql())
        .bind(params.now.as_micros())
        .bind(&known)
        .bind(params.waiting_since.as_micros())
        .bind(crate::maintenance::limit(params.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(during(OP))?;
    // The expiry has already applied: a row whose JSON cannot be read is still reported (its
    // hook record without what could not be read), never an error for the batch.
    let mut dead = Vec::with_capacity(rows.len());
    for (whole, bare) in &rows {
        match decode_in_part(whole, bare) {
            Ok((record, problem)) => {
                if let Some(problem) = problem {
                    tracing::error!(job_id = %record.id, problem = %problem, "an expired job's stored row cannot be read in full");
                }
                dead.push(record);
            }
            Err(error) => {
                tracing::error!(%error, "an expired job's stored row cannot be read at all")
            }
        }
    }
    dead.sort_by_key(|job| job.id);
    let waiting: i64 = sqlx::query_scalar(WAITING)
        .bind(&known)
        .fetch_one(&mut *conn)
        .await
        .map_err(during(OP))?;
    Ok(UnknownKinds {
        dead,
        waiting: waiting.max(0) as u64,
    })
}
