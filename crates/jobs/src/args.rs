//! Job kinds (`JobArgs`) and the options an enqueue may set.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{EnqueueError, StoreError};
use crate::job::JobId;
use crate::metadata::Metadata;
use crate::store::{JobInsertParams, NewJob, MAX_NAME_LEN};
use crate::time::Timestamp;
use crate::trace_context;

/// The queue a job goes to when no option says otherwise.
pub const DEFAULT_QUEUE: &str = "default";
/// How many attempts a job gets when no option says otherwise (as Oban; PostgreSQL's SQL
/// `enqueue()` has the same default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;
/// The longest queue name accepted (the longest job kind too:
/// [`MAX_NAME_LEN`](crate::store::MAX_NAME_LEN)).
pub const MAX_QUEUE_NAME_LEN: usize = MAX_NAME_LEN;

/// A job kind: serializable arguments with a stable name.
///
/// A process that only enqueues needs this type, not the worker that runs it.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendWelcomeEmail {
///     user_id: u64,
/// }
///
/// impl jobs::JobArgs for SendWelcomeEmail {
///     const KIND: &'static str = "send_welcome_email";
/// }
/// ```
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored with every job of this kind. Renaming it orphans queued jobs.
    const KIND: &'static str;

    /// Options this kind's jobs get unless the enqueue overrides them.
    fn default_options() -> EnqueueOptions {
        EnqueueOptions::default()
    }
}

/// When a job may first run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    At(Timestamp),
    In(Duration),
}

/// Options for one enqueue; unset fields fall back to the kind's defaults, then to the
/// crate defaults (queue [`DEFAULT_QUEUE`], priority 0, [`DEFAULT_MAX_ATTEMPTS`] attempts, now,
/// no metadata). Metadata entries are merged with the kind's, these winning per key.
///
/// ```
/// # fn main() -> Result<(), jobs::EnqueueError> {
/// let options = jobs::EnqueueOptions::new()
///     .queue("mailers")
///     .priority(5)
///     .max_attempts(3)
///     .metadata("request_id", "req-42")
///     .run_in_str("10m")?;
/// # Ok(()) }
/// ```
#[must_use = "options do nothing until passed to an enqueue"]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    queue: Option<String>,
    priority: Option<i16>,
    max_attempts: Option<u32>,
    schedule: Option<Schedule>,
    metadata: Metadata,
}

