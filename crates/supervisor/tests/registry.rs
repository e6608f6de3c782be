//! The registry: entries follow restarts, vanish on final stops (also in group restarts).

use std::time::Duration;

use supervisor::{
    Address, ChildContext, ChildSpec, DynamicSupervisor, Inbox, Keys, Registry, RegistryError,
    ReplyTo, Restart, RestartPolicy, Strategy, Supervisor,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

enum Msg {
    Crash,
    Whoami(ReplyTo<u32>),
}

/// Answers `Whoami` with its restart count, crashes on `Crash`.
fn child(id: &str) -> (ChildSpec, Address<Msg>) {
    ChildSpec::with_mailbox(
        id,
        8,
        |ctx: ChildContext, mut inbox: Inbox<Msg>| async move {
            while let Some(msg) = inbox.recv().await {
                match msg {
                    Msg::Crash => return Err("crash".into()),
                    Msg::Whoami(r) => {
                        let _ = r.send(ctx.restarts());
                    }
                }
            }
            Ok(())
        },
    )
    .unwrap()
}

async fn whoami(registry: &Registry<&'static str, Msg>, key: &str) -> u32 {
    let addr = registry.lookup(key).expect("registered");
    addr.call(Msg::Whoami, secs(30)).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn entries_follow_restarts_and_vanish_when_the_child_is_terminated() {
    let registry = Registry::new(Keys::Unique);
    let (spec, addr) = child("cache");
    registry.register("cache", &addr).unwrap();
    let h = Supervisor::builder("root")
        .restart_policy(RestartPolicy::Fixed(secs(5)))
        .child(spec)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(whoami(&registry, "cache").await, 0);
    addr.send(Msg::Crash).await.unwrap();
    settle().await;
    // during the delayed restart the entry stays, and a call made now is served after it
    assert!(registry.lookup("cache").unwrap().same(&addr));
    assert_eq!(whoami(&registry, "cache").await, 1);
    h.terminate_child("cache").await.unwrap();
    assert!(registry.lookup("cache").is_none());
    assert!(registry.is_empty());
    assert!(h.shutdown().await.is_clean());
}

#[tokio::test(start_paused = true)]
async fn group_restarts_keep_entries_of_restarted_children_and_drop_temporary_ones() {
    for strategy in [Strategy::RestForOne, Strategy::OneForAll] {
        let registry = Registry::new(Keys::Unique);
        let (a, addr_a) = child("a");
        let (b, addr_b) = child("b");
        let (c, addr_c) = child("c");
        for (key, addr) in [("a", &addr_a), ("b", &addr_b), ("c", &addr_c)] {
            registry.register(key, addr).unwrap();
        }
        let h = Supervisor::builder("root")
            .strategy(strategy)
            .restart_policy(RestartPolicy::Fixed(secs(2)))
            .child(a)
            .child(b.restart(Restart::Temporary))
            .child(c)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        addr_a.send(Msg::Crash).await.unwrap();
        settle().await;
        // the temporary sibling was stopped for good by the group restart
        assert!(registry.lookup("b").is_none(), "{strategy:?}");
        assert_eq!(registry.len(), 2, "{strategy:?}");
        assert_eq!(whoami(&registry, "a").await, 1, "{strategy:?}");
        assert_eq!(whoami(&registry, "c").await, 1, "{strategy:?}");
        assert!(h.shutdown().await.is_clean());
        // the supervisor is gone: every entry with it
        assert!(registry.is_empty(), "{strategy:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn unique_keys_refuse_a_second_address_and_duplicate_keys_keep_all() {
    let unique = Registry::new(Keys::Unique);
    let (_s1, a1) = child("one");
    let (_s2, a2) = child("two");
    unique.register("k", &a1).unwrap();
    unique.register("k", &a1).unwrap(); // the same address again: a no-op
    let err = unique.register("k", &a2).unwrap_err();
    assert_eq!(
        err,
        RegistryError::AlreadyRegistered {
            key: "\"k\"".into(),
            child: "one".into()
        }
    );
    assert_eq!(unique.len(), 1);

    let topic = Registry::new(Keys::Duplicate);
    topic.register("t", &a1).unwrap();
    topic.register("t", &a2).unwrap();
    let all: Vec<String> = topic
        .lookup_all("t")
        .iter()
        .map(|a| a.child().to_owned())
        .collect();
    assert_eq!(all, ["one", "two"]);
    drop(_s1); // child "one" can never run: its entries go from both registries
    assert_eq!(topic.lookup_all("t").len(), 1);
    assert!(unique.lookup("k").is_none());
    assert!(matches!(
        unique.register("k", &a1),
        Err(RegistryError::Stopped { .. })
    ));
    assert!(topic.unregister(&"t", &a2));
    assert!(topic.is_empty());
}

#[tokio::test(start_paused = true)]
async fn dynamic_children_register_themselves_on_every_start() {
    let registry: Registry<String, Msg> = Registry::new(Keys::Unique);
    let pool = DynamicSupervisor::builder("pool")
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        let reg = registry.clone();
        let (spec, _addr) = ChildSpec::with_mailbox(
            format!("session-{n}"),
            4,
            move |ctx: ChildContext, mut inbox: Inbox<Msg>| {
                let reg = reg.clone();
                async move {
                    reg.register(ctx.id().to_owned(), inbox.address())?;
                    while let Some(msg) = inbox.recv().await {
                        match msg {
                            Msg::Crash => return Err("crash".into()),
                            Msg::Whoami(r) => {
                                let _ = r.send(ctx.restarts());
                            }
                        }
                    }
                    Ok(())
                }
            },
        )
        .unwrap();
        ids.push(pool.start_child(spec).await.unwrap());
    }
    settle().await;
    assert_eq!(registry.len(), 3);
    let s1 = registry.lookup("session-1").unwrap();
    s1.send(Msg::Crash).await.unwrap();
    settle().await;
    assert_eq!(s1.call(Msg::Whoami, secs(1)).await.unwrap(), 1);
    assert_eq!(
        registry.len(),
        3,
        "re-registering after a restart is a no-op"
    );
    pool.terminate_child(ids[1]).await.unwrap();
    assert!(registry.lookup("session-1").is_none());
    assert_eq!(registry.len(), 2);
    assert!(pool.shutdown().await.is_clean());
    assert!(registry.is_empty());
}
