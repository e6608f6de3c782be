//! The params and results of the [`Store`](super::Store) operations.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::job::{AttemptError, JobId, JobRecord, JobState};
use crate::metadata::Metadata;
use crate::time::Timestamp;

/// A job to insert.
#[derive(Clone, PartialEq, Debug)]
pub struct NewJob {
    /// The job kind's stable name.
    pub kind: String,
    /// The serialized arguments.
    pub args: Value,
    /// The queue it waits in.
    pub queue: String,
    /// Higher runs first.
    pub priority: i16,
    /// How many attempts may be charged before it goes to the dead set (at least 1).
    pub max_attempts: u32,
    /// When it may run first; `None` means now.
    pub run_at: Option<Timestamp>,
    /// What it carries beside its args (empty: nothing, and nothing stored).
    pub metadata: Metadata,
}

impl NewJob {
    /// The record an insert of this job as `id` at `now` creates: `scheduled` if its `run_at`
    /// is after `now`, otherwise `available` (with `run_at = now` when none was given).
    pub fn into_record(self, id: JobId, now: Timestamp) -> JobRecord {
        let run_at = self.run_at.unwrap_or(now);
        JobRecord {
            id,
            kind: self.kind,
            queue: self.queue,
            args: self.args,
            state: JobState::waiting_for(run_at, now),
            priority: self.priority,
            attempts: 0,
            max_attempts: self.max_attempts,
            rescues: 0,
            suspect: None,
            claims: 0,
            run_at,
            created_at: now,
            attempted_at: None,
            finalized_at: None,
            lease_owner: None,
            lease_expires_at: None,
            checkpoint: None,
            errors: Vec::new(),
            metadata: self.metadata,
            unreadable: None,
        }
    }
}

/// The proof of one claim on one running job: its id and the claim token.
///
/// The token is the job's `claims` counter after the claim; it changes on every claim, so
/// with the owner's name it identifies the lease holder and the run.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// Its claim token.
    pub token: i64,
}

/// A job handed to a worker by [`Store::job_claim`](super::Store::job_claim).
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    /// The lease the worker holds.
    pub lease: Lease,
    /// The job as it is now (state running, lease fields set).
    pub record: JobRecord,
    /// Why the job's stored row could not be read, if it could not (a row written by an
    /// older version or by hand: JSON that is not JSON or is nested too deep, an `errors`
    /// column of another shape). The claim still leases it, with what could be read in
    /// `record` (an unreadable `args` is `null`, an unreadable checkpoint `None`, unreadable
    /// errors empty), so one bad row never fails its batch; the engine moves it to the dead
    /// set with this reason without running it. The reason names the row's id.
    pub unreadable: Option<String>,
}

impl ClaimedJob {
    /// A job whose row was read whole.
    pub fn new(lease: Lease, record: JobRecord) -> Self {
        ClaimedJob {
            lease,
            record,
            unreadable: None,
        }
    }

    /// A job whose stored row could be read only in part: `record` holds what could be, and
    /// `problem` says what could not ([`JobRecord::mark_unreadable`]: the one wording of the
    /// reason, for every store, set on the record too).
    pub fn unreadable(
        lease: Lease,
        mut record: JobRecord,
        problem: impl std::fmt::Display,
    ) -> Self {
        record.mark_unreadable(problem);
        let reason = record.unreadable.clone();
        ClaimedJob {
            lease,
            record,
            unreadable: reason,
        }
    }
}

/// Params for [`Store::job_insert_many`](super::Store::job_insert_many).
#[derive(Clone, Debug)]
pub struct JobInsertParams {
    /// Jobs to insert, all in one transaction.
    pub jobs: Vec<NewJob>,
    /// Now: jobs whose `run_at` is after it are `scheduled`, the others `available`
    /// (with `run_at = now` when none was given).
    pub now: Timestamp,
}

/// Params for [`Store::job_claim`](super::Store::job_claim).
#[derive(Clone, Debug)]
pub struct JobClaimParams {
    /// The queue to claim from.
    pub queue: String,
    /// The claiming worker's id, recorded as `lease_owner`.
    pub owner: String,
    /// At most this many jobs.
    pub limit: usize,
    /// Lease length: `lease_expires_at = now + lease_ttl`.
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
    /// Only jobs of these kinds (a pool passes the kinds it has workers for, so a process
    /// that does not know a kind never takes its jobs); `None`: any kind.
    pub kinds: Option<Arc<[String]>>,
    /// `false`: the normal claim, which never takes a suspect ([`JobRecord::suspect`]).
    /// `true`: the quarantine claim, which takes only suspects (the pool asks for one at a
    /// time and runs it alone in its process).
    pub suspects: bool,
}

