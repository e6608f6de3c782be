//! Bounds on every store call, so a network that silently drops traffic (a partition with no
//! RST, a stalled server) cannot hang a worker.
//!
//! Three layers:
//!
//! * the server ends a statement after the store's `statement_timeout`, and drops a client
//!   that stopped answering after its TCP keepalives fail (session settings the store sends
//!   when it connects, see [`PostgresOptions`](crate::PostgresOptions));
//! * the client gives up on a call after [`CallBound::limit`] (the acquire timeout plus the
//!   statement timeout plus a second for the answer to travel), with a transient
//!   [`StoreError::Unavailable`], so the engine's child fails and is restarted with a fresh
//!   connection;
//! * a connection given up on mid-call may never answer again, and sqlx checks every
//!   connection it takes back with a ping that has no bound. So for a while after a call was
//!   given up on, the pool's `after_release` hook pings released connections itself, within
//!   [`RELEASE_CHECK_LIMIT`], and closes those that do not answer, before sqlx's own ping
//!   could hang on them and keep their slot in the pool forever. Outside that window the hook
//!   costs one atomic load.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jobs::StoreError;
use sqlx::pool::PoolConnectionMetadata;
use sqlx::{Connection, PgConnection};

/// How long a released connection gets to answer the check ping.
pub(crate) const RELEASE_CHECK_LIMIT: Duration = Duration::from_secs(2);
/// How long after a call was given up on released connections are checked.
const RELEASE_CHECK_WINDOW: Duration = Duration::from_secs(10);
/// Time for an answer (or the server's cancellation) to travel back, on top of the
/// statement timeout.
const ANSWER_SLACK: Duration = Duration::from_secs(1);

/// The longest a store call may take before the client gives up on it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallBound {
    limit: Duration,
}

impl CallBound {
    /// A bound for a pool that waits at most `acquire_timeout` for a connection and a server
    /// that ends statements after `statement_timeout`.
    pub(crate) fn new(acquire_timeout: Duration, statement_timeout: Duration) -> Self {
        CallBound {
            limit: acquire_timeout
                .saturating_add(statement_timeout)
                .saturating_add(ANSWER_SLACK),
        }
    }

    /// The bound.
    pub(crate) fn limit(self) -> Duration {
        self.limit
    }

    /// Runs `call` (the store operation `op`) within the bound; past it, the call is dropped
    /// and released connections are checked for a while (see the module docs).
    pub(crate) async fn run<T>(
        self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.limit, call).await {
            Ok(result) => result,
            Err(_) => {
                note_abandoned();
                tracing::warn!(op, limit = ?self.limit, "a PostgreSQL call got no answer within its bound; giving up on its connection");
                Err(StoreError::unavailable(format!(
                    "PostgreSQL did not answer {op} within {:?} (a network partition or a stalled server?); the call was abandoned",
                    self.limit
                )))
            }
        }
    }
}

/// Milliseconds since [`epoch`] until which released connections are checked (0: none).
static CHECK_UNTIL_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A call was given up on: check released connections for the next while. Process-wide,
/// because a store opened on an application's pool shares that pool's hook.
pub(crate) fn note_abandoned() {
    let until = now_ms().saturating_add(RELEASE_CHECK_WINDOW.as_millis() as u64);
    CHECK_UNTIL_MS.fetch_max(until, Ordering::Relaxed);
}

fn checking() -> bool {
    let until = CHECK_UNTIL_MS.load(Ordering::Relaxed);
    until != 0 && now_ms() < until
}

/// The pool's `after_release` hook: `Ok(true)` keeps the connection; an error makes sqlx
/// close it without a graceful goodbye.
pub(crate) fn release_check(
    conn: &mut PgConnection,
    _meta: PoolConnectionMetadata,
) -> BoxFuture<'_, Result<bool, sqlx::Error>> {
    Box::pin(async move {
        if !checking() {
            return Ok(true);
        }
        match tokio::time::timeout(RELEASE_CHECK_LIMIT, conn.ping()).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "a released PostgreSQL connection did not answer its check",
            ))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_covers_acquiring_the_statement_and_the_answer() {
        let bound = CallBound::new(Duration::from_secs(10), Duration::from_secs(30));
        assert_eq!(bound.limit(), Duration::from_secs(41));
        let huge = CallBound::new(Duration::MAX, Duration::from_secs(1));
        assert_eq!(huge.limit(), Duration::MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_bound_fails_as_transient_and_opens_the_check_window() {
        let bound = CallBound::new(Duration::from_secs(1), Duration::from_secs(1));
        let hung = bound.run(
            "job_claim",
            std::future::pending::<Result<(), StoreError>>(),
        );
        let error = hung.await.expect_err("a call that never answers");
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("job_claim"), "{error}");
        assert!(checking());
        let quick = bound.run("job_get", async { Ok(7) }).await;
        assert_eq!(quick.expect("answered in time"), 7);
    }
}
