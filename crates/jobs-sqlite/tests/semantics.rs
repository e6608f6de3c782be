//! The `Store` trait's documented semantics, on an in-memory and on a file store.

mod common;

use common::*;
use jobs::store::{
    FinishOutcome, JobCancelParams, JobCheckpointParams, JobFinish, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobPromoteParams, JobPruneParams,
    JobRescueParams, JobRetryParams, Lease, Store,
};
use jobs::{JobId, JobState, StoreError};
use jobs_sqlite::SqliteStore;

/// Runs `$case(&dyn Store)` against a fresh in-memory store and a fresh temp-file store.
macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let store = jobs_sqlite::SqliteStore::open_in_memory().await.expect("open");
                    super::$case(&store).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = jobs_sqlite::SqliteStore::open(dir.path().join("jobs.db"))
                        .await
                        .expect("open");
                    super::$case(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

both!(
    insert_assigns_increasing_ids_and_states,
    bulk_insert_keeps_input_order,
    both_insert_paths_store_the_same_records,
    claim_orders_by_priority_run_at_id_and_leases,
    claim_takes_only_available_jobs_of_its_queue,
    promote_makes_due_jobs_available,
    completed_clears_lease_and_checkpoint,
    retry_charges_an_attempt_and_records_the_error,
    dead_is_terminal_with_the_error,
    snooze_charges_no_attempt,
    release_returns_the_job_at_once_keeping_checkpoint,
    finishes_are_fenced_by_the_claim_token,
    a_job_twice_in_one_batch_finishes_once,
    a_mixed_batch_applies_what_holds,
    heartbeat_renews_only_held_leases,
    checkpoint_saves_progress_and_renews_the_lease,
    rescue_requeues_expired_leases_and_buries_poison_pills,
    a_rescued_job_fences_out_its_old_worker,
    get_and_list_filter_and_page,
    retry_and_cancel_move_jobs_between_waiting_and_terminal,
    prune_deletes_old_terminal_jobs_and_ids_are_never_reused,
    queue_stats_count_states_and_latency,
);

async fn insert_assigns_increasing_ids_and_states(store: &dyn Store) {
    let later = T0 + secs(60);
    let ids = insert(
        store,
        vec![job("q", 1), at(job("q", 2), later), at(job("q", 3), T0)],
        T0,
    )
    .await;
    assert_eq!(ids.len(), 3);
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
    let first = store.job_get(ids[0]).await.unwrap().expect("inserted");
    assert_eq!(first.state, JobState::Available);
    assert_eq!(first.run_at, T0);
    assert_eq!(first.created_at, T0);
    assert_eq!(first.args, serde_json::json!({ "n": 1 }));
    assert_eq!((first.attempts, first.rescues, first.claims), (0, 0, 0));
    assert_eq!(first.max_attempts, 3);
    assert!(first.errors.is_empty() && first.checkpoint.is_none());
    assert!(first.lease_owner.is_none() && first.finalized_at.is_none());
    let second = store.job_get(ids[1]).await.unwrap().expect("inserted");
    assert_eq!((second.state, second.run_at), (JobState::Scheduled, later));
    let third = store.job_get(ids[2]).await.unwrap().expect("inserted");
    assert_eq!(third.state, JobState::Available, "run_at == now is due");
    assert!(insert(store, vec![], T0).await.is_empty());
    let more = insert(store, vec![job("q", 4)], T0).await;
    assert!(more[0] > ids[2]);
}

async fn bulk_insert_keeps_input_order(store: &dyn Store) {
    let jobs: Vec<_> = (0..20_000).map(|n| job("bulk", n)).collect();
    let ids = insert(store, jobs, T0).await;
    assert_eq!(ids.len(), 20_000);
    for n in [0usize, 1, 9_999, 19_999] {
        let record = store.job_get(ids[n]).await.unwrap().expect("inserted");
        assert_eq!(record.args, serde_json::json!({ "n": n }));
    }
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(stats[0].available, 20_000);
}

/// A batch of few runs (alike jobs) and one of many runs (mixed jobs) take different SQL
/// paths; both store the same records, with args of every JSON type intact.
async fn both_insert_paths_store_the_same_records(store: &dyn Store) {
    let args = [
        serde_json::json!({ "nested": { "list": [1, 2.5, "x"] }, "empty": {} }),
        serde_json::json!([null, true, false]),
        serde_json::json!("quote \" backslash \\ unicode é 🚀 newline \n"),
        serde_json::json!(-42),
        serde_json::json!(1.5e300),
        serde_json::json!(true),
        serde_json::json!(null),
        serde_json::json!({}),
    ];
    let mixed: Vec<_> = (0..24)
        .map(|i| {
            let mut new = job("mixed", i as i64);
            new.kind = if i % 2 == 0 { "even" } else { "odd" }.into();
            new.args = args[i % args.len()].clone();
            new
        })
        .collect();
    let mut alike = mixed.clone();
    alike.sort_by(|a, b| a.kind.cmp(&b.kind));
    let mixed_ids = insert(store, mixed.clone(), T0).await;
    let alike_ids = insert(store, alike.clone(), T0).await;
    for (ids, jobs) in [(mixed_ids, mixed), (alike_ids, alike)] {
        for (id, new) in ids.iter().zip(&jobs) {
            let record = store.job_get(*id).await.unwrap().expect("inserted");
            assert_eq!((&record.kind, &record.queue), (&new.kind, &new.queue));
            assert_eq!(record.args, new.args, "job {id}");
            assert_eq!((record.state, record.run_at), (JobState::Available, T0));
        }
    }
}

async fn claim_orders_by_priority_run_at_id_and_leases(store: &dyn Store) {
    let ids = insert(
        store,
        vec![
            at(job("q", 0), T0 - secs(10)),
            with_priority(job("q", 1), 5),
            at(job("q", 2), T0 - secs(20)),
            job("q", 3),
            with_priority(job("q", 4), -1),
        ],
        T0,
    )
    .await;
    let claimed = claim_as(store, "q", "worker-a", 4, T0).await;
    assert_eq!(common::ids(&claimed), vec![ids[1], ids[2], ids[0], ids[3]]);
    for job in &claimed {
        let record = &job.record;
        assert_eq!(record.state, JobState::Running);
        assert_eq!(record.claims, 1);
        assert_eq!(
            job.lease,
            Lease {
                job: record.id,
                token: 1
            }
        );
        assert_eq!(record.attempted_at, Some(T0));
        assert_eq!(record.lease_owner.as_deref(), Some("worker-a"));
        assert_eq!(record.lease_expires_at, Some(T0 + TTL));
        assert_eq!(
            store.job_get(record.id).await.unwrap().as_ref(),
            Some(record)
        );
    }
    let last = claim(store, "q", 4, T0).await;
    assert_eq!(common::ids(&last), vec![ids[4]]);
    assert!(claim(store, "q", 4, T0).await.is_empty());
}

async fn claim_takes_only_available_jobs_of_its_queue(store: &dyn Store) {
    let ids = insert(
        store,
        vec![job("a", 1), job("b", 2), at(job("a", 3), T0 + secs(5))],
        T0,
    )
    .await;
    assert_eq!(
        common::ids(&claim(store, "a", 10, T0 + secs(10)).await),
        vec![ids[0]]
    );
    assert!(claim(store, "c", 10, T0).await.is_empty());
}

async fn promote_makes_due_jobs_available(store: &dyn Store) {
    let ids = insert(
        store,
        vec![
            at(job("q", 1), T0 + secs(5)),
            at(job("q", 2), T0 + secs(10)),
            at(job("q", 3), T0 + secs(60)),
        ],
        T0,
    )
    .await;
    let promote = |now, limit| store.job_promote_scheduled(JobPromoteParams { now, limit });
    assert_eq!(promote(T0, 10).await.unwrap(), 0);
    assert_eq!(
        promote(T0 + secs(10), 1).await.unwrap(),
        1,
        "limit respected, earliest first"
    );
    assert_eq!(
        store.job_get(ids[0]).await.unwrap().unwrap().state,
        JobState::Available
    );
    assert_eq!(
        store.job_get(ids[1]).await.unwrap().unwrap().state,
        JobState::Scheduled
    );
    assert_eq!(promote(T0 + secs(10), 10).await.unwrap(), 1);
    let claimed = claim(store, "q", 10, T0 + secs(10)).await;
    assert_eq!(common::ids(&claimed), vec![ids[0], ids[1]]);
}

async fn claim_one(store: &dyn Store) -> Lease {
    insert(store, vec![job("q", 1)], T0).await;
    claim(store, "q", 1, T0).await[0].lease
}

async fn save_checkpoint(store: &dyn Store, lease: Lease, value: serde_json::Value) -> bool {
    store
        .job_checkpoint(JobCheckpointParams {
            owner: OWNER.into(),
            lease,
            checkpoint: value,
            lease_ttl: TTL,
            now: T0 + secs(1),
        })
        .await
        .unwrap()
}

async fn completed_clears_lease_and_checkpoint(store: &dyn Store) {
    let lease = claim_one(store).await;
    assert!(save_checkpoint(store, lease, serde_json::json!({ "row": 7 })).await);
    assert!(finish(store, lease, FinishOutcome::Completed, T0 + secs(2)).await);
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Completed);
    assert_eq!(record.finalized_at, Some(T0 + secs(2)));
    assert_eq!(record.attempts, 0, "success charges no attempt");
    assert!(record.checkpoint.is_none() && record.lease_owner.is_none());
    assert!(record.lease_expires_at.is_none());
    assert!(!finish(store, lease, FinishOutcome::Completed, T0 + secs(3)).await);
}

