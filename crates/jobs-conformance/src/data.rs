//! Cases for what a job carries: its error history and its JSON args and checkpoint.

use std::sync::Arc;

use serde_json::{json, Value};

use super::support::{at, attempt_error, new_job, secs, Harness, WORKER};
use jobs::store::{
    FinishOutcome, JobCheckpointParams, JobInsertParams, NewJob, Store, MAX_JSON_DEPTH,
};
use jobs::JobState;
use jobs::StoreError;

/// Errors accumulate oldest first across attempts (two retries, then dead), each exactly as
/// recorded (attempt number, time, message), and `attempts` counts them.
pub async fn errors_accumulate(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let id = h.insert_one(new_job("q"), at(0)).await;
    let errors = [
        attempt_error(1, at(1), "first: connection refused"),
        attempt_error(2, at(2), "second: timed out after 30s"),
        attempt_error(3, at(3), "third: panicked at 'index out of bounds'"),
    ];
    for (n, error) in errors.iter().enumerate() {
        let t = error.at;
        let lease = h.claim_one("q", id, t).await;
        let outcome = if n < 2 {
            FinishOutcome::Retry {
                run_at: t,
                error: error.clone(),
            }
        } else {
            FinishOutcome::Dead {
                error: error.clone(),
            }
        };
        assert!(h.finish(lease, outcome, t).await);
        let job = h.get(id).await;
        assert_eq!(job.errors, errors[..=n].to_vec(), "after attempt {}", n + 1);
        assert_eq!(job.attempts as usize, n + 1);
    }
    assert_eq!(h.get(id).await.state, JobState::Dead);
}

/// Awkward but valid JSON: nested objects and arrays, unicode, escapes, extreme numbers.
fn tricky_json() -> Value {
    json!({
        "text": "héllo wörld — 日本語 🚀 \"quoted\" back\\slash\nnewline\ttab",
        "numbers": {
            "i64_max": i64::MAX,
            "i64_min": i64::MIN,
            "u64_max": u64::MAX,
            "zero": 0,
            // Floats whose text form parses back exactly without serde_json's
            // `float_roundtrip` feature (short mantissas, small exponents).
            "float": 1.5,
            "negative_float": -1234.5678,
            "small_float": 0.001,
        },
        "flags": [true, false, null],
        "nested": { "a": { "b": { "c": [1, [2, [3, { "d": "deep" }]]] } } },
        "empty_object": {},
        "empty_array": [],
        "empty_string": "",
    })
}

/// Args and checkpoints round-trip exactly: nested objects, unicode, escapes, `i64`/`u64`
/// extremes, short floats; non-object args (an array, a string) and checkpoints (an array, a
/// number) too.
pub async fn json_round_trip(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let objects = NewJob {
        args: tricky_json(),
        ..new_job("q")
    };
    let array = NewJob {
        args: json!([1, "two", { "three": 3 }]),
        ..new_job("q")
    };
    let string = NewJob {
        args: json!("just a string ✓"),
        ..new_job("q")
    };
    let ids = h.insert(vec![objects, array, string], at(0)).await;
    assert_eq!(h.get(ids[0]).await.args, tricky_json());
    assert_eq!(h.get(ids[1]).await.args, json!([1, "two", { "three": 3 }]));
    assert_eq!(h.get(ids[2]).await.args, json!("just a string ✓"));

    let claimed = h.claim("q", WORKER, 3, secs(30), at(1)).await;
    assert_eq!(claimed.len(), 3);
    let lease_of = |i: usize| {
        let found = claimed.iter().find(|c| c.lease.job == ids[i]);
        found.map(|c| c.lease).expect("all three were claimed")
    };
    let original = claimed
        .iter()
        .find(|c| c.lease.job == ids[0])
        .map(|c| &c.record.args);
    assert_eq!(
        original,
        Some(&tricky_json()),
        "claimed records carry the args"
    );
    assert!(
        h.checkpoint(lease_of(0), tricky_json(), secs(30), at(2))
            .await
    );
    assert!(
        h.checkpoint(lease_of(1), json!([[], {}, "ü"]), secs(30), at(2))
            .await
    );
    assert!(
        h.checkpoint(lease_of(2), json!(12345678901234_i64), secs(30), at(2))
            .await
    );
    assert!(h.finish(lease_of(0), FinishOutcome::Release, at(3)).await);
    assert_eq!(h.get(ids[0]).await.checkpoint, Some(tricky_json()));
    assert_eq!(h.get(ids[1]).await.checkpoint, Some(json!([[], {}, "ü"])));
    assert_eq!(
        h.get(ids[2]).await.checkpoint,
        Some(json!(12345678901234_i64))
    );
    let reclaimed = h.claim("q", WORKER, 1, secs(30), at(4)).await;
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(
        reclaimed[0].record.checkpoint,
        Some(tricky_json()),
        "claim returns it"
    );
}

/// JSON nested `depth` levels deep, alternating arrays and objects, with a string at the bottom.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("bottom"), |inner, level| {
        if level % 2 == 0 {
            json!([inner, 1])
        } else {
            json!({ "k": inner })
        }
    })
}

/// Args and checkpoints nested [`MAX_JSON_DEPTH`] levels deep are stored and read back by
/// every read (get, list, claim); one level deeper is refused before it reaches the store
/// (so no row that cannot be read back is ever written), and nothing of the batch is inserted.
pub async fn json_depth_limit(store: Arc<dyn Store>) {
    let h = Harness::new(store);
    let deepest = NewJob {
        args: nested(MAX_JSON_DEPTH),
        ..new_job("q")
    };
    let id = h.insert_one(deepest, at(0)).await;
    assert_eq!(h.get(id).await.args, nested(MAX_JSON_DEPTH));
    let too_deep = NewJob {
        args: nested(MAX_JSON_DEPTH + 1),
        ..new_job("q")
    };
    let refused = h
        .store
        .job_insert_many(JobInsertParams {
            jobs: vec![new_job("q"), too_deep],
            now: at(0),
        })
        .await;
    match refused {
        Err(StoreError::Invalid { message, .. }) => {
            assert!(message.contains("nested 101 levels deep"), "{message}");
        }
        other => panic!("args one level too deep: expected Invalid, got {other:?}"),
    }
    assert_eq!(
        h.queue("q").await.available,
        1,
        "nothing of the batch was inserted"
    );

    let claimed = h.claim("q", WORKER, 10, secs(30), at(1)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].record.args, nested(MAX_JSON_DEPTH));
    let lease = claimed[0].lease;
    let checkpoint = |depth| JobCheckpointParams {
        owner: WORKER.to_owned(),
        lease,
        checkpoint: nested(depth),
        lease_ttl: secs(30),
        now: at(2),
    };
    let deeper = h.store.job_checkpoint(checkpoint(MAX_JSON_DEPTH + 1)).await;
    assert!(
        matches!(deeper, Err(StoreError::Invalid { .. })),
        "{deeper:?}"
    );
    assert!(h.ok(
        h.store.job_checkpoint(checkpoint(MAX_JSON_DEPTH)).await,
        "checkpoint"
    ));
    assert!(h.finish(lease, FinishOutcome::Release, at(3)).await);
    let reclaimed = h.claim("q", WORKER, 10, secs(30), at(4)).await;
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].record.checkpoint, Some(nested(MAX_JSON_DEPTH)));
    assert_eq!(
        h.list(Default::default()).await[0].args,
        nested(MAX_JSON_DEPTH)
    );
}
