//! Cross-process wake-ups: SQLite's `PRAGMA data_version` changes whenever *another*
//! connection (another process, or another store on the same file) commits to the database,
//! and reading it costs no I/O. Polled every few milliseconds on this store's writer
//! connection, it tells a listener that another process wrote, while this store's own
//! commits (all made on that connection) never change it; and a write transaction that
//! changed nothing (an empty claim) does not change it either, so two idle processes do not
//! wake each other.

use std::sync::Weak;
use std::time::Duration;

use jobs::StoreError;
use tokio::time::{Interval, MissedTickBehavior};

use crate::connections::Connections;
use crate::error::during;

const OP: &str = "listen (data_version)";

/// Whether any job is available, through the claim index (a look at its first entry).
const ANY_AVAILABLE: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'available')";

/// Polls one store's `data_version`.
#[derive(Debug)]
pub(crate) struct DataVersionPoll {
    conns: Weak<Connections>,
    ticker: Interval,
    /// The version last seen; `None` before the first poll.
    seen: Option<i64>,
}

impl DataVersionPoll {
    /// Polls every `every` while it is awaited.
    pub(crate) fn new(conns: Weak<Connections>, every: Duration) -> Self {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        DataVersionPoll {
            conns,
            ticker,
            seen: None,
        }
    }

    /// Resolves when another connection committed since the last poll and some job is
    /// available. A tick where this store is writing is skipped (the store is busy, and the
    /// next tick sees the change).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a change is remembered as seen only once it was reported.
    pub(crate) async fn changed(&mut self) -> Result<(), StoreError> {
        loop {
            self.ticker.tick().await;
            let conns = self.conns.upgrade().ok_or(StoreError::Closed)?;
            conns.check_open()?;
            let Some(mut writer) = conns.try_writer() else {
                continue;
            };
            let version: i64 = sqlx::query_scalar("PRAGMA data_version")
                .fetch_one(&mut *writer)
                .await
                .map_err(during(OP))?;
            let Some(seen) = self.seen.filter(|seen| *seen != version) else {
                self.seen = Some(version);
                continue;
            };
            let available: bool = sqlx::query_scalar(ANY_AVAILABLE)
                .fetch_one(&mut *writer)
                .await
                .map_err(during(OP))?;
            tracing::trace!(seen, version, available, "another connection wrote");
            self.seen = Some(version);
            if available {
                return Ok(());
            }
        }
    }
}
