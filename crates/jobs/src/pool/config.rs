//! Pool settings and their defaults.

use std::time::Duration;

use supervisor::{Backoff, Intensity};

/// The longest default restart delay of a pool's child after a store error (see
/// [`PoolConfig::restart_backoff`]).
const RESTART_BACKOFF_CAP: Duration = Duration::from_secs(1);

/// How a pool leases, heartbeats, rescues, polls and shuts down. Every field has a default
/// chosen for a platform that sends SIGTERM and SIGKILLs 30 s later (Heroku, Kubernetes'
/// default `terminationGracePeriodSeconds`, ECS).
///
/// # Choosing the times
///
/// * `shutdown_timeout` must be below the platform's kill timeout, with margin for the
///   process to exit: 25 s for 30 s.
/// * `grace` is how long running jobs get to finish or checkpoint after SIGTERM; the rest of
///   `shutdown_timeout` is for aborting and releasing the stragglers (a few ms per batch):
///   20 s.
/// * `lease_ttl` bounds how long a job stays orphaned after its worker is SIGKILLed or
///   frozen: a rescuer returns it within `lease_ttl + rescue_interval`. Shorter is faster
///   recovery but more heartbeat writes and a higher risk that a long stall (GC-like pause,
///   network partition) loses the lease; the run is then stopped and its writes are fenced
///   off, so nothing is overwritten. 30 s with a heartbeat every 10 s tolerates two missed
///   heartbeats.
/// * `max_rescues` is how many times a job may take its worker down with it (OOM, segfault,
///   SIGKILL) before it is moved to the dead set as a poison pill. Deploys also SIGKILL
///   workers that overrun the kill timeout, so keep it above 1.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Length of a job lease (default 30 s).
    pub lease_ttl: Duration,
    /// How often running jobs' leases are renewed (default 10 s, a third of `lease_ttl`).
    pub heartbeat_interval: Duration,
    /// How often expired leases are looked for (default 10 s).
    pub rescue_interval: Duration,
    /// Rescues in quarantine (strikes) after which a job is dead as a poison pill (default
    /// 3). A job rescued beside others is only made a suspect; it is charged only for a
    /// crash while it ran alone (see `JobRecord::suspect`).
    pub max_rescues: u32,
    /// How long a job of a kind this pool has no worker for may wait, available and
    /// unclaimed, before the pool moves it to the dead set (default 7 days). Pools claim only
    /// the kinds they know, so during a rolling deploy that adds a kind its jobs simply wait
    /// for a process that knows it; this bounds how long they wait if none ever comes. The
    /// pool checks once a minute and logs how many such jobs are waiting.
    pub unknown_kind_ttl: Duration,
    /// How often scheduled jobs whose time has come are made available (default 1 s).
    pub promote_interval: Duration,
    /// How often idle fetchers poll when the store gives no wake-ups or one was missed
    /// (default 1 s).
    pub poll_interval: Duration,
    /// At most this many jobs per claim round trip (default 100).
    pub claim_batch: usize,
    /// Extra jobs a queue may claim beyond its free slots while its jobs are short (they
    /// wait locally, leased; released at once on shutdown), so short jobs cost few round
    /// trips. Default 100; 0 claims only for free slots. Prefetch switches off by itself while
    /// the queue's recent jobs take longer than `prefetch_max_job_time`, so long jobs are
    /// shared fairly between workers. Prefetched jobs never hold back a more urgent one: they
    /// start highest priority first, and a wake-up refills the buffer early.
    pub prefetch: usize,
    /// See `prefetch` (default 10 ms).
    pub prefetch_max_job_time: Duration,
    /// At most this many finishes per store round trip (default 1,000).
    pub finish_batch: usize,
    /// How often a job's checkpoint is written at most while the pool is not stopping
    /// (default 1 s; on shutdown every checkpoint is written at once).
    pub checkpoint_interval: Duration,
    /// Grace period for running jobs after shutdown starts (default 20 s).
    pub grace: Duration,
    /// Bound on the whole shutdown (default 25 s).
    pub shutdown_timeout: Duration,
    /// Completed and cancelled jobs are deleted this long after they finished (default 24 h;
    /// dead jobs are kept until retried or deleted by hand).
    pub retention: Duration,
    /// How often the scheduler samples the store's per-queue, per-state counts into the
    /// `jobs_queue_depth` gauges (default 10 s; `None`: never). One `queue_stats` call each
    /// time, off the hot path.
    pub queue_depth_interval: Option<Duration>,
    /// Restart delays of the pool's children after a store error (default exponential 100 ms
    /// doubling to 1 s, jittered by ±10 %, reset after 1 s of stable running).
    ///
    /// The pool's children fail only on store errors, nearly all of them transient (a
    /// database restarting, a connection cut, a pool out of connections), so the cap is low:
    /// every child tries again at least once a second, and work resumes within about a
    /// second of the store coming back, whatever the outage lasted. While the store is down
    /// that is about one call a second per child (rescuer, scheduler, pruner, fetchers...),
    /// which no database notices. The jitter spreads the retries of many processes, so
    /// those competing for too few connections take turns rather than one starving.
    pub restart_backoff: Backoff,
    /// How many restarts of its children the pool's tree tolerates within a period before it
    /// gives up and its exit escalates to its parent (default 10,000 in 60 s: restart delays
    /// already prevent hot loops, and a pool must outlive long store outages; a pool nested
    /// in an application's tree may choose a lower limit so that its parent sees a pool that
    /// keeps failing).
    pub intensity: Intensity,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            lease_ttl: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            rescue_interval: Duration::from_secs(10),
            max_rescues: 3,
            unknown_kind_ttl: Duration::from_secs(7 * 24 * 3600),
            promote_interval: Duration::from_secs(1),
            poll_interval: Duration::from_secs(1),
            claim_batch: 100,
            prefetch: 100,
            prefetch_max_job_time: Duration::from_millis(10),
            finish_batch: 1_000,
            checkpoint_interval: Duration::from_secs(1),
            grace: Duration::from_secs(20),
            shutdown_timeout: Duration::from_secs(25),
            retention: Duration::from_secs(24 * 3600),
            queue_depth_interval: Some(Duration::from_secs(10)),
            restart_backoff: Backoff::exponential(Duration::from_millis(100), RESTART_BACKOFF_CAP),
            intensity: Intensity::new(10_000, Duration::from_secs(60)),
        }
    }
}

