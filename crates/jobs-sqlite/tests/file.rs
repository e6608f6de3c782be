//! What only a database file shows: durability across reopen, several stores (as several
//! processes) on one file, WAL mode, schema versions, lock errors.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use jobs::store::{FinishOutcome, JobClaimParams, Store};
use jobs::{JobState, StoreError};
use jobs_sqlite::{SqliteStore, SqliteStoreOptions, Synchronous, SCHEMA_VERSION};
use sqlx::{ConnectOptions, Connection};

/// The SQLite result code of the `sqlx::Error` that `err` keeps as its `source()`.
fn sqlite_code(err: &StoreError) -> Option<String> {
    let source = std::error::Error::source(err)?;
    let db = source.downcast_ref::<sqlx::Error>()?.as_database_error()?;
    db.code().map(|code| code.into_owned())
}

async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("raw connection")
}

#[tokio::test]
async fn reopening_a_file_keeps_jobs_leases_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let ids = insert(&store, vec![job("q", 1), job("q", 2)], T0).await;
    let lease = claim(&store, "q", 1, T0).await[0].lease;
    let checkpoint = jobs::store::JobCheckpointParams {
        owner: OWNER.into(),
        lease,
        checkpoint: serde_json::json!({ "row": 42 }),
        lease_ttl: TTL,
        now: T0,
    };
    assert!(store.job_checkpoint(checkpoint).await.unwrap());
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
    let running = reopened.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.checkpoint, Some(serde_json::json!({ "row": 42 })));
    assert!(
        finish(&reopened, lease, FinishOutcome::Completed, T0).await,
        "the lease survives"
    );
    assert_eq!(
        common::ids(&claim(&reopened, "q", 5, T0).await),
        vec![ids[1]]
    );
    let next = insert(&reopened, vec![job("q", 3)], T0).await;
    assert!(next[0] > ids[1]);
    reopened.close().await;
}

#[tokio::test]
async fn files_use_wal_and_record_the_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut conn = raw(&path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    conn.close().await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn a_newer_schema_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    sqlx::query(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("newer"), "{err}");
    let named = path.display().to_string();
    assert!(err.to_string().contains(&named), "names the file: {err}");
}

#[tokio::test]
async fn a_foreign_jobs_table_is_a_schema_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE jobs (name TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err}");
    assert_eq!(
        sqlite_code(&err).as_deref(),
        Some("1"),
        "SQLITE_ERROR kept as the source"
    );
    let named = path.display().to_string();
    assert!(err.to_string().contains(&named), "names the file: {err}");
}

