//! The rules a store request must meet, written once: the [`StoreFacade`](super::StoreFacade)
//! checks every request the engine makes, and a store's own entry points that bypass the
//! engine (a transactional enqueue on the caller's connection) call the same methods. Stores
//! therefore receive only requests that pass them.
//!
//! The rules for a job ([`NewJob::validate`]) are the one rule set of an enqueue: the
//! [`Client`](crate::Client) reports them as typed [`EnqueueError`](crate::EnqueueError)s,
//! and PostgreSQL's SQL `enqueue()` function enforces the same constants (its migration
//! names them; a shared table of cases tests both sides).
//!
//! Each check is O(1) per request, except an insert's, which is O(size of the args) per job
//! (the nesting depth walk), and a checkpoint's (the same walk).

use serde_json::Value;

use crate::error::StoreError;
use crate::job::JobState;
use crate::metadata::MetadataError;

use super::params::{
    JobCheckpointParams, JobClaimParams, JobExpireUnknownKindsParams, JobInsertParams,
    JobListParams, JobPromoteParams, JobPruneParams, JobRescueParams, NewJob,
};

/// The most attempts a job may be given: what every store can hold (PostgreSQL's `integer`).
pub const MAX_ATTEMPTS_LIMIT: u32 = i32::MAX as u32;

/// The longest job kind or queue name, in bytes (they are ASCII).
pub const MAX_NAME_LEN: usize = 128;

/// The deepest nesting of arrays and objects a job's args or checkpoint may have (`1` is
/// `{"a": 1}`, `2` is `{"a": [1]}`).
///
/// Every store reads a row back with `serde_json`, which refuses documents nested deeper than
/// 127 levels, and a store may wrap a row's JSON in up to three levels of its own (SQLite
/// renders a claimed batch as an array of rows, and a checkpoint inside one more array). A
/// job within this limit therefore always decodes; a deeper one would be accepted by the
/// database and then fail at every claim.
pub const MAX_JSON_DEPTH: usize = 100;

/// Why a job breaks the rules of an enqueue (see [`NewJob::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobRuleError {
    /// The kind is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error(
        "invalid job kind {0:?}: use 1 to {MAX_NAME_LEN} characters of letters, digits, \
         '_', '.', ':' or '-'"
    )]
    InvalidKind(String),
    /// The queue name is empty, too long or has characters outside `[A-Za-z0-9_.:-]`.
    #[error(
        "invalid queue name {0:?}: use 1 to {MAX_NAME_LEN} characters of letters, digits, \
         '_', '.', ':' or '-'"
    )]
    InvalidQueue(String),
    /// `max_attempts` is 0 or above [`MAX_ATTEMPTS_LIMIT`].
    #[error("invalid max_attempts {0}: use 1 to {MAX_ATTEMPTS_LIMIT}")]
    InvalidMaxAttempts(u32),
    /// The args nest arrays and objects deeper than [`MAX_JSON_DEPTH`].
    #[error(
        "args nested {depth} levels deep: at most {max} levels of arrays and objects can be \
         stored and read back; flatten the args"
    )]
    ArgsTooDeep {
        /// The args' nesting depth.
        depth: usize,
        /// [`MAX_JSON_DEPTH`].
        max: usize,
    },
    /// The metadata breaks its rules ([`Metadata::validate`](crate::Metadata::validate)).
    #[error(transparent)]
    InvalidMetadata(#[from] MetadataError),
}

