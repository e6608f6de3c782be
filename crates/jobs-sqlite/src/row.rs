//! Reading whole job records: SQLite renders each row as one JSON text, decoded here.
//!
//! One text column per row is much cheaper to move out of SQLite (through sqlx's worker
//! thread) than eighteen columns, and the stored JSON (`args`, `checkpoint`, `errors`) is
//! spliced in as it is, not parsed and re-rendered by SQLite.

use jobs::{AttemptError, JobId, JobRecord, JobState, Metadata, StoreError, Timestamp};
use serde_json::Value;

use crate::error::corrupt;

/// The SQL expression rendering a `jobs` row as the JSON text [`decode`] reads:
/// `[[id, kind, queue, args, state, priority, attempts, max_attempts, rescues, strikes or null],
///   [claims, run_at, created_at, attempted_at, finalized_at, lease_owner, lease_expires_at,
///    [checkpoint] or null, errors, metadata or null]]`
/// (two halves because serde decodes tuples of at most 16; the checkpoint is wrapped so a
/// saved JSON `null` differs from no checkpoint).
pub(crate) const RECORD: &str =
    "printf('[[%d,%s,%s,%s,%s,%d,%d,%d,%d,%s],[%d,%d,%d,%s,%s,%s,%s,%s,%s,%s]]', \
    id, json_quote(kind), json_quote(queue), args, json_quote(state), priority, attempts, \
    max_attempts, rescues, coalesce(nullif(suspect, 0) - 1, 'null'), claims, run_at, created_at, coalesce(attempted_at, 'null'), \
    coalesce(finalized_at, 'null'), json_quote(lease_owner), coalesce(lease_expires_at, 'null'), \
    coalesce('[' || checkpoint || ']', 'null'), errors, coalesce(metadata, 'null'))";

/// The `errors` column to append to: itself, or an empty array when it is not a JSON array
/// (a row written by hand), so appending the error that buries such a job cannot fail.
/// (Evaluated only where an error is appended, never on the completion path.)
pub(crate) const ERRORS_TO_APPEND_TO: &str = "CASE WHEN NOT json_valid(errors) THEN '[]' \
    WHEN json_type(errors) = 'array' THEN errors ELSE '[]' END";

/// [`RECORD`] without the stored JSON (args `null`, no checkpoint, no errors, no metadata):
/// what can be read of a row whose JSON cannot.
pub(crate) const BARE_RECORD: &str =
    "printf('[[%d,%s,%s,null,%s,%d,%d,%d,%d,%s],[%d,%d,%d,%s,%s,%s,%s,null,[],null]]', \
    id, json_quote(kind), json_quote(queue), json_quote(state), priority, attempts, \
    max_attempts, rescues, coalesce(nullif(suspect, 0) - 1, 'null'), claims, run_at, created_at, coalesce(attempted_at, 'null'), \
    coalesce(finalized_at, 'null'), json_quote(lease_owner), coalesce(lease_expires_at, 'null'))";

/// The SQL expression rendering an available row as the claim about to take it will leave
/// it (`claims + 1`), without what the claimer already knows (queue, state, lease and attempt
/// time): `[id, kind, args, priority, attempts, max_attempts, rescues, claims, run_at,
/// created_at, [checkpoint] or null, errors, strikes or null, metadata or null]`.
pub(crate) const CLAIMED: &str = "printf('[%d,%s,%s,%d,%d,%d,%d,%d,%d,%d,%s,%s,%s,%s]', \
    id, json_quote(kind), args, priority, attempts, max_attempts, rescues, claims + 1, run_at, \
    created_at, coalesce('[' || checkpoint || ']', 'null'), errors, \
    coalesce(nullif(suspect, 0) - 1, 'null'), coalesce(metadata, 'null'))";

type Head = (
    i64,
    String,
    String,
    Value,
    JobState,
    i16,
    u32,
    u32,
    u32,
    Option<u32>,
);
type Claimed = (
    i64,
    String,
    Value,
    i16,
    u32,
    u32,
    u32,
    i64,
    Timestamp,
    Timestamp,
    Option<(Value,)>,
    Vec<AttemptError>,
    Option<u32>,
    Option<Metadata>,
);

/// What a claim set on every job it took.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    pub(crate) queue: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) now: Timestamp,
    pub(crate) expires_at: Timestamp,
}

/// Decodes a JSON array of rows rendered by [`CLAIMED`] into the running jobs they now are.
///
/// # Errors
///
/// The serde error if the array does not decode (a stored JSON text is not JSON, or a value
/// is out of range); the caller names the job.
pub(crate) fn decode_claimed(
    text: &str,
    claim: &Claim<'_>,
) -> Result<Vec<JobRecord>, serde_json::Error> {
    let rows: Vec<Claimed> = serde_json::from_str(text)?;
    Ok(rows
        .into_iter()
        .map(|row| claimed_record(row, claim))
        .collect())
}

