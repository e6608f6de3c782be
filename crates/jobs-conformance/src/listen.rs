//! Cases for wake-up listeners.

use std::sync::Arc;
use std::time::Duration;

use super::support::{at, attempt_error, job_at, new_job, secs, Harness, WORKER};
use jobs::store::{FacadeListener, FinishOutcome, Store};

/// If the store offers a listener, inserting an available job into a queue wakes it with
/// that queue's name within five seconds. (A store without a listener passes: the engine
/// polls it.)
pub async fn listener_wakes_on_insert(store: Arc<dyn Store>) {
    let h = Harness::new(store.clone());
    let listener = h.ok(h.store.listen().await, "listen");
    let Some(mut listener) = listener else {
        eprintln!(
            "{} store has no listener; listener_wakes_on_insert is vacuous",
            store.name()
        );
        return;
    };
    h.insert(vec![new_job("wake-me")], at(0)).await;
    let woken = tokio::time::timeout(Duration::from_secs(5), listener.next()).await;
    match woken {
        Ok(Ok(queue)) => assert_eq!(queue, "wake-me"),
        Ok(Err(error)) => panic!("{} listener failed: {error}", store.name()),
        Err(_) => panic!(
            "{} listener did not wake within 5 s of an insert",
            store.name()
        ),
    }
}

/// If the store offers a listener, it wakes with a queue's name whenever jobs of that queue
/// become available: an insert (once per batch and queue), a release, a retry due at once,
/// a promotion, a rescue and a manual retry. A scheduled insert and a snooze into the future
/// wake nobody. (A store without a listener passes: the engine polls it.)
pub async fn listener_wakes_whenever_jobs_become_available(store: Arc<dyn Store>) {
    let h = Harness::new(store.clone());
    let Some(mut listener) = h.ok(h.store.listen().await, "listen") else {
        eprintln!(
            "{} store has no listener; listener_wakes_whenever_jobs_become_available is vacuous",
            store.name()
        );
        return;
    };
    let name = store.name();

    h.insert(vec![job_at("later", 0, at(60))], at(0)).await;
    h.insert(vec![new_job("a"), new_job("a")], at(0)).await;
    assert_eq!(
        next_wake(&mut listener, name, "insert").await,
        "a",
        "{name}: one wake-up per batch and queue"
    );

    let leases = h.claim("a", WORKER, 2, secs(30), at(0)).await;
    let leases: Vec<_> = leases.iter().map(|c| c.lease).collect();
    assert!(h.finish(leases[0], FinishOutcome::Release, at(1)).await);
    assert_eq!(
        next_wake(&mut listener, name, "release").await,
        "a",
        "{name}: release"
    );
    let retry_now = FinishOutcome::Retry {
        run_at: at(1),
        error: attempt_error(1, at(1), "boom"),
    };
    assert!(h.finish(leases[1], retry_now, at(1)).await);
    assert_eq!(
        next_wake(&mut listener, name, "retry").await,
        "a",
        "{name}: retry due at once"
    );

    assert_eq!(h.promote(at(60), 10).await, 1);
    assert_eq!(
        next_wake(&mut listener, name, "promotion").await,
        "later",
        "{name}: promotion"
    );

    let claimed = h.claim("later", WORKER, 1, secs(30), at(60)).await;
    let job = claimed[0].lease.job;
    assert_eq!(h.rescue_ids(at(100)).await, vec![job]);
    assert_eq!(
        next_wake(&mut listener, name, "rescue").await,
        "later",
        "{name}: rescue"
    );

    // Rescued: a suspect now, which only the quarantine claim takes.
    let lease = h.claim_suspect_one("later", job, at(100)).await;
    let dead = FinishOutcome::Dead {
        error: attempt_error(1, at(101), "gave up"),
    };
    assert!(h.finish(lease, dead, at(101)).await);
    assert!(h.retry(job, at(102)).await);
    assert_eq!(
        next_wake(&mut listener, name, "manual retry").await,
        "later",
        "{name}: manual retry"
    );

    let lease = h.claim_one("later", job, at(102)).await;
    let snooze = FinishOutcome::Snooze { run_at: at(500) };
    assert!(h.finish(lease, snooze, at(103)).await);
    h.insert(vec![new_job("z")], at(103)).await;
    assert_eq!(
        next_wake(&mut listener, name, "insert").await,
        "z",
        "{name}: a future snooze wakes nobody"
    );
}

/// The listener's next wake-up, within five seconds.
async fn next_wake(listener: &mut FacadeListener, store: &str, why: &str) -> String {
    match tokio::time::timeout(Duration::from_secs(5), listener.next()).await {
        Ok(Ok(queue)) => queue,
        Ok(Err(error)) => panic!("{store} listener failed ({why}): {error}"),
        Err(_) => panic!("{store} listener did not wake within 5 s ({why})"),
    }
}