async fn retry_charges_an_attempt_and_records_the_error(store: &dyn Store) {
    let lease = claim_one(store).await;
    let err = error(1, T0 + secs(1), "boom");
    let outcome = FinishOutcome::Retry {
        run_at: T0 + secs(30),
        error: err.clone(),
    };
    assert!(finish(store, lease, outcome, T0 + secs(1)).await);
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.run_at),
        (JobState::Scheduled, T0 + secs(30))
    );
    assert_eq!(
        (record.attempts, record.errors.clone()),
        (1, vec![err.clone()])
    );
    assert!(record.lease_owner.is_none() && record.finalized_at.is_none());
    // A retry that is already due is available at once.
    store
        .job_promote_scheduled(JobPromoteParams {
            now: T0 + secs(30),
            limit: 10,
        })
        .await
        .unwrap();
    let lease = claim(store, "q", 1, T0 + secs(30)).await[0].lease;
    assert_eq!(lease.token, 2);
    let second = error(2, T0 + secs(31), "again");
    let outcome = FinishOutcome::Retry {
        run_at: T0 + secs(31),
        error: second.clone(),
    };
    assert!(finish(store, lease, outcome, T0 + secs(31)).await);
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Available);
    assert_eq!((record.attempts, record.errors), (2, vec![err, second]));
}

