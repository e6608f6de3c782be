//! The typed event stream tells the whole story of a restart and a shutdown.

mod common;

use std::time::Duration;

use common::{drain, settle, Action, Probe};
use supervisor::{Event, ExitReason, RestartPolicy, Supervisor};

#[tokio::test(start_paused = true)]
async fn events_follow_a_crash_a_delayed_restart_and_a_shutdown() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .restart_policy(RestartPolicy::Fixed(Duration::from_secs(2)))
        .child(p.worker("a"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut rx = h.subscribe();
    p.trigger("a", Action::Crash);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(h.shutdown().await.is_clean());
    settle().await;
    let events = drain(&mut rx);
    let got: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Exited {
                child,
                reason: ExitReason::Error(err),
                ..
            } => format!("exited {child} error {err}"),
            Event::Exited {
                child,
                reason: ExitReason::Shutdown,
                ..
            } => format!("exited {child} shutdown"),
            Event::RestartScheduled { child, delay, .. } => format!("scheduled {child} {delay:?}"),
            Event::Restarted {
                child, restarts, ..
            } => format!("restarted {child} {restarts}"),
            Event::ShutdownStarted { supervisor } => format!("shutdown started {supervisor}"),
            Event::ShutdownFinished { supervisor, clean } => {
                format!("shutdown finished {supervisor} {clean}")
            }
            other => format!("other {other}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "exited a error a crashed",
            "scheduled a 2s",
            "restarted a 1",
            "shutdown started root",
            "exited a shutdown",
            "shutdown finished root true",
        ]
    );
    // every event names its supervisor and, where it applies, its child
    assert!(
        events.iter().all(|e| e.supervisor() == "root"),
        "{events:?}"
    );
    let children: Vec<_> = events.iter().map(|e| e.child()).collect();
    assert_eq!(
        children,
        [Some("a"), Some("a"), Some("a"), None, Some("a"), None]
    );
}
