//! The last child of a pool's tree: it starts once every other child has, so it announces
//! the started pool; and it stops first, so it starts the pool's two-phase shutdown (stop
//! fetching, tell running jobs) before the supervisor stops the other children in reverse
//! start order. That makes the pool's own tree shut down correctly however it is stopped:
//! [`Pool::shutdown`](super::Pool::shutdown), `supervisor::run_until`, or a parent tree.

use std::sync::{Arc, OnceLock};

use supervisor::{ChildContext, ChildError, SupervisorHandle};
use tokio::sync::watch;

use crate::pool::{Pool, PoolError, PoolView};

/// Where a nested pool announces each incarnation: the sending side of [`PoolStarted`].
pub(crate) type Announcer = watch::Sender<Option<Pool>>;

/// What the lifecycle child works with.
#[derive(Clone, Debug)]
pub(crate) struct Lifecycle {
    /// The pool's parts (its stop tokens among them).
    pub(crate) view: PoolView,
    /// The handle of this incarnation's supervisor, set when it starts (before its children).
    pub(crate) supervisor: Arc<OnceLock<SupervisorHandle>>,
    /// Where to announce the started pool, for a pool nested in an application's tree.
    pub(crate) announce: Option<Announcer>,
}

impl Lifecycle {
    /// Announces the pool, waits to be stopped, then starts the pool's shutdown.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        tracing::info!(worker_id = %self.view.worker_id, store = self.view.client.store().name(), "pool started");
        if let Some(announce) = &self.announce {
            match self.supervisor.get() {
                Some(handle) => {
                    announce.send_replace(Some(Pool::new(self.view.clone(), handle.clone())));
                }
                // on_start runs before any child starts, so the handle is always there.
                None => tracing::error!("the pool's supervisor handle is missing; not announced"),
            }
        }
        ctx.cancelled().await;
        tracing::info!(worker_id = %self.view.worker_id, "pool stopping: fetchers stop, running jobs get their grace");
        self.view.stops.shutdown.cancel();
        if let Some(announce) = &self.announce {
            announce.send_replace(None);
        }
        Ok(())
    }
}

/// The pool of a [`PoolSpec`](super::PoolSpec) nested in an application's supervision tree,
/// delivered once it has started, and again after every restart. Cheap to clone.
///
/// ```no_run
/// # async fn demo(spec: jobs::PoolSpec) -> Result<(), Box<dyn std::error::Error>> {
/// let (pool_child, mut started) = spec.child_spec();
/// let app = supervisor::Supervisor::builder("app").child(pool_child).build()?.start().await?;
/// let pool = started.wait().await?; // no polling: resolves when the pool's tree has started
/// pool.client().enqueue(&Welcome { user: 42 }).await?;
/// # let _ = app; Ok(()) }
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Welcome { user: i64 }
/// # impl jobs::JobArgs for Welcome { const KIND: &'static str = "welcome"; }
/// ```
#[derive(Clone, Debug)]
pub struct PoolStarted {
    rx: watch::Receiver<Option<Pool>>,
}

impl PoolStarted {
    pub(crate) fn channel() -> (Announcer, Self) {
        let (tx, rx) = watch::channel(None);
        (tx, PoolStarted { rx })
    }

    /// The pool running now, if any (`None` before it starts, while it stops or restarts).
    pub fn current(&self) -> Option<Pool> {
        self.rx.borrow().clone()
    }

    /// The pool once it runs: at once if it runs now, else when its tree has started.
    ///
    /// # Errors
    ///
    /// [`PoolError::Gone`] if the pool's child spec was dropped (its tree ended) first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&mut self) -> Result<Pool, PoolError> {
        let pool = self
            .rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| PoolError::Gone)?;
        pool.clone().ok_or(PoolError::Gone)
    }

    /// The pool of the next start after the one last returned by [`wait`](Self::wait) or
    /// `next`: after the parent restarted the pool, the new pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::Gone`] if the pool's child spec was dropped (its tree ended) first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn next(&mut self) -> Result<Pool, PoolError> {
        loop {
            self.rx.changed().await.map_err(|_| PoolError::Gone)?;
            if let Some(pool) = self.rx.borrow_and_update().clone() {
                return Ok(pool);
            }
        }
    }
}