async fn dead_is_terminal_with_the_error(store: &dyn Store) {
    let lease = claim_one(store).await;
    let err = error(1, T0 + secs(1), "bad input: missing field `to`");
    assert!(
        finish(
            store,
            lease,
            FinishOutcome::Dead { error: err.clone() },
            T0 + secs(2)
        )
        .await
    );
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Dead);
    assert_eq!((record.attempts, record.errors), (1, vec![err]));
    assert_eq!(record.finalized_at, Some(T0 + secs(2)));
    assert!(claim(store, "q", 1, T0 + secs(3)).await.is_empty());
}

async fn snooze_charges_no_attempt(store: &dyn Store) {
    let lease = claim_one(store).await;
    assert!(
        finish(
            store,
            lease,
            FinishOutcome::Snooze {
                run_at: T0 + secs(60)
            },
            T0
        )
        .await
    );
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.run_at),
        (JobState::Scheduled, T0 + secs(60))
    );
    assert_eq!(record.attempts, 0);
    assert!(record.errors.is_empty() && record.lease_owner.is_none());
}

async fn release_returns_the_job_at_once_keeping_checkpoint(store: &dyn Store) {
    let lease = claim_one(store).await;
    assert!(save_checkpoint(store, lease, serde_json::json!({ "row": 500 })).await);
    assert!(finish(store, lease, FinishOutcome::Release, T0 + secs(5)).await);
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!((record.state, record.run_at), (JobState::Available, T0));
    assert_eq!(record.attempts, 0);
    assert!(record.lease_owner.is_none() && record.lease_expires_at.is_none());
    let again = claim(store, "q", 1, T0 + secs(5)).await;
    assert_eq!(
        again[0].record.checkpoint,
        Some(serde_json::json!({ "row": 500 }))
    );
    assert_eq!(again[0].lease.token, 2);
}

