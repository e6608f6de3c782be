//! [`LeaseCommit`]: whether the commits of lease-state writes wait for the WAL flush.

/// Whether the commits of lease-state writes (claims, finishes, heartbeats, checkpoints,
/// rescues and promotions) wait for their WAL record to reach the disk.
///
/// Inserts never change: `job_insert_many`, [`PostgresStore::insert_in`] (on the caller's
/// transaction, with the caller's setting) and the SQL `enqueue()` function always commit
/// with the session's `synchronous_commit` (normally `on`), so an acknowledged enqueue is on
/// disk. Administrative calls (retry, cancel, prune) keep it too.
///
/// # What [`Asynchronous`](LeaseCommit::Asynchronous) means after a crash
///
/// Each lease write runs with `synchronous_commit = off` for its own transaction only
/// (`set_config(…, true)` inside the statement). PostgreSQL then acknowledges the commit
/// before its WAL is flushed; the WAL writer flushes it within `3 × wal_writer_delay` (600 ms
/// by default). A clean shutdown or restart of PostgreSQL, a lost connection, or a terminated
/// backend loses nothing. Only a crash of the PostgreSQL server itself (power loss, OS crash,
/// `kill -9`, an immediate shutdown) can roll back the lease writes acknowledged in that last
/// window, and then only those, in commit order (no later write survives an earlier lost one):
///
/// * a **claim** rolled back: the job is `available` again and is claimed again, possibly
///   while the worker that got it first is still running it, so it runs twice. The new claim
///   issues the same token again (`claims` went back by one and up again), but every fenced
///   write names its owner too, so the first worker's heartbeats and finishes no longer
///   match: it is told its lease was lost and stops. (If the same pool claims it again, the
///   pool stops its earlier run itself.)
/// * a **finish** rolled back: the job is `running` again under its old lease, which expires;
///   the rescuer makes it `available` and it runs again;
/// * a **heartbeat** or **checkpoint** rolled back: the lease may expire earlier than the
///   worker expects (the job is rescued and runs again) or the job resumes from the previous
///   checkpoint;
/// * a **rescue** or **promotion** rolled back: it is simply done again.
///
/// So no enqueued job is ever lost, and delivery stays at-least-once: a crash can make jobs
/// that were running or had just finished run again, which jobs must tolerate anyway (a worker
/// can die after its side effects and before its finish). Any synchronous commit, such as the
/// next insert, also makes every earlier asynchronous commit durable.
///
/// The gain is large because a commit's WAL flush costs milliseconds on ordinary disks
/// (3–4 ms on the disk of an earlier benchmark machine, 0.13 ms on a fast one) and every
/// claim and finish batch pays it otherwise.
/// Choose [`Synchronous`](LeaseCommit::Synchronous) if jobs must not run again after a
/// database crash beyond what a worker crash can cause.
///
/// [`PostgresStore::insert_in`]: crate::PostgresStore::insert_in
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LeaseCommit {
    /// Lease writes commit with `synchronous_commit = off` (the default; see above).
    #[default]
    Asynchronous,
    /// Lease writes commit with the session's `synchronous_commit` like every other write
    /// (normally `on`: each claim and finish batch waits for its WAL flush).
    Synchronous,
}

impl LeaseCommit {
    /// The value bound to a lease statement's [`gate`] parameter.
    pub(crate) fn is_async(self) -> bool {
        self == LeaseCommit::Asynchronous
    }
}

