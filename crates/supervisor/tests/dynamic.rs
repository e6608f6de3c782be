//! The dynamic supervisor: start/terminate, max_children, restarts, concurrent shutdown.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{secs, settle, strs, Action, Probe};
use supervisor::{
    ChildContext, ChildSpec, ChildState, DynamicHandle, DynamicSupervisor, Intensity, Restart,
    RestartPolicy, Shutdown, SpecError, Supervisor, SupervisorError,
};
use tokio::time::Instant;

async fn pool(max: Option<usize>) -> DynamicHandle {
    let mut b = DynamicSupervisor::builder("pool").intensity(Intensity::new(5, secs(10)));
    if let Some(max) = max {
        b = b.max_children(max);
    }
    b.build().unwrap().start().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn children_start_terminate_and_are_counted() {
    let p = Probe::new();
    let h = pool(None).await;
    let a = h.start_child(p.worker("w")).await.unwrap();
    let b = h.start_child(p.worker("w")).await.unwrap();
    assert_ne!(a, b);
    let c = h.count_children().await.unwrap();
    assert_eq!((c.specs, c.active, c.workers), (2, 2, 2));
    h.terminate_child(a).await.unwrap();
    let left = h.which_children().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].instance, left[0].state),
        (Some(b), ChildState::Running)
    );
    assert_eq!(p.take(), strs(&["start:w", "start:w", "stop:w"]));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn max_children_is_enforced() {
    let p = Probe::new();
    let h = pool(Some(2)).await;
    let a = h.start_child(p.worker("w")).await.unwrap();
    h.start_child(p.worker("w")).await.unwrap();
    let err = h.start_child(p.worker("w")).await.unwrap_err();
    assert!(
        matches!(err, SupervisorError::MaxChildren { max: 2, .. }),
        "{err}"
    );
    h.terminate_child(a).await.unwrap();
    h.start_child(p.worker("w")).await.unwrap();
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn dynamic_children_are_restarted_by_their_restart_type() {
    let p = Probe::new();
    let h = pool(None).await;
    let perm = h.start_child(p.worker("perm")).await.unwrap();
    h.start_child(p.worker("trans").restart(Restart::Transient))
        .await
        .unwrap();
    h.start_child(p.worker("temp").restart(Restart::Temporary))
        .await
        .unwrap();
    p.trigger("perm", Action::Crash);
    p.trigger("trans", Action::Normal);
    p.trigger("temp", Action::Crash);
    settle().await;
    let left = h.which_children().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].instance, left[0].restarts), (Some(perm), 1));
    assert_eq!(p.count("start:perm"), 2);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_thousand_children_stop_concurrently_within_one_grace_period() {
    let h = pool(None).await;
    let stubborn = ChildSpec::new("s", |_ctx: ChildContext| async {
        std::future::pending::<()>().await;
        Ok(())
    })
    .shutdown(Shutdown::Timeout(secs(25)));
    for _ in 0..1000 {
        h.start_child(stubborn.clone()).await.unwrap();
    }
    let t0 = Instant::now();
    let report = h.shutdown().await;
    assert_eq!(t0.elapsed(), secs(25));
    assert!(report.is_clean());
    assert_eq!(report.aborted().len(), 1000);
}

