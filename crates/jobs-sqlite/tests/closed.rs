//! What only a SQLite store has: closing it. A closed store answers `Closed` to every call,
//! and its in-process listeners end. (Every rule all stores share is in the conformance
//! suite, `tests/conformance.rs`.)

mod common;

use common::*;
use jobs::store::{
    FinishOutcome, JobCancelParams, JobCheckpointParams, JobFinish, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobPromoteParams, JobPruneParams,
    JobRescueParams, JobRetryParams, Lease, Store,
};
use jobs::{JobId, JobState, StoreError};
use jobs_sqlite::SqliteStore;

/// (When a listener wakes is a rule of every store: the conformance suite's
/// `listener_wakes_whenever_jobs_become_available`.)
#[tokio::test]
async fn a_listener_ends_when_the_store_closes() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let mut listener = store
        .listen()
        .await
        .unwrap()
        .expect("sqlite has a listener");
    insert(&store, vec![job("emails", 1)], T0).await;
    assert_eq!(listener.next().await.unwrap(), "emails");
    store.close().await;
    assert!(matches!(listener.next().await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn a_closed_store_answers_closed_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    for store in [
        SqliteStore::open_in_memory().await.unwrap(),
        SqliteStore::open(dir.path().join("closed.db"))
            .await
            .unwrap(),
    ] {
        insert(&store, vec![job("q", 1)], T0).await;
        assert!(!store.is_closed());
        store.close().await;
        store.close().await; // idempotent
        assert!(store.is_closed());
        let lease = Lease {
            job: JobId(1),
            token: 1,
        };
        let results = [
            store
                .job_insert_many(JobInsertParams {
                    jobs: vec![job("q", 2)],
                    now: T0,
                })
                .await
                .err(),
            store
                .job_claim(jobs::store::JobClaimParams {
                    queue: "q".into(),
                    owner: "w".into(),
                    limit: 1,
                    lease_ttl: TTL,
                    now: T0,
                    kinds: None,
                    suspects: false,
                })
                .await
                .err(),
            store
                .job_finish_many(JobFinishParams {
                    owner: OWNER.into(),
                    finishes: vec![JobFinish {
                        lease,
                        outcome: FinishOutcome::Completed,
                    }],
                    now: T0,
                })
                .await
                .err(),
            store
                .job_heartbeat_many(JobHeartbeatParams {
                    owner: OWNER.into(),
                    leases: vec![lease],
                    lease_ttl: TTL,
                    now: T0,
                })
                .await
                .err(),
            store
                .job_checkpoint(JobCheckpointParams {
                    owner: OWNER.into(),
                    lease,
                    checkpoint: serde_json::json!(1),
                    lease_ttl: TTL,
                    now: T0,
                })
                .await
                .err(),
            store
                .job_rescue_expired(JobRescueParams {
                    now: T0,
                    max_rescues: 1,
                    limit: 1,
                })
                .await
                .err(),
            store
                .job_promote_scheduled(JobPromoteParams { now: T0, limit: 1 })
                .await
                .err(),
            store.job_get(JobId(1)).await.err(),
            store
                .job_list(JobListParams {
                    limit: 1,
                    ..Default::default()
                })
                .await
                .err(),
            store
                .job_retry(JobRetryParams {
                    id: JobId(1),
                    now: T0,
                })
                .await
                .err(),
            store
                .job_cancel(JobCancelParams {
                    id: JobId(1),
                    now: T0,
                })
                .await
                .err(),
            store
                .job_prune(JobPruneParams {
                    states: vec![JobState::Completed],
                    finalized_before: T0,
                    limit: 1,
                })
                .await
                .err(),
            store.queue_stats().await.err(),
            store.listen().await.err(),
        ];
        for (i, result) in results.into_iter().enumerate() {
            assert!(
                matches!(result, Some(StoreError::Closed)),
                "call {i}: {result:?}"
            );
        }
    }
}
