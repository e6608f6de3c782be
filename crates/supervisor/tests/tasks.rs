//! The task supervisor: results, failures, restarts, bounded shutdown, nesting.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use supervisor::{
    ChildContext, ChildSpec, ChildState, Intensity, Shutdown, Supervisor, SupervisorError,
    TaskError, TaskSupervisor,
};
use tokio::time::Instant;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

async fn tasks(shutdown: Shutdown) -> TaskSupervisor {
    TaskSupervisor::builder("tasks")
        .shutdown(shutdown)
        .intensity(Intensity::new(10, secs(10)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn tasks_hand_back_results_errors_and_panics() {
    let t = tasks(Shutdown::default()).await;
    assert_eq!(t.spawn_and_await(|_| async { Ok(7) }).await.unwrap(), 7);
    let failed = t
        .spawn_and_await(|_| async { Err::<(), _>("no luck".into()) })
        .await;
    assert!(matches!(failed, Err(TaskError::Failed(ref e)) if e.to_string() == "no luck"));
    let panicked = t
        .spawn_and_await(|_| async {
            if true {
                panic!("boom");
            }
            Ok(())
        })
        .await;
    assert!(matches!(panicked, Err(TaskError::Panicked(ref m)) if m == "boom"));
    // one-off tasks are gone once finished
    assert_eq!(t.count_children().await.unwrap().specs, 0);
    assert!(t.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn running_tasks_are_counted_in_which_children() {
    let t = tasks(Shutdown::default()).await;
    let mut handles = Vec::new();
    for n in 0..3u64 {
        handles.push(
            t.spawn(move |_| async move {
                tokio::time::sleep(secs(n + 1)).await;
                Ok(n)
            })
            .await
            .unwrap(),
        );
    }
    settle().await;
    let children = t.which_children().await.unwrap();
    assert_eq!(children.len(), 3);
    assert!(children
        .iter()
        .all(|c| c.state == ChildState::Running && &*c.id == "task"));
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    assert_eq!(results, [0, 1, 2]);
    assert_eq!(t.count_children().await.unwrap().active, 0);
    assert!(t.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_tasks_linger_then_aborts_and_reports_the_unfinished() {
    let t = tasks(Shutdown::Timeout(secs(5))).await;
    // finishes its work within the bound when asked to stop
    let polite = t
        .spawn(|ctx: ChildContext| async move {
            ctx.cancelled().await;
            tokio::time::sleep(secs(1)).await;
            Ok("flushed")
        })
        .await
        .unwrap();
    // ignores the request: aborted after 5 s
    let stubborn = t
        .spawn(|_ctx: ChildContext| async move {
            tokio::time::sleep(secs(3600)).await;
            Ok("never")
        })
        .await
        .unwrap();
    let stubborn_id = stubborn.id();
    settle().await;
    let t0 = Instant::now();
    let report = t.shutdown().await;
    assert_eq!(t0.elapsed(), secs(5));
    assert!(report.is_clean(), "aborted tasks did stop");
    assert_eq!(report.aborted(), [format!("tasks/task{stubborn_id}")]);
    assert_eq!(polite.await.unwrap(), "flushed");
    assert!(matches!(stubborn.await, Err(TaskError::Stopped)));
    // calls on the gone supervisor: typed errors, no hang
    let late = t.spawn(|_| async { Ok(()) }).await;
    assert!(matches!(
        late,
        Err(SupervisorError::ShuttingDown { .. } | SupervisorError::Gone { .. })
    ));
    assert!(matches!(
        t.count_children().await,
        Err(SupervisorError::Gone { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_restarting_task_runs_again_until_it_succeeds_or_gives_up() {
    let t = tasks(Shutdown::default()).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let result = t
        .spawn_restarting(move |_| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    return Err(format!("attempt {n} failed").into());
                }
                Ok(n)
            }
        })
        .await
        .unwrap()
        .await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(runs.load(Ordering::SeqCst), 3);

    // always failing: restarted until the intensity gives up, then the last error
    let hopeless = t
        .spawn_restarting(|ctx: ChildContext| async move {
            Err::<(), _>(format!("attempt {}", ctx.restarts()).into())
        })
        .await
        .unwrap()
        .await;
    assert!(
        matches!(hopeless, Err(TaskError::Failed(ref e)) if e.to_string().starts_with("attempt"))
    );
    assert!(
        t.shutdown().await.exit().is_err(),
        "the intensity was exceeded"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nested_task_supervisor_is_reached_through_its_spec_handle() {
    let spec = TaskSupervisor::builder("tasks").build().unwrap();
    let t = spec.handle();
    assert!(matches!(
        t.spawn(|_| async { Ok(()) }).await,
        Err(SupervisorError::Gone { .. })
    ));
    let root = Supervisor::builder("root")
        .child(ChildSpec::task_supervisor(&spec))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let pending = t
        .spawn(|ctx: ChildContext| async move {
            ctx.cancelled().await;
            Ok(())
        })
        .await
        .unwrap();
    settle().await;
    let tree = root.tree().await.unwrap();
    let text = tree.to_string();
    assert!(text.contains("└─ tasks [dynamic]  running"), "{text}");
    assert!(text.contains("   └─ task#1  running"), "{text}");
    assert!(root.shutdown().await.is_clean());
    assert!(pending.await.is_ok(), "it returned when asked to stop");
}
