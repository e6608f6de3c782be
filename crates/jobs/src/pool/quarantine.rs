//! The quarantine: a process-wide lane of one where suspects run alone.
//!
//! A job whose lease expired is a *suspect* (its process died or froze while running it,
//! perhaps because of another job running beside it). The normal claim never takes a
//! suspect. This child claims them one at a time and runs each alone: it waits until every
//! other run of the process has ended, and no other run starts (the fetchers do not claim)
//! until the suspect's run is over. If the process dies now, the suspect is the only job it
//! was running, so the store charges the rescue to it alone; the jobs it had claimed but not
//! started are merely made suspects, uncharged.

use std::sync::Arc;
use std::time::Duration;

use supervisor::{ChildContext, ChildError};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::Client;
use crate::context::{RunEnv, RunState};
use crate::pool::books::Books;
use crate::pool::queues::Queues;
use crate::pool::run::{job_span, Runner};
use crate::store::JobClaimParams;

/// The lane: every normal run holds it shared while it runs, a suspect's run holds it
/// exclusively (tokio's lock is fair: once a suspect waits, no new shared holder starts).
pub(crate) type Lane = RwLock<()>;

/// What the quarantine child works with.
#[derive(Clone, Debug)]
pub(crate) struct Quarantine {
    pub(crate) client: Client,
    /// The lease owner the claims record.
    pub(crate) owner: Arc<str>,
    /// The kinds this pool has workers for.
    pub(crate) kinds: Arc<[String]>,
    pub(crate) queues: Arc<Queues>,
    /// How long to wait between looks when there was no suspect.
    pub(crate) poll_interval: Duration,
    /// Cancelled by shutdown or drain.
    pub(crate) stop_fetching: CancellationToken,
    pub(crate) run_env: Arc<RunEnv>,
    pub(crate) books: Arc<Books>,
    pub(crate) runner: Arc<Runner>,
}

impl Quarantine {
    /// Claims and runs suspects, one at a time, until shutdown or drain. A store error ends
    /// the child with that error (its supervisor restarts it after a delay); a run in progress
    /// is released by its drop guard if the child is stopped before it ends.
    pub(crate) async fn run(self, ctx: ChildContext) -> Result<(), ChildError> {
        loop {
            if self.stop_fetching.is_cancelled() || ctx.is_cancelled() {
                ctx.cancelled().await;
                return Ok(());
            }
            if let Some(run) = self.claim_one().await? {
                let span = job_span(&run.record, &self.owner, true);
                Arc::clone(&self.runner)
                    .execute_alone(run)
                    .instrument(span)
                    .await;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = self.stop_fetching.cancelled() => {}
                () = ctx.cancelled() => {}
            }
        }
    }

    /// One quarantine claim of one suspect, trying each queue in turn.
    async fn claim_one(&self) -> Result<Option<Arc<RunState>>, ChildError> {
        if self.kinds.is_empty() {
            return Ok(None); // a pool without workers claims nothing
        }
        for queue in self.queues.all() {
            // Taken before `now`, so the run's own lease deadline never falls after the store's.
            let sent = tokio::time::Instant::now();
            let params = JobClaimParams {
                queue: queue.name.clone(),
                owner: self.owner.to_string(),
                limit: 1,
                lease_ttl: self.run_env.lease_ttl,
                now: self.client.clock().now(),
                kinds: Some(Arc::clone(&self.kinds)),
                suspects: true,
            };
            let claimed = self.client.store().job_claim(params).await?;
            if let Some(job) = claimed.into_iter().next() {
                tracing::warn!(job_id = %job.record.id, kind = %job.record.kind,
                    rescues = job.record.rescues, queue = %queue.name,
                    "running a suspect alone in quarantine (its last lease expired)");
                let run = Arc::new(RunState::new(job, Arc::clone(&self.run_env), sent));
                self.books.admit(queue, &run);
                return Ok(Some(run));
            }
        }
        Ok(None)
    }
}
