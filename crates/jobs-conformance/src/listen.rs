//! Cases for wake-up listeners.

use std::sync::Arc;
use std::time::Duration;

use super::support::{at, new_job, Harness};
use jobs::store::Store;

/// If the store offers a listener, inserting an available job into a queue wakes it with
/// that queue's name within five seconds. (A store without a listener passes: the engine
/// polls it.)
pub async fn listener_wakes_on_insert(store: Arc<dyn Store>) {
    let h = Harness::new(store.clone());
    let listener = h.ok(h.store.listen().await, "listen");
    let Some(mut listener) = listener else {
        eprintln!(
            "{} store has no listener; listener_wakes_on_insert is vacuous",
            store.name()
        );
        return;
    };
    h.insert(vec![new_job("wake-me")], at(0)).await;
    let woken = tokio::time::timeout(Duration::from_secs(5), listener.next()).await;
    match woken {
        Ok(Ok(queue)) => assert_eq!(queue, "wake-me"),
        Ok(Err(error)) => panic!("{} listener failed: {error}", store.name()),
        Err(_) => panic!(
            "{} listener did not wake within 5 s of an insert",
            store.name()
        ),
    }
}
