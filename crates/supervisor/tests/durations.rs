//! Huge durations (`Duration::MAX`) in any setting mean "no limit": they never panic the
//! supervisor ("overflow when adding duration to instant").

mod common;

use std::time::Duration;

use common::{secs, settle, Action, Probe};
use supervisor::{
    Backoff, ChildContext, ChildSpec, ChildState, DynamicSupervisor, RestartPolicy, Shutdown,
    ShutdownReport, Supervisor,
};
use tokio::time::Instant;

const HUGE: Duration = Duration::MAX;

/// Every child stopped and the supervisor ended well (a panicked supervisor ends `Gone`).
fn ended_cleanly(report: &ShutdownReport) -> bool {
    report.is_clean() && report.exit().is_ok()
}

/// Lingers an hour after it is asked to stop.
fn lingers_an_hour(id: &str) -> ChildSpec {
    ChildSpec::new(id, |ctx: ChildContext| async move {
        ctx.cancelled().await;
        tokio::time::sleep(secs(3600)).await;
        Ok(())
    })
}

/// Ready ten seconds after it starts.
fn ready_after_ten_seconds(id: &str) -> ChildSpec {
    ChildSpec::new(id, |ctx: ChildContext| async move {
        tokio::time::sleep(secs(10)).await;
        ctx.ready();
        ctx.cancelled().await;
        Ok(())
    })
    .wait_for_ready()
}

#[tokio::test(start_paused = true)]
async fn a_huge_shutdown_timeout_waits_like_infinity() {
    let h = common::start_one(lingers_an_hour("l").shutdown(Shutdown::Timeout(HUGE))).await;
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(3600));
    assert!(ended_cleanly(&report) && report.aborted().is_empty());

    let d = DynamicSupervisor::builder("d")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let id = d
        .start_child(lingers_an_hour("l").shutdown(Shutdown::Timeout(HUGE)))
        .await
        .unwrap();
    let t0 = Instant::now();
    d.terminate_child(id).await.unwrap();
    assert_eq!(t0.elapsed(), secs(3600));
    let t0 = Instant::now();
    d.start_child(lingers_an_hour("l").shutdown(Shutdown::Timeout(HUGE)))
        .await
        .unwrap();
    assert!(ended_cleanly(&d.shutdown().await));
    assert_eq!(t0.elapsed(), secs(3600));
}

#[tokio::test(start_paused = true)]
async fn a_huge_restart_delay_is_a_restart_that_waits_until_cancelled() {
    let huge_backoff = RestartPolicy::Backoff(Backoff::exponential(HUGE, HUGE));
    for policy in [RestartPolicy::Fixed(HUGE), huge_backoff] {
        let p = Probe::new();
        let h = Supervisor::builder("root")
            .restart_policy(policy.clone())
            .child(p.worker("a"))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        p.trigger("a", Action::Crash);
        tokio::time::sleep(secs(3600)).await;
        assert_eq!(common::states(&h).await, [ChildState::Restarting]);
        h.terminate_child("a").await.unwrap();
        assert!(ended_cleanly(&h.shutdown().await));

        let d = DynamicSupervisor::builder("d")
            .restart_policy(policy)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let id = d.start_child(p.worker("b")).await.unwrap();
        p.trigger("b", Action::Crash);
        tokio::time::sleep(secs(3600)).await;
        let states: Vec<_> = d
            .which_children()
            .await
            .unwrap()
            .iter()
            .map(|c| c.state)
            .collect();
        assert_eq!(states, [ChildState::Restarting]);
        d.terminate_child(id).await.unwrap();
        assert!(ended_cleanly(&d.shutdown().await));
        assert_eq!(p.count("start:a") + p.count("start:b"), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn a_huge_start_timeout_is_no_timeout() {
    let t0 = Instant::now();
    let h = common::start_one(ready_after_ten_seconds("s").start_timeout(HUGE)).await;
    assert_eq!(t0.elapsed(), secs(10));
    assert!(ended_cleanly(&h.shutdown().await));

    let d = DynamicSupervisor::builder("d")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    d.start_child(ready_after_ten_seconds("s").start_timeout(HUGE))
        .await
        .unwrap();
    assert_eq!(t0.elapsed(), secs(20));
    assert!(ended_cleanly(&d.shutdown().await));
}

#[tokio::test(start_paused = true)]
async fn a_huge_abort_grace_and_shutdown_bound_never_panic() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .abort_grace(HUGE)
        .child(p.worker("k").shutdown(Shutdown::BrutalKill))
        .child(p.worker("t").shutdown(Shutdown::Timeout(secs(1))))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    settle().await;
    assert!(ended_cleanly(&h.shutdown_within(HUGE).await));

    let d = DynamicSupervisor::builder("d")
        .abort_grace(HUGE)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    d.start_child(p.worker("k").shutdown(Shutdown::BrutalKill))
        .await
        .unwrap();
    settle().await;
    assert!(ended_cleanly(&d.shutdown_within(HUGE).await));
}
