//! The completer: writes finished runs back to the store in batches (one round trip per
//! batch), retires them, and runs the exhausted hook for jobs that died.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::client::Client;
use crate::job::{JobRecord, JobState};
use crate::pool::books::Books;
use crate::pool::channels::{Completion, CompletionInbox};
use crate::pool::events::Events;
use crate::pool::hooks::Hooks;
use crate::pool::queues::Queues;
use crate::store::{FinishOutcome, JobCheckpointParams, JobFinish, JobFinishParams, StoreError};

/// Tries of the final flush at shutdown (the supervisor no longer restarts us then).
const FINAL_FLUSH_TRIES: u32 = 3;

/// What the completer works with.
#[derive(Clone, Debug)]
pub(crate) struct Completer {
    /// Finished runs, and a batch a failed write left.
    pub(crate) inbox: Arc<CompletionInbox>,
    /// The store and clock to write with.
    pub(crate) client: Client,
    /// The lease owner the writes are fenced with.
    pub(crate) owner: Arc<str>,
    /// The lease length an unsaved checkpoint's write renews.
    pub(crate) lease_ttl: Duration,
    /// At most this many finishes per write.
    pub(crate) finish_batch: usize,
    /// Where written runs are retired and releases noted.
    pub(crate) books: Arc<Books>,
    /// Runs the exhausted hook for jobs that died.
    pub(crate) hooks: Arc<Hooks>,
    /// The queues' metric handles, where written outcomes are counted.
    pub(crate) queues: Arc<Queues>,
    /// Where `Finished` events go.
    pub(crate) events: Arc<Events>,
}

