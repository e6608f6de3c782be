//! Delivering a task's result to whoever awaits its handle.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::SupervisorError;

/// A supervised task ended without a result.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task returned an error (for a restarting task: the last one, once it is not
    /// restarted any more).
    #[error("task failed: {0}")]
    Failed(#[source] Arc<dyn StdError + Send + Sync + 'static>),
    /// The task panicked; the payload is the panic message.
    #[error("task panicked: {0}")]
    Panicked(String),
    /// The task was stopped before it finished: terminated, aborted after its shutdown
    /// bound, or its supervisor ended.
    #[error("task was stopped before it finished")]
    Stopped,
    /// The task could not be started.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// Where a task's outcome goes. Shared by every run of the task; when the last run and the
/// supervisor's record are gone without a result, the awaiting handle gets the last error
/// (or `Stopped`).
pub(crate) struct Slot<T> {
    tx: Mutex<Option<oneshot::Sender<Result<T, TaskError>>>>,
    last: Mutex<Option<TaskError>>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> (Arc<Self>, oneshot::Receiver<Result<T, TaskError>>) {
        let (tx, rx) = oneshot::channel();
        let slot = Self {
            tx: Mutex::new(Some(tx)),
            last: Mutex::new(None),
        };
        (Arc::new(slot), rx)
    }

    /// The task finished with a value.
    pub(crate) fn done(&self, value: T) {
        // the critical sections only take or replace an option: a poisoned lock is consistent
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(Ok(value));
        }
    }

    /// A run failed; it may be restarted, so this is only delivered if nothing follows.
    pub(crate) fn failed(&self, error: TaskError) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        let tx = self
            .tx
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let last = self
            .last
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(tx) = tx {
            let _ = tx.send(Err(last.unwrap_or(TaskError::Stopped)));
        }
    }
}
