//! Ordered start with readiness, start failures, spec validation, auto-shutdown.

mod common;

use std::time::Duration;

use common::{ids, secs, settle, states, strs, Action, Probe};
use supervisor::{
    AutoShutdown, ChildContext, ChildSpec, ChildState, DynamicSupervisor, Intensity, Restart,
    SpecError, StartError, Supervisor, SupervisorError,
};
use tokio::time::Instant;

/// A child that signals readiness `after` its start, then runs until stopped.
fn slow_ready(p: &Probe, id: &str, after: Duration) -> ChildSpec {
    let p = p.clone();
    ChildSpec::new(id, move |ctx: ChildContext| {
        let p = p.clone();
        async move {
            p.push(format!("start:{}", ctx.id()));
            tokio::time::sleep(after).await;
            p.push(format!("ready:{}", ctx.id()));
            ctx.ready();
            ctx.cancelled().await;
            p.push(format!("stop:{}", ctx.id()));
            Ok(())
        }
    })
    .wait_for_ready()
}

/// A child that fails before it is ready.
fn failing(p: &Probe, id: &str) -> ChildSpec {
    let p = p.clone();
    ChildSpec::new(id, move |ctx: ChildContext| {
        let p = p.clone();
        async move {
            p.push(format!("start:{}", ctx.id()));
            Err("no database".into())
        }
    })
    .wait_for_ready()
}