/// Whether `name` is a valid job kind or queue name: 1 to [`MAX_NAME_LEN`] characters of
/// `[A-Za-z0-9_.:-]`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// How deeply `value` nests arrays and objects: 0 for a scalar, 1 for `[]` or `{"a": 1}`.
/// Walks with its own stack, so any depth is measured without recursion.
pub fn json_depth(value: &Value) -> usize {
    let nested = |value: &&Value| value.is_array() || value.is_object();
    let mut deepest = 0;
    let mut pending: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, above)) = pending.pop() {
        let depth = above + 1;
        match value {
            Value::Array(items) => pending.extend(items.iter().filter(nested).map(|v| (v, depth))),
            Value::Object(members) => {
                pending.extend(members.values().filter(nested).map(|v| (v, depth)))
            }
            _ => continue,
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// The one wording of a refused request: the operation, then what is wrong and how to fix it.
fn invalid(op: &str, problem: impl std::fmt::Display) -> StoreError {
    StoreError::invalid(format!("{op}: {problem}"))
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
fn queue_problem(queue: &str) -> Option<JobRuleError> {
    (!is_valid_name(queue)).then(|| JobRuleError::InvalidQueue(queue.to_owned()))
}

impl NewJob {
    /// Checks the rules of an enqueue: a valid kind and queue name (1 to [`MAX_NAME_LEN`]
    /// characters of `[A-Za-z0-9_.:-]`), `max_attempts` from 1 to [`MAX_ATTEMPTS_LIMIT`], and
    /// args nested at most [`MAX_JSON_DEPTH`] deep, and metadata within its limits
    /// ([`Metadata::validate`](crate::Metadata::validate)). (The priority's range is its
    /// type's, `i16`.) PostgreSQL's SQL `enqueue()` enforces the same rules.
    ///
    /// ```
    /// use jobs::store::{JobRuleError, NewJob, MAX_JSON_DEPTH};
    ///
    /// let mut args = serde_json::json!(1);
    /// for _ in 0..=MAX_JSON_DEPTH {
    ///     args = serde_json::json!([args]);
    /// }
    /// let job = NewJob {
    ///     kind: "import".into(),
    ///     args,
    ///     queue: "default".into(),
    ///     priority: 0,
    ///     max_attempts: 20,
    ///     run_at: None,
    ///     metadata: Default::default(),
    /// };
    /// let too_deep = JobRuleError::ArgsTooDeep { depth: MAX_JSON_DEPTH + 1, max: MAX_JSON_DEPTH };
    /// assert_eq!(job.validate(), Err(too_deep));
    /// ```
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), JobRuleError> {
        if !is_valid_name(&self.kind) {
            return Err(JobRuleError::InvalidKind(self.kind.clone()));
        }
        if let Some(problem) = queue_problem(&self.queue) {
            return Err(problem);
        }
        if self.max_attempts == 0 || self.max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(JobRuleError::InvalidMaxAttempts(self.max_attempts));
        }
        let depth = json_depth(&self.args);
        if depth > MAX_JSON_DEPTH {
            return Err(JobRuleError::ArgsTooDeep {
                depth,
                max: MAX_JSON_DEPTH,
            });
        }
        self.metadata.validate()?;
        Ok(())
    }
}

impl JobInsertParams {
    /// Checks every job with [`NewJob::validate`].
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the first job that breaks a rule; a store must then
    /// insert nothing of the batch.
    pub fn validate(&self) -> Result<(), StoreError> {
        for (index, job) in self.jobs.iter().enumerate() {
            if let Err(problem) = job.validate() {
                return Err(invalid(
                    "job_insert_many",
                    format!(
                        "job {index} ({:?}) of the batch is refused: {problem}; nothing was \
                         inserted",
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
            Some(problem) => Err(invalid("job_claim", format!("a claim from the {problem}"))),
            None => Ok(()),
        }
    }
}

/// What is wrong with a checkpoint, if anything: nested deeper than [`MAX_JSON_DEPTH`] (it
/// could be stored but not read back).
pub(crate) fn checkpoint_problem(checkpoint: &Value) -> Option<String> {
    let depth = json_depth(checkpoint);
    (depth > MAX_JSON_DEPTH).then(|| {
        format!(
            "a checkpoint nested {depth} levels deep; at most {MAX_JSON_DEPTH} levels of arrays \
             and objects can be stored and read back"
        )
    })
}

impl JobCheckpointParams {
    /// Checks that the checkpoint nests at most [`MAX_JSON_DEPTH`] deep (a deeper one could
    /// be stored but not read back).
    ///
    /// # Errors
    ///
    /// [`StoreError::Invalid`] naming the depth.
    pub fn validate(&self) -> Result<(), StoreError> {
        match checkpoint_problem(&self.checkpoint) {
            Some(problem) => Err(invalid("job_checkpoint", problem)),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |inner, level| {
            if level % 2 == 0 {
                json!([inner])
            } else {
                json!({ "a": inner })
            }
        })
    }

    #[test]
    fn depth_counts_levels_of_arrays_and_objects() {
        assert_eq!(json_depth(&json!("s")), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": 1, "b": [1, {"c": {}}]})), 4);
        assert_eq!(json_depth(&nested(129)), 129);
        assert_eq!(json_depth(&nested(1_000)), 1_000);
    }

    /// The limit leaves room for the levels a store wraps around a row's JSON: at the limit,
    /// three more levels still decode; serde_json refuses 128 levels.
    #[test]
    fn the_depth_limit_is_within_what_serde_json_reads_back() {
        let decodes =
            |depth: usize| serde_json::from_str::<Value>(&nested(depth).to_string()).is_ok();
        assert!(decodes(MAX_JSON_DEPTH + 3));
        assert!(decodes(127));
        assert!(!decodes(128));
    }
}