impl Completer {
    /// Writes completions until stopped, then writes what is left. A store error (logged by
    /// the store facade) ends the child (the batch is kept for the next incarnation; the runs
    /// stay leased and heartbeated).
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        let mut completions = self.inbox.completions.lock().await;
        let left_over = self.inbox.take_unflushed();
        if !left_over.is_empty() {
            self.flush(left_over, Write::Again).await?;
        }
        loop {
            let first = tokio::select! {
                biased;
                Some(first) = completions.recv() => first,
                () = ctx.cancelled() => break,
            };
            let batch = batch_after(first, &mut completions, self.finish_batch);
            self.flush(batch, Write::First).await?;
        }
        self.final_flush(&mut completions).await;
        Ok(())
    }

    /// At shutdown: the executor has stopped, so every release is queued; write them all.
    async fn final_flush(&self, completions: &mut UnboundedReceiver<Completion>) {
        while let Ok(first) = completions.try_recv() {
            let mut batch = batch_after(first, completions, self.finish_batch);
            for attempt in 1..=FINAL_FLUSH_TRIES {
                match self.write(&batch).await {
                    Ok(applied) => {
                        let again = if attempt == 1 {
                            Write::First
                        } else {
                            Write::Again
                        };
                        self.settle(std::mem::take(&mut batch), applied, again)
                            .await;
                        break;
                    }
                    Err(_) => {
                        // The facade logged the error; this says what it means here.
                        tracing::error!(attempt, jobs = batch.len(),
                        "final write failed; if it keeps failing these jobs are rescued when their leases expire");
                        tokio::time::sleep(Duration::from_millis(100) * attempt).await;
                    }
                }
            }
        }
    }

    /// Writes one batch; on error keeps it for the next completer.
    async fn flush(&self, batch: Vec<Completion>, write_kind: Write) -> Result<(), StoreError> {
        match self.write(&batch).await {
            Ok(applied) => {
                self.settle(batch, applied, write_kind).await;
                Ok(())
            }
            Err(error) => {
                self.inbox.keep_unflushed(batch);
                Err(error)
            }
        }
    }

    /// Saves unwritten checkpoints of unfinished runs, then applies every finish in one call.
    async fn write(&self, batch: &[Completion]) -> Result<Vec<bool>, StoreError> {
        let now = self.client.clock().now();
        for completion in batch {
            if completion.outcome == FinishOutcome::Completed {
                continue;
            }
            if let Some((checkpoint, version)) = completion.run.unsaved_checkpoint() {
                let params = JobCheckpointParams {
                    owner: self.owner.to_string(),
                    lease: completion.run.lease,
                    checkpoint,
                    lease_ttl: self.lease_ttl,
                    now,
                };
                // Marked saved only once written: a failed write is retried with the batch.
                self.client.store().job_checkpoint(params).await?;
                completion.run.checkpoint_saved(version);
            }
        }
        let finishes = batch
            .iter()
            .map(|c| JobFinish {
                lease: c.run.lease,
                outcome: c.outcome.clone(),
            })
            .collect();
        let params = JobFinishParams {
            owner: self.owner.to_string(),
            finishes,
            now,
        };
        self.client.store().job_finish_many(params).await
    }

    /// Retires written runs and reports what they came to.
    async fn settle(&self, batch: Vec<Completion>, applied: Vec<bool>, write_kind: Write) {
        for (completion, applied) in batch.into_iter().zip(applied) {
            let record = &completion.run.record;
            let applied =
                applied || (write_kind == Write::Again && self.dead_already(&completion).await);
            if !applied {
                tracing::warn!(job_id = %record.id, "lease was lost before the result was written; another run owns the job");
            } else {
                self.recorded(&completion);
                match &completion.outcome {
                    FinishOutcome::Completed => tracing::debug!(job_id = %record.id, "completed"),
                    FinishOutcome::Retry { run_at, error } => {
                        tracing::info!(job_id = %record.id, %run_at, error = %error.message, "failed; will retry");
                    }
                    FinishOutcome::Snooze { run_at } => {
                        tracing::debug!(job_id = %record.id, %run_at, "snoozed")
                    }
                    FinishOutcome::Release => {
                        tracing::info!(job_id = %record.id, "released");
                        self.books.note_released(record.id);
                    }
                    FinishOutcome::Dead { error } => {
                        self.hooks.exhausted(dead_record(record, error.clone()))
                    }
                }
            }
            self.books.retire(&completion.run);
        }
    }

    /// Counts and announces an outcome the store recorded.
    fn recorded(&self, completion: &Completion) {
        let record = &completion.run.record;
        if let Some(queue) = self.queues.get(&record.queue) {
            queue.metrics.kind(&record.kind, |metrics| {
                metrics.finished(&completion.outcome)
            });
        }
        self.events.finished(&completion.run, &completion.outcome);
    }

    /// Whether a `Dead` finish the store rejected was in fact applied by an earlier write
    /// whose reply was lost: the job is dead under this run's lease, with this run's error
    /// last. (So the exhausted hook still runs, once.)
    async fn dead_already(&self, completion: &Completion) -> bool {
        let FinishOutcome::Dead { error } = &completion.outcome else {
            return false;
        };
        match self.client.store().job_get(completion.run.record.id).await {
            Ok(Some(job)) => {
                job.state == JobState::Dead
                    && job.claims == completion.run.lease.token
                    && job.errors.last() == Some(error)
            }
            Ok(None) => false,
            Err(_) => {
                tracing::warn!(job_id = %completion.run.record.id,
                    "could not check whether a rejected dead-set write had been applied");
                false
            }
        }
    }
}

/// Whether a batch is written for the first time, or again after a write that failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Write {
    First,
    /// The failed write may have committed with only its reply lost, so a finish the store
    /// rejects now may be one it already applied.
    Again,
}

/// `first` plus whatever else is already waiting, up to `max`.
fn batch_after(
    first: Completion,
    completions: &mut UnboundedReceiver<Completion>,
    max: usize,
) -> Vec<Completion> {
    let mut batch = vec![first];
    while batch.len() < max {
        match completions.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
    batch
}

/// The job as it is after a `Dead` finish, for the exhausted hook.
fn dead_record(claimed: &JobRecord, error: crate::job::AttemptError) -> JobRecord {
    let mut record = claimed.clone();
    record.state = JobState::Dead;
    record.attempts += 1;
    record.finalized_at = Some(error.at);
    record.lease_owner = None;
    record.lease_expires_at = None;
    record.errors.push(error);
    record
}
