//! A validated pool declaration: started on its own, or nested as a child in an
//! application's own supervision tree.

use std::sync::Arc;

use supervisor::{ChildContext, ChildKind, ChildSpec, Restart};

use crate::client::Client;
use crate::pool::hooks::ExhaustedHook;
use crate::pool::lifecycle::PoolStarted;
use crate::pool::tree::Parts;
use crate::pool::{Pool, PoolConfig, PoolError, POOL_SUPERVISOR};
use crate::worker::Registry;

/// What a pool is made of, validated; each start makes fresh [`Parts`] from it.
pub(super) struct Plan {
    pub(super) client: Client,
    pub(super) config: PoolConfig,
    pub(super) registry: Registry,
    pub(super) owner: Arc<str>,
    pub(super) queues: Vec<(String, usize)>,
    pub(super) exhausted_hook: Option<ExhaustedHook>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("store", &self.client.store().name())
            .field("workers", &self.registry)
            .field("queues", &self.queues)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// Fresh parts for an incarnation of the pool that starts now.
    fn starting(&self) -> Parts {
        let kinds: Vec<_> = self.registry.kinds().collect();
        tracing::info!(worker_id = %self.owner, store = self.client.store().name(), ?kinds, "pool starting");
        self.parts()
    }

    /// Fresh parts for one incarnation of the pool.
    pub(super) fn parts(&self) -> Parts {
        Parts::new(
            self.client.clone(),
            &self.config,
            self.registry.clone(),
            Arc::clone(&self.owner),
            self.queues.clone(),
            self.exhausted_hook.clone(),
        )
    }
}

/// A validated pool, from [`PoolBuilder::build`](super::PoolBuilder::build): start it as a
/// tree of its own with [`start`](Self::start), or make it a child of your application's
/// supervision tree with [`child_spec`](Self::child_spec). Cheap to clone.
///
/// In a tree, the order of the children decides the shutdown: a child started after the
/// pool (an HTTP server that enqueues) is stopped before it; then the pool stops fetching,
/// gives running jobs their grace period, and releases what is left.
///
/// ```no_run
/// use std::time::Duration;
/// use supervisor::{ChildSpec, Supervisor};
///
/// # async fn demo(store: std::sync::Arc<dyn jobs::store::Store>, http: ChildSpec) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
/// let (pool, mut started) = jobs::Pool::builder(store).queue("default", 10).build()?.child_spec();
/// let app = Supervisor::builder("app")
///     .child(pool) // started first, stopped last
///     .child(http) // started after the pool, stopped before it
///     .build()?
///     .start()
///     .await?;
/// let client = started.wait().await?.client();
/// # let _ = client;
/// let outcome = supervisor::run_until_signal(app, Duration::from_secs(28)).await?;
/// Ok(outcome.exit_code())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a pool spec does nothing until started or nested in a tree"]
pub struct PoolSpec {
    pub(super) plan: Arc<Plan>,
}

impl PoolSpec {
    /// The pool as a child of another supervisor, and where its pool is delivered.
    ///
    /// The child is a [`ChildKind::Supervisor`], permanent, id `jobs-pool`, ready once the
    /// pool's own children have all started; stopping it runs the pool's two-phase shutdown
    /// (bounded by [`PoolConfig::shutdown_timeout`] through its children's own bounds). Each
    /// (re)start builds the pool afresh from this spec and delivers it to [`PoolStarted`].
    /// When the pool's own tree exceeds its [`PoolConfig::intensity`], its exit escalates to
    /// its parent like any nested supervisor's. Each start is a new [`Pool`]: a client keeps
    /// working across restarts, but per-pool handles (`subscribe`, `busy`, `drain`) belong to
    /// one incarnation; take fresh ones from [`PoolStarted::next`] after a restart.
    ///
    /// A second signal given to `supervisor::run_until_signal` kills the whole application
    /// tree at once: jobs the pool was running are then not released but rescued once their
    /// leases expire. [`Pool::run_until_signal`] (a pool on its own) skips the grace period
    /// instead and still releases them.
    pub fn child_spec(&self) -> (ChildSpec, PoolStarted) {
        let (announce, started) = PoolStarted::channel();
        let plan = Arc::clone(&self.plan);
        let child = ChildSpec::new(POOL_SUPERVISOR, move |ctx: ChildContext| {
            let plan = Arc::clone(&plan);
            let announce = announce.clone();
            async move {
                let parts = plan.starting();
                let tree = parts.tree(&plan.config, Some(announce))?;
                tree.run_as_child(ctx).await
            }
        })
        .kind(ChildKind::Supervisor)
        .restart(Restart::Permanent)
        .wait_for_ready();
        (child, started)
    }

    /// Starts the pool's supervision tree on its own (not in a tree of yours).
    ///
    /// # Errors
    ///
    /// [`PoolError::Supervisor`] if the tree fails to start.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future may leave the pool running with no handle.
    pub async fn start(&self) -> Result<Pool, PoolError> {
        let plan = &self.plan;
        let parts = plan.starting();
        let supervisor = parts
            .tree(&plan.config, None)?
            .start()
            .await
            .map_err(PoolError::Supervisor)?;
        Ok(Pool::new(parts.view(&plan.config), supervisor))
    }
}