async fn finishes_are_fenced_by_the_claim_token(store: &dyn Store) {
    let lease = claim_one(store).await;
    let stale = Lease {
        token: lease.token + 1,
        ..lease
    };
    let missing = Lease {
        job: JobId(lease.job.0 + 1000),
        token: 1,
    };
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes: vec![
                JobFinish {
                    lease: stale,
                    outcome: FinishOutcome::Completed,
                },
                JobFinish {
                    lease: missing,
                    outcome: FinishOutcome::Completed,
                },
                JobFinish {
                    lease,
                    outcome: FinishOutcome::Release,
                },
            ],
            now: T0,
        })
        .await
        .unwrap();
    assert_eq!(applied, vec![false, false, true]);
    assert!(
        !finish(store, lease, FinishOutcome::Completed, T0).await,
        "not running any more"
    );
    let empty = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes: vec![],
            now: T0,
        })
        .await;
    assert!(empty.unwrap().is_empty());
}

async fn a_job_twice_in_one_batch_finishes_once(store: &dyn Store) {
    let lease = claim_one(store).await;
    let dead = FinishOutcome::Dead {
        error: error(1, T0, "second"),
    };
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes: vec![
                JobFinish {
                    lease,
                    outcome: FinishOutcome::Completed,
                },
                JobFinish {
                    lease,
                    outcome: dead,
                },
            ],
            now: T0,
        })
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false]);
    assert_eq!(
        store.job_get(lease.job).await.unwrap().unwrap().state,
        JobState::Completed
    );
}

async fn state_of(store: &dyn Store, id: JobId) -> JobState {
    store.job_get(id).await.unwrap().expect("job exists").state
}

/// Completions and other outcomes in one batch, some of them stale: the ones that hold
/// apply (completions take their fallback statement when not all hold).
async fn a_mixed_batch_applies_what_holds(store: &dyn Store) {
    insert(store, (0..5).map(|n| job("q", n)).collect(), T0).await;
    let leases: Vec<Lease> = claim(store, "q", 5, T0)
        .await
        .iter()
        .map(|j| j.lease)
        .collect();
    let stale = Lease {
        token: 99,
        ..leases[4]
    };
    let err = error(1, T0, "flaky");
    let finishes = vec![
        JobFinish {
            lease: leases[0],
            outcome: FinishOutcome::Completed,
        },
        JobFinish {
            lease: stale,
            outcome: FinishOutcome::Completed,
        },
        JobFinish {
            lease: leases[1],
            outcome: FinishOutcome::Retry {
                run_at: T0 + secs(9),
                error: err.clone(),
            },
        },
        JobFinish {
            lease: leases[2],
            outcome: FinishOutcome::Completed,
        },
        JobFinish {
            lease: Lease {
                token: 99,
                ..leases[3]
            },
            outcome: FinishOutcome::Release,
        },
    ];
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes,
            now: T0 + secs(1),
        })
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false, true, true, false]);
    assert_eq!(state_of(store, leases[0].job).await, JobState::Completed);
    assert_eq!(state_of(store, leases[1].job).await, JobState::Scheduled);
    assert_eq!(state_of(store, leases[2].job).await, JobState::Completed);
    assert_eq!(state_of(store, leases[3].job).await, JobState::Running);
    assert_eq!(state_of(store, leases[4].job).await, JobState::Running);
    // All of them holding: the fast path.
    let rest = [leases[3], leases[4]].map(|lease| JobFinish {
        lease,
        outcome: FinishOutcome::Completed,
    });
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: OWNER.into(),
            finishes: rest.to_vec(),
            now: T0 + secs(2),
        })
        .await
        .unwrap();
    assert_eq!(applied, vec![true, true]);
    assert_eq!(state_of(store, leases[4].job).await, JobState::Completed);
}

