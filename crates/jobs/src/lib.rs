//! Durable background jobs on a supervised worker pool.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod args;
mod client;
#[cfg(feature = "conformance")]
pub mod conformance;
mod context;
mod error;
mod job;
mod memory;
mod pool;
mod store;
mod time;
mod worker;

pub use args::{
    validate_queue_name, EnqueueOptions, JobArgs, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE,
    MAX_QUEUE_NAME_LEN,
};
pub use client::{Batch, Client};
pub use context::JobContext;
pub use error::EnqueueError;
pub use job::{AttemptError, JobId, JobRecord, JobState, NewJob, UnknownState};
pub use memory::MemoryStore;
pub use pool::{
    ConfigError, Pool, PoolBuilder, PoolConfig, PoolError, ShutdownReport, DEFAULT_CONCURRENCY,
};
pub use store::{
    ClaimedJob, FinishOutcome, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinish,
    JobFinishParams, JobHeartbeatParams, JobInsertParams, JobListParams, JobListener,
    JobPromoteParams, JobPruneParams, JobRescueParams, JobRetryParams, Lease, QueueStats,
    RescueOutcome, Store, StoreError,
};
pub use time::{Clock, Timestamp};
pub use worker::{default_retry_backoff, BadInput, JobError, Worker};
