//! Opportunistic `VACUUM` of the job table.
//!
//! Every claim leaves the claimed jobs' entries in the claim index until a vacuum removes
//! them, and they sit exactly where the next claim starts reading (the head of the index).
//! Between vacuums each claim walks over more of them: at 10,000 jobs/s, a minute without a
//! vacuum (autovacuum's default cadence) makes every claim read thousands of dead index pages
//! and halves throughput. So the store checks the table's dead-row count at most every
//! [`CHECK_INTERVAL`] (from the scheduler's regular calls) and, past a threshold, runs
//! `VACUUM (SKIP_LOCKED)` in the background: one at a time per process, and skipped when
//! another process is already vacuuming. Roles that do not own the table never try.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::schema_name::SchemaName;

/// How often the dead-row count is checked.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Dead rows that always justify a vacuum...
const MIN_DEAD_ROWS: i64 = 20_000;
/// ...plus this fraction of the live rows, so huge tables (whose indexes a vacuum reads in
/// full) are not vacuumed back to back.
const LIVE_FRACTION_DIVISOR: i64 = 50;

/// The state of the opportunistic vacuum of one store.
#[derive(Debug)]
pub(crate) struct Vacuum {
    table: String,
    enabled: AtomicBool,
    running: AtomicBool,
    last_check: Mutex<Option<Instant>>,
}

impl Vacuum {
    /// For `schema`'s job table; `enabled` if the role may vacuum it.
    pub(crate) fn new(schema: &SchemaName, enabled: bool) -> Self {
        Vacuum {
            table: format!("{}.jobs", schema.quoted()),
            enabled: AtomicBool::new(enabled),
            running: AtomicBool::new(false),
            last_check: Mutex::new(None),
        }
    }

    /// Whether the opportunistic vacuum is on.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns the opportunistic vacuum on or off.
    pub(crate) fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Whether a check is due now (and if so, records it).
    fn check_due(&self) -> bool {
        if !self.enabled() || self.running.load(Ordering::Acquire) {
            return false;
        }
        let Ok(mut last) = self.last_check.lock() else {
            return false;
        };
        let due = !matches!(*last, Some(at) if at.elapsed() < CHECK_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// If a check is due and the table has enough dead rows, starts a background vacuum.
    /// Failures are logged, never returned: this is housekeeping.
    pub(crate) async fn maybe_start(self: &std::sync::Arc<Self>, pool: &PgPool) {
        if !self.check_due() {
            return;
        }
        let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) \
               FROM pg_stat_user_tables WHERE relid = $1::regclass",
        )
        .bind(&self.table)
        .fetch_one(pool)
        .await;
        let (dead, live) = match counts {
            Ok(counts) => counts,
            Err(error) => {
                tracing::debug!(%error, table = %self.table, "reading dead-row statistics failed");
                return;
            }
        };
        if dead < MIN_DEAD_ROWS + live / LIVE_FRACTION_DIVISOR {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let sql = format!("VACUUM (SKIP_LOCKED) {}", this.table);
            match sqlx::query(&sql).execute(&pool).await {
                Ok(_) => {
                    tracing::debug!(table = %this.table, dead, elapsed = ?started.elapsed(), "vacuumed the job table")
                }
                Err(error) => {
                    tracing::warn!(%error, table = %this.table, "vacuum of the job table failed")
                }
            }
            this.running.store(false, Ordering::Release);
        });
    }
}

/// Whether the connected role may vacuum the job table (owns it, or is a superuser).
pub(crate) async fn may_vacuum(pool: &PgPool, schema: &SchemaName) -> bool {
    sqlx::query_scalar(
        "SELECT pg_has_role(c.relowner, 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
           FROM pg_class c WHERE c.oid = $1::regclass",
    )
    .bind(format!("{}.jobs", schema.quoted()))
    .fetch_one(pool)
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_rate_limited_and_switchable() {
        let vacuum = Vacuum::new(&SchemaName::default(), true);
        assert!(vacuum.check_due());
        assert!(!vacuum.check_due(), "a second check right away is not due");
        let off = Vacuum::new(&SchemaName::default(), false);
        assert!(!off.check_due());
        off.set_enabled(true);
        assert!(off.check_due());
    }
}