async fn heartbeat_renews_only_held_leases(store: &dyn Store) {
    insert(store, vec![job("q", 1), job("q", 2), job("q", 3)], T0).await;
    let claimed = claim(store, "q", 3, T0).await;
    let (a, b, c) = (claimed[0].lease, claimed[1].lease, claimed[2].lease);
    assert!(finish(store, c, FinishOutcome::Completed, T0).await);
    let stale = Lease { token: 9, ..b };
    let held = store
        .job_heartbeat_many(JobHeartbeatParams {
            owner: OWNER.into(),
            leases: vec![a, stale, c, b],
            lease_ttl: secs(60),
            now: T0 + secs(10),
        })
        .await
        .unwrap();
    assert_eq!(held, vec![true, false, false, true]);
    let record = store.job_get(a.job).await.unwrap().unwrap();
    assert_eq!(record.lease_expires_at, Some(T0 + secs(70)));
    let none = store
        .job_heartbeat_many(JobHeartbeatParams {
            owner: OWNER.into(),
            leases: vec![],
            lease_ttl: TTL,
            now: T0,
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn checkpoint_saves_progress_and_renews_the_lease(store: &dyn Store) {
    let lease = claim_one(store).await;
    assert!(
        save_checkpoint(
            store,
            lease,
            serde_json::json!([1, "two", { "three": 3.5 }])
        )
        .await
    );
    let record = store.job_get(lease.job).await.unwrap().unwrap();
    assert_eq!(
        record.checkpoint,
        Some(serde_json::json!([1, "two", { "three": 3.5 }]))
    );
    assert_eq!(record.lease_expires_at, Some(T0 + secs(1) + TTL));
    assert!(!save_checkpoint(store, Lease { token: 7, ..lease }, serde_json::json!(0)).await);
}

async fn rescue(
    store: &dyn Store,
    now: jobs::Timestamp,
    max_rescues: u32,
) -> Result<jobs::store::RescueOutcome, StoreError> {
    store
        .job_rescue_expired(JobRescueParams {
            now,
            max_rescues,
            limit: 100,
        })
        .await
}

async fn rescue_requeues_expired_leases_and_buries_poison_pills(store: &dyn Store) {
    insert(store, vec![job("q", 1), job("q", 2)], T0).await;
    let first = claim(store, "q", 1, T0).await[0].lease;
    let second = claim(store, "q", 1, T0 + secs(20)).await[0].lease;
    // At T0 + 40 s only the first lease (expiring at T0 + 30 s) has run out.
    let outcome = rescue(store, T0 + secs(40), 1).await.unwrap();
    assert_eq!(outcome.requeued, vec![first.job]);
    assert!(outcome.dead.is_empty());
    let record = store.job_get(first.job).await.unwrap().unwrap();
    assert_eq!(
        (record.state, record.rescues, record.attempts),
        (JobState::Available, 1, 0)
    );
    assert!(record.lease_owner.is_none() && record.lease_expires_at.is_none());
    assert_eq!(
        store.job_get(second.job).await.unwrap().unwrap().state,
        JobState::Running
    );
    // Claimed again and expired again: rescued once already, max 1, so it is a poison pill.
    let again = claim(store, "q", 1, T0 + secs(40)).await;
    assert_eq!(again[0].lease.job, first.job);
    let outcome = rescue(store, T0 + secs(100), 1).await.unwrap();
    assert_eq!(outcome.requeued, vec![second.job]);
    assert_eq!(outcome.dead.len(), 1);
    let dead = &outcome.dead[0];
    assert_eq!((dead.id, dead.state), (first.job, JobState::Dead));
    assert_eq!(dead.finalized_at, Some(T0 + secs(100)));
    assert_eq!(dead.rescues, 2, "the fatal expiry counts as a rescue too");
    assert_eq!(dead.errors.len(), 1);
    assert!(
        dead.errors[0].message.contains("poison pill"),
        "{:?}",
        dead.errors
    );
    assert_eq!(dead.errors[0].at, T0 + secs(100));
    assert_eq!(store.job_get(first.job).await.unwrap().as_ref(), Some(dead));
    assert!(rescue(store, T0 + secs(100), 1)
        .await
        .unwrap()
        .requeued
        .is_empty());
}

async fn a_rescued_job_fences_out_its_old_worker(store: &dyn Store) {
    let old = claim_one(store).await;
    rescue(store, T0 + TTL + secs(1), 5).await.unwrap();
    let new = claim_as(store, "q", "w2", 1, T0 + TTL + secs(1)).await[0].lease;
    assert_eq!((new.job, new.token), (old.job, old.token + 1));
    assert!(!save_checkpoint(store, old, serde_json::json!("stale")).await);
    let held = store
        .job_heartbeat_many(JobHeartbeatParams {
            owner: "w2".into(),
            leases: vec![old, new],
            lease_ttl: TTL,
            now: T0 + secs(40),
        })
        .await
        .unwrap();
    assert_eq!(held, vec![false, true]);
    assert!(!finish(store, old, FinishOutcome::Completed, T0 + secs(41)).await);
    assert!(
        !finish(store, new, FinishOutcome::Completed, T0 + secs(41)).await,
        "w1 may not finish w2's lease"
    );
    assert!(finish_as(store, "w2", new, FinishOutcome::Completed, T0 + secs(41)).await);
    let record = store.job_get(old.job).await.unwrap().unwrap();
    assert!(record.checkpoint.is_none());
    assert_eq!(record.state, JobState::Completed);
}

async fn get_and_list_filter_and_page(store: &dyn Store) {
    let ids = insert(
        store,
        vec![
            job("a", 1),
            job("b", 2),
            job("a", 3),
            at(job("a", 4), T0 + secs(9)),
        ],
        T0,
    )
    .await;
    assert!(store.job_get(JobId(ids[3].0 + 1)).await.unwrap().is_none());
    let list = |state, queue: Option<&str>, after, limit| {
        store.job_list(JobListParams {
            state,
            queue: queue.map(String::from),
            after,
            limit,
        })
    };
    let all: Vec<_> = list(None, None, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, ids);
    let page: Vec<_> = list(None, None, Some(ids[0]), 2)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(page, vec![ids[1], ids[2]]);
    let a: Vec<_> = list(None, Some("a"), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(a, vec![ids[0], ids[2], ids[3]]);
    let waiting: Vec<_> = list(Some(JobState::Available), Some("a"), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(waiting, vec![ids[0], ids[2]]);
    let scheduled = list(Some(JobState::Scheduled), None, None, 10)
        .await
        .unwrap();
    assert_eq!(scheduled.len(), 1);
}

async fn retry_and_cancel_move_jobs_between_waiting_and_terminal(store: &dyn Store) {
    let ids = insert(
        store,
        vec![job("q", 1), at(job("q", 2), T0 + secs(60)), job("q", 3)],
        T0,
    )
    .await;
    let cancel = |id, now| store.job_cancel(JobCancelParams { id, now });
    let retry = |id, now| store.job_retry(JobRetryParams { id, now });
    assert!(
        cancel(ids[1], T0 + secs(1)).await.unwrap(),
        "a scheduled job cancels"
    );
    let cancelled = store.job_get(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (cancelled.state, cancelled.finalized_at),
        (JobState::Cancelled, Some(T0 + secs(1)))
    );
    assert!(!cancel(ids[1], T0).await.unwrap(), "already cancelled");
    assert!(
        !retry(ids[0], T0).await.unwrap(),
        "an available job is not retried"
    );
    let lease = claim(store, "q", 1, T0).await[0].lease;
    assert_eq!(lease.job, ids[0]);
    assert!(
        !cancel(ids[0], T0).await.unwrap(),
        "a running job is not cancelled"
    );
    let err = error(1, T0, "fatal");
    assert!(finish(store, lease, FinishOutcome::Dead { error: err.clone() }, T0).await);
    assert!(retry(ids[0], T0 + secs(5)).await.unwrap());
    let retried = store.job_get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (retried.state, retried.run_at),
        (JobState::Available, T0 + secs(5))
    );
    assert_eq!((retried.attempts, retried.rescues), (0, 0));
    assert_eq!(retried.errors, vec![err], "errors are kept");
    assert!(retried.finalized_at.is_none());
    assert!(
        retry(ids[1], T0 + secs(6)).await.unwrap(),
        "a cancelled job can be retried"
    );
    assert!(!retry(JobId(ids[2].0 + 100), T0).await.unwrap(), "missing");
    assert!(!cancel(JobId(ids[2].0 + 100), T0).await.unwrap(), "missing");
}

async fn prune_deletes_old_terminal_jobs_and_ids_are_never_reused(store: &dyn Store) {
    let ids = insert(store, vec![job("q", 1), job("q", 2), job("q", 3)], T0).await;
    let claimed = claim(store, "q", 3, T0).await;
    assert!(
        finish(
            store,
            claimed[0].lease,
            FinishOutcome::Completed,
            T0 + secs(1)
        )
        .await
    );
    assert!(
        finish(
            store,
            claimed[1].lease,
            FinishOutcome::Completed,
            T0 + secs(100)
        )
        .await
    );
    assert!(
        finish(
            store,
            claimed[2].lease,
            FinishOutcome::Dead {
                error: error(1, T0, "x")
            },
            T0 + secs(1)
        )
        .await
    );
    let prune = |states: Vec<JobState>, before, limit| {
        store.job_prune(JobPruneParams {
            states,
            finalized_before: before,
            limit,
        })
    };
    assert_eq!(
        prune(vec![JobState::Completed], T0 + secs(50), 10)
            .await
            .unwrap(),
        1
    );
    assert!(store.job_get(ids[0]).await.unwrap().is_none());
    assert!(
        store.job_get(ids[1]).await.unwrap().is_some(),
        "finalized too recently"
    );
    assert!(
        store.job_get(ids[2]).await.unwrap().is_some(),
        "dead not asked for"
    );
    assert_eq!(prune(vec![], T0 + secs(500), 10).await.unwrap(), 0);
    assert_eq!(
        prune(
            vec![JobState::Completed, JobState::Dead],
            T0 + secs(500),
            10
        )
        .await
        .unwrap(),
        2
    );
    let next = insert(store, vec![job("q", 4)], T0).await;
    assert!(
        next[0] > ids[2],
        "ids are never reused after a prune: {next:?} vs {ids:?}"
    );
}

async fn queue_stats_count_states_and_latency(store: &dyn Store) {
    insert(
        store,
        vec![job("b", 1), job("b", 2), at(job("b", 3), T0 + secs(9))],
        T0,
    )
    .await;
    insert(store, vec![job("a", 4), job("a", 5)], T0 + secs(5)).await;
    let claimed = claim(store, "a", 1, T0 + secs(6)).await;
    assert!(
        finish(
            store,
            claimed[0].lease,
            FinishOutcome::Completed,
            T0 + secs(7)
        )
        .await
    );
    let _running = claim(store, "b", 1, T0 + secs(7)).await;
    let stats = store.queue_stats().await.unwrap();
    let names: Vec<_> = stats.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "ordered by queue name");
    let (a, b) = (&stats[0], &stats[1]);
    assert_eq!(
        (a.available, a.completed, a.running, a.scheduled),
        (1, 1, 0, 0)
    );
    assert_eq!(a.oldest_available_at, Some(T0 + secs(5)));
    assert_eq!(a.latency(T0 + secs(8)), secs(3));
    assert_eq!(
        (b.available, b.running, b.scheduled, b.dead, b.cancelled),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(b.count(JobState::Running), 1);
}

#[tokio::test]
async fn listener_hears_inserts_and_releases_and_ends_on_close() {
    let store = SqliteStore::open_in_memory().await.unwrap();
    let mut listener = store
        .listen()
        .await
        .unwrap()
        .expect("sqlite has a listener");
    insert(
        &store,
        vec![job("emails", 1), at(job("later", 2), T0 + secs(60))],
        T0,
    )
    .await;
    assert_eq!(listener.next().await.unwrap(), "emails");
    let lease = claim(&store, "emails", 1, T0).await[0].lease;
    assert!(finish(&store, lease, FinishOutcome::Release, T0).await);
    assert_eq!(listener.next().await.unwrap(), "emails");
    store
        .job_promote_scheduled(JobPromoteParams {
            now: T0 + secs(60),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listener.next().await.unwrap(), "later");
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
