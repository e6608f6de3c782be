//! Shutdown policies (brutal kill, timeout, infinity), reports, dead handles.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{secs, settle, start_one, strs, Probe};
use supervisor::{ChildContext, ChildKind, ChildSpec, Shutdown, Supervisor, SupervisorError};
use tokio::time::Instant;

/// A child that ignores its token entirely.
fn stubborn(id: &str) -> ChildSpec {
    ChildSpec::new(id, |_ctx: ChildContext| async move {
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// A child that lingers `linger` after its token is cancelled, recording when it finished.
fn lingering(id: &str, linger: Duration, done: Arc<AtomicBool>) -> ChildSpec {
    ChildSpec::new(id, move |ctx: ChildContext| {
        let done = done.clone();
        async move {
            ctx.cancelled().await;
            tokio::time::sleep(linger).await;
            done.store(true, Ordering::SeqCst);
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_child_ignoring_its_token_is_aborted_exactly_at_its_timeout() {
    let h = start_one(stubborn("s").shutdown(Shutdown::Timeout(secs(3)))).await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(3));
    assert!(report.is_clean());
    assert_eq!(report.aborted(), ["root/s"]);
}

#[tokio::test(start_paused = true)]
async fn a_lingering_child_finishes_within_its_timeout() {
    let done = Arc::new(AtomicBool::new(false));
    let h =
        start_one(lingering("l", secs(2), done.clone()).shutdown(Shutdown::Timeout(secs(5)))).await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(2));
    assert!(done.load(Ordering::SeqCst));
    assert!(report.aborted().is_empty());
}

#[tokio::test(start_paused = true)]
async fn infinity_waits_as_long_as_the_child_lingers() {
    let done = Arc::new(AtomicBool::new(false));
    let h = start_one(lingering("l", secs(3600), done.clone()).shutdown(Shutdown::Infinity)).await;
    let t0 = Instant::now();
    assert!(h.shutdown().await.is_clean());
    assert_eq!(t0.elapsed(), secs(3600));
    assert!(done.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn brutal_kill_aborts_at_once_without_cancelling_the_token() {
    let saw_cancel = Arc::new(AtomicBool::new(false));
    let flag = saw_cancel.clone();
    let child = ChildSpec::new("k", move |ctx: ChildContext| {
        let flag = flag.clone();
        async move {
            struct Guard(ChildContext, Arc<AtomicBool>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    self.1.store(self.0.is_cancelled(), Ordering::SeqCst);
                }
            }
            let _g = Guard(ctx.clone(), flag);
            ctx.cancelled().await;
            tokio::time::sleep(secs(10)).await;
            Ok(())
        }
    })
    .shutdown(Shutdown::BrutalKill);
    let h = start_one(child).await;
    let t0 = Instant::now();
    assert!(h.shutdown().await.is_clean());
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(
        !saw_cancel.load(Ordering::SeqCst),
        "brutal kill must not cancel first"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_children_one_after_another_in_reverse_order() {
    let h = Supervisor::builder("root")
        .child(stubborn("a").shutdown(Shutdown::Timeout(secs(1))))
        .child(stubborn("b").shutdown(Shutdown::Timeout(secs(2))))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(3));
    assert_eq!(report.aborted(), ["root/b", "root/a"]);
}

#[tokio::test(start_paused = true)]
async fn kill_cuts_an_orderly_shutdown_short() {
    let h = start_one(stubborn("s").shutdown(Shutdown::Infinity)).await;
    let t0 = Instant::now();
    let report = h.shutdown_within(secs(2)).await;
    assert_eq!(t0.elapsed(), secs(2));
    assert!(report.is_clean());
    assert_eq!(report.aborted(), ["root/s"]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_idempotent_and_concurrent_callers_get_the_same_report() {
    let p = Probe::new();
    let h = start_one(p.worker("a")).await;
    let h2 = h.clone();
    let (r1, r2) = tokio::join!(h.shutdown(), h2.shutdown());
    assert!(r1.is_clean() && r2.is_clean());
    assert_eq!(p.count("stop:a"), 1);
    assert!(h.shutdown().await.is_clean());
    assert!(h.wait().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn calls_on_a_dead_supervisor_return_gone_and_never_hang() {
    let p = Probe::new();
    let h = start_one(p.worker("a")).await;
    assert!(h.shutdown().await.is_clean());
    settle().await;
    assert!(h.is_finished());
    let gone = |r: Result<(), SupervisorError>| matches!(r, Err(SupervisorError::Gone { .. }));
    assert!(gone(h.start_child(p.worker("b")).await));
    assert!(gone(h.terminate_child("a").await));
    assert!(gone(h.restart_child("a").await));
    assert!(gone(h.delete_child("a").await));
    assert!(matches!(
        h.which_children().await,
        Err(SupervisorError::Gone { .. })
    ));
    assert!(matches!(
        h.count_children().await,
        Err(SupervisorError::Gone { .. })
    ));
    let mut events = h.subscribe();
    assert!(matches!(
        events.recv().await,
        Err(tokio::sync::broadcast::error::RecvError::Closed)
    ));
}

#[test]
fn a_supervisor_whose_runtime_dropped_it_reports_gone() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    };
    let p = Probe::new();
    let first = runtime();
    let h = first.block_on(start_one(p.worker("a")));
    drop(first);
    runtime().block_on(async {
        let err = h.wait().await.unwrap_err();
        assert!(matches!(err, SupervisorError::Gone { .. }), "{err}");
        assert!(matches!(
            h.which_children().await,
            Err(SupervisorError::Gone { .. })
        ));
    });
    assert_eq!(p.take(), strs(&["start:a"]));
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_kind_child_waits_like_infinity_by_default() {
    let done = Arc::new(AtomicBool::new(false));
    let spec = lingering("sup", secs(60), done.clone()).kind(ChildKind::Supervisor);
    assert_eq!(spec.shutdown_policy(), Shutdown::Infinity);
    let h = start_one(spec).await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(60));
    assert!(done.load(Ordering::SeqCst) && report.aborted().is_empty());
    // an explicit shutdown wins, whichever is set first
    let explicit = Shutdown::Timeout(secs(1));
    let w = stubborn("w");
    let a = w.clone().shutdown(explicit).kind(ChildKind::Supervisor);
    let b = w.kind(ChildKind::Supervisor).shutdown(explicit);
    assert_eq!(
        (a.shutdown_policy(), b.shutdown_policy()),
        (explicit, explicit)
    );
}
