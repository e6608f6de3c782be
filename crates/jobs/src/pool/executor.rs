//! The executor: runs every claimed job as its own task, and on shutdown gives them one
//! shared grace period before aborting and releasing the stragglers.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};
use tokio::task::JoinSet;
use tracing::Instrument;

use tokio_util::sync::CancellationToken;

use crate::context::RunState;
use crate::pool::channels::Inbox;
use crate::pool::run::{job_span, Runner};

/// How long aborted runs get to unwind (and release) before the executor gives up on them.
pub(crate) const ABORT_DRAIN: Duration = Duration::from_secs(1);

/// What the executor works with.
#[derive(Clone, Debug)]
pub(crate) struct Executor {
    /// Claimed runs from the fetchers.
    pub(crate) runs: Inbox<Arc<RunState>>,
    /// Runs each job to its outcome.
    pub(crate) runner: Arc<Runner>,
    /// How long running jobs get after shutdown starts.
    pub(crate) grace: Duration,
    /// Cancelled to skip the grace (and by the executor itself once it is over).
    pub(crate) hard_stop: CancellationToken,
    /// The pool's worker id, for the job spans.
    pub(crate) owner: Arc<str>,
}

impl Executor {
    /// Runs claimed jobs until stopped, then lingers for the grace period.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        let mut runs = self.runs.lock().await;
        let mut tasks = JoinSet::new();
        loop {
            tokio::select! {
                Some(run) = runs.recv() => self.spawn(&mut tasks, run),
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = ctx.cancelled() => break,
            }
        }
        // Fetchers stopped before us; jobs still queued here see the shutdown and release at
        // once.
        while let Ok(run) = runs.try_recv() {
            self.spawn(&mut tasks, run);
        }
        self.linger(&mut tasks).await;
        Ok(())
    }

    fn spawn(&self, tasks: &mut JoinSet<()>, run: Arc<RunState>) {
        let span = job_span(&run.record, &self.owner, false);
        tasks.spawn(Arc::clone(&self.runner).execute(run).instrument(span));
    }

    /// The close-down: running jobs get `grace` to finish or checkpoint; then (or at once on
    /// a hard stop) the rest are aborted, which releases them.
    async fn linger(&self, tasks: &mut JoinSet<()>) {
        let running = tasks.len();
        if running > 0 {
            tracing::info!(running, grace = ?self.grace, "waiting for running jobs");
        }
        tokio::select! {
            () = drain(tasks) => return,
            () = tokio::time::sleep(self.grace) => {
                tracing::warn!(running = tasks.len(), "grace period over; aborting and releasing running jobs");
            }
            () = self.hard_stop.cancelled() => {
                tracing::warn!(running = tasks.len(), "grace skipped; aborting and releasing running jobs");
            }
        }
        self.hard_stop.cancel();
        tasks.abort_all();
        if tokio::time::timeout(ABORT_DRAIN, drain(tasks))
            .await
            .is_err()
        {
            tracing::error!(stuck = tasks.len(), "jobs did not stop when aborted (blocking code?); their leases will expire and they will be rescued");
            tasks.detach_all();
        }
    }
}

async fn drain(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}
