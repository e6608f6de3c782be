//! The exhausted hook: the application's code for jobs that reached the dead set, run in
//! tasks the shutdown waits for.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::task::TaskTracker;

use crate::job::JobRecord;

/// The application's hook for jobs that reached the dead set.
pub(crate) type ExhaustedHook = Arc<dyn Fn(JobRecord) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs the exhausted hook, each call in its own tracked task.
pub(crate) struct Hooks {
    exhausted: Option<ExhaustedHook>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("exhausted", &self.exhausted.is_some())
            .field("running", &self.tasks.len())
            .finish()
    }
}

impl Hooks {
    pub(crate) fn new(exhausted: Option<ExhaustedHook>) -> Self {
        Hooks {
            exhausted,
            tasks: TaskTracker::new(),
        }
    }

    /// Logs a job that reached the dead set and runs the hook for it.
    pub(crate) fn exhausted(&self, job: JobRecord) {
        tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts,
            error = job.errors.last().map(|e| e.message.as_str()).unwrap_or(""), "job is dead");
        if let Some(hook) = &self.exhausted {
            self.tasks.spawn(hook(job));
        }
    }

    /// Takes no more hooks and waits up to `bound` for the running ones; whether they ended.
    pub(crate) async fn finish(&self, bound: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(bound, self.tasks.wait()).await.is_ok()
    }
}