#[tokio::test(start_paused = true)]
async fn the_next_child_starts_only_once_the_previous_one_is_ready() {
    let p = Probe::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = Supervisor::builder("root")
        .intensity(Intensity::new(5, secs(60)))
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .child(p.worker("x"))
        .child(slow_ready(&p, "a", secs(20)))
        .child(p.worker("b"))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let start = tokio::spawn(async move { spec.start().await });
    let early = rx.recv().await.unwrap();
    tokio::time::sleep(secs(5)).await;
    // while a is not ready: the handle answers and x's crash is handled
    let states = states(&early).await;
    assert_eq!(
        states,
        [
            ChildState::Running,
            ChildState::Starting,
            ChildState::Starting
        ]
    );
    p.trigger("x", Action::Crash);
    settle().await;
    assert_eq!(p.times("start:x"), [secs(0), secs(5)]);
    let h = start.await.unwrap().unwrap();
    assert_eq!(t0.elapsed(), secs(20));
    assert_eq!(p.times("start:b"), [secs(20)]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_failing_nth_child_fails_the_start_and_stops_the_earlier_ones_in_reverse() {
    let p = Probe::new();
    let err = Supervisor::builder("root")
        .child(p.worker("a"))
        .child(p.worker("b"))
        .child(failing(&p, "c"))
        .child(p.worker("d"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartError::ChildFailed { child, reason, .. } if child == "c" && reason.to_string().contains("no database")),
        "{err}"
    );
    assert_eq!(
        p.take(),
        strs(&["start:a", "start:b", "start:c", "stop:b", "stop:a"])
    );
}

#[tokio::test(start_paused = true)]
async fn a_child_not_ready_within_its_start_timeout_fails_the_start() {
    let p = Probe::new();
    let t0 = Instant::now();
    let err = Supervisor::builder("root")
        .child(p.worker("a"))
        .child(slow_ready(&p, "slow", secs(60)).start_timeout(secs(5)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StartError::ChildStartTimeout { child, .. } if child == "slow"),
        "{err}"
    );
    assert_eq!(t0.elapsed(), secs(5));
    assert_eq!(p.take(), strs(&["start:a", "start:slow", "stop:a"]));
}

#[tokio::test(start_paused = true)]
async fn a_nested_start_failure_names_both_levels() {
    let p = Probe::new();
    let inner = Supervisor::builder("inner")
        .child(failing(&p, "db"))
        .build()
        .unwrap();
    let err = Supervisor::builder("outer")
        .child(p.worker("a"))
        .child(ChildSpec::supervisor(inner))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`inner`") && msg.contains("`db`"), "{msg}");
    assert_eq!(p.take(), strs(&["start:a", "start:db", "stop:a"]));
}

#[tokio::test(start_paused = true)]
async fn start_child_waits_for_readiness_and_a_failed_child_is_not_kept() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let t0 = Instant::now();
    h.start_child(slow_ready(&p, "s", secs(3))).await.unwrap();
    assert_eq!(t0.elapsed(), secs(3));
    let err = h.start_child(failing(&p, "f")).await.unwrap_err();
    assert!(matches!(err, SupervisorError::Start(_)), "{err}");
    assert!(matches!(
        h.start_child(p.worker("s")).await,
        Err(SupervisorError::ChildAlreadyStarted { .. })
    ));
    let ids = ids(&h).await;
    assert_eq!(ids, ["s"]);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn handle_child_management_answers_with_typed_errors() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .child(p.worker("a"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert!(matches!(
        h.terminate_child("zz").await,
        Err(SupervisorError::UnknownChild { .. })
    ));
    assert!(matches!(
        h.restart_child("a").await,
        Err(SupervisorError::ChildRunning { .. })
    ));
    assert!(matches!(
        h.delete_child("a").await,
        Err(SupervisorError::ChildRunning { .. })
    ));
    h.terminate_child("a").await.unwrap();
    h.restart_child("a").await.unwrap();
    assert_eq!(h.which_children().await.unwrap()[0].restarts, 1);
    h.terminate_child("a").await.unwrap();
    h.delete_child("a").await.unwrap();
    assert_eq!(h.count_children().await.unwrap().specs, 0);
    assert!(h.shutdown().await.is_clean());
}

#[test]
fn specs_are_validated_up_front() {
    let w = |id: &str| ChildSpec::new(id, |_ctx| async { Ok(()) });
    let build = |b: supervisor::SupervisorBuilder| b.build().map(|_| ()).unwrap_err();
    let e = build(Supervisor::builder("s").child(w("a")).child(w("a")));
    assert!(
        matches!(e, SpecError::DuplicateChildId { ref child, .. } if child == "a"),
        "{e}"
    );
    let e = build(
        Supervisor::builder("s")
            .child(w("a").significant(true))
            .auto_shutdown(AutoShutdown::AnySignificant),
    );
    assert!(matches!(e, SpecError::SignificantPermanent { .. }), "{e}");
    let e =
        build(Supervisor::builder("s").child(w("a").restart(Restart::Transient).significant(true)));
    assert!(
        matches!(e, SpecError::SignificantWithoutAutoShutdown { .. }),
        "{e}"
    );
    let e = build(Supervisor::builder("s").intensity(Intensity::new(1, Duration::ZERO)));
    assert!(matches!(e, SpecError::ZeroPeriod { .. }), "{e}");
    let e = build(Supervisor::builder("s").child(w("")));
    assert!(matches!(e, SpecError::EmptyId { .. }), "{e}");
    assert!(matches!(
        build(Supervisor::builder("")),
        SpecError::EmptyId { .. }
    ));
    let e = DynamicSupervisor::builder("d")
        .max_children(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, SpecError::ZeroMaxChildren { .. }), "{e}");
    assert!(e.to_string().contains("max_children"));
}

fn significant(p: &Probe, id: &str) -> ChildSpec {
    p.worker(id).restart(Restart::Transient).significant(true)
}

#[tokio::test(start_paused = true)]
async fn any_significant_child_exiting_shuts_the_supervisor_down() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(p.worker("plain"))
        .child(significant(&p, "s1"))
        .child(significant(&p, "s2"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.take();
    // an abnormal exit is restarted: no auto-shutdown
    p.trigger("s1", Action::Crash);
    settle().await;
    assert!(!h.is_finished());
    // a terminate_child is not "by itself": no auto-shutdown
    h.terminate_child("s2").await.unwrap();
    settle().await;
    assert!(!h.is_finished());
    p.take();
    p.trigger("s1", Action::Normal);
    assert!(h.wait().await.is_ok());
    assert_eq!(p.take(), strs(&["exit:s1", "stop:plain"]));
}

#[tokio::test(start_paused = true)]
async fn all_significant_children_must_exit_before_auto_shutdown() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .auto_shutdown(AutoShutdown::AllSignificant)
        .child(p.worker("plain"))
        .child(significant(&p, "s1"))
        .child(significant(&p, "s2").restart(Restart::Temporary))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.trigger("s1", Action::Normal);
    settle().await;
    assert!(!h.is_finished());
    p.trigger("s2", Action::Normal);
    assert!(h.wait().await.is_ok());
    assert_eq!(p.count("stop:plain"), 1);
}

#[tokio::test(start_paused = true)]
async fn start_child_of_an_existing_id_tells_started_from_present_as_otp_does() {
    let p = Probe::new();
    let h = common::start_one(p.worker("a")).await;
    let err = h.start_child(p.worker("a")).await.unwrap_err();
    assert!(
        matches!(&err, SupervisorError::ChildAlreadyStarted { child, .. } if child == "a"),
        "{err}"
    );
    h.terminate_child("a").await.unwrap();
    let err = h.start_child(p.worker("a")).await.unwrap_err();
    assert!(
        matches!(&err, SupervisorError::ChildAlreadyPresent { child, .. } if child == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("restart_child"), "{err}");
    assert_eq!(p.count("start:a"), 1);
    assert!(h.shutdown().await.is_clean());
}
