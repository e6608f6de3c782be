//! Decoding job rows (selected with `sql::job_columns`) into [`JobRecord`]s.

use jobs::{AttemptError, JobId, JobRecord, JobState, Metadata, StoreError, Timestamp};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::error::store_error;
use crate::pg_time::PgTime;

/// One row as a reader sees it: whole, or, when its JSON columns do not decode, what could be
/// read, marked [`unreadable`](JobRecord::unreadable). Other values that do not fit are
/// [`StoreError::Corrupt`] (the table's constraints exclude them).
pub(crate) fn job_record(row: &PgRow) -> Result<JobRecord, StoreError> {
    let (mut record, unreadable) = decode(row, None)?;
    if let Some(problem) = unreadable {
        record.mark_unreadable(problem);
    }
    Ok(record)
}

/// One row as a job record even when its JSON columns (args, checkpoint, errors, metadata) do not
/// decode (nested too deep, or another shape): those are left out (null, none, empty) and
/// the second value says what could not be read. Other values that do not fit are
/// [`StoreError::Corrupt`] (the table's constraints exclude them).
pub(crate) fn job_record_in_part(row: &PgRow) -> Result<(JobRecord, Option<String>), StoreError> {
    decode(row, None)
}

/// What a claim wrote into every row it leased, so it need not read it back.
#[derive(Debug)]
pub(crate) struct Leased<'a> {
    pub(crate) queue: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) attempted_at: Timestamp,
    pub(crate) expires_at: Timestamp,
}

/// A row returned by the claim (`sql::claimed_columns`) as the leased job's record, read as
/// [`job_record_in_part`] reads.
pub(crate) fn claimed_record(
    row: &PgRow,
    leased: &Leased<'_>,
) -> Result<(JobRecord, Option<String>), StoreError> {
    decode(row, Some(leased))
}

/// The JSON columns of a row, each left out (null, none, empty) if it does not decode, with
/// what did not.
struct JsonColumns {
    args: Value,
    checkpoint: Option<Value>,
    errors: Vec<AttemptError>,
    metadata: Metadata,
    unreadable: Option<String>,
}

fn json_columns(row: &PgRow) -> JsonColumns {
    let mut problems: Vec<String> = Vec::new();
    let mut note = |column: &str, error: &dyn std::fmt::Display| {
        problems.push(format!("{column}: {error}"));
    };
    let args = row.try_get::<Value, _>("args").unwrap_or_else(|e| {
        note("args", &e);
        Value::Null
    });
    let checkpoint = row
        .try_get::<Option<Value>, _>("checkpoint")
        .unwrap_or_else(|e| {
            note("checkpoint", &e);
            None
        });
    let errors = row
        .try_get::<Value, _>("errors")
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value::<Vec<AttemptError>>(v).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| {
            note("errors", &e);
            Vec::new()
        });
    let metadata = row
        .try_get::<Option<Value>, _>("metadata")
        .map_err(|e| e.to_string())
        .and_then(|v| {
            v.map(serde_json::from_value::<Metadata>)
                .transpose()
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|e| {
            note("metadata", &e);
            None
        })
        .unwrap_or_default();
    JsonColumns {
        args,
        checkpoint,
        errors,
        metadata,
        unreadable: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

fn decode(
    row: &PgRow,
    leased: Option<&Leased<'_>>,
) -> Result<(JobRecord, Option<String>), StoreError> {
    let id: i64 = row.try_get("id").map_err(store_error)?;
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let get_u32 = |column: &str| -> Result<u32, StoreError> {
        let v: i32 = row.try_get(column).map_err(store_error)?;
        u32::try_from(v).map_err(|_| corrupt(format!("{column} is negative ({v})")))
    };
    let json = json_columns(row);
    let (queue, state, attempted_at, lease_owner, lease_expires_at) = match leased {
        Some(l) => (
            l.queue.to_owned(),
            JobState::Running,
            Some(l.attempted_at),
            Some(l.owner.to_owned()),
            Some(l.expires_at),
        ),
        None => {
            let state: String = row.try_get("state").map_err(store_error)?;
            (
                row.try_get("queue").map_err(store_error)?,
                state
                    .parse::<JobState>()
                    .map_err(|e| corrupt(e.to_string()))?,
                timestamp(row, "attempted_at")?,
                row.try_get("lease_owner").map_err(store_error)?,
                timestamp(row, "lease_expires_at")?,
            )
        }
    };
    let record = JobRecord {
        id: JobId(id),
        kind: row.try_get("kind").map_err(store_error)?,
        queue,
        args: json.args,
        state,
        priority: row.try_get("priority").map_err(store_error)?,
        attempts: get_u32("attempts")?,
        max_attempts: get_u32("max_attempts")?,
        rescues: get_u32("rescues")?,
        // 0: not a suspect; otherwise 1 + its strikes.
        suspect: get_u32("suspect")?.checked_sub(1),
        claims: row.try_get("claims").map_err(store_error)?,
        run_at: timestamp(row, "run_at")?.ok_or_else(|| corrupt("run_at is NULL".into()))?,
        created_at: timestamp(row, "created_at")?
            .ok_or_else(|| corrupt("created_at is NULL".into()))?,
        attempted_at,
        finalized_at: timestamp(row, "finalized_at")?,
        lease_owner,
        lease_expires_at,
        checkpoint: json.checkpoint,
        errors: json.errors,
        metadata: json.metadata,
        unreadable: None,
    };
    Ok((record, json.unreadable))
}

fn timestamp(row: &PgRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    let time: Option<PgTime> = row.try_get(column).map_err(store_error)?;
    Ok(time.map(|t| t.0))
}
