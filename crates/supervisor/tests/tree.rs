//! The tree at a glance: recursive data and its text rendering.

use std::time::Duration;

use supervisor::{
    ChildContext, ChildSpec, ChildState, DynamicSupervisor, ExitReason, RestartPolicy, Strategy,
    Supervisor, TreeKind,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn idle(id: &str) -> ChildSpec {
    ChildSpec::new(id, |ctx: ChildContext| async move {
        ctx.cancelled().await;
        Ok(())
    })
}

/// Runs 3 s, then fails.
fn flaky() -> ChildSpec {
    ChildSpec::new("flaky", |_ctx: ChildContext| async move {
        tokio::time::sleep(secs(3)).await;
        Err("lost its connection".into())
    })
    .restart_policy(RestartPolicy::Fixed(secs(10)))
}

#[tokio::test(start_paused = true)]
async fn the_tree_shows_every_supervisor_and_child_recursively() {
    let services = Supervisor::builder("services")
        .strategy(Strategy::RestForOne)
        .child(idle("db"))
        .child(idle("api"))
        .build()
        .unwrap();
    let pool = DynamicSupervisor::builder("pool")
        .on_start(|h| {
            let h = h.clone();
            tokio::spawn(async move {
                h.start_child(idle("conn")).await.unwrap();
                h.start_child(idle("conn")).await.unwrap();
            });
        })
        .build()
        .unwrap();
    let root = Supervisor::builder("root")
        .child(idle("cache"))
        .child(ChildSpec::supervisor(services))
        .child(ChildSpec::dynamic(pool))
        .child(flaky())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    tokio::time::sleep(secs(4)).await; // flaky has failed; its restart is due at 13 s

    let tree = root.tree().await.unwrap();
    assert_eq!(tree.kind, TreeKind::Static(Strategy::OneForOne));
    let names: Vec<&str> = tree.children.iter().map(|c| &*c.id).collect();
    assert_eq!(names, ["cache", "services", "pool", "flaky"]);
    let cache = &tree.children[0];
    assert_eq!(cache.state, ChildState::Running);
    assert_eq!(cache.uptime, Some(secs(4)));
    let services = tree.children[1]
        .tree
        .as_deref()
        .expect("nested static subtree");
    assert_eq!(services.kind, TreeKind::Static(Strategy::RestForOne));
    assert_eq!(services.children.len(), 2);
    let pool = tree.children[2]
        .tree
        .as_deref()
        .expect("nested dynamic subtree");
    assert_eq!(pool.kind, TreeKind::Dynamic);
    assert_eq!(pool.children.len(), 2);
    let flaky = &tree.children[3];
    assert_eq!(flaky.state, ChildState::Restarting);
    assert_eq!(flaky.restart_in, Some(secs(9)));
    assert_eq!(flaky.uptime, None);
    assert!(matches!(flaky.last_exit, Some(ExitReason::Error(_))));

    let text = tree.to_string();
    let expected = "\
root (one_for_one)
├─ cache  running  up 4s
├─ services [rest_for_one]  running  up 4s
│  ├─ db  running  up 4s
│  └─ api  running  up 4s
├─ pool [dynamic]  running  up 4s
│  ├─ conn#1  running  up 4s
│  └─ conn#2  running  up 4s
└─ flaky  restarting  restart in 9s  last exit: error: lost its connection
";
    assert_eq!(text, expected, "\n{text}");

    tokio::time::sleep(secs(10)).await;
    let tree = root.tree().await.unwrap();
    let flaky = &tree.children[3];
    assert_eq!((flaky.state, flaky.restarts), (ChildState::Running, 1));
    assert!(root.shutdown().await.is_clean());
    assert!(root.tree().await.is_err(), "a gone supervisor answers Gone");
}
