//! Strategies restart the right children in the right order; restart types; stop order.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{ids, settle, strs, Action, Probe};
use supervisor::{
    ChildContext, ChildSpec, ChildState, DynamicSupervisor, Intensity, Restart, Strategy,
    Supervisor, SupervisorHandle,
};

async fn tree(p: &Probe, strategy: Strategy) -> SupervisorHandle {
    Supervisor::builder("root")
        .strategy(strategy)
        .intensity(Intensity::new(10, Duration::from_secs(1)))
        .children(["a", "b", "c", "d"].map(|id| p.worker(id)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn children_start_in_order_and_stop_in_reverse() {
    let p = Probe::new();
    let h = tree(&p, Strategy::OneForOne).await;
    assert_eq!(
        p.take(),
        strs(&["start:a", "start:b", "start:c", "start:d"])
    );
    assert!(h.shutdown().await.is_clean());
    assert_eq!(p.take(), strs(&["stop:d", "stop:c", "stop:b", "stop:a"]));
}

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_failed_child() {
    let p = Probe::new();
    let h = tree(&p, Strategy::OneForOne).await;
    p.take();
    p.trigger("b", Action::Crash);
    settle().await;
    assert_eq!(p.take(), strs(&["crash:b", "start:b"]));
    let b = &h.which_children().await.unwrap()[1];
    assert_eq!((b.state, b.restarts), (ChildState::Running, 1));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn one_for_all_stops_the_others_in_reverse_then_restarts_all_in_order() {
    let p = Probe::new();
    let h = tree(&p, Strategy::OneForAll).await;
    p.take();
    p.trigger("b", Action::Crash);
    settle().await;
    assert_eq!(
        p.take(),
        strs(&[
            "crash:b", "stop:d", "stop:c", "stop:a", "start:a", "start:b", "start:c", "start:d"
        ])
    );
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_failed_child_and_those_after_it() {
    let p = Probe::new();
    let h = tree(&p, Strategy::RestForOne).await;
    p.take();
    p.trigger("b", Action::Crash);
    settle().await;
    assert_eq!(
        p.take(),
        strs(&["crash:b", "stop:d", "stop:c", "start:b", "start:c", "start:d"])
    );
    p.trigger("d", Action::Crash);
    settle().await;
    assert_eq!(p.take(), strs(&["crash:d", "start:d"]));
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn group_restart_drops_temporary_siblings() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .strategy(Strategy::OneForAll)
        .child(p.worker("a"))
        .child(p.worker("t").restart(Restart::Temporary))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.take();
    p.trigger("a", Action::Crash);
    settle().await;
    assert_eq!(p.take(), strs(&["crash:a", "stop:t", "start:a"]));
    let ids = ids(&h).await;
    assert_eq!(ids, ["a"]);
    assert!(h.shutdown().await.is_clean());
}

/// (restart type, exit) -> restarted?, still listed?
async fn exit_outcome(restart: Restart, action: Action) -> (bool, Option<ChildState>) {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .child(p.worker("w").restart(restart))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    p.trigger("w", action);
    settle().await;
    let restarted = p.count("start:w") == 2;
    let state = h.which_children().await.unwrap().first().map(|c| c.state);
    assert!(h.shutdown().await.is_clean());
    (restarted, state)
}

#[tokio::test(start_paused = true)]
async fn restart_types_follow_otp_on_normal_and_abnormal_exits() {
    use Action::*;
    use ChildState::*;
    use Restart::*;
    let cases = [
        (Permanent, Normal, (true, Some(Running))),
        (Permanent, Crash, (true, Some(Running))),
        (Permanent, Panic, (true, Some(Running))),
        (Transient, Normal, (false, Some(Terminated))),
        (Transient, Crash, (true, Some(Running))),
        (Transient, Panic, (true, Some(Running))),
        (Temporary, Normal, (false, None)),
        (Temporary, Crash, (false, None)),
        (Temporary, Panic, (false, None)),
    ];
    for (restart, action, expected) in cases {
        assert_eq!(
            exit_outcome(restart, action).await,
            expected,
            "{restart:?} {action:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn terminate_child_is_a_shutdown_exit_and_is_never_restarted() {
    for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
        let p = Probe::new();
        let h = Supervisor::builder("root")
            .child(p.worker("w").restart(restart))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        h.terminate_child("w").await.unwrap();
        settle().await;
        assert_eq!(p.take(), strs(&["start:w", "stop:w"]), "{restart:?}");
        let listed = h.which_children().await.unwrap();
        match restart {
            Restart::Temporary => assert!(listed.is_empty()),
            _ => assert_eq!(listed[0].state, ChildState::Terminated),
        }
        assert!(h.shutdown().await.is_clean());
    }
}

#[tokio::test(start_paused = true)]
async fn group_restart_also_restarts_terminated_non_temporary_children_as_otp_does() {
    let p = Probe::new();
    let h = tree(&p, Strategy::OneForAll).await;
    h.terminate_child("c").await.unwrap();
    p.take();
    p.trigger("a", Action::Crash);
    settle().await;
    assert_eq!(
        p.take(),
        strs(&["crash:a", "stop:d", "stop:b", "start:a", "start:b", "start:c", "start:d"])
    );
    assert!(h.shutdown().await.is_clean());
}

/// A temporary child whose factory captures `held`; the running future does not. With
/// `wait`, it is declared `wait_for_ready` (a dynamic supervisor then starts it itself).
fn temporary_capturing(held: Arc<String>, wait: bool) -> ChildSpec {
    let spec = ChildSpec::new("t", move |ctx: ChildContext| {
        let _ = held.len();
        async move {
            ctx.ready();
            ctx.cancelled().await;
            Ok(())
        }
    })
    .restart(Restart::Temporary);
    if wait {
        spec.wait_for_ready()
    } else {
        spec
    }
}

#[tokio::test(start_paused = true)]
async fn a_temporary_childs_factory_captures_are_released_once_it_started() {
    let held = Arc::new("captured".to_owned());
    let weak = Arc::downgrade(&held);
    let h = Supervisor::builder("root")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    h.start_child(temporary_capturing(held, false))
        .await
        .unwrap();
    settle().await;
    assert_eq!(h.count_children().await.unwrap().active, 1);
    // as OTP drops a temporary child's start arguments, nothing keeps the captures alive
    assert!(
        weak.upgrade().is_none(),
        "the static supervisor kept the factory"
    );
    assert!(h.shutdown().await.is_clean());

    for wait in [false, true] {
        let held = Arc::new("captured".to_owned());
        let weak = Arc::downgrade(&held);
        let d = DynamicSupervisor::builder("d")
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        d.start_child(temporary_capturing(held, wait))
            .await
            .unwrap();
        settle().await;
        assert_eq!(d.count_children().await.unwrap().active, 1);
        assert!(
            weak.upgrade().is_none(),
            "wait {wait}: the dynamic supervisor kept it"
        );
        assert!(d.shutdown().await.is_clean());
    }
}
