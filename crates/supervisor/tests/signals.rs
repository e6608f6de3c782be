//! Running a tree until a signal; a second signal or the bound forces a kill.

mod common;

use common::{secs, start_one, Action, Probe};
use futures::channel::mpsc;
use supervisor::{run_until, ChildContext, ChildSpec, Intensity, Shutdown, Signal, Supervisor};
use tokio::time::Instant;

/// A child that lingers an hour after it is asked to stop.
fn slow_to_stop() -> ChildSpec {
    ChildSpec::new("slow", |ctx: ChildContext| async move {
        ctx.cancelled().await;
        tokio::time::sleep(secs(3600)).await;
        Ok(())
    })
    .shutdown(Shutdown::Infinity)
}

#[tokio::test(start_paused = true)]
async fn a_signal_shuts_the_tree_down_in_order() {
    let p = Probe::new();
    let h = start_one(p.worker("a")).await;
    let (tx, rx) = mpsc::unbounded();
    tx.unbounded_send(Signal::Terminate).unwrap();
    let outcome = run_until(h, secs(10), rx).await;
    assert_eq!(outcome.signal, Some(Signal::Terminate));
    assert!(outcome.is_clean());
    assert_eq!(outcome.exit_code(), std::process::ExitCode::SUCCESS);
    assert_eq!(p.count("stop:a"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_forces_a_brutal_kill() {
    let h = start_one(slow_to_stop()).await;
    let (tx, rx) = mpsc::unbounded();
    let t0 = Instant::now();
    let run = tokio::spawn(run_until(h, secs(600), rx));
    tx.unbounded_send(Signal::Interrupt).unwrap();
    tokio::time::sleep(secs(5)).await;
    tx.unbounded_send(Signal::Interrupt).unwrap();
    let outcome = run.await.unwrap();
    assert!(outcome.forced);
    assert!(!outcome.is_clean());
    assert_eq!(outcome.report.aborted(), ["root/slow"]);
    assert_eq!(t0.elapsed(), secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_bound_forces_a_brutal_kill() {
    let h = start_one(slow_to_stop()).await;
    let (tx, rx) = mpsc::unbounded();
    tx.unbounded_send(Signal::Terminate).unwrap();
    let t0 = Instant::now();
    let outcome = run_until(h, secs(30), rx).await;
    assert!(outcome.forced);
    assert_eq!(t0.elapsed(), secs(30));
    assert_eq!(outcome.exit_code(), std::process::ExitCode::FAILURE);
}

#[tokio::test(start_paused = true)]
async fn a_tree_that_ends_by_itself_returns_without_a_signal() {
    let p = Probe::new();
    let h = Supervisor::builder("root")
        .intensity(Intensity::new(0, secs(1)))
        .child(p.worker("a"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let (_tx, rx) = mpsc::unbounded::<Signal>();
    let run = tokio::spawn(run_until(h, secs(30), rx));
    tokio::task::yield_now().await;
    p.trigger("a", Action::Crash);
    let outcome = run.await.unwrap();
    assert_eq!(outcome.signal, None);
    assert!(!outcome.is_clean(), "it ended with an error");
}

#[cfg(all(unix, feature = "signals"))]
#[tokio::test]
async fn a_real_sigterm_stops_the_tree() {
    let p = Probe::new();
    let h = start_one(p.worker("a")).await;
    // Install the handlers first, so a signal can never take the test process down (tokio
    // keeps a signal's handler once registered). `run_until_signal` listens from its first
    // poll on; a signal sent before that is not seen by it, so send until the run ends.
    let _installed = supervisor::os_signals().unwrap();
    let mut run = tokio::spawn(supervisor::run_until_signal(h, secs(10)));
    let mut sent = 0;
    let ended = loop {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        sent += 1;
        if let Ok(ended) =
            tokio::time::timeout(std::time::Duration::from_millis(200), &mut run).await
        {
            break ended;
        }
        assert!(sent < 50, "SIGTERM never stopped the tree");
    };
    let outcome = ended.unwrap().unwrap();
    assert_eq!(outcome.signal, Some(Signal::Terminate));
    assert!(outcome.is_clean());
}
