//! Cases for what a job carries: its error history and its JSON args and checkpoint.

use std::sync::Arc;

use serde_json::{json, Value};

use super::support::{at, attempt_error, new_job, secs, Harness, WORKER};
use jobs::store::{FinishOutcome, NewJob, Store};
use jobs::JobState;

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
