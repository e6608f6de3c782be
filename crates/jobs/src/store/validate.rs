//! The rules a store request must meet, written once: the [`StoreFacade`](super::StoreFacade)
//! checks every request the engine makes, and a store's own entry points that bypass the
//! engine (a transactional enqueue on the caller's connection) call the same methods. Stores
//! therefore receive only requests that pass them.
//!
//! Each check is O(1) per request, except an insert's, which is O(1) per job.

use crate::args::{is_valid_queue_name, MAX_QUEUE_NAME_LEN};
use crate::error::StoreError;
use crate::job::JobState;

use super::params::{
    JobClaimParams, JobExpireUnknownKindsParams, JobInsertParams, JobListParams, JobPromoteParams,
    JobPruneParams, JobRescueParams, NewJob,
};

/// The most attempts a job may be given: what every store can hold (PostgreSQL's `integer`).
pub const MAX_ATTEMPTS_LIMIT: u32 = i32::MAX as u32;

/// The one wording of a refused request: the operation, then what is wrong and how to fix it.
fn invalid(op: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("{op}: {problem}"))
}

fn positive_limit(op: &str, limit: usize) -> Result<(), StoreError> {
    if limit == 0 {
        return Err(invalid(
            op,
            "limit 0 can never return anything; pass a limit of at least 1",
        ));
    }
    Ok(())
}

/// What is wrong with a queue name, if anything.
fn queue_problem(queue: &str) -> Option<String> {
    (!is_valid_queue_name(queue)).then(|| {
        format!(
            "the invalid queue name {queue:?}; use 1 to {MAX_QUEUE_NAME_LEN} characters of \
             letters, digits, '_', '.', ':' or '-'"
        )
    })
}

impl NewJob {
    /// What is wrong with this job, if anything (built only then: no allocation per valid job).
    fn problem(&self) -> Option<String> {
        if self.kind.is_empty() {
            return Some("an empty kind; give it the job kind's stable name".to_owned());
        }
        if let Some(problem) = queue_problem(&self.queue) {
            return Some(problem);
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Some(format!(
                "max_attempts {}; use 1 to {MAX_ATTEMPTS_LIMIT}",
                self.max_attempts
            ));
        }
        None
    }
}

impl JobInsertParams {
    /// Checks every job: a non-empty kind, a valid queue name (as
    /// [`validate_queue_name`](crate::validate_queue_name)), and `max_attempts` from 1 to
    /// [`MAX_ATTEMPTS_LIMIT`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the first job that breaks a rule; a store must then
    /// insert nothing of the batch.
    pub fn validate(&self) -> Result<(), StoreError> {
        for (index, job) in self.jobs.iter().enumerate() {
            if let Some(problem) = job.problem() {
                return Err(invalid(
                    "job_insert_many",
                    format!(
                        "job {index} ({:?}) of the batch has {problem}; nothing was inserted",
                        job.kind
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl JobClaimParams {
    /// Checks a positive `limit`, a valid queue name and, if `kinds` is given, at least one
    /// kind.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the rule broken.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_claim", self.limit)?;
        if self.kinds.as_ref().is_some_and(|kinds| kinds.is_empty()) {
            return Err(invalid(
                "job_claim",
                "an empty kind list can never return anything; pass the kinds the claimer \
                 has workers for, or None for any kind",
            ));
        }
        match queue_problem(&self.queue) {
            Some(problem) => Err(invalid("job_claim", format!("a claim from {problem}"))),
            None => Ok(()),
        }
    }
}

impl JobExpireUnknownKindsParams {
    /// Checks a positive `limit` and at least one known kind.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the rule broken.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_expire_unknown_kinds", self.limit)?;
        if self.known.is_empty() {
            return Err(invalid(
                "job_expire_unknown_kinds",
                "an empty list of known kinds would expire every waiting job; pass the kinds \
                 the caller has workers for",
            ));
        }
        Ok(())
    }
}

impl JobRescueParams {
    /// Checks a positive `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a zero limit.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_rescue_expired", self.limit)
    }
}

impl JobPromoteParams {
    /// Checks a positive `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a zero limit.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_promote_scheduled", self.limit)
    }
}

impl JobListParams {
    /// Checks a positive `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] for a zero limit.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_list", self.limit)
    }
}

impl JobPruneParams {
    /// Checks a positive `limit` and that every state is terminal.
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the rule broken.
    pub fn validate(&self) -> Result<(), StoreError> {
        positive_limit("job_prune", self.limit)?;
        match self.states.iter().find(|state| !state.is_terminal()) {
            Some(state) => Err(invalid(
                "job_prune",
                format!(
                    "{state} is not a terminal state; only {}, {} and {} jobs may be pruned",
                    JobState::Completed,
                    JobState::Dead,
                    JobState::Cancelled
                ),
            )),
            None => Ok(()),
        }
    }
}
