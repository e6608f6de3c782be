//! [`MemoryStore`]: the in-process [`Store`], for tests and embedded use.
//!
//! All jobs live in one `std::sync::Mutex` around an indexed structure, so every operation is
//! atomic (a batch is applied under one lock acquisition) and costs `O(k log n)` for `k`
//! affected jobs:
//!
//! * one ordered set per queue of its available jobs, keyed by `(priority desc, run_at, id)`:
//!   a claim takes the first `limit` entries it may take (kind, suspect or not);
//! * one ordered set of running jobs by lease expiry, for the rescuer;
//! * one ordered set of scheduled jobs by `run_at`, for the scheduler;
//! * one ordered set of terminal jobs by `finalized_at`, for pruning;
//! * per-queue counts per state, for [`Store::queue_stats`].
//!
//! The lock is never held across an `.await`: every operation runs to completion inside one
//! poll. Wake-ups ([`Store::listen`]) go through a tokio broadcast channel of queue names.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::job::{AttemptError, JobId, JobRecord, JobState};
use crate::store::poison_pill_message;
use crate::store::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams,
    JobExpireUnknownKindsParams, JobFinish, JobFinishParams, JobHeartbeatParams, JobInsertParams,
    JobListParams, JobListener, JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams,
    Lease, NewJob, QueueStats, RescueOutcome, RescuedJob, Store, StoreError, UnknownKinds,
};
use crate::time::Timestamp;

/// How many wake-ups a slow listener may fall behind before it wakes every queue instead.
const WAKE_CAPACITY: usize = 1024;

/// An in-process job store: fast, atomic, and gone when the process exits.
///
/// Use it for tests, for examples, and for embedded use where losing queued jobs on a crash
/// is acceptable. It passes the same conformance suite as the durable stores. Cloning is
/// cheap and clones share the same jobs.
///
/// # Examples
///
/// ```
/// use jobs::{MemoryStore, Timestamp};
/// use jobs::store::{JobInsertParams, NewJob, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), jobs::StoreError> {
/// let store = MemoryStore::new();
/// let job = NewJob {
///     kind: "email".into(),
///     args: serde_json::json!({ "to": "ada@example.com" }),
///     queue: "default".into(),
///     priority: 0,
///     max_attempts: 3,
///     run_at: None,
///     metadata: Default::default(),
/// };
/// let ids = store
///     .job_insert_many(JobInsertParams { jobs: vec![job], now: Timestamp::now() })
///     .await?;
/// let record = store.job_get(ids[0]).await?;
/// assert_eq!(record.map(|r| r.kind), Some("email".to_owned()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

/// What all clones of a store (and its listeners, weakly) share.
struct Shared {
    inner: Mutex<Inner>,
    wake: broadcast::Sender<String>,
}

/// The jobs and their indexes, guarded by the store's mutex.
#[derive(Default)]
struct Inner {
    last_id: i64,
    /// Records behind `Arc`s, so reads snapshot them under the lock and deep-copy them after
    /// it (a write copies only if such a snapshot is still alive).
    jobs: BTreeMap<i64, Arc<JobRecord>>,
    index: Index,
}

/// Secondary indexes; every job is in exactly one of the four sets, chosen by its state.
#[derive(Default)]
struct Index {
    queues: BTreeMap<String, QueueIndex>,
    scheduled: BTreeSet<(Timestamp, i64)>,
    leases: BTreeSet<(Option<Timestamp>, i64)>,
    finalized: BTreeSet<(Option<Timestamp>, i64)>,
}

/// One queue's available jobs in claim order (suspects apart, so neither claim walks past
/// the other's jobs), and its counts per state.
#[derive(Default)]
struct QueueIndex {
    available: BTreeSet<AvailableKey>,
    /// Available jobs that are suspects (see [`JobRecord::suspect`]).
    suspects: BTreeSet<AvailableKey>,
    counts: [u64; JobState::ALL.len()],
}