impl EnqueueOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue to wait in.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Priority: higher runs first (default 0).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Attempts allowed before the dead set (at least 1).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Attaches `key = value` to the job's [`Metadata`] (checked at enqueue:
    /// [`Metadata::validate`]).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Run no earlier than `at`.
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.schedule = Some(Schedule::At(at));
        self
    }

    /// Run no earlier than `delay` after the enqueue.
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.schedule = Some(Schedule::In(delay));
        self
    }

    /// Run no earlier than a `humantime` duration (`"90s"`, `"10m"`, `"1h 30m"`) after the enqueue.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::InvalidDuration`] when `delay` does not parse.
    pub fn run_in_str(self, delay: &str) -> Result<Self, EnqueueError> {
        let parsed =
            humantime::parse_duration(delay).map_err(|e| EnqueueError::InvalidDuration {
                input: delay.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(self.run_in(parsed))
    }

    /// These options with `fallback`'s filling the fields these leave unset.
    fn or(self, fallback: EnqueueOptions) -> Self {
        EnqueueOptions {
            queue: self.queue.or(fallback.queue),
            priority: self.priority.or(fallback.priority),
            max_attempts: self.max_attempts.or(fallback.max_attempts),
            schedule: self.schedule.or(fallback.schedule),
            metadata: self.metadata.or(fallback.metadata),
        }
    }

    /// Builds the job to insert for `args` of kind `A`, validated by the rules of an enqueue
    /// ([`NewJob::validate`]), carrying the current span's trace context (with the
    /// `opentelemetry` feature).
    pub(crate) fn new_job<A: JobArgs>(
        self,
        args: &A,
        now: Timestamp,
    ) -> Result<NewJob, EnqueueError> {
        let options = self.or(A::default_options());
        let args = serde_json::to_value(args).map_err(|e| EnqueueError::Serialize {
            kind: A::KIND,
            reason: e.to_string(),
        })?;
        let mut metadata = options.metadata;
        trace_context::inject(&mut metadata);
        let run_at = options.schedule.map(|schedule| match schedule {
            Schedule::At(at) => at,
            Schedule::In(delay) => now + delay,
        });
        let job = NewJob {
            kind: A::KIND.to_owned(),
            args,
            queue: options.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            priority: options.priority.unwrap_or(0),
            max_attempts: options.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            run_at,
            metadata,
        };
        job.validate()?;
        Ok(job)
    }
}

impl NewJob {
    /// The job to insert for `args` of kind `A` with `options` (over `A`'s defaults),
    /// validated as [`Client::enqueue`](crate::Client::enqueue) validates it; a relative
    /// `run_in` counts from now. For stores that insert on a caller's own transaction, such
    /// as `jobs_postgres::PostgresStore::insert_in`.
    ///
    /// ```
    /// use jobs::{EnqueueOptions, JobArgs};
    /// use jobs::store::NewJob;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Welcome { user: u64 }
    /// impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    ///
    /// let job = NewJob::from_args(&Welcome { user: 42 }, EnqueueOptions::new().queue("mail"))?;
    /// assert_eq!((job.kind.as_str(), job.queue.as_str()), ("welcome", "mail"));
    /// # Ok::<(), jobs::EnqueueError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`] but `Store`.
    pub fn from_args<A: JobArgs>(args: &A, options: EnqueueOptions) -> Result<Self, EnqueueError> {
        options.new_job(args, Timestamp::now())
    }
}

impl JobInsertParams {
    /// The insert of one job per item of `args`, all with `options` (over `A`'s defaults),
    /// at `now`: each job built and checked as [`Client::enqueue_many`](crate::Client::enqueue_many)
    /// builds it. For a store's transactional enqueue on the caller's own transaction
    /// (`enqueue_in`), which then checks the batch with [`JobInsertParams::validate`] as the
    /// store facade does for `Client`, so both paths take and refuse the same jobs.
    ///
    /// # Errors
    ///
    /// Any [`EnqueueError`] but `Store`.
    pub fn from_args<A: JobArgs>(
        args: impl IntoIterator<Item = impl std::borrow::Borrow<A>>,
        options: EnqueueOptions,
        now: Timestamp,
    ) -> Result<Self, EnqueueError> {
        // The trace context once for the batch (each job's build then finds it there).
        let mut options = options;
        trace_context::inject(&mut options.metadata);
        let jobs = args
            .into_iter()
            .map(|args| options.clone().new_job(args.borrow(), now))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JobInsertParams { jobs, now })
    }

    /// The id of a one-job insert, from the ids the store returned for it.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::Store`] if the store returned no id (a store bug).
    pub fn only_id(ids: Vec<JobId>) -> Result<JobId, EnqueueError> {
        ids.into_iter()
            .next()
            .ok_or_else(|| StoreError::other("insert of one job returned no id").into())
    }
}

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME_LEN`] characters of `[A-Za-z0-9_.:-]`.
///
/// # Errors
///
/// [`EnqueueError::InvalidQueue`] naming the rule broken.
pub fn validate_queue_name(queue: &str) -> Result<(), EnqueueError> {
    if crate::store::is_valid_name(queue) {
        Ok(())
    } else {
        Err(EnqueueError::InvalidQueue(queue.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Ping(u32);

    impl JobArgs for Ping {
        const KIND: &'static str = "ping";
        fn default_options() -> EnqueueOptions {
            EnqueueOptions::new().queue("pings").priority(3)
        }
    }

    #[test]
    fn options_fall_back_to_kind_then_crate_defaults() {
        let now = Timestamp::from_micros(1_000_000);
        let job = EnqueueOptions::new()
            .priority(9)
            .new_job(&Ping(7), now)
            .unwrap();
        assert_eq!(job.kind, "ping");
        assert_eq!(job.queue, "pings");
        assert_eq!(job.priority, 9);
        assert_eq!(job.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(job.run_at, None);
        assert_eq!(job.args, serde_json::json!(7));
    }

    #[test]
    fn metadata_merges_with_the_kind_s_own_winning_per_key() {
        #[derive(Serialize, Deserialize)]
        struct Tagged;
        impl JobArgs for Tagged {
            const KIND: &'static str = "tagged";
            fn default_options() -> EnqueueOptions {
                EnqueueOptions::new()
                    .metadata("team", "billing")
                    .metadata("tier", "free")
            }
        }
        let job = EnqueueOptions::new()
            .metadata("tier", "paid")
            .new_job(&Tagged, Timestamp::EPOCH)
            .unwrap();
        let expected: Metadata = [("team", "billing"), ("tier", "paid")]
            .into_iter()
            .collect();
        assert_eq!(job.metadata, expected);
        let plain = EnqueueOptions::new()
            .new_job(&Ping(1), Timestamp::EPOCH)
            .unwrap();
        assert!(plain.metadata.is_empty(), "none by default");
    }

    #[test]
    fn run_in_is_relative_to_now() {
        let now = Timestamp::from_micros(1_000_000);
        let job = EnqueueOptions::new()
            .run_in_str("1m 30s")
            .unwrap()
            .new_job(&Ping(1), now)
            .unwrap();
        assert_eq!(job.run_at, Some(now + Duration::from_secs(90)));
    }

    #[derive(Serialize, Deserialize)]
    struct Deep(serde_json::Value);

    impl JobArgs for Deep {
        const KIND: &'static str = "deep";
    }

    #[derive(Serialize, Deserialize)]
    struct BadlyNamed;

    impl JobArgs for BadlyNamed {
        const KIND: &'static str = "bad kind!";
    }

    /// The rules of `NewJob::validate`, as typed errors: args deeper than the store can read
    /// back, a kind outside the name rules, `max_attempts` out of range.
    #[test]
    fn broken_rules_are_typed_errors() {
        use crate::store::{MAX_ATTEMPTS_LIMIT, MAX_JSON_DEPTH};
        let now = Timestamp::EPOCH;
        let nested =
            |depth: usize| (0..depth).fold(serde_json::json!(1), |v, _| serde_json::json!([v]));
        assert!(EnqueueOptions::new()
            .new_job(&Deep(nested(MAX_JSON_DEPTH)), now)
            .is_ok());
        assert!(matches!(
            EnqueueOptions::new().new_job(&Deep(nested(129)), now),
            Err(EnqueueError::ArgsTooDeep {
                depth: 129,
                max: MAX_JSON_DEPTH
            })
        ));
        assert!(matches!(
            EnqueueOptions::new().new_job(&BadlyNamed, now),
            Err(EnqueueError::InvalidKind(kind)) if kind == "bad kind!"
        ));
        let bad_key = EnqueueOptions::new().metadata("no spaces", "v");
        assert!(matches!(
            bad_key.new_job(&Ping(1), now),
            Err(EnqueueError::InvalidMetadata(crate::MetadataError::InvalidKey(key))) if key == "no spaces"
        ));
        let big = "x".repeat(crate::MAX_METADATA_BYTES);
        assert!(matches!(
            EnqueueOptions::new()
                .metadata("k", big)
                .new_job(&Ping(1), now),
            Err(EnqueueError::InvalidMetadata(
                crate::MetadataError::TooLarge { .. }
            ))
        ));
        let too_many = MAX_ATTEMPTS_LIMIT + 1;
        assert!(matches!(
            EnqueueOptions::new().max_attempts(too_many).new_job(&Ping(1), now),
            Err(EnqueueError::InvalidMaxAttempts(n)) if n == too_many
        ));
    }

    #[test]
    fn bad_options_are_typed_errors() {
        let now = Timestamp::EPOCH;
        assert!(matches!(
            EnqueueOptions::new().run_in_str("soon"),
            Err(EnqueueError::InvalidDuration { .. })
        ));
        assert!(matches!(
            EnqueueOptions::new().max_attempts(0).new_job(&Ping(1), now),
            Err(EnqueueError::InvalidMaxAttempts(0))
        ));
        for bad in ["", "has space", "semi;colon", &"q".repeat(129)] {
            assert!(matches!(
                EnqueueOptions::new().queue(bad).new_job(&Ping(1), now),
                Err(EnqueueError::InvalidQueue(_))
            ));
        }
    }
}
