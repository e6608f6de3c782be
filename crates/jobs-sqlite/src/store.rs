//! [`SqliteStore`]: the [`Store`] implementation over the connections.

use std::path::Path;

use futures::future::BoxFuture;
use jobs::store::{
    ClaimedJob, JobCancelParams, JobCheckpointParams, JobClaimParams, JobFinishParams,
    JobHeartbeatParams, JobInsertParams, JobListParams, JobListener, JobPromoteParams,
    JobPruneParams, JobRescueParams, JobRetryParams, RescueOutcome, Store,
};
use jobs::store::{JobExpireUnknownKindsParams, UnknownKinds};
use jobs::{JobId, JobRecord, QueueStats, StoreError};

use crate::connections::Connections;
use crate::listener::Notifier;
use crate::options::SqliteStoreOptions;

/// The embedded durable [`Store`]: a SQLite database file in WAL mode, or a private
/// in-memory database.
///
/// Writes of one store go through its one writer connection, one at a time, each a single
/// statement or a `BEGIN IMMEDIATE` transaction; reads of a file use a small pool of
/// read-only connections that never wait for writes. Several stores (in one process or in
/// many) may open the same file: SQLite's locks serialise their writes, waiting up to the
/// [busy timeout](SqliteStoreOptions::busy_timeout).
///
/// Every method of [`Store`] returns [`StoreError::Closed`] after [`close`](Self::close).
#[derive(Debug)]
pub struct SqliteStore {
    conns: Connections,
    notifier: Notifier,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` with the default
    /// [options](SqliteStoreOptions), and creates or migrates the schema.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened or created,
    /// [`StoreError::Schema`] if it holds a newer schema than this version understands.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        SqliteStoreOptions::new().open(path).await
    }

    /// Opens a private in-memory database with the default options.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if SQLite cannot allocate it.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        SqliteStoreOptions::new().open_in_memory().await
    }

    pub(crate) async fn open_with(
        options: &SqliteStoreOptions,
        path: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let conns = Connections::open(options, path).await?;
        tracing::debug!(path = ?path, "sqlite job store opened");
        Ok(SqliteStore {
            conns,
            notifier: Notifier::new(),
        })
    }

    /// Closes the store: new calls fail with [`StoreError::Closed`], the write in flight
    /// finishes, every connection is closed (checkpointing the WAL into the file), and every
    /// listener ends with [`StoreError::Closed`]. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if cancelled, the store is closed to new calls but connections may be
    /// closed only when it is dropped.
    pub async fn close(&self) {
        self.notifier.close();
        self.conns.close().await;
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.conns.is_closed()
    }
}

impl Store for SqliteStore {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn job_insert_many(
        &self,
        params: JobInsertParams,
    ) -> BoxFuture<'_, Result<Vec<JobId>, StoreError>> {
        Box::pin(async move {
            let inserted = {
                let mut conn = self.conns.writer().await?;
                crate::insert::insert_many(&mut conn, &params).await?
            };
            self.notifier.notify(inserted.woken);
            Ok(inserted.ids)
        })
    }

    fn job_claim(
        &self,
        params: JobClaimParams,
    ) -> BoxFuture<'_, Result<Vec<ClaimedJob>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::claim::claim(&mut conn, &params).await
        })
    }

    fn job_finish_many(
        &self,
        params: JobFinishParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            let finished = {
                let mut conn = self.conns.writer().await?;
                crate::finish::finish_many(&mut conn, &params).await?
            };
            self.notifier.notify(finished.woken);
            Ok(finished.applied)
        })
    }

    fn job_heartbeat_many(
        &self,
        params: JobHeartbeatParams,
    ) -> BoxFuture<'_, Result<Vec<bool>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::lease::heartbeat_many(&mut conn, &params).await
        })
    }

    fn job_checkpoint(
        &self,
        params: JobCheckpointParams,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::lease::checkpoint(&mut conn, &params).await
        })
    }

    fn job_rescue_expired(
        &self,
        params: JobRescueParams,
    ) -> BoxFuture<'_, Result<RescueOutcome, StoreError>> {
        Box::pin(async move {
            let (outcome, woken) = {
                let mut conn = self.conns.writer().await?;
                crate::rescue::rescue_expired(&mut conn, &params).await?
            };
            self.notifier.notify(woken);
            Ok(outcome)
        })
    }

    fn job_expire_unknown_kinds(
        &self,
        params: JobExpireUnknownKindsParams,
    ) -> BoxFuture<'_, Result<UnknownKinds, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::unknown_kinds::expire(&mut conn, &params).await
        })
    }

    fn job_promote_scheduled(
        &self,
        params: JobPromoteParams,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let (count, woken) = {
                let mut conn = self.conns.writer().await?;
                crate::maintenance::promote_scheduled(&mut conn, &params).await?
            };
            self.notifier.notify(woken);
            Ok(count)
        })
    }

    fn job_get(&self, id: JobId) -> BoxFuture<'_, Result<Option<JobRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::get(&mut conn, id).await
        })
    }

    fn job_list(&self, params: JobListParams) -> BoxFuture<'_, Result<Vec<JobRecord>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::list(&mut conn, &params).await
        })
    }

    fn job_retry(&self, params: JobRetryParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let queue = {
                let mut conn = self.conns.writer().await?;
                crate::maintenance::retry(&mut conn, &params).await?
            };
            let retried = queue.is_some();
            self.notifier.notify(queue.into_iter().collect());
            Ok(retried)
        })
    }

    fn job_cancel(&self, params: JobCancelParams) -> BoxFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::maintenance::cancel(&mut conn, &params).await
        })
    }

    fn job_prune(&self, params: JobPruneParams) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.writer().await?;
            crate::maintenance::prune(&mut conn, &params).await
        })
    }

    fn queue_stats(&self) -> BoxFuture<'_, Result<Vec<QueueStats>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conns.reader().await?;
            crate::inspect::stats(&mut conn).await
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<Option<Box<dyn JobListener>>, StoreError>> {
        Box::pin(async move {
            self.conns.check_open()?;
            let listener = self.notifier.subscribe().ok_or(StoreError::Closed)?;
            Ok(Some(Box::new(listener) as Box<dyn JobListener>))
        })
    }
}