/// A condition, always true, that turns `synchronous_commit` off for the rest of the
/// statement's transaction when the boolean parameter `param` is true, and leaves it as it is
/// otherwise. It is an uncorrelated subquery, so PostgreSQL evaluates it once, before the
/// first row, as a one-time filter; the setting is read when the transaction commits.
pub(crate) fn gate(param: &str) -> String {
    format!(
        "(SELECT set_config('synchronous_commit', \
                 CASE WHEN {param}::bool THEN 'off' ELSE current_setting('synchronous_commit') END, \
                 true)) IS NOT NULL"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jobs::store::{
        FinishOutcome, JobCheckpointParams, JobClaimParams, JobFinish, JobFinishParams,
        JobHeartbeatParams, JobInsertParams, JobPromoteParams, JobRescueParams, Lease, NewJob,
    };
    use jobs::Timestamp;
    use sqlx::{Connection, PgConnection};

    use super::*;
    use crate::sql::Queries;
    use crate::{finish, insert, lease, maintenance, SchemaName};

    #[test]
    fn asynchronous_is_the_default() {
        assert_eq!(LeaseCommit::default(), LeaseCommit::Asynchronous);
        assert!(LeaseCommit::Asynchronous.is_async());
        assert!(!LeaseCommit::Synchronous.is_async());
        assert!(gate("$9").contains("$9::bool"));
    }

    fn job(run_at: Option<Timestamp>) -> NewJob {
        NewJob {
            kind: "k".into(),
            args: serde_json::json!(1),
            queue: "q".into(),
            priority: 0,
            max_attempts: 3,
            run_at,
            metadata: Default::default(),
        }
    }

    fn claim_params(now: Timestamp, ttl: Duration) -> JobClaimParams {
        JobClaimParams {
            queue: "q".into(),
            owner: "w".into(),
            limit: 1,
            lease_ttl: ttl,
            now,
            kinds: None,
            suspects: false,
        }
    }

    /// Runs one lease statement in a transaction that is rolled back, and returns the
    /// `synchronous_commit` it left for the rest of the transaction.
    async fn setting_after(conn: &mut PgConnection, step: Step<'_>, commit: LeaseCommit) -> String {
        let (queries, now) = (&step.queries, Timestamp::now());
        let mut tx = conn.begin().await.expect("begin");
        let ttl = Duration::from_secs(30);
        let touched = match step.kind {
            "claim" => {
                let params = claim_params(now, ttl);
                let claimed = lease::claim(&mut *tx, queries, params, commit).await;
                claimed.expect("claim").len() == 1
            }
            "heartbeat" => {
                let params = JobHeartbeatParams {
                    owner: "w".into(),
                    leases: vec![step.lease],
                    lease_ttl: ttl,
                    now,
                };
                let held = lease::heartbeat_many(&mut *tx, queries, params, commit).await;
                held.expect("heartbeat") == vec![true]
            }
            "checkpoint" => {
                let params = JobCheckpointParams {
                    owner: "w".into(),
                    lease: step.lease,
                    checkpoint: serde_json::json!({"step": 2}),
                    lease_ttl: ttl,
                    now,
                };
                lease::checkpoint(&mut *tx, queries, params, commit)
                    .await
                    .expect("checkpoint")
            }
            "complete" | "release" => {
                let outcome = if step.kind == "complete" {
                    FinishOutcome::Completed
                } else {
                    FinishOutcome::Release
                };
                let finishes = vec![JobFinish {
                    lease: step.lease,
                    outcome,
                }];
                let params = JobFinishParams {
                    owner: "w".into(),
                    finishes,
                    now,
                };
                let applied = finish::finish_many(&mut *tx, queries, params, commit).await;
                applied.expect("finish") == vec![true]
            }
            "rescue" => {
                let later = Timestamp::from_micros(now.as_micros() + 3_600_000_000);
                let params = JobRescueParams {
                    now: later,
                    max_rescues: 3,
                    limit: 10,
                };
                let outcome = maintenance::rescue_expired(&mut *tx, queries, params, commit).await;
                !outcome.expect("rescue").requeued.is_empty()
            }
            _ => {
                let later = Timestamp::from_micros(now.as_micros() + 7 * 86_400_000_000);
                let params = JobPromoteParams {
                    now: later,
                    limit: 10,
                };
                let promoted = maintenance::promote_scheduled(&mut *tx, queries, params, commit);
                promoted.await.expect("promote") == 1
            }
        };
        assert!(touched, "{} changed a row", step.kind);
        let setting: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut *tx)
            .await
            .expect("setting");
        tx.rollback().await.expect("rollback");
        setting
    }

    struct Step<'a> {
        kind: &'static str,
        queries: &'a Queries,
        lease: Lease,
    }

    /// Each lease statement turns `synchronous_commit` off for its own transaction in
    /// asynchronous mode, and leaves the session's setting alone in synchronous mode.
    #[tokio::test]
    async fn lease_statements_set_the_commit_mode_of_their_transaction() {
        let url = std::env::var("JOBS_TEST_DATABASE_URL").unwrap_or_default();
        if url.trim().is_empty() {
            // The crate's PostgreSQL suite (tests/) prints the skip notice; CI requires it.
            assert_ne!(
                std::env::var("JOBS_TEST_REQUIRE_POSTGRES").as_deref(),
                Ok("1"),
                "JOBS_TEST_REQUIRE_POSTGRES=1 but JOBS_TEST_DATABASE_URL is not set"
            );
            return;
        }
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        let schema = SchemaName::new(&format!("jt_lease_commit_{}", std::process::id()))
            .expect("a valid name");
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", schema.quoted());
        sqlx::query(&drop).execute(&mut conn).await.expect("drop");
        let pool = sqlx::PgPool::connect(&url).await.expect("a pool");
        crate::migrate(&pool, &schema).await.expect("migrate");
        pool.close().await;
        let queries = Queries::new(&schema);
        let now = Timestamp::now();
        let tomorrow = Timestamp::from_micros(now.as_micros() + 86_400_000_000);
        let jobs = vec![job(None), job(None), job(Some(tomorrow)), job(None)];
        let insert = JobInsertParams { jobs, now };
        insert::insert_jobs(&mut conn, &queries, &insert)
            .await
            .expect("insert");
        // Two running jobs (committed): one to heartbeat, checkpoint and finish, one whose
        // lease a rescuer finds expired; one available job left to claim, one scheduled.
        let short = Duration::from_secs(1);
        let mut leases = Vec::new();
        for _ in 0..2 {
            let claimed = lease::claim(
                &mut conn,
                &queries,
                claim_params(now, short),
                LeaseCommit::Synchronous,
            )
            .await
            .expect("claim");
            leases.push(claimed[0].lease);
        }
        let session: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut conn)
            .await
            .expect("show");
        for kind in [
            "claim",
            "heartbeat",
            "checkpoint",
            "complete",
            "release",
            "rescue",
            "promote",
        ] {
            let step = || Step {
                kind,
                queries: &queries,
                lease: leases[0],
            };
            let after = setting_after(&mut conn, step(), LeaseCommit::Asynchronous).await;
            assert_eq!(after, "off", "{kind} in asynchronous mode");
            let after = setting_after(&mut conn, step(), LeaseCommit::Synchronous).await;
            assert_eq!(after, session, "{kind} in synchronous mode");
        }
        sqlx::query(&drop).execute(&mut conn).await.expect("drop");
    }
}
