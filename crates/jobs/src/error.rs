//! Errors of the client and the stores.

use crate::metadata::MetadataError;
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
    /// The metadata breaks its rules ([`Metadata::validate`](crate::Metadata::validate)).
    #[error(transparent)]
    InvalidMetadata(#[from] MetadataError),
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

/// The underlying error a [`StoreError`] keeps as its [`source()`](std::error::Error::source):
/// for the SQL stores a `sqlx::Error`, from which the SQLSTATE or SQLite result code can be
/// read.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl From<JobRuleError> for EnqueueError {
    fn from(broken: JobRuleError) -> Self {
        match broken {
            JobRuleError::InvalidKind(kind) => EnqueueError::InvalidKind(kind),
            JobRuleError::InvalidQueue(queue) => EnqueueError::InvalidQueue(queue),
            JobRuleError::InvalidMaxAttempts(given) => EnqueueError::InvalidMaxAttempts(given),
            JobRuleError::ArgsTooDeep { depth, max } => EnqueueError::ArgsTooDeep { depth, max },
            JobRuleError::InvalidMetadata(broken) => EnqueueError::InvalidMetadata(broken),
        }
    }
}

/// A store's failure.
///
/// The variants classify the failure (what a caller can do about it); the underlying error,
/// when there is one, is kept as [`source()`](std::error::Error::source), so a caller can
/// downcast it (e.g. to `sqlx::Error` for the SQLSTATE) and logs show the whole chain:
///
/// ```
/// use std::error::Error as _;
/// use jobs::StoreError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
/// let err = StoreError::unavailable("connection lost").with_source(io);
/// assert!(err.is_transient());
/// let cause = err.source().and_then(|s| s.downcast_ref::<std::io::Error>());
/// assert_eq!(cause.map(|io| io.kind()), Some(std::io::ErrorKind::ConnectionReset));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or the connection broke; retrying later may work.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What failed, with a hint at the fix.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The database is busy or locked; retrying later will work.
    #[error("store busy: {message}")]
    Busy {
        /// What failed, with a hint at the fix.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
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
    #[error("schema problem: {message}")]
    Schema {
        /// What is wrong, with a hint at the fix.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A parameter was out of range (e.g. an empty queue name, zero limit), or the database
    /// refused a value (a constraint or data error).
    #[error("invalid store request: {message}")]
    Invalid {
        /// Which rule the request broke.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other database error.
    #[error("store error: {message}")]
    Other {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`] with `message` and no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Busy`] with `message` and no source.
    pub fn busy(message: impl Into<String>) -> Self {
        StoreError::Busy {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Schema`] with `message` and no source.
    pub fn schema(message: impl Into<String>) -> Self {
        StoreError::Schema {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Invalid`] with `message` and no source.
    pub fn invalid(message: impl Into<String>) -> Self {
        StoreError::Invalid {
            message: message.into(),
            source: None,
        }
    }

    /// [`StoreError::Other`] with `message` and no source.
    pub fn other(message: impl Into<String>) -> Self {
        StoreError::Other {
            message: message.into(),
            source: None,
        }
    }

    /// The same error keeping `cause` as its [`source()`](std::error::Error::source).
    /// [`Closed`](StoreError::Closed) and [`Corrupt`](StoreError::Corrupt) have no source and
    /// are returned unchanged.
    #[must_use]
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        match &mut self {
            StoreError::Unavailable { source, .. }
            | StoreError::Busy { source, .. }
            | StoreError::Schema { source, .. }
            | StoreError::Invalid { source, .. }
            | StoreError::Other { source, .. } => *source = Some(cause.into()),
            StoreError::Closed | StoreError::Corrupt { .. } => {}
        }
        self
    }

    /// Whether the same call may succeed later (connection loss, lock contention).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable { .. } | StoreError::Busy { .. }
        )
    }
}
