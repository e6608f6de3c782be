//! The task supervisor (Elixir's `Task.Supervisor`): ad-hoc async tasks with results, run
//! as children of a dynamic supervisor so that they are counted, shown in the tree, and
//! stopped with the tree.

mod handle;
mod result;

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use crate::{
    ChildContext, ChildKind, ChildSpec, DynamicHandle, DynamicSupervisor, DynamicSupervisorBuilder,
    DynamicSupervisorSpec, Intensity, RestartPolicy, Shutdown, SpecError, StartError,
};

pub use handle::{TaskHandle, TaskSupervisor};
pub use result::TaskError;

/// Builds a [`TaskSupervisorSpec`]; see [`TaskSupervisor::builder`].
#[must_use = "a builder does nothing until `build()`"]
pub struct TaskSupervisorBuilder {
    dynamic: DynamicSupervisorBuilder,
    id: Arc<str>,
    shutdown: Shutdown,
}

impl TaskSupervisor {
    /// Starts declaring a task supervisor with this id.
    pub fn builder(id: impl Into<String>) -> TaskSupervisorBuilder {
        let id: Arc<str> = Arc::from(id.into());
        TaskSupervisorBuilder {
            dynamic: DynamicSupervisor::builder(id.to_string()),
            id,
            shutdown: Shutdown::default(),
        }
    }
}

impl TaskSupervisorBuilder {
    /// How each task is stopped when the supervisor shuts down (or the task is terminated):
    /// by default its token is cancelled, it may linger 5 s, then it is aborted and
    /// reported in the [`ShutdownReport`](crate::ShutdownReport)'s `aborted` list.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Limits how many tasks run at once (default: no limit).
    pub fn max_tasks(mut self, max: usize) -> Self {
        self.dynamic = self.dynamic.max_children(max);
        self
    }

    /// The restart intensity for restarting tasks (default 1 restart in 5 s, as every
    /// supervisor); exceeding it ends the task supervisor.
    pub fn intensity(mut self, intensity: Intensity) -> Self {
        self.dynamic = self.dynamic.intensity(intensity);
        self
    }

    /// The delay before a restarting task is run again (default at once).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.dynamic = self.dynamic.restart_policy(policy);
        self
    }

    /// Validates the declaration.
    ///
    /// # Errors
    ///
    /// As [`DynamicSupervisorBuilder::build`].
    pub fn build(self) -> Result<TaskSupervisorSpec, SpecError> {
        let handle = TaskSupervisor::new(self.id, self.shutdown);
        let current = handle.current();
        let dynamic = self
            .dynamic
            .on_start(move |h| {
                *current.write().unwrap_or_else(PoisonError::into_inner) = Some(h.clone());
            })
            .build()?;
        Ok(TaskSupervisorSpec { dynamic, handle })
    }
}

impl fmt::Debug for TaskSupervisorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSupervisorBuilder")
            .field("id", &self.id)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// The running dynamic supervisor behind a task supervisor handle, replaced on each start.
pub(crate) type Current = Arc<RwLock<Option<DynamicHandle>>>;

/// A validated task supervisor declaration: start it on its own, or put
/// [`ChildSpec::task_supervisor`] in a tree. Its [`handle`](Self::handle) reaches whichever
/// run is current, so it can be handed out before the tree starts and survives restarts.
#[derive(Clone, Debug)]
#[must_use = "a spec does nothing until started or nested"]
pub struct TaskSupervisorSpec {
    dynamic: DynamicSupervisorSpec,
    handle: TaskSupervisor,
}

impl TaskSupervisorSpec {
    /// The supervisor's id.
    pub fn id(&self) -> &str {
        self.dynamic.id()
    }

    /// The handle to spawn tasks with; valid once the supervisor runs (before that, calls
    /// answer [`SupervisorError::Gone`](crate::SupervisorError::Gone)).
    pub fn handle(&self) -> TaskSupervisor {
        self.handle.clone()
    }

    /// Starts the task supervisor on its own on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`StartError::Gone`] if its task could not run.
    pub async fn start(&self) -> Result<TaskSupervisor, StartError> {
        let running = self.dynamic.start().await?;
        // the supervisor's own `on_start` publishes the same handle once its task runs
        *self
            .handle
            .current()
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(running);
        Ok(self.handle())
    }
}

impl ChildSpec {
    /// A task supervisor as a child of another supervisor (kind supervisor,
    /// `Shutdown::Infinity`: its tasks are bounded by their own shutdown).
    pub fn task_supervisor(spec: &TaskSupervisorSpec) -> Self {
        let child = Self::dynamic(spec.dynamic.clone());
        debug_assert_eq!(child.child_kind(), ChildKind::Supervisor);
        child
    }
}

/// A task's body as a child factory, for [`ChildSpec::new`].
pub(crate) fn task_spec<F, Fut>(
    factory: F,
    restart: crate::Restart,
    shutdown: Shutdown,
) -> ChildSpec
where
    F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), crate::ChildError>> + Send + 'static,
{
    ChildSpec::new("task", factory)
        .restart(restart)
        .shutdown(shutdown)
}
