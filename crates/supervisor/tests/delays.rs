//! Delayed restarts: backoff growth, cap and reset; pending restarts; group delays; retries.

mod common;

use std::time::Duration;

use common::{drain, secs, settle, states, strs, Action, Probe};
use supervisor::{
    Backoff, ChildContext, ChildSpec, ChildState, Event, Intensity, RestartPolicy, Strategy,
    Supervisor, SupervisorError,
};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn backoff_delays_grow_are_capped_and_reset_after_a_stable_run() {
    let p = Probe::new();
    let probe = p.clone();
    // crashes at once on starts 0..5, runs 40 s on start 5, then crashes at once again
    let child = ChildSpec::new("x", move |ctx: ChildContext| {
        let p = probe.clone();
        async move {
            p.push("start:x".into());
            if ctx.restarts() == 5 {
                tokio::time::sleep(secs(40)).await;
            }
            if ctx.restarts() <= 6 {
                return Err("down".into());
            }
            ctx.cancelled().await;
            Ok(())
        }
    });
    let backoff = Backoff::exponential(secs(1), secs(8))
        .with_jitter(0.0)
        .unwrap()
        .with_reset_after(secs(30));
    let h = Supervisor::builder("root")
        .intensity(Intensity::new(100, secs(1000)))
        .restart_policy(RestartPolicy::Backoff(backoff))
        .child(child)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(secs(200)).await;
    let got: Vec<u64> = p.times("start:x").iter().map(Duration::as_secs).collect();
    // 0, +1, +2, +4, +8, +8 (capped), runs 40 s (stable) so the next delay is 1 s again
    assert_eq!(got, vec![0, 1, 3, 7, 15, 23, 64, 66]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_pending_restart_never_blocks_the_handle_and_terminate_cancels_it() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .restart_policy(RestartPolicy::Fixed(secs(10)))
        .child(p.worker("a"))
        .child(p.worker("b"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut events = h.subscribe();
    p.trigger("a", Action::Crash);
    settle().await;
    let t0 = Instant::now();
    let a = &h.which_children().await.unwrap()[0];
    assert_eq!(a.state, ChildState::Restarting);
    assert!(matches!(
        h.restart_child("a").await,
        Err(SupervisorError::ChildRestarting { .. })
    ));
    assert!(matches!(
        h.delete_child("a").await,
        Err(SupervisorError::ChildRestarting { .. })
    ));
    h.start_child(p.worker("c")).await.unwrap();
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "the handle was served at once"
    );
    h.terminate_child("a").await.unwrap();
    tokio::time::sleep(secs(30)).await;
    assert_eq!(p.count("start:a"), 1, "the cancelled restart never ran");
    assert_eq!(
        h.which_children().await.unwrap()[0].state,
        ChildState::Terminated
    );
    let evs = drain(&mut events);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::RestartScheduled { delay, .. } if *delay == secs(10))));
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::RestartCancelled { child, .. } if &**child == "a")));
    h.restart_child("a").await.unwrap();
    assert_eq!(p.count("start:a"), 2);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_all_pending_restarts_at_once() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .intensity(Intensity::new(5, secs(5)))
        .restart_policy(RestartPolicy::Fixed(secs(3600)))
        .children(["a", "b", "c"].map(|id| p.worker(id)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.trigger("a", Action::Crash);
    p.trigger("c", Action::Crash);
    settle().await;
    p.take();
    let t0 = Instant::now();
    assert!(h.shutdown().await.is_clean());
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(p.take(), strs(&["stop:b"]));
}

#[tokio::test(start_paused = true)]
async fn the_delay_applies_to_a_group_restart_as_a_whole() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .strategy(Strategy::OneForAll)
        .restart_policy(RestartPolicy::Fixed(secs(5)))
        .children(["a", "b", "c"].map(|id| p.worker(id)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.take();
    p.trigger("b", Action::Crash);
    settle().await;
    assert_eq!(p.take(), strs(&["crash:b", "stop:c", "stop:a"]));
    let states = states(&h).await;
    assert_eq!(states, [ChildState::Restarting; 3]);
    tokio::time::sleep(secs(5)).await;
    assert_eq!(p.take(), strs(&["start:a", "start:b", "start:c"]));
    assert_eq!(p.times("start:c")[1], secs(5));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_failed_restart_is_retried_through_the_delay_and_counts_once() {
    let p = Probe::new();
    let probe = p.clone();
    // ready on first start; then restarts 1 and 2 fail before ready; restart 3 succeeds
    let child = ChildSpec::new("x", move |ctx: ChildContext| {
        let p = probe.clone();
        async move {
            p.push("start:x".into());
            if (1..=2).contains(&ctx.restarts()) {
                return Err("cannot start".into());
            }
            ctx.ready();
            if ctx.restarts() == 0 {
                return Err("crash".into());
            }
            ctx.cancelled().await;
            Ok(())
        }
    })
    .wait_for_ready();
    // 3 restarts allowed: the crash plus two failed retries fit exactly
    let h = Supervisor::builder("root")
        .intensity(Intensity::new(3, secs(100)))
        .restart_policy(RestartPolicy::Fixed(secs(2)))
        .child(child)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(secs(20)).await;
    let got: Vec<u64> = p.times("start:x").iter().map(Duration::as_secs).collect();
    assert_eq!(got, vec![0, 2, 4, 6]);
    assert!(!h.is_finished());
    assert_eq!(
        h.which_children().await.unwrap()[0].state,
        ChildState::Running
    );
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_child_override_of_the_restart_policy_wins() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .restart_policy(RestartPolicy::Fixed(secs(100)))
        .child(p.worker("a").restart_policy(RestartPolicy::Immediate))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.trigger("a", Action::Crash);
    settle().await;
    assert_eq!(p.count("start:a"), 2);
    assert!(h.shutdown().await.is_clean());
}

/// A child that fails before it is ready on restart number `fail_on`, and runs otherwise.
fn fails_on_restart(p: &Probe, id: &str, fail_on: u32) -> ChildSpec {
    let p = p.clone();
    ChildSpec::new(id, move |ctx: ChildContext| {
        let p = p.clone();
        async move {
            if ctx.restarts() == fail_on {
                p.push(format!("start:{}", ctx.id()));
                return Err("cannot start".into());
            }
            ctx.ready();
            p.body(ctx).await
        }
    })
    .wait_for_ready()
}

/// a, b, c where c fails its first restart; b crashes.
async fn group_with_failing_restart(strategy: Strategy) -> Probe {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .strategy(strategy)
        .intensity(Intensity::new(10, secs(100)))
        .restart_policy(RestartPolicy::Fixed(secs(2)))
        .child(p.worker("a"))
        .child(p.worker("b"))
        .child(fails_on_restart(&p, "c", 1))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.take();
    p.trigger("b", Action::Crash);
    tokio::time::sleep(secs(10)).await;
    assert_eq!(states(&h).await, [ChildState::Running; 3]);
    assert!(h.shutdown().await.is_clean());
    p
}

#[tokio::test(start_paused = true)]
async fn a_failed_rest_for_one_restart_resumes_at_the_child_that_failed() {
    let p = group_with_failing_restart(Strategy::RestForOne).await;
    // b restarted once; only c is retried, 2 s later (as OTP's try_again does)
    assert_eq!(p.times("start:a"), [secs(0)]);
    assert_eq!(p.times("start:b"), [secs(0), secs(2)]);
    assert_eq!(p.times("start:c"), [secs(0), secs(2), secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_one_for_all_restart_restarts_the_whole_group_as_otp_does() {
    let p = group_with_failing_restart(Strategy::OneForAll).await;
    // one_for_all: the retry stops and restarts every child again, as OTP's does
    for child in ["start:a", "start:b", "start:c"] {
        assert_eq!(p.times(child), [secs(0), secs(2), secs(4)], "{child}");
    }
}

#[tokio::test(start_paused = true)]
async fn terminating_a_child_with_a_pending_rest_for_one_restart_keeps_later_children_down() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .strategy(Strategy::RestForOne)
        .restart_policy(RestartPolicy::Fixed(secs(10)))
        .children(["a", "b", "c"].map(|id| p.worker(id)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut events = h.subscribe();
    p.trigger("b", Action::Crash);
    settle().await;
    assert_eq!(states(&h).await[1..], [ChildState::Restarting; 2]);
    // c depends on b: with b terminated, c's pending restart is cancelled too (as in OTP,
    // where terminating the child a restart waits on leaves the children after it down)
    h.terminate_child("b").await.unwrap();
    tokio::time::sleep(secs(20)).await;
    use ChildState::{Running, Terminated};
    assert_eq!(states(&h).await, [Running, Terminated, Terminated]);
    assert_eq!(p.count("start:c"), 1);
    let cancelled: Vec<String> = drain(&mut events)
        .iter()
        .filter_map(|e| match e {
            Event::RestartCancelled { child, .. } => Some(child.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, ["b", "c"]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn terminating_a_child_while_its_rest_for_one_group_restarts_keeps_later_children_down() {
    let p = Probe::new();
    let slow = ChildSpec::new("b", {
        let p = p.clone();
        move |ctx: ChildContext| {
            let p = p.clone();
            async move {
                if ctx.restarts() > 0 {
                    tokio::time::sleep(secs(5)).await; // slow to be ready again
                }
                ctx.ready();
                p.body(ctx).await
            }
        }
    })
    .wait_for_ready();
    let h = Supervisor::builder("root")
        .strategy(Strategy::RestForOne)
        .child(p.worker("a"))
        .child(slow)
        .child(p.worker("c"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.trigger("b", Action::Crash);
    settle().await;
    // b is starting again, c waits for it
    use ChildState::{Restarting, Running, Starting, Terminated};
    assert_eq!(states(&h).await, [Running, Starting, Restarting]);
    h.terminate_child("b").await.unwrap();
    tokio::time::sleep(secs(20)).await;
    assert_eq!(states(&h).await, [Running, Terminated, Terminated]);
    assert_eq!(p.count("start:c"), 1);
    assert!(h.shutdown().await.is_clean());
}