/// What a worker's run of a job came to. Only `Completed` clears the checkpoint; every
/// outcome but `Release` clears [`JobRecord::suspect`] (the run ended without taking its
/// process down).
#[derive(Clone, Debug, PartialEq)]
pub enum FinishOutcome {
    /// Success: state `completed`, checkpoint cleared.
    Completed,
    /// A failed attempt to retry: attempt charged, error recorded, state `scheduled` at `run_at`
    /// (or `available` if `run_at <= now`).
    Retry {
        /// When to run again.
        run_at: Timestamp,
        /// The failure.
        error: AttemptError,
    },
    /// A failure for good (attempts exhausted, discarded, bad input, timeout on the last
    /// attempt): attempt charged, error recorded, state `dead`.
    Dead {
        /// The failure.
        error: AttemptError,
    },
    /// Run again later without charging an attempt: state `scheduled` at `run_at` (or
    /// `available` if `run_at <= now`).
    Snooze {
        /// When to run again.
        run_at: Timestamp,
    },
    /// Interrupted by shutdown: back to `available` at once, `run_at` unchanged, checkpoint kept,
    /// no attempt charged.
    Release,
}

/// One fenced finish.
#[derive(Clone, Debug)]
pub struct JobFinish {
    /// The lease the run held.
    pub lease: Lease,
    /// What it came to.
    pub outcome: FinishOutcome,
}

/// Params for [`Store::job_finish_many`](super::Store::job_finish_many).
#[derive(Clone, Debug)]
pub struct JobFinishParams {
    /// The worker whose leases these are (its claims' `owner`).
    pub owner: String,
    /// Finishes to apply, all in one transaction.
    pub finishes: Vec<JobFinish>,
    /// Now (`finalized_at`, error times are taken from the outcome).
    pub now: Timestamp,
}

impl JobFinishParams {
    /// For each finish, whether it is the first of the batch to name its lease. A store
    /// applies only those; a later finish of the same lease reports `false` (the first one
    /// ended the lease it names).
    pub fn first_of_each_lease(&self) -> Vec<bool> {
        let mut seen: HashSet<Lease> = HashSet::with_capacity(self.finishes.len());
        self.finishes
            .iter()
            .map(|finish| seen.insert(finish.lease))
            .collect()
    }
}

/// Params for [`Store::job_heartbeat_many`](super::Store::job_heartbeat_many).
#[derive(Clone, Debug)]
pub struct JobHeartbeatParams {
    /// The worker whose leases these are (its claims' `owner`).
    pub owner: String,
    /// Leases to renew.
    pub leases: Vec<Lease>,
    /// New lease length from now.
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_checkpoint`](super::Store::job_checkpoint).
#[derive(Clone, Debug)]
pub struct JobCheckpointParams {
    /// The worker whose lease it is (its claim's `owner`).
    pub owner: String,
    /// The lease the run holds.
    pub lease: Lease,
    /// Progress to keep for this and later runs.
    pub checkpoint: Value,
    /// New lease length from now (a checkpoint renews the lease).
    pub lease_ttl: Duration,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_rescue_expired`](super::Store::job_rescue_expired).
///
/// A running job is rescued when `lease_expires_at < now` (a lease expiring exactly at `now`
/// still holds). Every rescue increments `rescues`. Blame lands only on a job that ran
/// alone:
///
/// * A job that was not a suspect (claimed normally, perhaps beside the job that really
///   killed the process) becomes a suspect with no strike (`suspect = Some(0)`) and goes
///   back to `available`.
/// * A suspect (claimed in quarantine, so it ran alone in its process) gets a strike. One
///   whose strikes were below `max_rescues` goes back to `available`, still a suspect; one
///   whose strikes already equalled `max_rescues` is a poison pill: it goes to `dead` with
///   one error (attempt 0) whose message is [`poison_pill_message`] (every store uses that
///   one wording).
///
/// In both cases no attempt is charged, `claims` and `run_at` are kept and the lease is
/// cleared.
#[derive(Clone, Debug)]
pub struct JobRescueParams {
    /// Leases that expired before this are rescued.
    pub now: Timestamp,
    /// A suspect with this many strikes (rescues in quarantine) goes to the dead set instead
    /// of being rescued again (poison pill).
    pub max_rescues: u32,
    /// At most this many jobs per call.
    pub limit: usize,
}

/// The message of the error a poison pill is buried with, the one wording of every store,
/// with `{owner}` (the worker whose lease expired last, `?` if none), `{rescues}` (how many
/// times its lease expired while it ran alone in quarantine, this one included: its strikes
/// after this rescue) and `{max_rescues}` to fill in. A SQL store binds it and fills it with
/// `replace`; others call [`poison_pill_message`].
pub const POISON_PILL_MESSAGE: &str = "poison pill: the lease of worker {owner} expired \
    again while it ran alone in quarantine; its leases have now expired {rescues} times in \
    quarantine (max_rescues {max_rescues}): its worker keeps dying or freezing while running \
    it, so it was moved to the dead set instead of being rescued again";

/// [`POISON_PILL_MESSAGE`] filled in.
///
/// ```
/// let message = jobs::store::poison_pill_message("worker-1", 4, 3);
/// assert!(message.starts_with("poison pill: the lease of worker worker-1 expired again"));
/// assert!(message.contains("expired 4 times in quarantine (max_rescues 3)"));
/// ```
pub fn poison_pill_message(owner: &str, rescues: u32, max_rescues: u32) -> String {
    POISON_PILL_MESSAGE
        .replace("{owner}", owner)
        .replace("{rescues}", &rescues.to_string())
        .replace("{max_rescues}", &max_rescues.to_string())
}