/// Claim order: priority high first, then `run_at`, then id.
type AvailableKey = (Reverse<i16>, Timestamp, i64);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let (wake, _) = broadcast::channel(WAKE_CAPACITY);
        MemoryStore {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                wake,
            }),
        }
    }

    /// How many jobs the store holds, in any state.
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |inner| inner.jobs.len())
    }

    /// Whether the store holds no job.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.shared.lock()
    }

    /// Runs `op` under the lock, then wakes listeners of the queues it made jobs available in.
    fn with_inner<T>(
        &self,
        op: impl FnOnce(&mut Inner, &mut Woken) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut woken = Woken::default();
        let result = op(&mut *self.lock()?, &mut woken);
        self.shared.wake_all(woken.0);
        result
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("jobs", &self.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner.lock().map_err(|_| {
            StoreError::other(
                "memory store mutex poisoned: a panic interrupted an earlier call, so its \
                 state may be inconsistent; create a new MemoryStore",
            )
        })
    }

    fn wake_all(&self, queues: Vec<String>) {
        if self.wake.receiver_count() == 0 {
            return;
        }
        for queue in queues {
            // No receiver left is fine: nobody is waiting.
            let _ = self.wake.send(queue);
        }
    }
}

/// Queues that received available jobs during one operation (deduplicated).
#[derive(Default)]
struct Woken(Vec<String>);

impl Woken {
    fn add(&mut self, queue: &str) {
        if !self.0.iter().any(|q| q == queue) {
            self.0.push(queue.to_owned());
        }
    }
}

fn state_slot(state: JobState) -> usize {
    match state {
        JobState::Scheduled => 0,
        JobState::Available => 1,
        JobState::Running => 2,
        JobState::Completed => 3,
        JobState::Dead => 4,
        JobState::Cancelled => 5,
    }
}

fn available_key(job: &JobRecord) -> AvailableKey {
    (Reverse(job.priority), job.run_at, job.id.0)
}

/// The earliest `run_at` in a claim order: the first entry of each priority band.
fn oldest_in(set: &BTreeSet<AvailableKey>) -> Option<Timestamp> {
    let mut oldest: Option<Timestamp> = None;
    let mut next = set.first().copied();
    while let Some((Reverse(priority), run_at, _)) = next {
        oldest = Some(oldest.map_or(run_at, |o| o.min(run_at)));
        let Some(lower) = priority.checked_sub(1) else {
            break;
        };
        next = set
            .range((Reverse(lower), Timestamp::from_micros(i64::MIN), i64::MIN)..)
            .next()
            .copied();
    }
    oldest
}

impl Index {
    /// Adds `job` to the set its state calls for and counts it.
    fn add(&mut self, job: &JobRecord) {
        let id = job.id.0;
        match job.state {
            JobState::Scheduled => {
                self.scheduled.insert((job.run_at, id));
            }
            JobState::Available => {}
            JobState::Running => {
                self.leases.insert((job.lease_expires_at, id));
            }
            JobState::Completed | JobState::Dead | JobState::Cancelled => {
                self.finalized.insert((job.finalized_at, id));
            }
        }
        let queue = self.queue_mut(&job.queue);
        if job.state == JobState::Available {
            queue
                .claim_set(job.suspect.is_some())
                .insert(available_key(job));
        }
        queue.counts[state_slot(job.state)] += 1;
    }

    /// Removes `job` (as it was when added) from its set and its count.
    fn remove(&mut self, job: &JobRecord) {
        let id = job.id.0;
        match job.state {
            JobState::Scheduled => {
                self.scheduled.remove(&(job.run_at, id));
            }
            JobState::Available => {}
            JobState::Running => {
                self.leases.remove(&(job.lease_expires_at, id));
            }
            JobState::Completed | JobState::Dead | JobState::Cancelled => {
                self.finalized.remove(&(job.finalized_at, id));
            }
        }
        if let Some(queue) = self.queues.get_mut(&job.queue) {
            if job.state == JobState::Available {
                queue
                    .claim_set(job.suspect.is_some())
                    .remove(&available_key(job));
            }
            let count = &mut queue.counts[state_slot(job.state)];
            *count = count.saturating_sub(1);
        }
    }

    fn queue_mut(&mut self, queue: &str) -> &mut QueueIndex {
        if !self.queues.contains_key(queue) {
            self.queues.insert(queue.to_owned(), QueueIndex::default());
        }
        self.queues
            .get_mut(queue)
            .expect("the queue's index was inserted just above")
    }
}

impl QueueIndex {
    /// The claim order of suspects, or of the other available jobs.
    fn claim_set(&mut self, suspects: bool) -> &mut BTreeSet<AvailableKey> {
        if suspects {
            &mut self.suspects
        } else {
            &mut self.available
        }
    }