#[tokio::test]
async fn a_file_that_cannot_be_created_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("jobs.db");
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    let named = path.display().to_string();
    assert!(err.to_string().contains(&named), "names the file: {err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_write_lock_held_past_the_busy_timeout_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStoreOptions::new()
        .busy_timeout(Duration::from_millis(50))
        .open(&path)
        .await
        .unwrap();
    insert(&store, vec![job("q", 1)], T0).await;
    // Another "process" holds the write lock.
    let mut other = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let params = JobClaimParams {
        queue: "q".into(),
        owner: "w".into(),
        limit: 1,
        lease_ttl: TTL,
        now: T0,
        kinds: None,
        suspects: false,
    };
    let err = store.job_claim(params.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(
        sqlite_code(&err).as_deref(),
        Some("5"),
        "SQLITE_BUSY kept as the source"
    );
    // Reads do not wait for writers in WAL mode.
    assert_eq!(store.queue_stats().await.unwrap()[0].available, 1);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert_eq!(
        store.job_claim(params).await.unwrap().len(),
        1,
        "nothing was half-written"
    );
    other.close().await.unwrap();
    store.close().await;
}

/// Two stores on one file, as two processes would open it, claiming concurrently with
/// overlapping leases: no job is handed out twice and every job is handed out once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_never_claim_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let options = SqliteStoreOptions::new().synchronous(Synchronous::Off);
    let a = Arc::new(options.open(&path).await.unwrap());
    let b = Arc::new(options.open(&path).await.unwrap());
    let total = 3_000;
    insert(&*a, (0..total).map(|n| job("q", n)).collect(), T0).await;
    let mut workers = Vec::new();
    for (i, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        workers.push(tokio::spawn(async move {
            let owner = format!("w{i}");
            let mut mine = Vec::new();
            loop {
                let claimed = claim_as(&*store, "q", &owner, 7, T0).await;
                if claimed.is_empty() {
                    return mine;
                }
                for job in &claimed {
                    assert_eq!(job.record.lease_owner.as_deref(), Some(owner.as_str()));
                }
                mine.extend(claimed.iter().map(|job| job.lease.job));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut per_worker = Vec::new();
    for worker in workers {
        let mine = worker.await.unwrap();
        per_worker.push(mine.len());
        for id in mine {
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(
        seen.len(),
        total as usize,
        "every job claimed once: {per_worker:?}"
    );
    let stats = b.queue_stats().await.unwrap();
    assert_eq!((stats[0].running, stats[0].available), (total as u64, 0));
    a.close().await;
    b.close().await;
}

/// A rescue racing a finish from another store: each job ends up either finished by its
/// worker or rescued, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescuers_on_two_stores_never_return_a_job_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let a = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path).await.unwrap());
    insert(&*a, (0..500).map(|n| job("q", n)).collect(), T0).await;
    assert_eq!(claim(&*a, "q", 500, T0).await.len(), 500);
    let rescuers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let params = jobs::store::JobRescueParams {
                        now: T0 + Duration::from_secs(60),
                        max_rescues: 5,
                        limit: 9,
                    };
                    let outcome = store.job_rescue_expired(params).await.unwrap();
                    if outcome.requeued.is_empty() {
                        return mine;
                    }
                    mine.extend(outcome.requeued_ids());
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for rescuer in rescuers {
        for id in rescuer.await.unwrap() {
            assert!(seen.insert(id), "job {id} rescued twice");
        }
    }
    assert_eq!(seen.len(), 500);
    a.close().await;
    b.close().await;
}

/// A claim cancelled midway (its future dropped after SQLite began the script) leaves no
/// transaction open: the store's next write rolls it back first, and another store on the
/// file is not locked out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_claim_leaves_no_transaction_open() {
    use futures::FutureExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let options = SqliteStoreOptions::new().busy_timeout(Duration::from_millis(200));
    let a = options.open(&path).await.unwrap();
    let b = options.open(&path).await.unwrap();
    insert(&a, (0..10).map(|n| job("q", n)).collect(), T0).await;
    let params = JobClaimParams {
        queue: "q".into(),
        owner: "cancelled".into(),
        limit: 5,
        lease_ttl: TTL,
        now: T0,
        kinds: None,
        suspects: false,
    };
    // Polled once (the script is sent to SQLite), then dropped. Almost always the claim is
    // still in flight after one poll; when SQLite's thread was quick enough to finish it, the
    // claim simply took its 5 jobs, and the checks below hold all the same.
    let _finished_in_one_poll = a.job_claim(params).now_or_never().is_some();
    insert(&a, vec![job("q", 10)], T0).await;
    let claimed = claim(&b, "q", 100, T0).await;
    let stats = a.queue_stats().await.unwrap();
    assert_eq!(stats[0].available, 0);
    assert_eq!(
        stats[0].running as usize,
        11,
        "every job is claimed, by the dropped claim or by b ({} by b)",
        claimed.len()
    );
    a.close().await;
    b.close().await;
}

/// A row damaged behind the store's back (its args no longer JSON, nested deeper than the
/// decoder reads, its errors not an array) never fails the claim of its batch: the others
/// are claimed as usual, the damaged ones are claimed `unreadable` with a reason naming
/// their own id (not "job 0"), with what could be read; a `Dead` finish of them applies in
/// one batch with the others' completions. A get or list returns it read in part, naming it.
#[tokio::test]
async fn a_damaged_row_is_claimed_unreadable_naming_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let ids = insert(&store, (0..5).map(|n| job("q", n)).collect(), T0).await;
    let too_deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
    let mut raw = raw(&path).await;
    for (id, column, value) in [
        (ids[1], "args", "{not json".to_owned()),
        (ids[2], "args", too_deep),
        (ids[3], "errors", "{\"not\": \"an array\"}".to_owned()),
    ] {
        sqlx::query(&format!("UPDATE jobs SET {column} = ?1 WHERE id = ?2"))
            .bind(value)
            .bind(id.0)
            .execute(&mut raw)
            .await
            .unwrap();
    }
    raw.close().await.unwrap();
    let claimed = claim(&store, "q", 10, T0).await;
    assert_eq!(claimed.len(), 5, "the whole batch is claimed");
    for (n, job) in claimed.iter().enumerate() {
        assert_eq!(job.record.id, ids[n]);
        assert_eq!(job.record.state, JobState::Running);
        match (n, &job.unreadable) {
            (0 | 4, None) => assert_eq!(job.record.args, serde_json::json!({ "n": n })),
            (1..=3, Some(reason)) => {
                let named = format!("job {}", ids[n]);
                assert!(reason.contains(&named), "{reason}");
                assert_eq!(job.record.kind, "test", "what could be read is kept");
            }
            (_, other) => panic!("job {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(claimed[1].record.args, serde_json::Value::Null);
    let dead = |lease| jobs::store::JobFinish {
        lease,
        outcome: FinishOutcome::Dead {
            error: jobs::AttemptError {
                attempt: 1,
                at: T0,
                message: "unreadable".into(),
            },
        },
    };
    let completed = |lease| jobs::store::JobFinish {
        lease,
        outcome: FinishOutcome::Completed,
    };
    let applied = store
        .job_finish_many(jobs::store::JobFinishParams {
            owner: OWNER.into(),
            finishes: vec![
                completed(claimed[0].lease),
                dead(claimed[1].lease),
                dead(claimed[2].lease),
                dead(claimed[3].lease),
                completed(claimed[4].lease),
            ],
            now: T0,
        })
        .await
        .expect("one batch finishes good and damaged jobs alike");
    assert_eq!(applied, vec![true; 5]);
    let read_in_part = |job: jobs::JobRecord, id: jobs::JobId| {
        let reason = job.unreadable.unwrap_or_default();
        assert!(reason.contains(&format!("job {id}")), "{reason}");
        assert_eq!(job.state, JobState::Dead);
    };
    read_in_part(store.job_get(ids[1]).await.unwrap().unwrap(), ids[1]);
    read_in_part(store.job_get(ids[2]).await.unwrap().unwrap(), ids[2]);
    let list = store
        .job_list(jobs::store::JobListParams::default())
        .await
        .expect("a listing never fails on one damaged row");
    assert_eq!(list.len(), 5);
    read_in_part(list[1].clone(), ids[1]);
    let repaired = store.job_get(ids[3]).await.unwrap().expect("exists");
    assert_eq!(
        (repaired.state, repaired.errors.len()),
        (JobState::Dead, 1),
        "errors of another shape are replaced by the burying error"
    );
    assert_eq!(
        store.job_get(ids[4]).await.unwrap().unwrap().state,
        JobState::Completed
    );
    store.close().await;
}

/// A damaged row whose lease expires is rescued with the others, and buried as a poison pill
/// even when its errors are not an array: the rescue never fails on it.
#[tokio::test]
async fn a_damaged_row_is_rescued_and_buried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let ids = insert(&store, (0..2).map(|n| job("q", n)).collect(), T0).await;
    let mut raw = raw(&path).await;
    sqlx::query("UPDATE jobs SET args = '{not json', errors = 'nor this' WHERE id = ?1")
        .bind(ids[0].0)
        .execute(&mut raw)
        .await
        .unwrap();
    raw.close().await.unwrap();
    let rescue = |now| {
        store.job_rescue_expired(jobs::store::JobRescueParams {
            now,
            max_rescues: 0,
            limit: 10,
        })
    };
    let claim_suspects = |now| {
        store.job_claim(JobClaimParams {
            queue: "q".into(),
            owner: OWNER.into(),
            limit: 10,
            lease_ttl: TTL,
            now,
            kinds: None,
            suspects: true,
        })
    };
    // The first expiry (the two ran side by side) only makes them suspects.
    assert_eq!(claim(&store, "q", 10, T0).await.len(), 2);
    let rescued = rescue(T0 + secs(60))
        .await
        .expect("the rescue reads past the damaged row");
    assert_eq!(rescued.requeued_ids(), ids);
    for round in 1..3u64 {
        let now = T0 + secs(100 * round);
        assert_eq!(claim_suspects(now).await.unwrap().len(), 2);
        let rescued = rescue(now + secs(60))
            .await
            .expect("the rescue reads past the damaged row");
        assert_eq!(rescued.dead.len(), 2, "round {round}");
        assert_eq!(rescued.dead[0].id, ids[0]);
        assert_eq!(rescued.dead[0].args, serde_json::Value::Null);
        if round == 1 {
            for id in &ids {
                assert!(store
                    .job_retry(jobs::store::JobRetryParams { id: *id, now })
                    .await
                    .unwrap());
            }
        }
    }
    store.close().await;
}
