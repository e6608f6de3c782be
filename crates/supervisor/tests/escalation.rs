//! Restart intensity, escalation through nested supervisors, panics.

mod common;

use common::{drain, secs, settle, strs, Action, Probe};
use supervisor::{
    ChildSpec, Event, ExitReason, Intensity, Restart, Supervisor, SupervisorError, SupervisorSpec,
};

fn flat(p: &Probe, max: u32, period: u64) -> SupervisorSpec {
    Supervisor::builder("root")
        .intensity(Intensity::new(max, secs(period)))
        .child(p.worker("a"))
        .child(p.worker("b"))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn exceeding_intensity_within_the_period_stops_all_children_and_fails() {
    let p = Probe::new();
    let h = flat(&p, 2, 10).start().await.unwrap();
    let mut events = h.subscribe();
    for _ in 0..2 {
        p.trigger("b", Action::Crash);
        settle().await;
    }
    assert!(!h.is_finished());
    p.take();
    p.trigger("b", Action::Crash);
    let err = h.wait().await.unwrap_err();
    assert!(
        matches!(&err, SupervisorError::IntensityExceeded { child, max_restarts: 2, .. } if child == "b"),
        "{err}"
    );
    assert_eq!(p.take(), strs(&["crash:b", "stop:a"]));
    let events = drain(&mut events);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::IntensityExceeded { .. })));
    // the final report says how it ended, every time it is asked
    assert!(h.shutdown().await.exit().is_err());
    assert!(h.shutdown().await.exit().is_err());
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_over_time_never_exceed() {
    let p = Probe::new();
    let h = flat(&p, 2, 10).start().await.unwrap();
    for _ in 0..20 {
        p.trigger("b", Action::Crash);
        tokio::time::sleep(secs(6)).await;
    }
    assert!(!h.is_finished());
    assert_eq!(p.count("start:b"), 21);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn zero_intensity_escalates_on_the_first_restart() {
    let p = Probe::new();
    let h = flat(&p, 0, 5).start().await.unwrap();
    p.trigger("a", Action::Crash);
    assert!(h.wait().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_panic_is_an_abnormal_exit_carrying_its_message() {
    let p = Probe::new();
    let h = flat(&p, 5, 5).start().await.unwrap();
    let mut events = h.subscribe();
    p.trigger("a", Action::Panic);
    settle().await;
    let reason = drain(&mut events).into_iter().find_map(|e| match e {
        Event::Exited { reason, .. } => Some(reason),
        _ => None,
    });
    match reason {
        Some(ExitReason::Panic(msg)) => assert_eq!(msg, "a panicked on purpose"),
        other => panic!("expected a panic exit, got {other:?}"),
    }
    assert_eq!(p.count("start:a"), 2);
    assert!(!h.is_finished());
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_factory_is_caught_too() {
    let h = Supervisor::builder("root")
        .intensity(Intensity::new(3, secs(5)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let bad = ChildSpec::new(
        "bad",
        |_ctx| -> std::future::Ready<Result<(), supervisor::ChildError>> {
            panic!("factory exploded")
        },
    )
    .wait_for_ready();
    let err = h.start_child(bad).await.unwrap_err();
    assert!(err.to_string().contains("factory exploded"), "{err}");
    assert!(h.which_children().await.unwrap().is_empty());
    assert!(h.shutdown().await.is_clean());
}

/// root > mid > leaf > {w}; each with intensity 1 in 60 s.
fn three_levels(p: &Probe) -> SupervisorSpec {
    let leaf = Supervisor::builder("leaf")
        .intensity(Intensity::new(1, secs(60)))
        .child(p.worker("w"))
        .build()
        .unwrap();
    let mid = Supervisor::builder("mid")
        .intensity(Intensity::new(1, secs(60)))
        .child(p.worker("m"))
        .child(ChildSpec::supervisor(leaf))
        .build()
        .unwrap();
    Supervisor::builder("root")
        .intensity(Intensity::new(1, secs(60)))
        .child(p.worker("r"))
        .child(ChildSpec::supervisor(mid))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn failure_escalates_through_three_levels() {
    let p = Probe::new();
    let h = three_levels(&p).start().await.unwrap();
    assert_eq!(p.take(), strs(&["start:r", "start:m", "start:w"]));
    // w crashes twice: leaf gives up; mid restarts leaf (w starts again)...
    p.trigger("w", Action::Crash);
    settle().await;
    p.trigger("w", Action::Crash);
    settle().await;
    assert_eq!(
        p.take(),
        strs(&["crash:w", "start:w", "crash:w", "start:w"])
    );
    // ...leaf gives up again: mid exceeds its own limit and gives up; root restarts mid
    p.trigger("w", Action::Crash);
    settle().await;
    p.trigger("w", Action::Crash);
    settle().await;
    assert!(!h.is_finished());
    assert_eq!(p.count("start:m"), 2, "root restarted mid once");
    // once more and root itself gives up
    for _ in 0..4 {
        p.trigger("w", Action::Crash);
        settle().await;
    }
    let err = h.wait().await.unwrap_err();
    match err {
        SupervisorError::IntensityExceeded { child, reason, .. } => {
            // mid gave up (as OTP's `shutdown`): permanent, so root restarted it and counted
            assert_eq!(child, "mid");
            assert!(matches!(reason, ExitReason::Escalated(_)), "{reason}");
            assert!(reason.to_string().contains("`leaf`"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(p.times("stop:r").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn nested_supervisors_shut_down_depth_first_in_reverse_order() {
    let p = Probe::new();
    let h = three_levels(&p).start().await.unwrap();
    p.take();
    assert!(h.shutdown().await.is_clean());
    assert_eq!(p.take(), strs(&["stop:w", "stop:m", "stop:r"]));
}

#[tokio::test(start_paused = true)]
async fn on_start_hands_out_a_nested_supervisors_handle() {
    let p = Probe::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let inner = Supervisor::builder("inner")
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .build()
        .unwrap();
    let h = Supervisor::builder("outer")
        .child(ChildSpec::supervisor(inner))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let inner = rx.recv().await.unwrap();
    inner.start_child(p.worker("late")).await.unwrap();
    assert_eq!(p.take(), strs(&["start:late"]));
    assert!(h.shutdown().await.is_clean());
    assert_eq!(p.take(), strs(&["stop:late"]));
    assert!(inner.which_children().await.is_err());
}

/// `outer` with one transient nested supervisor `inner` (intensity 0) holding worker `w`;
/// `inner`'s handle arrives on the returned channel each time it starts.
async fn transient_nested(
    p: &Probe,
) -> (
    supervisor::SupervisorHandle,
    tokio::sync::mpsc::UnboundedReceiver<supervisor::SupervisorHandle>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let inner = Supervisor::builder("inner")
        .intensity(Intensity::new(0, secs(5)))
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .child(p.worker("w"))
        .build()
        .unwrap();
    let outer = Supervisor::builder("outer")
        .intensity(Intensity::new(5, secs(5)))
        .child(p.worker("other"))
        .child(ChildSpec::supervisor(inner).restart(Restart::Transient))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    (outer, rx)
}

fn exit_reasons(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<ExitReason> {
    drain(events)
        .into_iter()
        .filter_map(|e| match e {
            Event::Exited { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn killing_a_nested_supervisor_is_an_abnormal_exit_its_parent_restarts() {
    let p = Probe::new();
    let (outer, mut inner) = transient_nested(&p).await;
    let mut events = outer.subscribe();
    inner.recv().await.unwrap().kill();
    settle().await;
    let reasons = exit_reasons(&mut events);
    assert!(matches!(reasons[..], [ExitReason::Killed]), "{reasons:?}");
    // transient, killed: restarted (its worker starts again)
    assert_eq!(p.count("start:w"), 2);
    assert!(inner.recv().await.is_some());
    assert!(outer.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_killed_supervisor_ends_with_killed() {
    let p = Probe::new();
    let h = common::start_one(p.worker("a")).await;
    h.kill();
    let err = h.wait().await.unwrap_err();
    assert!(matches!(err, SupervisorError::Killed { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_transient_nested_supervisor_that_gives_up_is_not_restarted_as_in_otp() {
    let p = Probe::new();
    let (outer, _inner) = transient_nested(&p).await;
    let mut events = outer.subscribe();
    p.trigger("w", Action::Crash);
    settle().await;
    // OTP: a supervisor past its intensity exits with `shutdown`, so its transient parent
    // entry is not restarted; the reason still tells what happened
    let reasons = exit_reasons(&mut events);
    match &reasons[..] {
        [reason @ ExitReason::Escalated(e)] => {
            assert!(!reason.is_abnormal());
            assert!(
                matches!(**e, SupervisorError::IntensityExceeded { .. }),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.count("start:w"), 1);
    let inner = &outer.which_children().await.unwrap()[1];
    assert_eq!(inner.state, supervisor::ChildState::Terminated);
    assert!(!outer.is_finished());
    assert!(outer.shutdown().await.is_clean());
}
