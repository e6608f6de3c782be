//! Opportunistic `VACUUM` of the job table.
//!
//! Every claim leaves the claimed jobs' entries in the claim index until a vacuum removes
//! them, and they sit exactly where the next claim starts reading (the head of the index).
//! Between vacuums each claim walks over more of them (about 5 µs per index page of 180
//! entries): at 20,000 jobs/s, a minute without a vacuum (autovacuum's default cadence) makes
//! every claim read thousands of dead index pages and halves throughput. So claims (and the
//! scheduler's calls) poke the store, which at most every [`CHECK_INTERVAL`] reads the
//! table's dead-row count in the background and, past a threshold, runs a vacuum there: one
//! at a time per process, skipped when another process is already vacuuming. A claim never
//! waits for any of it. Roles that do not own the table never try.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::schema_name::SchemaName;

/// How often the dead-row count is checked at most.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_millis(250);
/// Dead row versions that always justify a vacuum (each processed job leaves two: the
/// available and the running version)...
const MIN_DEAD_ROWS: i64 = 10_000;
/// ...plus this fraction of the live rows, so huge tables (whose indexes a vacuum reads in
/// full, about 0.1 s of CPU per million jobs) are not vacuumed back to back.
const LIVE_FRACTION_DIVISOR: i64 = 50;

/// The state of the opportunistic vacuum of one store.
#[derive(Debug)]
pub(crate) struct Vacuum {
    table: String,
    enabled: AtomicBool,
    /// A check or a vacuum is in flight.
    busy: AtomicBool,
    last_check: Mutex<Option<Instant>>,
}

impl Vacuum {
    /// For `schema`'s job table; `enabled` if the role may vacuum it.
    pub(crate) fn new(schema: &SchemaName, enabled: bool) -> Self {
        Vacuum {
            table: format!("{}.jobs", schema.quoted()),
            enabled: AtomicBool::new(enabled),
            busy: AtomicBool::new(false),
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

    /// The statement the store vacuums with. `INDEX_CLEANUP ON`: the point is removing index
    /// entries, which PostgreSQL may otherwise skip when few heap pages changed;
    /// `TRUNCATE OFF`: truncating the table's empty tail takes a lock that stalls every claim.
    pub(crate) fn statement(&self) -> String {
        format!(
            "VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE OFF) {}",
            self.table
        )
    }

    /// Whether a check is due now (and if so, records it).
    fn check_due(&self) -> bool {
        if !self.enabled() || self.busy.load(Ordering::Acquire) {
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

    /// If a check is due, checks the dead-row count in the background and vacuums there if it
    /// is past the threshold. Returns at once; failures are logged, never returned: this is
    /// housekeeping.
    pub(crate) fn poke(self: &Arc<Self>, pool: &PgPool) {
        if !self.check_due() || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            if let Some(dead) = this.vacuum_due(&pool).await {
                this.vacuum(&pool, dead).await;
            }
            this.busy.store(false, Ordering::Release);
        });
    }

    /// The dead-row count, if it calls for a vacuum.
    async fn vacuum_due(&self, pool: &PgPool) -> Option<i64> {
        let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) \
               FROM pg_stat_user_tables WHERE relid = $1::regclass",
        )
        .bind(&self.table)
        .fetch_one(pool)
        .await;
        match counts {
            Ok((dead, live)) => (dead >= threshold(live)).then_some(dead),
            Err(error) => {
                tracing::debug!(%error, table = %self.table, "reading dead-row statistics failed");
                None
            }
        }
    }

    async fn vacuum(&self, pool: &PgPool, dead: i64) {
        let started = Instant::now();
        match sqlx::query(&self.statement()).execute(pool).await {
            Ok(_) => {
                tracing::debug!(table = %self.table, dead, elapsed = ?started.elapsed(), "vacuumed the job table")
            }
            Err(error) => {
                tracing::warn!(%error, table = %self.table, "vacuum of the job table failed")
            }
        }
    }
}

/// Dead rows that call for a vacuum of a table with `live` live rows.
fn threshold(live: i64) -> i64 {
    MIN_DEAD_ROWS + live.max(0) / LIVE_FRACTION_DIVISOR
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
    fn threshold_grows_with_the_table() {
        assert_eq!(threshold(0), MIN_DEAD_ROWS);
        assert_eq!(threshold(1_000_000), MIN_DEAD_ROWS + 20_000);
        assert_eq!(
            threshold(-5),
            MIN_DEAD_ROWS,
            "stale statistics can be negative"
        );
    }

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