fn claimed_record(row: Claimed, claim: &Claim<'_>) -> JobRecord {
    JobRecord {
        id: JobId(row.0),
        kind: row.1,
        queue: claim.queue.to_owned(),
        args: row.2,
        state: JobState::Running,
        priority: row.3,
        attempts: row.4,
        max_attempts: row.5,
        rescues: row.6,
        suspect: row.12,
        claims: row.7,
        run_at: row.8,
        created_at: row.9,
        attempted_at: Some(claim.now),
        finalized_at: None,
        lease_owner: Some(claim.owner.to_owned()),
        lease_expires_at: Some(claim.expires_at),
        checkpoint: row.10.map(|(checkpoint,)| checkpoint),
        errors: row.11,
        metadata: row.13.unwrap_or_default(),
        unreadable: None,
    }
}
type Tail = (
    i64,
    Timestamp,
    Timestamp,
    Option<Timestamp>,
    Option<Timestamp>,
    Option<String>,
    Option<Timestamp>,
    Option<(Value,)>,
    Vec<AttemptError>,
    Option<Metadata>,
);

/// Decodes a row rendered by [`RECORD`]; any problem is [`StoreError::Corrupt`] naming the
/// job.
pub(crate) fn decode(text: &str) -> Result<JobRecord, StoreError> {
    let (head, tail): (Head, Tail) = serde_json::from_str(text).map_err(|err| {
        corrupt(
            leading_id(text),
            format!("its stored JSON does not decode: {err}"),
        )
    })?;
    Ok(JobRecord {
        id: JobId(head.0),
        kind: head.1,
        queue: head.2,
        args: head.3,
        state: head.4,
        priority: head.5,
        attempts: head.6,
        max_attempts: head.7,
        rescues: head.8,
        suspect: head.9,
        claims: tail.0,
        run_at: tail.1,
        created_at: tail.2,
        attempted_at: tail.3,
        finalized_at: tail.4,
        lease_owner: tail.5,
        lease_expires_at: tail.6,
        checkpoint: tail.7.map(|(checkpoint,)| checkpoint),
        errors: tail.8,
        metadata: tail.9.unwrap_or_default(),
        unreadable: None,
    })
}

/// Decodes a row rendered by [`RECORD`] or, if its stored JSON does not decode, the same row
/// rendered by [`BARE_RECORD`], with what could not be read.
///
/// # Errors
///
/// [`StoreError::Corrupt`] naming the job if even the bare row does not decode (a value out
/// of range, written by hand).
pub(crate) fn decode_in_part(
    whole: &str,
    bare: &str,
) -> Result<(JobRecord, Option<String>), StoreError> {
    match decode(whole) {
        Ok(record) => Ok((record, None)),
        Err(StoreError::Corrupt { reason, .. }) => Ok((decode(bare)?, Some(reason))),
        Err(other) => Err(other),
    }
}

/// The job id at the start of a rendered row, to name a row that does not decode.
fn leading_id(text: &str) -> i64 {
    let digits: String = text
        .trim_start_matches('[')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"[[7,"email","mail",{"to":"a"},"running",-2,1,5,0,2],
        [3,100,90,101,null,"w1",130,[{"row":4}],[{"attempt":1,"at":95,"message":"boom"}],
        {"traceparent":"00-ab-cd-01"}]]"#;

    #[test]
    fn decodes_every_field() {
        let record = decode(ROW).unwrap();
        assert_eq!(record.id, JobId(7));
        assert_eq!(
            (record.kind.as_str(), record.queue.as_str()),
            ("email", "mail")
        );
        assert_eq!(record.args, serde_json::json!({ "to": "a" }));
        assert_eq!(record.state, JobState::Running);
        assert_eq!(
            (record.priority, record.attempts, record.max_attempts),
            (-2, 1, 5)
        );
        assert_eq!((record.rescues, record.claims), (0, 3));
        assert_eq!(record.suspect, Some(2));
        assert_eq!(record.run_at, Timestamp::from_micros(100));
        assert_eq!(record.created_at, Timestamp::from_micros(90));
        assert_eq!(record.attempted_at, Some(Timestamp::from_micros(101)));
        assert_eq!(record.finalized_at, None);
        assert_eq!(record.lease_owner.as_deref(), Some("w1"));
        assert_eq!(record.lease_expires_at, Some(Timestamp::from_micros(130)));
        assert_eq!(record.checkpoint, Some(serde_json::json!({ "row": 4 })));
        assert_eq!(record.errors[0].message, "boom");
        assert_eq!(record.metadata.get("traceparent"), Some("00-ab-cd-01"));
    }

    #[test]
    fn a_saved_null_checkpoint_differs_from_none() {
        let saved_null = ROW.replace(r#"[{"row":4}]"#, "[null]");
        assert_eq!(decode(&saved_null).unwrap().checkpoint, Some(Value::Null));
        let none = ROW.replace(r#"[{"row":4}]"#, "null");
        assert_eq!(decode(&none).unwrap().checkpoint, None);
    }

    #[test]
    fn undecodable_rows_are_corrupt_naming_the_job() {
        let bad_args = ROW.replace(r#"{"to":"a"}"#, "{not json");
        let bad_state = ROW.replace("running", "exploded");
        for text in [bad_args, bad_state] {
            match decode(&text) {
                Err(StoreError::Corrupt { id, reason }) => {
                    assert_eq!(id, 7);
                    assert!(!reason.is_empty());
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
    }
}