    /// Every available job, suspects included.
    fn all_available(&self) -> impl Iterator<Item = &AvailableKey> {
        self.available.iter().chain(self.suspects.iter())
    }

    /// The earliest `run_at` among available jobs, suspects included.
    fn oldest_available(&self) -> Option<Timestamp> {
        let oldest = oldest_in(&self.available);
        match (oldest, oldest_in(&self.suspects)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn stats(&self, queue: &str) -> QueueStats {
        let [scheduled, available, running, completed, dead, cancelled] = self.counts;
        QueueStats {
            queue: queue.to_owned(),
            scheduled,
            available,
            running,
            completed,
            dead,
            cancelled,
            oldest_available_at: self.oldest_available(),
        }
    }
}

impl Inner {
    /// Applies `change` to job `id`, keeping the indexes in step. `None` if it is missing.
    fn update<T>(&mut self, id: i64, change: impl FnOnce(&mut JobRecord) -> T) -> Option<T> {
        let job = Arc::make_mut(self.jobs.get_mut(&id)?);
        self.index.remove(job);
        let result = change(job);
        self.index.add(job);
        Some(result)
    }

    /// The job `lease` names, if that lease still holds (running, same claim token, same
    /// owner).
    fn leased(&self, lease: Lease, owner: &str) -> bool {
        self.jobs.get(&lease.job.0).is_some_and(|job| {
            job.state == JobState::Running
                && job.claims == lease.token
                && job.lease_owner.as_deref() == Some(owner)
        })
    }

    fn insert(&mut self, new: NewJob, now: Timestamp, woken: &mut Woken) -> JobId {
        self.last_id += 1;
        let id = JobId(self.last_id);
        let job = new.into_record(id, now);
        if job.state == JobState::Available {
            woken.add(&job.queue);
        }
        self.index.add(&job);
        self.jobs.insert(id.0, Arc::new(job));
        id
    }

    /// Leases up to `limit` jobs; returns each lease with a snapshot of its record. Jobs the
    /// claim may not take (another kind, or a suspect for a normal claim and the reverse)
    /// stay where they are.
    fn claim(&mut self, params: &JobClaimParams) -> Vec<(Lease, Arc<JobRecord>)> {
        let Some(queue) = self.index.queues.get_mut(&params.queue) else {
            return Vec::new();
        };
        let expires = params.now + params.lease_ttl;
        // Grown as needed: a claim is often a few jobs, and large up-front buffers cost more
        // in the allocator than the few regrowths.
        let mut taken = Vec::new();
        let mut claimed = Vec::new();
        for key in queue.claim_set(params.suspects).iter() {
            if claimed.len() >= params.limit {
                break;
            }
            let id = key.2;
            let Some(entry) = self.jobs.get_mut(&id) else {
                continue;
            };
            if !claimable(entry, params) {
                continue;
            }
            let lease = take_lease(Arc::make_mut(entry), params, expires);
            self.index.leases.insert((Some(expires), id));
            claimed.push((lease, Arc::clone(entry)));
            taken.push(*key);
        }
        let set = queue.claim_set(params.suspects);
        for key in &taken {
            set.remove(key);
        }
        let count = taken.len() as u64;
        queue.counts[state_slot(JobState::Available)] -= count;
        queue.counts[state_slot(JobState::Running)] += count;
        claimed
    }

    fn finish(
        &mut self,
        finish: JobFinish,
        owner: &str,
        now: Timestamp,
        woken: &mut Woken,
    ) -> bool {
        if !self.leased(finish.lease, owner) {
            return false;
        }
        self.update(finish.lease.job.0, |job| {
            apply_outcome(job, finish.outcome, now);
            if job.state == JobState::Available {
                woken.add(&job.queue);
            }
        })
        .is_some()
    }

    fn renew(&mut self, lease: Lease, owner: &str, expires: Timestamp) -> bool {
        if !self.leased(lease, owner) {
            return false;
        }
        self.update(lease.job.0, |job| job.lease_expires_at = Some(expires))
            .is_some()
    }

    fn rescue(&mut self, params: &JobRescueParams, woken: &mut Woken) -> RescueOutcome {
        let expired: Vec<i64> = self
            .index
            .leases
            .range(..(Some(params.now), i64::MIN))
            .take(params.limit)
            .map(|&(_, id)| id)
            .collect();
        let mut outcome = RescueOutcome::default();
        for id in expired {
            let rescued = self.update(id, |job| rescue_job(job, params));
            match rescued {
                Some(Rescued::Requeued(job)) => {
                    woken.add(&job.queue);
                    outcome.requeued.push(job);
                }
                Some(Rescued::Dead(record)) => outcome.dead.push(*record),
                None => {}
            }
        }
        outcome
    }

    /// Expires available jobs of unknown kinds waiting since before the cut-off; counts the
    /// rest. (A scan of every available job: this runs once a minute.)
    fn expire_unknown_kinds(&mut self, params: &JobExpireUnknownKindsParams) -> UnknownKinds {
        let unknown: Vec<(i64, bool)> = self
            .index
            .queues
            .values()
            .flat_map(QueueIndex::all_available)
            .filter_map(|&(_, run_at, id)| {
                let job = self.jobs.get(&id)?;
                (!params.known.contains(&job.kind)).then_some((id, run_at < params.waiting_since))
            })
            .collect();
        let mut outcome = UnknownKinds::default();
        for (id, expired) in unknown {
            if !expired || outcome.dead.len() >= params.limit {
                outcome.waiting += 1;
                continue;
            }
            let dead = self.update(id, |job| {
                job.errors.push(AttemptError {
                    attempt: 0,
                    at: params.now,
                    message: unknown_kind_message(&job.kind),
                });
                job.state = JobState::Dead;
                job.finalized_at = Some(params.now);
                job.clone()
            });
            outcome.dead.extend(dead);
        }
        outcome.dead.sort_by_key(|job| job.id);
        outcome
    }

    fn promote(&mut self, params: &JobPromoteParams, woken: &mut Woken) -> u64 {
        let due: Vec<i64> = self
            .index
            .scheduled
            .range(..=(params.now, i64::MAX))
            .take(params.limit)
            .map(|&(_, id)| id)
            .collect();
        let mut promoted = 0;
        for id in due {
            let done = self.update(id, |job| {
                job.state = JobState::Available;
                woken.add(&job.queue);
            });
            promoted += u64::from(done.is_some());
        }
        promoted
    }

    fn list(&self, params: &JobListParams) -> Vec<Arc<JobRecord>> {
        let from = params
            .after
            .map_or(i64::MIN, |after| after.0.saturating_add(1));
        self.jobs
            .range(from..)
            .map(|(_, job)| job)
            .filter(|job| listed(job, params))
            .take(params.limit)
            .cloned()
            .collect()
    }

    fn retry(&mut self, params: &JobRetryParams, woken: &mut Woken) -> bool {
        let retryable = self
            .jobs
            .get(&params.id.0)
            .is_some_and(|job| matches!(job.state, JobState::Dead | JobState::Cancelled));
        retryable
            && self
                .update(params.id.0, |job| {
                    job.state = JobState::Available;
                    job.run_at = params.now;
                    job.attempts = 0;
                    job.rescues = 0;
                    job.suspect = job.suspect.map(|_| 0);
                    job.finalized_at = None;
                    woken.add(&job.queue);
                })
                .is_some()
    }

    fn cancel(&mut self, params: &JobCancelParams) -> bool {
        let waiting = self
            .jobs
            .get(&params.id.0)
            .is_some_and(|job| matches!(job.state, JobState::Scheduled | JobState::Available));
        waiting
            && self
                .update(params.id.0, |job| {
                    job.state = JobState::Cancelled;
                    job.finalized_at = Some(params.now);
                })
                .is_some()
    }

    fn prune(&mut self, params: &JobPruneParams) -> u64 {
        let doomed: Vec<i64> = self
            .index
            .finalized
            .range(..(Some(params.finalized_before), i64::MIN))
            .map(|&(_, id)| id)
            .filter(|id| {
                self.jobs
                    .get(id)
                    .is_some_and(|job| params.states.contains(&job.state))
            })
            .take(params.limit)
            .collect();
        for id in &doomed {
            if let Some(job) = self.jobs.remove(id) {
                self.index.remove(&job);
            }
        }
        doomed.len() as u64
    }

    fn stats(&self) -> Vec<QueueStats> {
        self.index
            .queues
            .iter()
            .filter(|(_, queue)| queue.counts.iter().any(|&n| n > 0))
            .map(|(name, queue)| queue.stats(name))
            .collect()
    }
}

/// Whether a claim with `params` may take the available `job`: a kind it asked for, and a
/// suspect exactly when it is a quarantine claim.
/// Whether a claim that takes from `job`'s claim order (suspects or not) may take it: its
/// kind is one the claim names.
fn claimable(job: &JobRecord, params: &JobClaimParams) -> bool {
    match &params.kinds {
        Some(kinds) => kinds.contains(&job.kind),
        None => true,
    }
}

/// Makes an available job `running` under a new lease for `params.owner`.
fn take_lease(job: &mut JobRecord, params: &JobClaimParams, expires: Timestamp) -> Lease {
    job.state = JobState::Running;
    job.claims += 1;
    job.attempted_at = Some(params.now);
    job.lease_owner = Some(params.owner.clone());
    job.lease_expires_at = Some(expires);
    Lease {
        job: job.id,
        token: job.claims,
    }
}

/// Whether `job` passes the filters of `params`.
fn listed(job: &JobRecord, params: &JobListParams) -> bool {
    let state_ok = match params.state {
        Some(state) => job.state == state,
        None => true,
    };
    let queue_ok = match &params.queue {
        Some(queue) => &job.queue == queue,
        None => true,
    };
    state_ok && queue_ok
}

/// Applies a worker's outcome to its running job (the fence was checked by the caller).
fn apply_outcome(job: &mut JobRecord, outcome: FinishOutcome, now: Timestamp) {
    job.lease_owner = None;
    job.lease_expires_at = None;
    if !matches!(outcome, FinishOutcome::Release) {
        job.suspect = None;
    }
    match outcome {
        FinishOutcome::Completed => {
            job.state = JobState::Completed;
            job.finalized_at = Some(now);
            job.checkpoint = None;
        }
        FinishOutcome::Retry { run_at, error } => {
            charge(job, error);
            wait_until(job, run_at, now);
        }
        FinishOutcome::Dead { error } => {
            charge(job, error);
            job.state = JobState::Dead;
            job.finalized_at = Some(now);
        }
        FinishOutcome::Snooze { run_at } => wait_until(job, run_at, now),
        FinishOutcome::Release => job.state = JobState::Available,
    }
}

fn charge(job: &mut JobRecord, error: AttemptError) {
    job.attempts = job.attempts.saturating_add(1);
    job.errors.push(error);
}

/// `scheduled` at `run_at`, or `available` at once if that time has come.
fn wait_until(job: &mut JobRecord, run_at: Timestamp, now: Timestamp) {
    job.run_at = run_at;
    job.state = JobState::waiting_for(run_at, now);
}

/// The error recorded on a job expired because no process knew its kind.
fn unknown_kind_message(kind: &str) -> String {
    format!(
        "no running process has a worker for kind {kind:?}: the job waited longer than the \
         pool's unknown_kind_ttl without being claimed, so it was moved to the dead set \
         (deploy a worker for the kind and retry it)"
    )
}

/// What a rescue did to one job.
enum Rescued {
    /// Back to `available` in its queue.
    Requeued(RescuedJob),
    /// A poison pill, now dead.
    Dead(Box<JobRecord>),
}

fn rescue_job(job: &mut JobRecord, params: &JobRescueParams) -> Rescued {
    let owner = job.lease_owner.take();
    job.lease_expires_at = None;
    job.rescues = job.rescues.saturating_add(1);
    let (strikes, poison) = match job.suspect {
        None => (0, false),
        Some(strikes) => (strikes.saturating_add(1), strikes >= params.max_rescues),
    };
    job.suspect = Some(strikes);
    if !poison {
        job.state = JobState::Available;
        return Rescued::Requeued(RescuedJob::of(job));
    }
    job.errors.push(AttemptError {
        attempt: 0,
        at: params.now,
        message: poison_pill_message(owner.as_deref().unwrap_or("?"), strikes, params.max_rescues),
    });
    job.state = JobState::Dead;
    job.finalized_at = Some(params.now);
    Rescued::Dead(Box::new(job.clone()))
}

impl Store for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        Box::pin(async move {
            self.with_inner(|inner, woken| {
                Ok(params
                    .jobs
                    .into_iter()
                    .map(|job| inner.insert(job, params.now, woken))
                    .collect())
            })
        })
    }

    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        Box::pin(async move {
            let claimed = self.lock()?.claim(&params);
            Ok(claimed
                .into_iter()
                .map(|(lease, record)| ClaimedJob::new(lease, Arc::unwrap_or_clone(record)))
                .collect())
        })
    }

    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            self.with_inner(|inner, woken| {
                Ok(params
                    .finishes
                    .into_iter()
                    .map(|finish| inner.finish(finish, &params.owner, params.now, woken))
                    .collect())
            })
        })
    }

    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            let expires = params.now + params.lease_ttl;
            let mut inner = self.lock()?;
            Ok(params
                .leases
                .iter()
                .map(|&lease| inner.renew(lease, &params.owner, expires))
                .collect())
        })
    }

    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock()?;
            if !inner.leased(params.lease, &params.owner) {
                return Ok(false);
            }
            let expires = params.now + params.lease_ttl;
            let saved = inner.update(params.lease.job.0, |job| {
                job.checkpoint = Some(params.checkpoint);
                job.lease_expires_at = Some(expires);
            });
            Ok(saved.is_some())
        })
    }

    fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>> {
        Box::pin(async move { self.with_inner(|inner, woken| Ok(inner.rescue(&params, woken))) })
    }

    fn job_promote_scheduled(
        &self,
        params: JobPromoteParams,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { self.with_inner(|inner, woken| Ok(inner.promote(&params, woken))) })
    }

    fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> BoxFuture<'_, Result<UnknownKinds, StoreError>> {
        Box::pin(async move { Ok(self.lock()?.expire_unknown_kinds(&params)) })
    }

    fn job_get(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        Box::pin(async move {
            let found = self.lock()?.jobs.get(&id.0).cloned();
            Ok(found.map(Arc::unwrap_or_clone))
        })
    }

    fn job_list(&self, params: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        Box::pin(async move {
            let listed = self.lock()?.list(&params);
            Ok(listed.into_iter().map(Arc::unwrap_or_clone).collect())
        })
    }

    fn job_retry(&self, params: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { self.with_inner(|inner, woken| Ok(inner.retry(&params, woken))) })
    }

    fn job_cancel(&self, params: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.lock()?.cancel(&params)) })
    }

    fn job_prune(&self, params: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move { Ok(self.lock()?.prune(&params)) })
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        Box::pin(async move { Ok(self.lock()?.stats()) })
    }

    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        Box::pin(async move {
            let listener = MemoryListener {
                wake: self.shared.wake.subscribe(),
                shared: Arc::downgrade(&self.shared),
                pending: VecDeque::new(),
            };
            Ok(Some(Box::new(listener) as Box<dyn JobListener>))
        })
    }
}

