//! Errors of the client and the pool.

use crate::store::StoreError;

/// Why an enqueue was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// The queue name is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error("invalid queue name {0:?}: use 1 to 128 characters of letters, digits, '_', '.', ':' or '-'")]
    InvalidQueue(String),
    /// `max_attempts` was 0.
    #[error("invalid max_attempts 0: a job needs at least one attempt")]
    InvalidMaxAttempts,
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
