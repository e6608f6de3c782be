//! Queue statistics: what `Client::queue_stats` reports.

use std::time::Duration;

use crate::job::JobState;
use crate::time::Timestamp;

/// Counts of one queue's jobs per state, and its latency.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Jobs scheduled for later.
    pub scheduled: u64,
    /// Jobs ready to run.
    pub available: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs completed (until pruned).
    pub completed: u64,
    /// Jobs in the dead set.
    pub dead: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
    /// The `run_at` of the oldest available job: `now - this` is the queue's latency.
    pub oldest_available_at: Option<Timestamp>,
}

impl QueueStats {
    /// How many jobs of this queue are in `state`.
    pub fn count(&self, state: JobState) -> u64 {
        match state {
            JobState::Scheduled => self.scheduled,
            JobState::Available => self.available,
            JobState::Running => self.running,
            JobState::Completed => self.completed,
            JobState::Dead => self.dead,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// How long the oldest available job has waited at `now`.
    pub fn latency(&self, now: Timestamp) -> std::time::Duration {
        self.oldest_available_at
            .map_or(Duration::ZERO, |oldest| now.duration_since(oldest))
    }
}