/// What [`Store::job_rescue_expired`](super::Store::job_rescue_expired) did.
#[derive(Clone, Debug, Default)]
pub struct RescueOutcome {
    /// Jobs returned to `available` (`rescues` incremented, now suspects, lease cleared).
    pub requeued: Vec<RescuedJob>,
    /// Poison pills moved to `dead`, as they are now (for the exhausted hook).
    pub dead: Vec<JobRecord>,
}

impl RescueOutcome {
    /// The ids of the requeued jobs, in the order of [`requeued`](Self::requeued).
    pub fn requeued_ids(&self) -> Vec<JobId> {
        self.requeued.iter().map(|job| job.id).collect()
    }
}

/// A job a rescue returned to its queue: its id, and its queue and kind (the labels of the
/// `jobs_rescued_total` counter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RescuedJob {
    /// The job.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
}

impl RescuedJob {
    /// The rescued job `record` is now.
    pub fn of(record: &JobRecord) -> Self {
        RescuedJob {
            id: record.id,
            queue: record.queue.clone(),
            kind: record.kind.clone(),
        }
    }
}

/// Params for [`Store::job_expire_unknown_kinds`](super::Store::job_expire_unknown_kinds).
///
/// Available jobs (suspects included) whose kind is not in `known` and whose `run_at` is
/// before `waiting_since` (no process claimed them for that long) go to `dead` with one error
/// (attempt 0, at `now`) naming their kind; at most `limit` per call. The call also counts
/// the available jobs of other kinds left waiting.
#[derive(Clone, Debug)]
pub struct JobExpireUnknownKindsParams {
    /// The kinds the caller knows (never expired).
    pub known: Arc<[String]>,
    /// Jobs available since before this are expired.
    pub waiting_since: Timestamp,
    /// Now (`finalized_at`, the error's time).
    pub now: Timestamp,
    /// At most this many per call.
    pub limit: usize,
}

/// What [`Store::job_expire_unknown_kinds`](super::Store::job_expire_unknown_kinds) did.
#[derive(Clone, Debug, Default)]
pub struct UnknownKinds {
    /// The jobs moved to `dead`, as they are now (for the exhausted hook).
    pub dead: Vec<JobRecord>,
    /// Available jobs of kinds not in `known` still waiting (after the call).
    pub waiting: u64,
}

/// Params for [`Store::job_promote_scheduled`](super::Store::job_promote_scheduled).
#[derive(Clone, Debug)]
pub struct JobPromoteParams {
    /// Scheduled jobs whose `run_at <= now` become available.
    pub now: Timestamp,
    /// At most this many per call.
    pub limit: usize,
}

/// Params for [`Store::job_list`](super::Store::job_list). The default lists the first 100 jobs of any state.
#[derive(Clone, Debug)]
pub struct JobListParams {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs in this queue.
    pub queue: Option<String>,
    /// Only jobs with an id above this (for paging).
    pub after: Option<JobId>,
    /// At most this many, ordered by id.
    pub limit: usize,
}

impl Default for JobListParams {
    fn default() -> Self {
        JobListParams {
            state: None,
            queue: None,
            after: None,
            limit: 100,
        }
    }
}

/// Params for [`Store::job_retry`](super::Store::job_retry).
#[derive(Clone, Debug)]
pub struct JobRetryParams {
    /// A dead or cancelled job to run again: state `available` at `now`, attempts and rescues
    /// reset to 0, errors kept; a suspect stays one, its strikes reset to 0 (a poison pill
    /// retried runs in quarantine).
    pub id: JobId,
    /// Now.
    pub now: Timestamp,
}

/// Params for [`Store::job_cancel`](super::Store::job_cancel).
#[derive(Clone, Debug)]
pub struct JobCancelParams {
    /// A waiting (scheduled or available) job to cancel.
    pub id: JobId,
    /// Now (`finalized_at`).
    pub now: Timestamp,
}

/// Params for [`Store::job_prune`](super::Store::job_prune).
#[derive(Clone, Debug)]
pub struct JobPruneParams {
    /// Delete jobs in these terminal states...
    pub states: Vec<JobState>,
    /// ...finalized before this.
    pub finalized_before: Timestamp,
    /// At most this many per call.
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_finish_of_a_repeated_lease_counts() {
        let finish = |job, token, outcome| JobFinish {
            lease: Lease {
                job: JobId(job),
                token,
            },
            outcome,
        };
        let params = JobFinishParams {
            owner: "w".to_owned(),
            finishes: vec![
                finish(7, 1, FinishOutcome::Completed),
                finish(7, 2, FinishOutcome::Completed),
                finish(7, 1, FinishOutcome::Release),
            ],
            now: Timestamp::EPOCH,
        };
        assert_eq!(params.first_of_each_lease(), vec![true, true, false]);
    }
}
