//! Decoding `jobs` rows into [`JobRecord`]s.

use jobs::{AttemptError, JobId, JobRecord, JobState, StoreError, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::error::corrupt;

/// The columns every query that returns whole jobs selects, in [`decode`]'s order.
pub(crate) const COLUMNS: &str = "id, kind, queue, args, state, priority, attempts, \
    max_attempts, rescues, claims, run_at, created_at, attempted_at, finalized_at, \
    lease_owner, lease_expires_at, checkpoint, errors";

/// Decodes a row selected with [`COLUMNS`]; any problem is [`StoreError::Corrupt`] naming the
/// job.
pub(crate) fn decode(row: &SqliteRow) -> Result<JobRecord, StoreError> {
    let id: i64 = column(row, 0, 0)?;
    let c = Cols { row, id };
    Ok(JobRecord {
        id: JobId(id),
        kind: c.get(1)?,
        queue: c.get(2)?,
        args: c.json(3)?,
        state: c.state(4)?,
        priority: c.int(5)?,
        attempts: c.int(6)?,
        max_attempts: c.int(7)?,
        rescues: c.int(8)?,
        claims: c.get(9)?,
        run_at: Timestamp::from_micros(c.get(10)?),
        created_at: Timestamp::from_micros(c.get(11)?),
        attempted_at: c.get::<Option<i64>>(12)?.map(Timestamp::from_micros),
        finalized_at: c.get::<Option<i64>>(13)?.map(Timestamp::from_micros),
        lease_owner: c.get(14)?,
        lease_expires_at: c.get::<Option<i64>>(15)?.map(Timestamp::from_micros),
        checkpoint: c.optional_json(16)?,
        errors: c.errors(17)?,
    })
}

fn column<'r, T>(row: &'r SqliteRow, index: usize, id: i64) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(index)
        .map_err(|err| corrupt(id, format!("column {index}: {err}")))
}

/// One row's columns, with the job id for error messages.
struct Cols<'r> {
    row: &'r SqliteRow,
    id: i64,
}

impl<'r> Cols<'r> {
    fn get<T: Decode<'r, Sqlite> + Type<Sqlite>>(&self, index: usize) -> Result<T, StoreError> {
        column(self.row, index, self.id)
    }

    fn int<T: TryFrom<i64>>(&self, index: usize) -> Result<T, StoreError> {
        let value: i64 = self.get(index)?;
        T::try_from(value)
            .map_err(|_| corrupt(self.id, format!("column {index}: {value} is out of range")))
    }

    fn state(&self, index: usize) -> Result<JobState, StoreError> {
        let name: &str = self.get(index)?;
        name.parse()
            .map_err(|err| corrupt(self.id, format!("state: {err}")))
    }

    fn json(&self, index: usize) -> Result<serde_json::Value, StoreError> {
        let text: &str = self.get(index)?;
        serde_json::from_str(text)
            .map_err(|err| corrupt(self.id, format!("column {index} is not JSON: {err}")))
    }

    fn optional_json(&self, index: usize) -> Result<Option<serde_json::Value>, StoreError> {
        match self.get::<Option<&str>>(index)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|err| corrupt(self.id, format!("checkpoint is not JSON: {err}"))),
        }
    }

    fn errors(&self, index: usize) -> Result<Vec<AttemptError>, StoreError> {
        let text: &str = self.get(index)?;
        serde_json::from_str(text)
            .map_err(|err| corrupt(self.id, format!("errors are not a JSON error list: {err}")))
    }
}
