//! Errors of the client and the stores.

use crate::store::{JobRuleError, MAX_ATTEMPTS_LIMIT, MAX_NAME_LEN};

/// Why an enqueue was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The queue name is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid queue name {0:?}: use 1 to {MAX_NAME_LEN} characters of letters, digits, '_', '.', ':' or '-'")]
    InvalidQueue(String),
    /// The job kind is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid job kind {0:?}: use 1 to {MAX_NAME_LEN} characters of letters, digits, '_', '.', ':' or '-'")]
    InvalidKind(String),
    /// `max_attempts` was 0 (a job needs at least one attempt) or above
    /// [`MAX_ATTEMPTS_LIMIT`](crate::store::MAX_ATTEMPTS_LIMIT).
    #[error("invalid max_attempts {0}: use 1 to {MAX_ATTEMPTS_LIMIT}")]
    InvalidMaxAttempts(u32),
    /// The args nest arrays and objects deeper than
    /// [`MAX_JSON_DEPTH`](crate::store::MAX_JSON_DEPTH): the store could keep them but not
    /// read them back.
    #[error("args nested {depth} levels deep: at most {max} levels of arrays and objects can be stored and read back; flatten the args")]
    ArgsTooDeep {
        /// The args' nesting depth.
        depth: usize,
        /// The most allowed.
        max: usize,
    },
    /// A `run_in` duration did not parse.
    #[error("invalid duration {input:?}: {reason} (write it like \"90s\", \"10m\" or \"1h 30m\")")]
    InvalidDuration {
        /// What was given.
        input: String,
        /// Why it did not parse.
        reason: String,
    },
    /// The args could not be serialized to JSON.
    #[error("cannot serialize args of job kind {kind:?}: {reason}")]
    Serialize {
        /// The job kind.
        kind: &'static str,
        /// The serializer's message.
        reason: String,
    },
    /// The store refused or failed the insert; nothing was inserted.
    #[error("enqueue failed, nothing was inserted: {0}")]
    Store(#[from] StoreError),
}

impl From<JobRuleError> for EnqueueError {
    fn from(broken: JobRuleError) -> Self {
        match broken {
            JobRuleError::InvalidKind(kind) => EnqueueError::InvalidKind(kind),
            JobRuleError::InvalidQueue(queue) => EnqueueError::InvalidQueue(queue),
            JobRuleError::InvalidMaxAttempts(given) => EnqueueError::InvalidMaxAttempts(given),
            JobRuleError::ArgsTooDeep { depth, max } => EnqueueError::ArgsTooDeep { depth, max },
        }
    }
}

/// A store's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or the connection broke; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database is busy or locked; retrying later will work.
    #[error("store busy: {0}")]
    Busy(String),
    /// The store is closed (the pool or file was shut down); no call will work again.
    #[error("store closed")]
    Closed,
    /// A stored row could not be decoded into a job record.
    #[error("corrupt job {id}: {reason}")]
    Corrupt {
        /// The row's job id.
        id: i64,
        /// What was wrong with it.
        reason: String,
    },
    /// The schema is missing or of another version.
    #[error("schema problem: {0}")]
    Schema(String),
    /// A parameter was out of range (e.g. an empty queue name, zero limit).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Any other database error.
    #[error("store error: {0}")]
    Other(String),
}

impl StoreError {
    /// Whether the same call may succeed later (connection loss, lock contention).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Busy(_))
    }
}
