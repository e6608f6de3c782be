//! The fetcher of one queue: claims jobs in batches while the queue has room.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};

use crate::client::Client;
use crate::context::{RunEnv, RunState};
use crate::pool::books::Books;
use crate::pool::channels::Runs;
use crate::pool::quarantine::Lane;
use crate::pool::queues::{ClaimSettings, QueueState};
use crate::store::JobClaimParams;

/// After a claim that came back short (the queue was drained), a wake-up claims no sooner
/// than this after it: at most 50 claims a second per queue on wake-ups, however many
/// notifications arrive (a flood of spurious `NOTIFY`s, or enqueues that other processes
/// win), while a wake-up after a quiet spell claims at once.
pub(crate) const WAKE_CLAIM_GAP: Duration = Duration::from_millis(20);

/// What the fetcher of one queue works with.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    pub(crate) queue: Arc<QueueState>,
    /// The store and clock to claim with.
    pub(crate) client: Client,
    /// The lease owner the claims record.
    pub(crate) owner: Arc<str>,
    pub(crate) claim: ClaimSettings,
    /// The kinds this pool has workers for: the claims take only those.
    pub(crate) kinds: Arc<[String]>,
    /// The quarantine lane: no claim while a suspect waits for it or holds it.
    pub(crate) lane: Arc<Lane>,
    pub(crate) poll_interval: Duration,
    /// Cancelled by shutdown or drain.
    pub(crate) stop_fetching: tokio_util::sync::CancellationToken,
    /// What each run it starts gets (its lease length among it).
    pub(crate) run_env: Arc<RunEnv>,
    /// Where claimed runs are booked...
    pub(crate) books: Arc<Books>,
    /// ...and handed to the executor.
    pub(crate) runs: Runs,
}

impl Fetcher {
    /// Claims jobs until shutdown or drain. A store error (logged by the store facade) ends
    /// the child with that error: its supervisor restarts it after a delay. A claim in
    /// flight is never cancelled midway (that could orphan claimed jobs until their lease
    /// expires).
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        // Jobs became available while the buffer was full (maybe more urgent ones).
        let mut woken = false;
        // When the last claim started, if it came back short.
        let mut drained_at: Option<tokio::time::Instant> = None;
        loop {
            if self.stop_fetching.is_cancelled() || ctx.is_cancelled() {
                // Drained: stay idle until stopped, so a permanent child is not restarted.
                ctx.cancelled().await;
                return Ok(());
            }
            let room = self.queue.claim_room(&self.claim, woken);
            if room == 0 {
                tokio::select! {
                    () = self.queue.room.notified() => {}
                    () = self.queue.wake.notified() => woken = true,
                    () = self.stop_fetching.cancelled() => {}
                    () = ctx.cancelled() => {}
                }
                continue;
            }
            // While a suspect waits for the lane or runs alone, claim nothing.
            if self.lane.try_read().is_err() {
                tokio::select! {
                    _shared = self.lane.read() => {}
                    () = self.stop_fetching.cancelled() => continue,
                    () = ctx.cancelled() => continue,
                }
            }
            let gap_ends = drained_at.map(|at| at + WAKE_CLAIM_GAP);
            if let Some(ready) = gap_ends.filter(|ready| *ready > tokio::time::Instant::now()) {
                tokio::select! {
                    () = tokio::time::sleep_until(ready) => {}
                    () = self.stop_fetching.cancelled() => continue,
                    () = ctx.cancelled() => continue,
                }
            }
            woken = false;
            let started = tokio::time::Instant::now();
            let claimed = self.claim(room).await?;
            drained_at = (claimed < room).then_some(started);
            if claimed < room {
                tokio::select! {
                    () = self.queue.wake.notified() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                    () = self.stop_fetching.cancelled() => {}
                    () = ctx.cancelled() => {}
                }
            }
        }
    }

    /// One claim round trip; returns how many jobs it got.
    async fn claim(&self, limit: usize) -> Result<usize, ChildError> {
        if self.kinds.is_empty() {
            return Ok(0); // a pool without workers claims nothing
        }
        // Taken before `now`, so the run's own lease deadline never falls after the store's.
        let sent = tokio::time::Instant::now();
        let params = JobClaimParams {
            queue: self.queue.name.clone(),
            owner: self.owner.to_string(),
            limit,
            lease_ttl: self.run_env.lease_ttl,
            now: self.client.clock().now(),
            kinds: Some(Arc::clone(&self.kinds)),
            suspects: false,
        };
        let started = std::time::Instant::now();
        let claimed = self.client.store().job_claim(params).await?;
        self.queue.metrics.claim_seconds.record(started.elapsed());
        let count = claimed.len();
        for job in claimed {
            tracing::debug!(job_id = %job.record.id, queue = %self.queue.name, "claimed");
            let run = Arc::new(RunState::new(job, Arc::clone(&self.run_env), sent));
            self.books.admit(&self.queue, &run);
            self.runs.send(run);
        }
        Ok(count)
    }
}
