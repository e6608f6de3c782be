//! What can go wrong, and the exit code each failure gives.

use jobs::{JobId, JobState, StoreError};
use jobs_postgres::PostgresError;

/// Success.
pub(crate) const EXIT_OK: u8 = 0;
/// The operation failed: the job does not exist or is in the wrong state, or the store failed
/// or cannot be reached.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Bad usage: an unknown option, a malformed value (JSON, duration, time, state), a bad
/// database URL or path. clap's own usage errors exit with 2 as well.
pub(crate) const EXIT_USAGE: u8 = 2;

/// The exit codes, as `--help` shows them.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the operation failed: unknown job id, job in the wrong state, store error or unreachable
  2  bad usage: unknown option, invalid JSON, duration, time, state, database URL or path";

/// Why a command failed; its message is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// Bad input the parser could not catch (no database given, a malformed URL or name).
    #[error("{0}")]
    Usage(String),
    /// No job has this id.
    #[error("job {0} does not exist")]
    NotFound(JobId),
    /// The job exists but the operation does not apply to its state.
    #[error("job {id} is {state}: {needed}")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// What the operation needs.
        needed: &'static str,
    },
    /// The SQLite database file does not exist (only `migrate` creates one).
    #[error("no SQLite database at {0} (create it with `jobs migrate`)")]
    NoDatabaseFile(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL store could not be opened or migrated.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// Reading the confirmation or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The user did not confirm a destructive operation.
    #[error("aborted: nothing was changed")]
    Aborted,
}

impl CliError {
    /// The process exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Postgres(PostgresError::InvalidUrl { .. })
            | CliError::Postgres(PostgresError::InvalidSchemaName { .. }) => EXIT_USAGE,
            CliError::Store(StoreError::Invalid { .. }) => EXIT_USAGE,
            _ => EXIT_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_usage_and_the_rest_failure() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(
            CliError::Store(StoreError::invalid("bad kind")).exit_code(),
            EXIT_USAGE
        );
        assert_eq!(CliError::NotFound(JobId(7)).exit_code(), EXIT_FAILED);
        assert_eq!(CliError::Aborted.exit_code(), EXIT_FAILED);
        assert_eq!(
            CliError::NotFound(JobId(7)).to_string(),
            "job 7 does not exist"
        );
    }
}
