//! Durable background jobs on a supervised worker pool.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

#[cfg(feature = "conformance")]
pub mod conformance;
mod job;
mod memory;
mod store;
mod time;

pub use job::{AttemptError, JobId, JobRecord, JobState, NewJob, UnknownState};
pub use memory::MemoryStore;
pub use store::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinish,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobListener,
    JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams, Lease, QueueStats,
    RescueOutcome, Store, StoreError,
};
pub use time::{Clock, Timestamp};
