//! Opportunistic `VACUUM` of the job table.
//!
//! Every claim leaves the claimed jobs' entries in the claim index until a vacuum removes
//! them, and they sit exactly where the next claim starts reading (the head of the index).
//! Between vacuums each claim walks over more of them (about 5 µs per index page of 180
//! entries): at 20,000 jobs/s, a minute without a vacuum (autovacuum's default cadence) makes
//! every claim read thousands of dead index pages and halves throughput. A vacuum, on the
//! other hand, reads every index in full (about 10 ms for 100,000 jobs, 70 ms for a
//! million), so the store vacuums after a number of claims that grows with the square root
//! of the table (see [`claims_threshold`]):
//!
//! * each process counts the jobs it claimed and starts a vacuum once they reach
//!   [`claims_threshold`] (at once: the statistics lag by up to a second, which at this rate is
//!   tens of thousands of claims);
//! * every [`CHECK_INTERVAL`] it also reads the table's dead-row count, which includes what
//!   other processes left, and vacuums past [`dead_threshold`].
//!
//! Either way the vacuum runs in the background (a claim never waits for it), one at a time
//! per process, and is skipped when another process is already vacuuming. Roles that do not
//! own the table never try.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::bound::CallBound;
use crate::schema_name::SchemaName;

/// How often the dead-row count is read at most.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The state of the opportunistic vacuum of one store.
#[derive(Debug)]
pub(crate) struct Vacuum {
    table: String,
    enabled: AtomicBool,
    /// A check or a vacuum is in flight.
    busy: AtomicBool,
    /// Jobs this process claimed since its last vacuum started.
    claimed: AtomicU64,
    /// Live rows at the last check (0 before the first).
    live: AtomicI64,
    last_check: Mutex<Option<Instant>>,
    /// How long a check or a vacuum may take before it is abandoned.
    bound: CallBound,
}

/// What a poke found due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    /// Read the statistics, vacuum if they say so.
    Check,
    /// Vacuum now (enough claims).
    Vacuum,
}

impl Vacuum {
    /// For `schema`'s job table; `enabled` if the role may vacuum it; each check or vacuum
    /// within `bound`.
    pub(crate) fn new(schema: &SchemaName, enabled: bool, bound: CallBound) -> Self {
        Vacuum {
            table: format!("{}.jobs", schema.quoted()),
            enabled: AtomicBool::new(enabled),
            busy: AtomicBool::new(false),
            claimed: AtomicU64::new(0),
            live: AtomicI64::new(0),
            last_check: Mutex::new(None),
            bound,
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

    /// Counts `jobs` claimed by this process.
    pub(crate) fn note_claimed(&self, jobs: usize) {
        let jobs = u64::try_from(jobs).unwrap_or(u64::MAX);
        self.claimed.fetch_add(jobs, Ordering::Relaxed);
    }

    /// What is due now (and if it is a check, records it).
    fn due(&self) -> Due {
        if !self.enabled() || self.busy.load(Ordering::Acquire) {
            return Due::Nothing;
        }
        let live = self.live.load(Ordering::Relaxed);
        if self.claimed.load(Ordering::Relaxed) >= claims_threshold(live) {
            return Due::Vacuum;
        }
        let Ok(mut last) = self.last_check.lock() else {
            return Due::Nothing;
        };
        if matches!(*last, Some(at) if at.elapsed() < CHECK_INTERVAL) {
            return Due::Nothing;
        }
        *last = Some(Instant::now());
        Due::Check
    }

    /// Starts in the background whatever is due: a vacuum, or a check of the dead-row count
    /// and a vacuum if it is past the threshold. Returns at once; failures are logged, never
    /// returned: this is housekeeping.
    pub(crate) fn poke(self: &Arc<Self>, pool: &PgPool) {
        let due = self.due();
        if due == Due::Nothing || self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            let work = async {
                let vacuum = match due {
                    Due::Vacuum => true,
                    _ => this.dead_rows_call_for_vacuum(&pool).await,
                };
                if vacuum {
                    this.vacuum(&pool, due).await;
                }
                Ok(())
            };
            // A failure or a timeout is logged where it happens; housekeeping returns nothing.
            let _ = this.bound.run("vacuum", work).await;
            this.busy.store(false, Ordering::Release);
        });
    }

