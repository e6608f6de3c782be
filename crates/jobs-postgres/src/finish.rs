//! Fenced finishes, a whole batch in one statement.

use std::collections::HashSet;

use jobs::store::{FinishOutcome, JobFinish, JobFinishParams};
use jobs::{JobState, StoreError, Timestamp};
use sqlx::{PgExecutor, Row};

use crate::error::store_error;
use crate::lease_commit::LeaseCommit;
use crate::pg_time::PgTime;
use crate::sql::Queries;

/// What one finish writes: the arrays' entries for it.
#[derive(Debug, PartialEq)]
struct Write {
    state: JobState,
    run_at: Option<PgTime>,
    charge: bool,
    error: Option<String>,
}

fn write_for(outcome: &FinishOutcome, now: Timestamp) -> Result<Write, StoreError> {
    let error_json = |e| {
        serde_json::to_string(e).map_err(|e| {
            StoreError::invalid(format!("attempt error does not serialize: {e}")).with_source(e)
        })
    };
    Ok(match outcome {
        FinishOutcome::Completed => Write {
            state: JobState::Completed,
            run_at: None,
            charge: false,
            error: None,
        },
        FinishOutcome::Retry { run_at, error } => Write {
            state: JobState::waiting_for(*run_at, now),
            run_at: Some(PgTime(*run_at)),
            charge: true,
            error: Some(error_json(error)?),
        },
        FinishOutcome::Dead { error } => Write {
            state: JobState::Dead,
            run_at: None,
            charge: true,
            error: Some(error_json(error)?),
        },
        FinishOutcome::Snooze { run_at } => Write {
            state: JobState::waiting_for(*run_at, now),
            run_at: Some(PgTime(*run_at)),
            charge: false,
            error: None,
        },
        FinishOutcome::Release => Write {
            state: JobState::Available,
            run_at: None,
            charge: false,
            error: None,
        },
    })
}

/// Applies every finish whose lease holds, in one statement; per finish, in input order. A
/// lease named twice is finished by its first entry only.
pub(crate) async fn finish_many(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    params: JobFinishParams,
    commit: LeaseCommit,
) -> Result<Vec<bool>, StoreError> {
    if params.finishes.is_empty() {
        return Ok(Vec::new());
    }
    let firsts = params.first_of_each_lease();
    let unique: Vec<&JobFinish> = params
        .finishes
        .iter()
        .zip(&firsts)
        .filter_map(|(finish, first)| first.then_some(finish))
        .collect();
    let all_completed = unique
        .iter()
        .all(|f| matches!(f.outcome, FinishOutcome::Completed));
    let applied = if all_completed {
        complete_many(conn, queries, &unique, &params, commit).await?
    } else {
        finish_each(conn, queries, &unique, &params, commit).await?
    };
    Ok(params
        .finishes
        .iter()
        .zip(firsts)
        .map(|(f, first)| first && applied.contains(&(f.lease.job.0, f.lease.token)))
        .collect())
}

/// The general statement: every outcome; returns the (id, token) pairs that applied.
async fn finish_each(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    finishes: &[&JobFinish],
    params: &JobFinishParams,
    commit: LeaseCommit,
) -> Result<HashSet<(i64, i64)>, StoreError> {
    let writes = finishes
        .iter()
        .map(|f| write_for(&f.outcome, params.now))
        .collect::<Result<Vec<_>, _>>()?;
    let leases: Vec<_> = finishes.iter().map(|f| f.lease).collect();
    let (ids, tokens) = crate::lease::lease_columns(&leases);
    let row = sqlx::query(&queries.finish)
        .bind(ids)
        .bind(tokens)
        .bind(writes.iter().map(|w| w.state.as_str()).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| w.run_at).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| w.charge).collect::<Vec<_>>())
        .bind(writes.iter().map(|w| w.error.clone()).collect::<Vec<_>>())
        .bind(PgTime(params.now))
        .bind(&queries.channel)
        .bind(commit.is_async())
        .bind(&params.owner)
        .fetch_one(conn)
        .await
        .map_err(store_error)?;
    let ids: Vec<i64> = row.try_get("ids").map_err(store_error)?;
    let tokens: Vec<i64> = row.try_get("tokens").map_err(store_error)?;
    Ok(ids.into_iter().zip(tokens).collect())
}

/// [`finish_each`] for a batch of completions only: a lighter statement.
async fn complete_many(
    conn: impl PgExecutor<'_>,
    queries: &Queries,
    finishes: &[&JobFinish],
    params: &JobFinishParams,
    commit: LeaseCommit,
) -> Result<HashSet<(i64, i64)>, StoreError> {
    let leases: Vec<_> = finishes.iter().map(|f| f.lease).collect();
    let (ids, tokens) = crate::lease::lease_columns(&leases);
    let rows = sqlx::query(&queries.complete)
        .bind(ids)
        .bind(tokens)
        .bind(PgTime(params.now))
        .bind(commit.is_async())
        .bind(&params.owner)
        .fetch_all(conn)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<HashSet<(i64, i64)>, sqlx::Error>>()
        .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs::AttemptError;

    #[test]
    fn outcomes_map_to_states() {
        let now = Timestamp::from_micros(100);
        let error = AttemptError {
            attempt: 1,
            at: now,
            message: "boom".into(),
        };
        let retry_later = FinishOutcome::Retry {
            run_at: Timestamp::from_micros(101),
            error: error.clone(),
        };
        let retry_now = FinishOutcome::Retry {
            run_at: now,
            error: error.clone(),
        };
        let state = |o: &FinishOutcome| write_for(o, now).map(|w| w.state).ok();
        assert_eq!(state(&retry_later), Some(JobState::Scheduled));
        assert_eq!(state(&retry_now), Some(JobState::Available));
        assert_eq!(state(&FinishOutcome::Release), Some(JobState::Available));
        assert_eq!(state(&FinishOutcome::Completed), Some(JobState::Completed));
        let dead = write_for(&FinishOutcome::Dead { error }, now).expect("serializable");
        assert!(dead.charge);
        assert!(dead.error.is_some_and(|e| e.contains("boom")));
        let snooze_later = FinishOutcome::Snooze {
            run_at: Timestamp::from_micros(101),
        };
        assert_eq!(state(&snooze_later), Some(JobState::Scheduled));
        let snooze = FinishOutcome::Snooze { run_at: now };
        assert_eq!(
            write_for(&snooze, now).ok(),
            Some(Write {
                state: JobState::Available,
                run_at: Some(PgTime(now)),
                charge: false,
                error: None
            })
        );
    }
}
