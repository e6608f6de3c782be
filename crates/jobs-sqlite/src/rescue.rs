//! `job_rescue_expired`: expired leases back to `available` as suspects, poison pills to
//! `dead`, in one statement (so two rescuers never both return a job). Only a suspect's
//! rescue (it ran alone, in quarantine) is a strike: `suspect` holds 1 + strikes, so a
//! suspect with `max_rescues` strikes has `suspect > max_rescues`.

use std::sync::OnceLock;

use jobs::store::{JobRescueParams, RescueOutcome, RescuedJob};
use jobs::{JobState, StoreError};
use sqlx::SqliteConnection;

use crate::error::during;
use crate::row::{decode_in_part, BARE_RECORD, ERRORS_TO_APPEND_TO, RECORD};

const OP: &str = "job_rescue_expired";

fn rescue_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "UPDATE jobs SET \
                state = CASE WHEN suspect > ?2 THEN 'dead' ELSE 'available' END, \
                rescues = rescues + 1, \
                suspect = suspect + 1, \
                finalized_at = CASE WHEN suspect > ?2 THEN ?1 END, \
                errors = CASE WHEN suspect > ?2 THEN json_insert({ERRORS_TO_APPEND_TO}, '$[#]', json_object( \
                    'attempt', 0, 'at', ?1, 'message', \
                    replace(replace(replace(?4, '{{owner}}', coalesce(lease_owner, '?')), \
                        '{{rescues}}', suspect), '{{max_rescues}}', ?2))) \
                    ELSE errors END, \
                lease_owner = NULL, \
                lease_expires_at = NULL \
             WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_rescue \
                          WHERE state = 'running' AND lease_expires_at < ?1 \
                          ORDER BY lease_expires_at LIMIT ?3) \
             RETURNING {RECORD}, {BARE_RECORD}"
        )
    })
}

/// Rescues up to `params.limit` expired leases; returns the requeued ids and the new dead
/// records, both ordered by id, and the queues that got jobs back.
pub(crate) async fn rescue_expired(
    conn: &mut SqliteConnection,
    params: &JobRescueParams,
) -> Result<(RescueOutcome, Vec<String>), StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(rescue_sql())
        .bind(params.now.as_micros())
        .bind(i64::from(params.max_rescues))
        .bind(crate::maintenance::limit(params.limit))
        .bind(jobs::store::POISON_PILL_MESSAGE)
        .fetch_all(conn)
        .await
        .map_err(during(OP))?;
    // The rescue has already applied: a row whose JSON cannot be read is still reported (its
    // hook record without what could not be read), never an error for the batch.
    let mut records = Vec::with_capacity(rows.len());
    for (whole, bare) in &rows {
        match decode_in_part(whole, bare) {
            Ok((record, problem)) => {
                if let Some(problem) = problem {
                    tracing::error!(job_id = %record.id, problem = %problem, "a rescued job's stored row cannot be read in full");
                }
                records.push(record);
            }
            Err(error) => {
                tracing::error!(%error, "a rescued job's stored row cannot be read at all")
            }
        }
    }
    records.sort_by_key(|record| record.id);
    let mut outcome = RescueOutcome::default();
    let mut woken: Vec<String> = Vec::new();
    for record in records {
        if record.state == JobState::Dead {
            tracing::warn!(job_id = %record.id, kind = %record.kind, rescues = record.rescues, "poison pill moved to the dead set");
            outcome.dead.push(record);
        } else {
            tracing::info!(job_id = %record.id, kind = %record.kind, rescues = record.rescues, "expired lease rescued");
            if !woken.contains(&record.queue) {
                woken.push(record.queue.clone());
            }
            outcome.requeued.push(RescuedJob::of(&record));
        }
    }
    Ok((outcome, woken))
}