    /// Reads the dead- and live-row counts; whether the dead rows call for a vacuum.
    async fn dead_rows_call_for_vacuum(&self, pool: &PgPool) -> bool {
        let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT coalesce(n_dead_tup, 0), coalesce(n_live_tup, 0) \
               FROM pg_stat_user_tables WHERE relid = $1::regclass",
        )
        .bind(&self.table)
        .fetch_one(pool)
        .await;
        match counts {
            Ok((dead, live)) => {
                self.live.store(live, Ordering::Relaxed);
                dead >= dead_threshold(live)
            }
            Err(error) => {
                tracing::debug!(%error, table = %self.table, "reading dead-row statistics failed");
                false
            }
        }
    }

    async fn vacuum(&self, pool: &PgPool, due: Due) {
        let claimed = self.claimed.swap(0, Ordering::Relaxed);
        let started = Instant::now();
        match sqlx::query(&self.statement()).execute(pool).await {
            Ok(_) => {
                tracing::debug!(table = %self.table, claimed, ?due, elapsed = ?started.elapsed(), "vacuumed the job table")
            }
            Err(error) => {
                tracing::warn!(%error, table = %self.table, "vacuum of the job table failed")
            }
        }
    }
}

/// Jobs claimed by this process after which it vacuums a table of `live` rows: 5,000 plus
/// 25 × √live (8,500 for 20,000 jobs, 30,000 for a million).
///
/// Why a square root: between vacuums the dead entries a claim walks over grow with the
/// claims, so their cost over one interval of `t` claims grows as `t²`, while each vacuum
/// costs about the size of the table (`v`); the total per claim, `t + v / t` up to constants,
/// is least at `t ∝ √v`. A threshold proportional to the table made vacuums of a large table
/// too frequent (a million waiting jobs processed 18 % slower than 20,000; with this, 7 %).
fn claims_threshold(live: i64) -> u64 {
    5_000 + sqrt_scaled(live, 25)
}

/// Dead row versions (each processed job leaves two: the available and the running
/// version) that call for a vacuum of a table of `live` rows: twice [`claims_threshold`].
fn dead_threshold(live: i64) -> i64 {
    let jobs = i64::try_from(claims_threshold(live)).unwrap_or(i64::MAX);
    jobs.saturating_mul(2)
}

/// `factor × √live`, 0 for stale (negative) statistics.
fn sqrt_scaled(live: i64, factor: u64) -> u64 {
    // `as` is the intended conversion here: row counts far below 2^52 are exact in an f64,
    // and the float-to-int cast saturates.
    factor * (live.max(0) as f64).sqrt() as u64
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

    fn any_bound() -> CallBound {
        CallBound::new(Duration::from_secs(10), Duration::from_secs(30))
    }

    #[test]
    fn thresholds_grow_with_the_table() {
        assert_eq!(claims_threshold(0), 5_000);
        assert_eq!(claims_threshold(20_000), 8_525);
        assert_eq!(claims_threshold(1_000_000), 30_000);
        assert_eq!(
            claims_threshold(-5),
            5_000,
            "stale statistics can be negative"
        );
        assert_eq!(dead_threshold(0), 10_000);
        assert_eq!(dead_threshold(1_000_000), 60_000);
        assert_eq!(dead_threshold(-5), 10_000);
    }

    #[test]
    fn checks_are_rate_limited_and_switchable() {
        let vacuum = Vacuum::new(&SchemaName::default(), true, any_bound());
        assert_eq!(vacuum.due(), Due::Check);
        assert_eq!(
            vacuum.due(),
            Due::Nothing,
            "a second check right away is not due"
        );
        let off = Vacuum::new(&SchemaName::default(), false, any_bound());
        assert_eq!(off.due(), Due::Nothing);
        off.set_enabled(true);
        assert_eq!(off.due(), Due::Check);
    }

    #[test]
    fn enough_claims_call_for_a_vacuum_at_once() {
        let vacuum = Vacuum::new(&SchemaName::default(), true, any_bound());
        assert_eq!(vacuum.due(), Due::Check);
        vacuum.note_claimed(4_999);
        assert_eq!(vacuum.due(), Due::Nothing);
        vacuum.note_claimed(1);
        assert_eq!(vacuum.due(), Due::Vacuum);
        vacuum.set_enabled(false);
        assert_eq!(vacuum.due(), Due::Nothing);
    }
}
