//! Inserting jobs: one `INSERT … SELECT FROM UNNEST(…)` for small batches, binary `COPY` for
//! large ones. Either way a batch is one atomic statement, so it works inside a caller's
//! transaction as well as on its own.

use jobs::store::{JobInsertParams, NewJob};
use jobs::{JobId, JobState, StoreError, Timestamp};
use sqlx::{Acquire, PgConnection};

use crate::error::store_error;
use crate::pg_time::{PgTime, MIN_TIMESTAMP};
use crate::sql::Queries;

/// Batches at least this large go through `COPY` (faster per row, one more round trip).
pub(crate) const COPY_THRESHOLD: usize = 64;

/// A job, ready to write.
struct Row<'a> {
    job: &'a NewJob,
    args: String,
    state: JobState,
    run_at: Timestamp,
    max_attempts: i32,
    /// The metadata's JSON text; `None` (NULL) when it has none.
    metadata: Option<String>,
}

/// Inserts `params.jobs` on `conn` (one statement, or two for COPY); ids in input order.
pub(crate) async fn insert_jobs(
    conn: &mut PgConnection,
    queries: &Queries,
    params: &JobInsertParams,
) -> Result<Vec<JobId>, StoreError> {
    let rows = params
        .jobs
        .iter()
        .map(|job| row(job, params.now))
        .collect::<Result<Vec<_>, _>>()?;
    if rows.is_empty() {
        Ok(Vec::new())
    } else if rows.len() >= COPY_THRESHOLD {
        copy_in(conn, queries, &rows, params.now).await
    } else {
        insert_unnest(conn, queries, &rows, params.now).await
    }
}

/// The row of a job of a validated batch ([`JobInsertParams::validate`]).
fn row(job: &NewJob, now: Timestamp) -> Result<Row<'_>, StoreError> {
    // Validated: 1 ..= MAX_ATTEMPTS_LIMIT (i32::MAX), so the conversion cannot saturate.
    let max_attempts = i32::try_from(job.max_attempts).unwrap_or(i32::MAX);
    let run_at = job.run_at.unwrap_or(now);
    if run_at < MIN_TIMESTAMP || now < MIN_TIMESTAMP {
        return Err(StoreError::invalid(format!(
            "run_at of a {:?} job is {} µs from the epoch, before PostgreSQL's earliest timestamp (4714 BC)",
            job.kind,
            run_at.as_micros().min(now.as_micros())
        )));
    }
    let state = JobState::waiting_for(run_at, now);
    let args = serde_json::to_string(&job.args).map_err(|e| {
        StoreError::invalid(format!("args of a {:?} job: {e}", job.kind)).with_source(e)
    })?;
    let metadata = if job.metadata.is_empty() {
        None
    } else {
        Some(serde_json::to_string(&job.metadata).map_err(|e| {
            StoreError::invalid(format!("metadata of a {:?} job: {e}", job.kind)).with_source(e)
        })?)
    };
    Ok(Row {
        job,
        args,
        state,
        run_at,
        max_attempts,
        metadata,
    })
}

