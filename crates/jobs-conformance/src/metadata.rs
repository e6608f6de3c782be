//! Cases for a job's metadata: kept as given through every read and every state change, none
//! by default, refused past its limits.

use std::sync::Arc;

use jobs::store::{FinishOutcome, JobListParams, NewJob, Store};
use jobs::{JobState, Metadata, StoreError, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES};

use super::support::{at, attempt_error, new_job, secs, Harness, WORKER};

/// Awkward but valid metadata: a W3C trace context, unicode, quotes and escapes, an empty
/// value.
fn tricky() -> Metadata {
    [
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("tracestate", "vendor=opaque,other=x"),
        ("note", "héllo — 日本語 \"quoted\" back\\slash\nnewline"),
        ("empty", ""),
    ]
    .into_iter()
    .collect()
}

fn with_metadata(queue: &str, metadata: Metadata) -> NewJob {
    NewJob {
        metadata,
        ..new_job(queue)
    }
}

/// Metadata round-trips exactly through get, list and claim, for a job inserted alone and
/// for jobs inserted in batches of every size (each with its own metadata, or all sharing
/// one); a job inserted without any reads back with none.
pub async fn metadata_round_trip(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let plain = h.insert_one(new_job("q"), at(0)).await;
    let traced = h.insert_one(with_metadata("q", tricky()), at(0)).await;
    assert!(h.get(plain).await.metadata.is_empty(), "none by default");
    assert_eq!(h.get(traced).await.metadata, tricky());

    // Batches whose jobs each carry their own metadata, small and large (a store may insert
    // a large batch another way), and one whose jobs all share the same.
    let own = |n: usize| -> Metadata { [("n", n.to_string())].into_iter().collect() };
    for size in [3, 100] {
        let jobs = (0..size).map(|n| with_metadata("batch", own(n))).collect();
        let ids = h.insert(jobs, at(0)).await;
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(
                h.get(*id).await.metadata,
                own(n),
                "batch of {size}, job {n}"
            );
        }
    }
    let shared = h
        .insert(
            (0..5).map(|_| with_metadata("q", tricky())).collect(),
            at(0),
        )
        .await;
    for id in &shared {
        assert_eq!(h.get(*id).await.metadata, tricky());
    }

    let listed = h
        .list(JobListParams {
            queue: Some("q".into()),
            ..JobListParams::default()
        })
        .await;
    assert_eq!(listed.len(), 7);
    for job in &listed {
        let expected = if job.id == plain {
            Metadata::new()
        } else {
            tricky()
        };
        assert_eq!(job.metadata, expected, "listed job {}", job.id);
    }
    let claimed = h.claim("q", WORKER, 10, secs(30), at(1)).await;
    assert_eq!(claimed.len(), 7);
    for job in &claimed {
        let expected = if job.record.id == plain {
            Metadata::new()
        } else {
            tricky()
        };
        assert_eq!(
            job.record.metadata, expected,
            "claimed job {}",
            job.record.id
        );
    }
}

/// Metadata at its limits is stored; one entry, one byte or one bad key past them is refused
/// before it reaches the store, and nothing of the batch is inserted.
pub async fn metadata_limits(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let entries = |n: usize| -> Metadata { (0..n).map(|i| (format!("key-{i}"), "v")).collect() };
    let bytes = |n: usize| -> Metadata { [("k", "x".repeat(n - 1))].into_iter().collect() };
    for edge in [entries(MAX_METADATA_ENTRIES), bytes(MAX_METADATA_BYTES)] {
        let id = h.insert_one(with_metadata("q", edge.clone()), at(0)).await;
        assert_eq!(h.get(id).await.metadata, edge);
    }
    let bad_key: Metadata = [("bad key!", "v")].into_iter().collect();
    for past in [
        entries(MAX_METADATA_ENTRIES + 1),
        bytes(MAX_METADATA_BYTES + 1),
        bad_key,
    ] {
        let batch = vec![new_job("refused"), with_metadata("refused", past)];
        let refused = h
            .store
            .job_insert_many(jobs::store::JobInsertParams {
                jobs: batch,
                now: at(0),
            })
            .await;
        assert!(
            matches!(refused, Err(StoreError::Invalid { .. })),
            "{}: {refused:?}",
            h.store.name()
        );
    }
    let any = h
        .list(JobListParams {
            queue: Some("refused".into()),
            ..JobListParams::default()
        })
        .await;
    assert!(any.is_empty(), "nothing of a refused batch is inserted");
}

/// Metadata is kept through every change of state: a retry, a release, a checkpoint, a
/// rescue, the dead set and a retry from it.
pub async fn metadata_survives_retry_and_rescue(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(with_metadata("q", tricky()), at(0)).await;
    let check = |record: &jobs::JobRecord, after: &str| {
        assert_eq!(record.metadata, tricky(), "after {after}");
    };

    let lease = h.claim_one("q", id, at(1)).await;
    let retry = FinishOutcome::Retry {
        run_at: at(1),
        error: attempt_error(1, at(1), "boom"),
    };
    assert!(h.finish(lease, retry, at(1)).await);
    check(&h.get(id).await, "a retry");

    let lease = h.claim_one("q", id, at(2)).await;
    assert!(
        h.checkpoint(lease, serde_json::json!({ "row": 7 }), secs(30), at(2))
            .await
    );
    assert!(h.finish(lease, FinishOutcome::Release, at(3)).await);
    check(&h.get(id).await, "a checkpoint and a release");

    let claimed = h.claim("q", WORKER, 1, secs(10), at(4)).await;
    assert_eq!(claimed.len(), 1);
    check(&claimed[0].record, "a claim");
    let rescued = h.rescue(at(100), 5, 10).await;
    assert_eq!(rescued.requeued_ids(), vec![id]);
    check(&h.get(id).await, "a rescue");

    let claimed = h.claim_suspects("q", WORKER, 1, secs(30), at(101)).await;
    assert_eq!(claimed.len(), 1);
    check(&claimed[0].record, "a quarantine claim");
    let dead = FinishOutcome::Dead {
        error: attempt_error(2, at(102), "for good"),
    };
    assert!(h.finish(claimed[0].lease, dead, at(102)).await);
    let buried = h.get(id).await;
    assert_eq!(buried.state, JobState::Dead);
    check(&buried, "the dead set");
    assert!(h.retry(id, at(103)).await);
    check(&h.get(id).await, "a retry from the dead set");
}
