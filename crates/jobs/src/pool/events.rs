//! The pool's job lifecycle events ([`Pool::subscribe`](crate::Pool::subscribe)), typed like
//! the supervisor's.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::broadcast;

use crate::context::RunState;
use crate::job::JobId;
use crate::outcome::Outcome;
use crate::store::FinishOutcome;

/// Events a subscriber may fall behind by before it loses the oldest.
const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a job in this pool. Subscribe with
/// [`Pool::subscribe`](crate::Pool::subscribe).
///
/// Events are broadcast: a subscriber that falls behind by more than 1024 events sees
/// `RecvError::Lagged` and loses the oldest. With no subscriber, nothing is built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum JobEvent {
    /// A claimed job got an executor slot and its worker started.
    Started {
        /// The job.
        id: JobId,
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// Which attempt this run is (1-based).
        attempt: u32,
    },
    /// A run's outcome was written to the store.
    Finished {
        /// The job.
        id: JobId,
        /// Its queue.
        queue: String,
        /// Its kind.
        kind: String,
        /// Which attempt the run was (1-based).
        attempt: u32,
        /// What the run came to.
        outcome: Outcome,
    },
    /// A rescuer found jobs whose lease had expired (their worker died or froze).
    Rescued {
        /// Returned to their queue.
        requeued: Vec<JobId>,
        /// Moved to the dead set: rescued too often (`PoolConfig::max_rescues`).
        dead: Vec<JobId>,
    },
}

impl JobEvent {
    /// The job this event is about (`None` for a rescue, which is about many).
    pub fn job(&self) -> Option<JobId> {
        match self {
            JobEvent::Started { id, .. } | JobEvent::Finished { id, .. } => Some(*id),
            JobEvent::Rescued { .. } => None,
        }
    }
}

/// The sending side, shared by the pool's children.
#[derive(Debug)]
pub(crate) struct Events {
    tx: broadcast::Sender<JobEvent>,
    /// Whether anyone ever subscribed: until then a run pays one atomic load, not the
    /// channel's lock.
    subscribed: AtomicBool,
}

impl Events {
    pub(crate) fn new() -> Self {
        Events {
            tx: broadcast::channel(EVENT_CAPACITY).0,
            subscribed: AtomicBool::new(false),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        let receiver = self.tx.subscribe();
        self.subscribed.store(true, Ordering::Release);
        receiver
    }

    /// Sends the event `make` builds, if anyone listens.
    fn send(&self, make: impl FnOnce() -> JobEvent) {
        if self.subscribed.load(Ordering::Acquire) && self.tx.receiver_count() > 0 {
            // A subscriber gone between the check and the send is fine: nobody to tell.
            let _ = self.tx.send(make());
        }
    }

    pub(crate) fn started(&self, run: &RunState) {
        self.send(|| JobEvent::Started {
            id: run.record.id,
            queue: run.record.queue.clone(),
            kind: run.record.kind.clone(),
            attempt: run.record.next_attempt(),
        });
    }

    pub(crate) fn finished(&self, run: &RunState, outcome: &FinishOutcome) {
        self.send(|| JobEvent::Finished {
            id: run.record.id,
            queue: run.record.queue.clone(),
            kind: run.record.kind.clone(),
            attempt: run.record.next_attempt(),
            outcome: Outcome::of(run, Some(outcome)),
        });
    }

    pub(crate) fn rescued(&self, requeued: &[JobId], dead: &[JobId]) {
        self.send(|| JobEvent::Rescued {
            requeued: requeued.to_vec(),
            dead: dead.to_vec(),
        });
    }
}