#[tokio::test(start_paused = true)]
async fn a_lingering_terminate_does_not_block_other_calls() {
    let h = pool(None).await;
    let linger = ChildSpec::new("l", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        tokio::time::sleep(secs(10)).await;
        Ok(())
    })
    .shutdown(Shutdown::Timeout(secs(30)));
    let id = h.start_child(linger).await.unwrap();
    let h2 = h.clone();
    let t0 = Instant::now();
    let terminating = tokio::spawn(async move { h2.terminate_child(id).await });
    settle().await;
    assert_eq!(
        h.which_children().await.unwrap()[0].state,
        ChildState::Stopping
    );
    let p = Probe::new();
    h.start_child(p.worker("w")).await.unwrap();
    assert!(t0.elapsed() < secs(1));
    terminating.await.unwrap().unwrap();
    assert_eq!(t0.elapsed(), secs(10));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_pending_dynamic_restart_is_cancelled_by_terminate() {
    let p = Probe::new();
    let h = DynamicSupervisor::builder("pool")
        .restart_policy(RestartPolicy::Fixed(secs(10)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let id = h.start_child(p.worker("w")).await.unwrap();
    p.trigger("w", Action::Crash);
    settle().await;
    assert_eq!(
        h.which_children().await.unwrap()[0].state,
        ChildState::Restarting
    );
    h.terminate_child(id).await.unwrap();
    tokio::time::sleep(secs(20)).await;
    assert_eq!(p.count("start:w"), 1);
    assert!(h.which_children().await.unwrap().is_empty());
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn dynamic_intensity_exceeded_stops_everyone_and_fails() {
    let p = Probe::new();
    let h = DynamicSupervisor::builder("pool")
        .intensity(Intensity::new(1, secs(10)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    h.start_child(p.worker("a")).await.unwrap();
    h.start_child(p.worker("b")).await.unwrap();
    p.trigger("a", Action::Crash);
    settle().await;
    p.trigger("a", Action::Crash);
    let err = h.wait().await.unwrap_err();
    assert!(
        matches!(err, SupervisorError::IntensityExceeded { .. }),
        "{err}"
    );
    assert_eq!(p.count("stop:b"), 1);
}

#[tokio::test(start_paused = true)]
async fn dynamic_start_child_waits_for_readiness_and_reports_failures() {
    let h = pool(None).await;
    let t0 = Instant::now();
    let slow = ChildSpec::new("slow", |ctx: ChildContext| async move {
        tokio::time::sleep(secs(2)).await;
        ctx.ready();
        ctx.cancelled().await;
        Ok(())
    })
    .wait_for_ready();
    h.start_child(slow).await.unwrap();
    assert_eq!(t0.elapsed(), secs(2));
    let bad = ChildSpec::new("bad", |_ctx| async { Err("nope".into()) }).wait_for_ready();
    let err = h.start_child(bad).await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let never = ChildSpec::new("never", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
    .wait_for_ready()
    .start_timeout(secs(3));
    let err = h.start_child(never).await.unwrap_err();
    assert!(err.to_string().contains("start timeout"), "{err}");
    assert_eq!(h.count_children().await.unwrap().specs, 1);
    // Invalid specs are refused on both paths: started by the handle, and by the
    // supervisor when the call waits for readiness.
    for wait in [false, true] {
        let ready = |spec: ChildSpec| if wait { spec.wait_for_ready() } else { spec };
        let sig = ChildSpec::new("sig", |_ctx| async { Ok(()) })
            .restart(Restart::Transient)
            .significant(true);
        let err = h.start_child(ready(sig)).await.unwrap_err();
        assert!(
            matches!(
                err,
                SupervisorError::Spec(SpecError::SignificantDynamicChild { .. })
            ),
            "wait {wait}: {err}"
        );
        let unnamed = ChildSpec::new("", |_ctx| async { Ok(()) });
        let err = h.start_child(ready(unnamed)).await.unwrap_err();
        assert!(
            matches!(err, SupervisorError::Spec(SpecError::EmptyId { .. })),
            "wait {wait}: {err}"
        );
    }
    assert_eq!(h.count_children().await.unwrap().specs, 1);
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn starting_a_child_during_shutdown_is_refused() {
    let h = pool(None).await;
    // A child that lingers 5 s on shutdown keeps the supervisor shutting down meanwhile.
    let lingering = ChildSpec::new("linger", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        tokio::time::sleep(secs(5)).await;
        Ok(())
    })
    .shutdown(Shutdown::Timeout(secs(10)));
    h.start_child(lingering).await.unwrap();
    let shutdown = tokio::spawn({
        let h = h.clone();
        async move { h.shutdown().await }
    });
    tokio::time::sleep(secs(1)).await;
    for wait in [false, true] {
        let spec = ChildSpec::new("late", |_ctx| async { Ok(()) });
        let spec = if wait { spec.wait_for_ready() } else { spec };
        let err = h.start_child(spec).await.unwrap_err();
        assert!(
            matches!(err, SupervisorError::ShuttingDown { .. }),
            "wait {wait}: {err}"
        );
    }
    assert!(shutdown.await.unwrap().is_clean());
    let spec = ChildSpec::new("after", |_ctx| async { Ok(()) });
    assert!(matches!(
        h.start_child(spec).await,
        Err(SupervisorError::Gone { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_nested_dynamic_supervisor_is_stopped_with_its_parent() {
    let p = Probe::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let dynamic = DynamicSupervisor::builder("pool")
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .build()
        .unwrap();
    let root = Supervisor::builder("root")
        .child(p.worker("first"))
        .child(ChildSpec::dynamic(dynamic))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let pool = rx.recv().await.unwrap();
    pool.start_child(p.worker("w")).await.unwrap();
    pool.start_child(p.worker("w")).await.unwrap();
    settle().await;
    p.take();
    assert!(root.shutdown().await.is_clean());
    assert_eq!(p.take(), strs(&["stop:w", "stop:w", "stop:first"]));
    assert!(matches!(
        pool.start_child(p.worker("w")).await,
        Err(SupervisorError::Gone { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_dynamic_child_is_restarted_and_its_message_reported() {
    let p = Probe::new();
    let h = pool(None).await;
    let mut events = h.subscribe();
    h.start_child(p.worker("w")).await.unwrap();
    settle().await;
    p.trigger("w", Action::Panic);
    settle().await;
    assert_eq!(p.count("start:w"), 2);
    let panicked = common::drain(&mut events).into_iter().any(|e| {
        matches!(e, supervisor::Event::Exited { reason: supervisor::ExitReason::Panic(m), .. } if m == "w panicked on purpose")
    });
    assert!(panicked);
    assert!(h.shutdown().await.is_clean());
}

/// Children spawned by the handle may exit before the supervisor has taken them in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_exiting_before_the_supervisor_sees_them_are_accounted_for() {
    let h = DynamicSupervisor::builder("pool")
        .max_children(50)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let quick =
        ChildSpec::new("q", |_ctx: ChildContext| async { Ok(()) }).restart(Restart::Temporary);
    let drained = async {
        for _ in 0..20 {
            for _ in 0..50 {
                loop {
                    match h.start_child(quick.clone()).await {
                        Ok(_) => break,
                        Err(SupervisorError::MaxChildren { .. }) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }
        while h.count_children().await.unwrap().specs > 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), drained)
        .await
        .expect("every child was accounted for");
    assert!(h.shutdown().await.is_clean());
}

/// Counts itself in `live` while it exists (a child stopped or aborted drops it).
struct Live(Arc<AtomicUsize>);
impl Live {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Live(live.clone())
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_started_while_the_supervisor_shuts_down_is_stopped_not_orphaned() {
    // A handle reserves a slot and spawns the child on its own task, then hands it to the
    // supervisor; a shutdown landing in between must still stop that child.
    let live = Arc::new(AtomicUsize::new(0));
    for _ in 0..200 {
        let h = DynamicSupervisor::builder("pool")
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let live_in = live.clone();
        let spec = ChildSpec::new("c", move |ctx: ChildContext| {
            let live = Live::new(&live_in);
            async move {
                ctx.cancelled().await;
                drop(live);
                Ok(())
            }
        });
        let starter = tokio::spawn({
            let h = h.clone();
            async move { while h.start_child(spec.clone()).await.is_ok() {} }
        });
        tokio::task::yield_now().await;
        assert!(h.shutdown().await.is_clean());
        starter.await.unwrap();
    }
    // Every child was stopped (give the last ones a moment to end).
    for _ in 0..100 {
        if live.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), 0, "children left running");
}

#[tokio::test(start_paused = true)]
async fn a_child_id_from_another_supervisor_is_unknown_and_touches_nothing() {
    let p = Probe::new();
    let d1 = pool(None).await;
    let d2 = pool(None).await;
    let mine = d1.start_child(p.worker("mine")).await.unwrap();
    let theirs = d2.start_child(p.worker("theirs")).await.unwrap();
    // both supervisors number their children from 1: the numbers match, the ids must not
    assert_eq!(mine.get(), theirs.get());
    assert_ne!(mine, theirs);
    let err = d1.terminate_child(theirs).await.unwrap_err();
    assert!(matches!(err, SupervisorError::UnknownChild { .. }), "{err}");
    settle().await;
    assert_eq!(p.take(), strs(&["start:mine", "start:theirs"]));
    assert_eq!(d1.count_children().await.unwrap().active, 1);
    assert!(d1.shutdown().await.is_clean());
    assert!(d2.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn terminating_a_child_that_already_ended_answers_ok_as_otp_does() {
    let p = Probe::new();
    let h = pool(None).await;
    let a = h.start_child(p.worker("a")).await.unwrap();
    h.terminate_child(a).await.unwrap();
    h.terminate_child(a).await.unwrap();
    // a temporary child that ended on its own is gone too
    let t = h
        .start_child(p.worker("t").restart(Restart::Temporary))
        .await
        .unwrap();
    p.trigger("t", Action::Normal);
    settle().await;
    assert!(h.which_children().await.unwrap().is_empty());
    h.terminate_child(t).await.unwrap();
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn a_nested_dynamic_supervisor_killed_or_giving_up_reads_as_a_static_one() {
    let p = Probe::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let dynamic = DynamicSupervisor::builder("pool")
        .intensity(Intensity::new(0, secs(5)))
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .build()
        .unwrap();
    let root = Supervisor::builder("root")
        .child(ChildSpec::dynamic(dynamic).restart(Restart::Transient))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut events = root.subscribe();
    // killed: abnormal, so the transient pool is restarted
    rx.recv().await.unwrap().kill();
    let restarted = tokio::time::timeout(secs(1), rx.recv()).await;
    let pool = restarted.expect("the killed pool was restarted").unwrap();
    // gave up: like OTP's `shutdown`, so it stays down
    pool.start_child(p.worker("w")).await.unwrap();
    p.trigger("w", Action::Crash);
    settle().await;
    let reasons: Vec<String> = common::drain(&mut events)
        .iter()
        .filter_map(|e| match e {
            supervisor::Event::Exited { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "killed");
    assert!(reasons[1].starts_with("escalated: "), "{reasons:?}");
    assert_eq!(
        root.which_children().await.unwrap()[0].state,
        ChildState::Terminated
    );
    assert!(root.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn aborting_a_nested_dynamic_supervisor_aborts_its_children() {
    let live = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let dynamic = DynamicSupervisor::builder("pool")
        .on_start(move |h| {
            let _ = tx.send(h.clone());
        })
        .build()
        .unwrap();
    let root = Supervisor::builder("root")
        .child(ChildSpec::dynamic(dynamic).shutdown(Shutdown::BrutalKill))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let pool = rx.recv().await.unwrap();
    let live_in = live.clone();
    let stubborn = ChildSpec::new("s", move |_ctx: ChildContext| {
        let live = Live::new(&live_in);
        async move {
            std::future::pending::<()>().await;
            drop(live);
            Ok(())
        }
    });
    for _ in 0..3 {
        pool.start_child(stubborn.clone()).await.unwrap();
    }
    settle().await;
    assert_eq!(live.load(Ordering::SeqCst), 3);
    // the parent aborts the pool's task: its children must not outlive it
    assert!(root.shutdown().await.is_clean());
    settle().await;
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "children outlived their supervisor"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_readiness_signal_from_an_earlier_incarnation_does_not_count() {
    let kept: Arc<std::sync::Mutex<Option<ChildContext>>> = Arc::default();
    let keep = kept.clone();
    // the first incarnation is ready and crashes, keeping its context; later ones never get
    // ready on their own
    let spec = ChildSpec::new("c", move |ctx: ChildContext| {
        let keep = keep.clone();
        async move {
            if ctx.restarts() == 0 {
                ctx.ready();
                keep.lock().unwrap().replace(ctx);
                return Err("crash".into());
            }
            ctx.cancelled().await;
            Ok(())
        }
    })
    .wait_for_ready();
    let h = pool(None).await;
    let starting = tokio::spawn({
        let h = h.clone();
        async move { h.start_child(spec).await }
    });
    settle().await;
    starting.await.unwrap().unwrap();
    let states: Vec<_> = h
        .which_children()
        .await
        .unwrap()
        .iter()
        .map(|c| c.state)
        .collect();
    assert_eq!(states, [ChildState::Starting]);
    kept.lock().unwrap().take().unwrap().ready();
    settle().await;
    let states: Vec<_> = h
        .which_children()
        .await
        .unwrap()
        .iter()
        .map(|c| c.state)
        .collect();
    assert_eq!(
        states,
        [ChildState::Starting],
        "the old incarnation's signal counted"
    );
    assert!(h.shutdown().await.is_clean());
}