async fn insert_unnest(
    conn: &mut PgConnection,
    queries: &Queries,
    rows: &[Row<'_>],
    now: Timestamp,
) -> Result<Vec<JobId>, StoreError> {
    let col = |f: fn(&Row<'_>) -> String| rows.iter().map(f).collect::<Vec<_>>();
    let mut ids: Vec<i64> = sqlx::query_scalar(&queries.insert_unnest)
        .bind(col(|r| r.job.kind.clone()))
        .bind(col(|r| r.job.queue.clone()))
        .bind(col(|r| r.args.clone()))
        .bind(col(|r| r.state.as_str().to_owned()))
        .bind(rows.iter().map(|r| r.job.priority).collect::<Vec<i16>>())
        .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<i32>>())
        .bind(rows.iter().map(|r| PgTime(r.run_at)).collect::<Vec<_>>())
        .bind(PgTime(now))
        .bind(&queries.channel)
        .bind(rows.iter().map(|r| r.metadata.clone()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    // Rows are inserted in input order and ids come from one increasing sequence, so the
    // sorted ids are the input order whatever order RETURNING yields them in.
    ids.sort_unstable();
    Ok(ids.into_iter().map(JobId).collect())
}

/// `nextval` × n with one NOTIFY per queue that gets available jobs, then `COPY`, in one
/// transaction (a savepoint inside the caller's). The rows are encoded while the ids are on
/// their way, and the ids written into the encoded rows when they arrive.
async fn copy_in(
    conn: &mut PgConnection,
    queries: &Queries,
    rows: &[Row<'_>],
    now: Timestamp,
) -> Result<Vec<JobId>, StoreError> {
    let mut tx = conn.begin().await.map_err(store_error)?;
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let next_ids = sqlx::query_scalar::<_, Vec<i64>>(&queries.next_ids)
        .bind(count)
        .bind(&queries.channel)
        .bind(available_queues(rows))
        .fetch_one(&mut *tx);
    // The query is sent when first polled; the encoding then runs while the server works.
    let (ids, encoded) = futures::join!(next_ids, async { encode_copy(rows, now) });
    let (mut ids, mut copy_data) = (ids.map_err(store_error)?, encoded?);
    if ids.len() != rows.len() {
        return Err(StoreError::other(format!(
            "asked the id sequence for {} ids, got {}",
            rows.len(),
            ids.len()
        )));
    }
    // One statement's nextval calls are increasing; sorting makes the input order certain.
    ids.sort_unstable();
    copy_data.set_ids(&ids);
    let mut copy = tx
        .copy_in_raw(&queries.copy_in)
        .await
        .map_err(store_error)?;
    copy.send(copy_data.buf).await.map_err(store_error)?;
    copy.finish().await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(ids.into_iter().map(JobId).collect())
}

/// The distinct queues that get available jobs (to notify).
fn available_queues<'a>(rows: &[Row<'a>]) -> Vec<&'a str> {
    let mut queues: Vec<&str> = rows
        .iter()
        .filter(|r| r.state == JobState::Available)
        .map(|r| r.job.queue.as_str())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// Rows in PostgreSQL's binary COPY format, with room for each row's id.
struct CopyData {
    buf: Vec<u8>,
    /// Where each row's 8-byte id goes.
    id_offsets: Vec<usize>,
}

impl CopyData {
    /// Writes the ids, one per row in order (the caller checked the count).
    fn set_ids(&mut self, ids: &[i64]) {
        for (&at, id) in self.id_offsets.iter().zip(ids) {
            self.buf[at..at + 8].copy_from_slice(&id.to_be_bytes());
        }
    }
}

/// The rows in PostgreSQL's binary COPY format (exact for timestamps, no text escaping), ids
/// zero until [`CopyData::set_ids`].
fn encode_copy(rows: &[Row<'_>], now: Timestamp) -> Result<CopyData, StoreError> {
    let mut buf = Vec::with_capacity(21 + rows.len() * 160);
    let mut id_offsets = Vec::with_capacity(rows.len());
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    let created_at = pg_timestamp(now)?;
    for row in rows {
        buf.extend_from_slice(&10i16.to_be_bytes());
        id_offsets.push(buf.len() + 4);
        field(&mut buf, &0i64.to_be_bytes());
        field(&mut buf, row.job.kind.as_bytes());
        field(&mut buf, row.job.queue.as_bytes());
        jsonb_field(&mut buf, row.args.as_bytes());
        field(&mut buf, row.state.as_str().as_bytes());
        field(&mut buf, &row.job.priority.to_be_bytes());
        field(&mut buf, &row.max_attempts.to_be_bytes());
        field(&mut buf, &pg_timestamp(row.run_at)?.to_be_bytes());
        field(&mut buf, &created_at.to_be_bytes());
        match &row.metadata {
            Some(metadata) => jsonb_field(&mut buf, metadata.as_bytes()),
            None => buf.extend_from_slice(&(-1i32).to_be_bytes()), // NULL
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    Ok(CopyData { buf, id_offsets })
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&field_len(bytes.len()).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn jsonb_field(buf: &mut Vec<u8>, json: &[u8]) {
    buf.extend_from_slice(&field_len(json.len() + 1).to_be_bytes());
    buf.push(1); // jsonb binary format version
    buf.extend_from_slice(json);
}

/// A field length; PostgreSQL rejects fields over 1 GiB, so larger ones are reported there.
fn field_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Microseconds since 2000-01-01, PostgreSQL's binary timestamp.
fn pg_timestamp(t: Timestamp) -> Result<i64, StoreError> {
    PgTime(t)
        .to_pg()
        .map_err(|e| StoreError::invalid(e.to_string()).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(kind: &str, queue: &str, max_attempts: u32) -> NewJob {
        NewJob {
            kind: kind.into(),
            args: json!({"n": 1}),
            queue: queue.into(),
            priority: 0,
            max_attempts,
            run_at: None,
            metadata: Default::default(),
        }
    }

    #[test]
    fn timestamps_before_postgresql_s_range_are_refused() {
        let now = Timestamp::from_micros(1_000);
        let mut ancient = job("k", "q", 1);
        ancient.run_at = Some(Timestamp::from_micros(i64::MIN));
        assert!(matches!(
            row(&ancient, now),
            Err(StoreError::Invalid { .. })
        ));
        ancient.run_at = Some(MIN_TIMESTAMP);
        assert!(row(&ancient, now).is_ok());
    }

    #[test]
    fn state_follows_run_at() {
        let now = Timestamp::from_micros(1_000);
        let mut later = job("k", "q", 1);
        later.run_at = Some(Timestamp::from_micros(1_001));
        assert_eq!(
            row(&later, now).map(|r| r.state).ok(),
            Some(JobState::Scheduled)
        );
        let plain = job("k", "q", 1);
        let row = row(&plain, now).expect("a valid job");
        assert_eq!((row.state, row.run_at), (JobState::Available, now));
    }

    #[test]
    fn copy_encoding_has_header_rows_and_trailer() {
        let now = Timestamp::from_micros(crate::pg_time::PG_EPOCH_OFFSET_MICROS + 5);
        let jobs = [job("k", "q", 3)];
        let rows: Vec<Row<'_>> = jobs
            .iter()
            .map(|j| row(j, now).expect("a valid job"))
            .collect();
        let mut data = encode_copy(&rows, now).expect("in range");
        data.set_ids(&[7]);
        let buf = data.buf;
        assert!(buf.starts_with(b"PGCOPY\n\xff\r\n\0"));
        assert!(
            buf.ends_with(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            "NULL metadata, trailer"
        );
        // header 19 bytes, field count 2, then the id field: length 8 and the value 7.
        assert_eq!(&buf[19..21], &10i16.to_be_bytes());
        assert_eq!(&buf[21..25], &8i32.to_be_bytes());
        assert_eq!(&buf[25..33], &7i64.to_be_bytes());
        assert_eq!(pg_timestamp(now).ok(), Some(5));
    }
}