/// Wake-ups from a [`MemoryStore`]: the queue names of jobs that became available.
///
/// If it falls more than a thousand wake-ups behind, it yields every queue the store knows,
/// so no fetcher misses work. When the store is dropped, [`JobListener::next`] returns
/// [`StoreError::Closed`].
struct MemoryListener {
    wake: broadcast::Receiver<String>,
    shared: Weak<Shared>,
    pending: VecDeque<String>,
}

impl fmt::Debug for MemoryListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryListener")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl MemoryListener {
    /// Queues every queue name the store knows, after the listener lagged.
    fn wake_every_queue(&mut self) -> Result<(), StoreError> {
        let shared = self.shared.upgrade().ok_or(StoreError::Closed)?;
        let inner = shared.lock()?;
        self.pending.extend(inner.index.queues.keys().cloned());
        Ok(())
    }
}

impl JobListener for MemoryListener {
    fn next(&mut self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            loop {
                if let Some(queue) = self.pending.pop_front() {
                    return Ok(queue);
                }
                match self.wake.recv().await {
                    Ok(queue) => return Ok(queue),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "memory store listener lagged; waking all queues");
                        self.wake_every_queue()?;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
    }

    fn job(queue: &str, priority: i16, run_at: Option<Timestamp>) -> NewJob {
        NewJob {
            kind: "test".to_owned(),
            args: json!({}),
            queue: queue.to_owned(),
            priority,
            max_attempts: 3,
            run_at,
            metadata: Default::default(),
        }
    }

    async fn insert(store: &MemoryStore, jobs: Vec<NewJob>, now: Timestamp) -> Vec<JobId> {
        let params = JobInsertParams { jobs, now };
        store.job_insert_many(params).await.expect("valid insert")
    }

    async fn claim(store: &MemoryStore, queue: &str, limit: usize, now: Timestamp) -> Vec<Lease> {
        claim_as(store, queue, limit, now, false).await
    }

    /// A claim; `suspects`: a quarantine claim.
    async fn claim_as(
        store: &MemoryStore,
        queue: &str,
        limit: usize,
        now: Timestamp,
        suspects: bool,
    ) -> Vec<Lease> {
        let params = JobClaimParams {
            queue: queue.to_owned(),
            owner: "w".to_owned(),
            limit,
            lease_ttl: Duration::from_secs(10),
            now,
            kinds: None,
            suspects,
        };
        let claimed = store.job_claim(params).await.expect("valid claim");
        claimed.into_iter().map(|c| c.lease).collect()
    }

    fn error(at: Timestamp) -> AttemptError {
        AttemptError {
            attempt: 1,
            at,
            message: "boom".to_owned(),
        }
    }

    /// The next wake-up, which must already be there.
    async fn woken(listener: &mut Box<dyn JobListener>) -> String {
        tokio::time::timeout(Duration::from_millis(100), listener.next())
            .await
            .expect("a wake-up is pending")
            .expect("the store is open")
    }

    #[tokio::test]
    async fn lagging_listener_wakes_every_queue() {
        let store = MemoryStore::new();
        let mut listener = store.listen().await.expect("listen").expect("a listener");
        insert(&store, vec![job("b", 0, None)], t(0)).await;
        for _ in 0..WAKE_CAPACITY + 10 {
            insert(&store, vec![job("a", 0, None)], t(0)).await;
        }
        assert_eq!(
            woken(&mut listener).await,
            "a",
            "lagged: every queue, by name"
        );
        assert_eq!(woken(&mut listener).await, "b");
        assert_eq!(
            woken(&mut listener).await,
            "a",
            "then the wake-ups still buffered"
        );
    }

    #[tokio::test]
    async fn listener_ends_when_the_store_is_dropped() {
        let store = MemoryStore::new();
        let mut listener = store.listen().await.expect("listen").expect("a listener");
        drop(store);
        assert!(matches!(listener.next().await, Err(StoreError::Closed)));
    }

    #[tokio::test]
    async fn oldest_available_spans_every_priority_band() {
        let store = MemoryStore::new();
        let jobs = vec![
            job("q", i16::MAX, Some(t(-1))),
            job("q", 0, Some(t(-5))),
            job("q", i16::MIN, Some(t(-10))),
            job("q", i16::MIN, Some(t(-3))),
        ];
        insert(&store, jobs, t(0)).await;
        let stats = store.queue_stats().await.expect("stats");
        assert_eq!(stats[0].oldest_available_at, Some(t(-10)));
        claim(&store, "q", 3, t(0)).await;
        let stats = store.queue_stats().await.expect("stats");
        assert_eq!(stats[0].oldest_available_at, Some(t(-3)));
        assert_eq!((stats[0].available, stats[0].running), (1, 3));
    }

    /// Checks that every job is indexed exactly where its state says, and counts match.
    fn assert_consistent(store: &MemoryStore) {
        let inner = store.lock().expect("not poisoned");
        let index = &inner.index;
        let mut counts: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
        for job in inner.jobs.values() {
            counts.entry(&job.queue).or_default()[state_slot(job.state)] += 1;
            let id = job.id.0;
            let queue = &index.queues[&job.queue];
            let in_sets = [
                index.scheduled.contains(&(job.run_at, id)),
                if job.suspect.is_some() {
                    &queue.suspects
                } else {
                    &queue.available
                }
                .contains(&available_key(job)),
                index.leases.contains(&(job.lease_expires_at, id)),
                index.finalized.contains(&(job.finalized_at, id)),
            ];
            let expected = match job.state {
                JobState::Scheduled => 0,
                JobState::Available => 1,
                JobState::Running => 2,
                _ => 3,
            };
            for (set, present) in in_sets.iter().enumerate() {
                assert_eq!(*present, set == expected, "job {id} in {:?}", job.state);
            }
        }
        let indexed = index.scheduled.len()
            + index.leases.len()
            + index.finalized.len()
            + index
                .queues
                .values()
                .map(|q| q.available.len() + q.suspects.len())
                .sum::<usize>();
        assert_eq!(indexed, inner.jobs.len(), "no stale index entries");
        for (name, queue) in &index.queues {
            let expected = counts.get(name.as_str()).copied().unwrap_or_default();
            assert_eq!(queue.counts, expected, "counts of queue {name}");
        }
    }

    /// A deterministic pseudo-random walk through every operation keeps the indexes exact.
    #[tokio::test]
    async fn indexes_stay_consistent_through_every_operation() {
        let store = MemoryStore::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut leases = Vec::new();
        for step in 0..600_i64 {
            let now = t(step);
            let queue = ["a", "b", "c"][next(3) as usize];
            match next(9) {
                0 | 1 => {
                    let run_at = (next(2) == 0).then(|| t(step + next(20) as i64));
                    insert(&store, vec![job(queue, next(5) as i16 - 2, run_at)], now).await;
                }
                2 | 3 => leases.extend(claim(&store, queue, 1 + next(3) as usize, now).await),
                4 if !leases.is_empty() => {
                    let lease = leases.swap_remove(next(leases.len() as u64) as usize);
                    let outcome = match next(5) {
                        0 => FinishOutcome::Completed,
                        1 => FinishOutcome::Retry {
                            run_at: t(step + next(10) as i64),
                            error: error(now),
                        },
                        2 => FinishOutcome::Dead { error: error(now) },
                        3 => FinishOutcome::Snooze {
                            run_at: t(step + 5),
                        },
                        _ => FinishOutcome::Release,
                    };
                    let params = JobFinishParams {
                        owner: "w".to_owned(),
                        finishes: vec![JobFinish { lease, outcome }],
                        now,
                    };
                    store.job_finish_many(params).await.expect("finish");
                }
                5 => {
                    let params = JobHeartbeatParams {
                        owner: "w".to_owned(),
                        leases: leases.clone(),
                        lease_ttl: Duration::from_secs(next(15)),
                        now,
                    };
                    store.job_heartbeat_many(params).await.expect("heartbeat");
                }
                6 => {
                    let params = JobRescueParams {
                        now,
                        max_rescues: 1,
                        limit: 5,
                    };
                    store.job_rescue_expired(params).await.expect("rescue");
                    let params = JobPromoteParams { now, limit: 5 };
                    store.job_promote_scheduled(params).await.expect("promote");
                }
                7 => {
                    let id = JobId(1 + next(step as u64 / 3 + 1) as i64);
                    let params = JobCancelParams { id, now };
                    store.job_cancel(params).await.expect("cancel");
                    let params = JobRetryParams { id, now };
                    store.job_retry(params).await.expect("retry");
                }
                _ => {
                    let params = JobPruneParams {
                        states: vec![JobState::Completed, JobState::Cancelled],
                        finalized_before: t(step - 20),
                        limit: 3,
                    };
                    store.job_prune(params).await.expect("prune");
                }
            }
            assert_consistent(&store);
        }
        let stats = store.queue_stats().await.expect("stats");
        let total: u64 = stats
            .iter()
            .map(|s| JobState::ALL.iter().map(|&st| s.count(st)).sum::<u64>())
            .sum();
        assert_eq!(total as usize, store.len());
        assert!(store.len() > 50, "the walk inserted jobs: {}", store.len());
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_an_error_not_a_panic() {
        let store = MemoryStore::new();
        let clone = store.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = clone.shared.inner.lock();
            panic!("poison the store's lock");
        })
        .join();
        assert!(panicked.is_err());
        let result = store.queue_stats().await;
        assert!(
            matches!(result, Err(StoreError::Other { message, .. }) if message.contains("poisoned"))
        );
    }

    #[tokio::test]
    async fn clones_share_jobs_and_debug_shows_the_count() {
        let store = MemoryStore::default();
        assert!(store.is_empty());
        let clone = store.clone();
        insert(&clone, vec![job("q", 0, None), job("q", 0, None)], t(0)).await;
        assert_eq!(store.len(), 2);
        assert_eq!(format!("{store:?}"), "MemoryStore { jobs: 2, .. }");
        assert_eq!(store.name(), "memory");
    }
}
