//! The lease keeper: one thread per process with a small runtime of its own, where the
//! heartbeat and the watchdog of every pool on a multi-threaded runtime run. Jobs that block
//! their threads (`std::thread::sleep`, a synchronous client, a long computation in async
//! code) can starve every thread of the application's runtime; leases renewed here are kept
//! alive regardless, so the blocked jobs and everything beside them keep their leases and run
//! once. On a current-thread runtime (paused-time tests among them) the heartbeat stays on
//! the pool's runtime: blocking its one thread stops everything anyway.
//!
//! The thread lives as long as the process (an idle runtime parked on its driver costs
//! nothing), so connections a store opens from it stay usable.

use std::sync::OnceLock;

use tokio::runtime::{Handle, RuntimeFlavor};

/// The keeper's runtime (`None` if it could not be started: the heartbeat then runs on the
/// pool's runtime, as before).
static KEEPER: OnceLock<Option<Handle>> = OnceLock::new();

/// Where a pool running on the current runtime should keep its leases: the keeper's runtime
/// for a multi-threaded runtime, `None` (stay here) otherwise.
pub(crate) fn keeper() -> Option<Handle> {
    let current = Handle::try_current().ok()?;
    if current.runtime_flavor() != RuntimeFlavor::MultiThread {
        return None;
    }
    KEEPER.get_or_init(start).clone()
}

/// Starts the keeper's thread and runtime; waits (a few microseconds, once per process) for
/// its handle.
fn start() -> Option<Handle> {
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("jobs-lease-keeper".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    let _ = handle_tx.send(Some(runtime.handle().clone()));
                    runtime.block_on(std::future::pending::<()>());
                }
                Err(error) => {
                    tracing::error!(%error, "could not build the lease keeper's runtime; heartbeats run on the pool's runtime");
                    let _ = handle_tx.send(None);
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the lease keeper's thread; heartbeats run on the pool's runtime");
        return None;
    }
    handle_rx.recv().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_multi_threaded_runtime_gets_the_one_keeper() {
        let handle = keeper().expect("started");
        assert_eq!(handle.runtime_flavor(), RuntimeFlavor::CurrentThread);
        let thread = handle
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .expect("ran");
        assert_eq!(thread.as_deref(), Some("jobs-lease-keeper"));
        assert!(keeper().is_some(), "the same keeper again");
    }

    #[tokio::test]
    async fn a_current_thread_runtime_keeps_its_heartbeat() {
        assert!(keeper().is_none());
    }
}