/// A settings combination that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be positive is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The field.
        field: &'static str,
    },
    /// Heartbeats would not renew leases before they expire.
    #[error("heartbeat_interval ({heartbeat:?}) must be shorter than lease_ttl ({lease:?}); a third of it is usual")]
    HeartbeatTooSlow {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The lease length.
        lease: Duration,
    },
    /// The grace period does not fit in the shutdown bound.
    #[error("grace ({grace:?}) must be shorter than shutdown_timeout ({bound:?}), leaving time to release unfinished jobs")]
    GraceTooLong {
        /// The grace period.
        grace: Duration,
        /// The shutdown bound.
        bound: Duration,
    },
    /// A queue was declared with concurrency 0.
    #[error("queue {queue:?} has concurrency 0; give it at least 1")]
    ZeroConcurrency {
        /// The queue.
        queue: String,
    },
}

impl PoolConfig {
    /// Checks the settings against each other.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("lease_ttl", self.lease_ttl),
            ("heartbeat_interval", self.heartbeat_interval),
            ("rescue_interval", self.rescue_interval),
            ("promote_interval", self.promote_interval),
            ("poll_interval", self.poll_interval),
            ("shutdown_timeout", self.shutdown_timeout),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(ConfigError::Zero { field });
        }
        if self.claim_batch == 0 {
            return Err(ConfigError::Zero {
                field: "claim_batch",
            });
        }
        if self.finish_batch == 0 {
            return Err(ConfigError::Zero {
                field: "finish_batch",
            });
        }
        if self.heartbeat_interval >= self.lease_ttl {
            return Err(ConfigError::HeartbeatTooSlow {
                heartbeat: self.heartbeat_interval,
                lease: self.lease_ttl,
            });
        }
        if self.grace >= self.shutdown_timeout {
            return Err(ConfigError::GraceTooLong {
                grace: self.grace,
                bound: self.shutdown_timeout,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fit_a_30s_kill_timeout() {
        let config = PoolConfig::default();
        config.validate().unwrap();
        assert!(config.shutdown_timeout < Duration::from_secs(30));
        assert!(config.heartbeat_interval * 2 < config.lease_ttl);
    }

    #[test]
    fn store_errors_restart_children_within_a_second_with_jitter() {
        let backoff = PoolConfig::default().restart_backoff;
        for consecutive in 0..40 {
            assert!(backoff.delay(consecutive) <= RESTART_BACKOFF_CAP);
        }
        // Processes competing for connections retry at spread-out moments, not in lockstep.
        let capped: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.delay(30)).collect();
        assert!(capped.len() > 1, "jittered: {capped:?}");
        assert!(capped.iter().all(|d| *d >= RESTART_BACKOFF_CAP * 8 / 10));
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        let slow_heartbeat = PoolConfig {
            heartbeat_interval: Duration::from_secs(30),
            ..PoolConfig::default()
        };
        assert!(matches!(
            slow_heartbeat.validate(),
            Err(ConfigError::HeartbeatTooSlow { .. })
        ));
        let long_grace = PoolConfig {
            grace: Duration::from_secs(30),
            ..PoolConfig::default()
        };
        assert!(matches!(
            long_grace.validate(),
            Err(ConfigError::GraceTooLong { .. })
        ));
        let zero = PoolConfig {
            poll_interval: Duration::ZERO,
            ..PoolConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::Zero {
                field: "poll_interval"
            })
        );
    }
}
