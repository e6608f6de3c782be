//! The job record: what a store keeps for every job, and what an enqueue asks for.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metadata::Metadata;
use crate::time::Timestamp;

/// A job's identifier, assigned by the store on insert (increasing).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life. See `docs/ARCHITECTURE.md` for the state diagram.
///
/// ```text
///  insert ──► scheduled ──(run_at comes: scheduler)──► available ──(claim)──► running
///               ▲    ▲                                   ▲   ▲                │
///               │    └──── retry (attempt charged) ──────┼───┼────────────────┤
///               └───────── snooze (no attempt) ──────────┼───┼────────────────┤
///                          release on shutdown ──────────┘   │                │
///                          rescue after lease expiry ────────┘                │
///     completed ◄── success ──────────────────────────────────────────────────┤
///     dead      ◄── attempts exhausted / discard / poison pill / bad input ───┘
///     cancelled ◄── cancel of a waiting job
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its `run_at` (new scheduled jobs, retries in backoff, snoozed jobs).
    Scheduled,
    /// Ready to be claimed.
    Available,
    /// Claimed by a worker under a lease.
    Running,
    /// Finished successfully (terminal).
    Completed,
    /// Failed for good: attempts exhausted, discarded, poison pill or bad input (terminal).
    Dead,
    /// Cancelled while waiting (terminal).
    Cancelled,
}

impl JobState {
    /// The state of a job waiting to run at `run_at`: `scheduled` while that is after `now`,
    /// `available` once it has come.
    pub fn waiting_for(run_at: Timestamp, now: Timestamp) -> JobState {
        if run_at > now {
            JobState::Scheduled
        } else {
            JobState::Available
        }
    }

    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The name stores persist.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will never run again by itself.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`JobState`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// One recorded failure of a job.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed (1-based); 0 for errors recorded outside a run (rescues).
    pub attempt: u32,
    /// When it was recorded.
    pub at: Timestamp,
    /// What went wrong, for people.
    pub message: String,
}

/// Everything a store keeps about one job.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    /// Identifier.
    pub id: JobId,
    /// Stable kind name.
    pub kind: String,
    /// Queue.
    pub queue: String,
    /// Serialized arguments.
    pub args: Value,
    /// State.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i16,
    /// Attempts charged so far: runs that ended in an error or a timeout.
    pub attempts: u32,
    /// Attempts allowed before the dead set.
    pub max_attempts: u32,
    /// Times a lease on it expired and a rescuer returned it (its worker died or froze).
    pub rescues: u32,
    /// `Some(strikes)` while it is a suspect: a lease it held expired (its process died or
    /// froze while running it, perhaps because of another job beside it). A suspect is
    /// claimed only in quarantine, alone in its process, so a repeat crash can only be its
    /// own: `strikes` counts those rescues, the only ones that count toward the pool's
    /// `max_rescues`. `None` once a run of it ends (any outcome but a release on shutdown),
    /// and for a job never rescued.
    #[serde(default)]
    pub suspect: Option<u32>,
    /// Times it has been claimed; the current value is the fencing token of the current lease.
    pub claims: i64,
    /// When it may run (scheduled) or became runnable (available).
    pub run_at: Timestamp,
    /// When it was inserted.
    pub created_at: Timestamp,
    /// When it was last claimed.
    pub attempted_at: Option<Timestamp>,
    /// When it reached a terminal state.
    pub finalized_at: Option<Timestamp>,
    /// The worker holding its lease (running jobs only).
    pub lease_owner: Option<String>,
    /// When the lease runs out unless renewed (running jobs only).
    pub lease_expires_at: Option<Timestamp>,
    /// The last progress the job saved with `checkpoint`.
    pub checkpoint: Option<Value>,
    /// Every recorded failure, oldest first.
    pub errors: Vec<AttemptError>,
    /// What the enqueue attached beside the args (empty if nothing).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// Why the stored row could not be read in full, if it could not (written by an older
    /// version or by hand: JSON that is not JSON or is nested too deep, a column of another
    /// shape). The record then holds what could be read: an unreadable `args` is `null`, an
    /// unreadable checkpoint `None`, unreadable errors or metadata empty. Such a job is shown
    /// by `job_get` and `job_list` (so an operator can see it, and prune or retry it), and a
    /// claim of it moves it to the dead set with this reason without running it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl JobRecord {
    /// Marks the record as read in part, `problem` saying what could not be read (the one
    /// wording of the reason, for every store: it names the job).
    pub fn mark_unreadable(&mut self, problem: impl fmt::Display) {
        self.unreadable = Some(format!(
            "the stored row of job {} cannot be read: {problem}",
            self.id
        ));
    }

    /// The number of the attempt the job's next (or current) run is.
    pub fn next_attempt(&self) -> u32 {
        self.attempts + 1
    }
}
