//! The task supervisor's handle and the handle of one task.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::oneshot;

use super::result::{Slot, TaskError};
use super::{task_spec, Current};
use crate::error::panic_message;
use crate::{
    ChildContext, ChildCounts, ChildError, ChildId, ChildInfo, DynamicHandle, Restart, Shutdown,
    ShutdownReport, SupervisorError, SupervisorTree,
};

/// A handle to a task supervisor: starts ad-hoc async tasks under the tree and hands their
/// results back. Cheap to clone; get it from [`TaskSupervisorSpec::handle`](crate::TaskSupervisorSpec::handle)
/// or [`TaskSupervisorSpec::start`](crate::TaskSupervisorSpec::start).
///
/// Each task is a child of a dynamic supervisor (id `task`, one instance per task), so it is
/// counted in `which_children`, shown in the tree, and stopped with the tree: its token is
/// cancelled, it may linger within the task supervisor's shutdown bound, then it is aborted
/// and listed in the shutdown report's `aborted` paths.
///
/// ```
/// use supervisor::{ChildContext, TaskSupervisor};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tasks = TaskSupervisor::builder("tasks").build()?.start().await?;
/// let sum = tasks.spawn_and_await(|_ctx: ChildContext| async { Ok(1 + 2) }).await?;
/// assert_eq!(sum, 3);
/// assert!(tasks.shutdown().await.is_clean());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TaskSupervisor {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    shutdown: Shutdown,
    current: Current,
}

impl TaskSupervisor {
    pub(super) fn new(id: Arc<str>, shutdown: Shutdown) -> Self {
        let inner = Inner {
            id,
            shutdown,
            current: Current::default(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub(super) fn current(&self) -> Current {
        self.inner.current.clone()
    }

    /// The supervisor's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The dynamic supervisor running the tasks now (`None` before it first started).
    pub fn dynamic(&self) -> Option<DynamicHandle> {
        let current = self.inner.current.read();
        current.unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn running(&self) -> Result<DynamicHandle, SupervisorError> {
        self.dynamic().ok_or_else(|| SupervisorError::Gone {
            supervisor: self.inner.id.to_string(),
        })
    }

    /// Runs a task once (a temporary child); its result comes through the returned
    /// [`TaskHandle`]. The task gets a [`ChildContext`] whose token is cancelled when the
    /// tree shuts down.
    ///
    /// # Errors
    ///
    /// `MaxChildren`, `ShuttingDown`, `Gone` (the supervisor is not running).
    pub async fn spawn<T, F, Fut>(&self, task: F) -> Result<TaskHandle<T>, SupervisorError>
    where
        T: Send + 'static,
        F: FnOnce(ChildContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ChildError>> + Send + 'static,
    {
        let once = Mutex::new(Some(task));
        let run = move |ctx| {
            let task = once.lock().unwrap_or_else(PoisonError::into_inner).take();
            // a temporary child is started once, so its factory is called once
            async move {
                match task {
                    Some(task) => task(ctx).await,
                    None => Err("a one-off task was started twice".into()),
                }
            }
        };
        self.start(run, Restart::Temporary).await
    }

    /// Runs a task that is restarted (within the supervisor's intensity and restart
    /// policy) after it fails or panics; the handle gets the first successful result, or
    /// the last failure once it is no longer restarted.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub async fn spawn_restarting<T, F, Fut>(
        &self,
        task: F,
    ) -> Result<TaskHandle<T>, SupervisorError>
    where
        T: Send + 'static,
        F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ChildError>> + Send + 'static,
    {
        self.start(task, Restart::Transient).await
    }

    /// Runs a task once and waits for its result.
    ///
    /// # Errors
    ///
    /// [`TaskError`]: it failed, panicked, was stopped, or could not start.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not stop the task; it runs on under the supervisor.
    pub async fn spawn_and_await<T, F, Fut>(&self, task: F) -> Result<T, TaskError>
    where
        T: Send + 'static,
        F: FnOnce(ChildContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ChildError>> + Send + 'static,
    {
        self.spawn(task).await?.await
    }

    async fn start<T, F, Fut>(
        &self,
        task: F,
        restart: Restart,
    ) -> Result<TaskHandle<T>, SupervisorError>
    where
        T: Send + 'static,
        F: Fn(ChildContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, ChildError>> + Send + 'static,
    {
        let (slot, rx) = Slot::new();
        let factory = move |ctx: ChildContext| run(slot.clone(), task(ctx));
        let spec = task_spec(factory, restart, self.inner.shutdown);
        let id = self.running()?.start_child(spec).await?;
        Ok(TaskHandle { id, rx })
    }

    /// Stops a task (its token is cancelled, then it is aborted after the bound).
    ///
    /// # Errors
    ///
    /// As [`DynamicHandle::terminate_child`].
    pub async fn terminate(&self, task: ChildId) -> Result<(), SupervisorError> {
        self.running()?.terminate_child(task).await
    }

    /// Lists the running (and restarting) tasks.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.running()?.which_children().await
    }

    /// Counts the tasks.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.running()?.count_children().await
    }

    /// The supervisor and its tasks as a tree.
    ///
    /// # Errors
    ///
    /// `Gone`.
    pub async fn tree(&self) -> Result<SupervisorTree, SupervisorError> {
        self.running()?.tree().await
    }

    /// Stops every task (each within the shutdown bound, then aborted) and ends the
    /// supervisor; the report lists the tasks that had to be aborted.
    pub async fn shutdown(&self) -> ShutdownReport {
        match self.running() {
            Ok(h) => h.shutdown().await,
            Err(e) => ShutdownReport::gone(self.inner.id.clone(), e),
        }
    }

    /// Like [`shutdown`](Self::shutdown), escalating to a kill after `bound`.
    pub async fn shutdown_within(&self, bound: Duration) -> ShutdownReport {
        match self.running() {
            Ok(h) => h.shutdown_within(bound).await,
            Err(e) => ShutdownReport::gone(self.inner.id.clone(), e),
        }
    }
}

/// One run of a task: its outcome goes to the slot; an error or panic is also the child's
/// abnormal exit (so a restarting task is restarted).
async fn run<T>(
    slot: Arc<Slot<T>>,
    task: impl Future<Output = Result<T, ChildError>> + Send,
) -> Result<(), ChildError> {
    match AssertUnwindSafe(task).catch_unwind().await {
        Ok(Ok(value)) => {
            slot.done(value);
            Ok(())
        }
        Ok(Err(e)) => {
            let e: Arc<dyn std::error::Error + Send + Sync> = Arc::from(e);
            slot.failed(TaskError::Failed(e.clone()));
            Err(Box::new(e))
        }
        Err(payload) => {
            slot.failed(TaskError::Panicked(panic_message(&*payload)));
            std::panic::resume_unwind(payload)
        }
    }
}

impl fmt::Debug for TaskSupervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSupervisor")
            .field("id", &self.inner.id)
            .field("running", &self.dynamic().is_some_and(|h| !h.is_finished()))
            .finish()
    }
}

/// A running task: await it for its result. Dropping it does not stop the task.
pub struct TaskHandle<T> {
    id: ChildId,
    rx: oneshot::Receiver<Result<T, TaskError>>,
}

impl<T> TaskHandle<T> {
    /// The task's instance id (for [`TaskSupervisor::terminate`]).
    pub fn id(&self) -> ChildId {
        self.id
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(TaskError::Stopped)))
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle").field("id", &self.id).finish()
    }
}
