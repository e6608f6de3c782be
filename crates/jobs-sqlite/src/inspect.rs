//! Reads: `job_get`, `job_list`, `queue_stats`.

use std::sync::OnceLock;

use jobs::store::JobListParams;
use jobs::{JobId, JobRecord, JobState, QueueStats, StoreError, Timestamp};
use sqlx::{Row, SqliteConnection};

use crate::error::during;
use crate::maintenance::limit;
use crate::row::{decode, BARE_RECORD, RECORD};

/// Counts per state and queue (and the oldest available `run_at`): each part scans the
/// partial index of its states, which covers it; the table is never read.
const STATS: &str = "\
    SELECT queue, 'available', count(*), min(run_at) FROM jobs INDEXED BY jobs_claim \
        WHERE state = 'available' AND suspect = 0 GROUP BY queue \
    UNION ALL SELECT queue, 'available', count(*), min(run_at) FROM jobs INDEXED BY jobs_suspect \
        WHERE state = 'available' AND suspect > 0 GROUP BY queue \
    UNION ALL SELECT queue, 'running', count(*), NULL FROM jobs INDEXED BY jobs_rescue \
        WHERE state = 'running' GROUP BY queue \
    UNION ALL SELECT queue, 'scheduled', count(*), NULL FROM jobs INDEXED BY jobs_promote \
        WHERE state = 'scheduled' GROUP BY queue \
    UNION ALL SELECT queue, state, count(*), NULL FROM jobs INDEXED BY jobs_finalized \
        WHERE finalized_at IS NOT NULL GROUP BY state, queue";

fn get_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| format!("SELECT {RECORD} FROM jobs WHERE id = ?1"))
}

fn bare_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| format!("SELECT {BARE_RECORD} FROM jobs WHERE id = ?1"))
}

/// A row rendered by [`RECORD`] as a reader sees it: whole, or, if its stored JSON does not
/// decode, what can be read of it (read again without its JSON: rare, so the common read
/// renders each row once), marked [`unreadable`](JobRecord::unreadable).
async fn read(conn: &mut SqliteConnection, text: &str) -> Result<JobRecord, StoreError> {
    let (id, problem) = match decode(text) {
        Err(StoreError::Corrupt { id, reason }) => (id, reason),
        whole => return whole,
    };
    let bare: Option<String> = sqlx::query_scalar(bare_sql())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("job_get"))?;
    let Some(bare) = bare else {
        // Deleted in between: report what was found.
        return Err(StoreError::Corrupt {
            id,
            reason: problem,
        });
    };
    let mut record = decode(&bare)?;
    record.mark_unreadable(problem);
    Ok(record)
}

/// One job, if it exists.
pub(crate) async fn get(
    conn: &mut SqliteConnection,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let row: Option<String> = sqlx::query_scalar(get_sql())
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("job_get"))?;
    match row {
        Some(text) => read(conn, &text).await.map(Some),
        None => Ok(None),
    }
}

/// Jobs matching the filter, by id. The SQL names only the filters in use, so each
/// combination gets its own plan (and its own cached statement).
pub(crate) async fn list(
    conn: &mut SqliteConnection,
    params: &JobListParams,
) -> Result<Vec<JobRecord>, StoreError> {
    let sql = list_sql(params.state.is_some(), params.queue.is_some());
    let mut query = sqlx::query_scalar(&sql).bind(params.after.map_or(i64::MIN, |id| id.0));
    if let Some(state) = params.state {
        query = query.bind(state.as_str());
    }
    if let Some(queue) = &params.queue {
        query = query.bind(queue.as_str());
    }
    let rows: Vec<String> = query
        .bind(limit(params.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(during("job_list"))?;
    let mut records = Vec::with_capacity(rows.len());
    for text in &rows {
        records.push(read(conn, text).await?);
    }
    Ok(records)
}

fn list_sql(by_state: bool, by_queue: bool) -> String {
    let mut sql = format!("SELECT {RECORD} FROM jobs WHERE id > ?");
    if by_state {
        sql.push_str(" AND state = ?");
    }
    if by_queue {
        sql.push_str(" AND queue = ?");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    sql
}

/// Per-queue counts and latency, ordered by queue name.
pub(crate) async fn stats(conn: &mut SqliteConnection) -> Result<Vec<QueueStats>, StoreError> {
    let rows = sqlx::query(STATS)
        .fetch_all(conn)
        .await
        .map_err(during("queue_stats"))?;
    let mut stats: Vec<QueueStats> = Vec::new();
    for row in &rows {
        let (queue, state, count, oldest) = stats_row(row)?;
        let entry = match stats.iter().position(|s| s.queue == queue) {
            Some(i) => &mut stats[i],
            None => {
                stats.push(QueueStats {
                    queue,
                    ..QueueStats::default()
                });
                stats.last_mut().expect("an entry was just pushed")
            }
        };
        add(entry, state, count, oldest);
    }
    stats.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(stats)
}

/// A stats row: queue, state, count, oldest `run_at` (available rows only).
type StatsRow = (String, JobState, u64, Option<i64>);

fn stats_row(row: &sqlx::sqlite::SqliteRow) -> Result<StatsRow, StoreError> {
    let op = during("queue_stats");
    let queue: String = row.try_get(0).map_err(&op)?;
    let state: String = row.try_get(1).map_err(&op)?;
    let count: i64 = row.try_get(2).map_err(&op)?;
    let oldest: Option<i64> = row.try_get(3).map_err(&op)?;
    let state = state.parse().map_err(|err| {
        StoreError::other(format!("sqlite queue_stats: queue {queue}: {err}")).with_source(err)
    })?;
    Ok((queue, state, count.max(0) as u64, oldest))
}

fn add(stats: &mut QueueStats, state: JobState, count: u64, oldest: Option<i64>) {
    match state {
        JobState::Scheduled => stats.scheduled += count,
        JobState::Available => {
            stats.available += count;
            let oldest = oldest.map(Timestamp::from_micros);
            stats.oldest_available_at = match (stats.oldest_available_at, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        JobState::Running => stats.running += count,
        JobState::Completed => stats.completed += count,
        JobState::Dead => stats.dead += count,
        JobState::Cancelled => stats.cancelled += count,
        _ => {}
    }
}
