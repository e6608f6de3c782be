//! Declaring a dynamic supervisor: its flags and `max_children`, validated up front.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{runtime, DynamicHandle};
use crate::flags::Flags;
use crate::{ChildContext, ChildKind, ChildSpec, Intensity, RestartPolicy, SpecError, StartError};

/// Entry point: [`DynamicSupervisor::builder`].
///
/// A dynamic supervisor starts with no children and runs many children added at run time
/// through its [`DynamicHandle`], each restarted on its own (one_for_one) under one shared
/// restart intensity. Children are light (one tokio task each, a few hundred bytes of
/// bookkeeping) and are stopped concurrently: shutting down 1,000 children with a 25 s grace
/// takes about 25 s, not 1,000 times that.
///
/// ```
/// use supervisor::{ChildContext, ChildSpec, DynamicSupervisor, Restart};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = DynamicSupervisor::builder("pool").max_children(100).build()?.start().await?;
/// let worker = ChildSpec::new("worker", |ctx: ChildContext| async move {
///     ctx.cancelled().await;
///     Ok(())
/// })
/// .restart(Restart::Temporary);
/// let first = pool.start_child(worker.clone()).await?;
/// pool.start_child(worker).await?;
/// assert_eq!(pool.count_children().await?.active, 2);
/// pool.terminate_child(first).await?;
/// assert!(pool.shutdown().await.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DynamicSupervisor;

impl DynamicSupervisor {
    /// Starts declaring a dynamic supervisor with this id.
    pub fn builder(id: impl Into<String>) -> DynamicSupervisorBuilder {
        DynamicSupervisorBuilder {
            spec: DynInner {
                flags: Flags::new(id),
                max_children: None,
                on_start: None,
            },
        }
    }
}

/// Called with the dynamic supervisor's handle every time it starts.
pub type OnDynamicStart = Arc<dyn Fn(&DynamicHandle) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct DynInner {
    pub(crate) flags: Flags,
    pub(crate) max_children: Option<usize>,
    pub(crate) on_start: Option<OnDynamicStart>,
}

/// Builds a [`DynamicSupervisorSpec`]; see [`DynamicSupervisor::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct DynamicSupervisorBuilder {
    spec: DynInner,
}

impl DynamicSupervisorBuilder {
    /// Limits the number of children (running or restarting); default: no limit.
    pub fn max_children(mut self, max: usize) -> Self {
        self.spec.max_children = Some(max);
        self
    }

    /// Sets the restart intensity shared by all children (default 1 restart in 5 s).
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.spec.flags.intensity = intensity;
        self
    }

    /// Sets the delay before restarts (default [`RestartPolicy::Immediate`]).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.spec.flags.restart_policy = policy;
        self
    }

    /// Sets how many events a slow subscriber may fall behind by (default 1024).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.spec.flags.event_capacity = capacity;
        self
    }

    /// Sets how long to wait for an aborted child's task to finish before reporting it as
    /// not stopped (default 100 ms).
    pub fn abort_grace(mut self, grace: Duration) -> Self {
        self.spec.flags.abort_grace = grace;
        self
    }

    /// Registers a callback given the handle each time the supervisor starts.
    pub fn on_start(mut self, f: impl Fn(&DynamicHandle) + Send + Sync + 'static) -> Self {
        self.spec.on_start = Some(Arc::new(f));
        self
    }

    /// Validates the declaration.
    ///
    /// # Errors
    ///
    /// [`SpecError`] for an empty id, a zero intensity period, `max_children(0)` or a zero
    /// event capacity.
    pub fn build(self) -> Result<DynamicSupervisorSpec, SpecError> {
        self.spec.flags.validate()?;
        if self.spec.max_children == Some(0) {
            let supervisor = self.spec.flags.id.to_string();
            return Err(SpecError::ZeroMaxChildren { supervisor });
        }
        Ok(DynamicSupervisorSpec {
            inner: Arc::new(self.spec),
        })
    }
}

impl fmt::Debug for DynamicSupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicSupervisorBuilder")
            .field("id", &self.spec.flags.id)
            .finish_non_exhaustive()
    }
}

/// A validated dynamic supervisor declaration; cheap to clone.
#[derive(Clone)]
#[must_use = "a spec does nothing until started or nested"]
pub struct DynamicSupervisorSpec {
    pub(crate) inner: Arc<DynInner>,
}

impl DynamicSupervisorSpec {
    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.flags.id
    }

    /// Starts the dynamic supervisor (with no children) on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StartError::Gone`] if its task could not run (the runtime is shutting down).
    pub async fn start(&self) -> Result<DynamicHandle, StartError> {
        runtime::start_top_level(self.clone()).await
    }
}

impl fmt::Debug for DynamicSupervisorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner;
        f.debug_struct("DynamicSupervisorSpec")
            .field("id", &s.flags.id)
            .field("max_children", &s.max_children)
            .field("intensity", &s.flags.intensity)
            .field("restart_policy", &s.flags.restart_policy)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A dynamic supervisor as a child of another supervisor: id = the spec's id, kind
    /// supervisor, `Shutdown::Infinity`. Reach its handle with
    /// [`DynamicSupervisorBuilder::on_start`].
    pub fn dynamic(spec: DynamicSupervisorSpec) -> Self {
        let id = spec.inner.flags.id.clone();
        let factory: crate::spec::Factory = Arc::new(move |ctx: ChildContext| {
            let spec = spec.clone();
            Box::pin(async move { runtime::run_nested(spec, ctx).await })
        });
        Self::from_factory(id, factory, ChildKind::Supervisor)
    }
}

/// Rejects child specs a dynamic supervisor cannot run.
pub(crate) fn check_spec(supervisor: &str, spec: &ChildSpec) -> Result<(), SpecError> {
    let supervisor = supervisor.to_owned();
    if spec.id().is_empty() {
        return Err(SpecError::EmptyId { supervisor });
    }
    if spec.is_significant() {
        let child = spec.id().to_owned();
        return Err(SpecError::SignificantDynamicChild { supervisor, child });
    }
    Ok(())
}
