//! Open options: busy timeout, durability level, reader connections.

use std::path::Path;
use std::time::Duration;

use jobs::StoreError;

use crate::store::SqliteStore;

/// How often listeners check for other processes' writes by default.
const DEFAULT_WAKE_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How often SQLite waits for the disk (`PRAGMA synchronous`).
///
/// In WAL mode every level survives a crash of the *process* (SIGKILL, panic, OOM kill):
/// a committed transaction is in the WAL file, which the OS keeps. They differ on a crash of
/// the *machine* (power loss, kernel panic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// Never wait for the disk. A machine crash may corrupt the database. Benchmarks only.
    Off,
    /// The default: fsync at WAL checkpoints, not at every commit. A machine crash may lose
    /// the last transactions but never corrupts the database.
    #[default]
    Normal,
    /// fsync the WAL at every commit: nothing committed is ever lost, at a cost of one disk
    /// flush per write.
    Full,
    /// Like `Full`, and also fsync the directory after a commit.
    Extra,
}

impl Synchronous {
    fn to_sqlx(self) -> sqlx::sqlite::SqliteSynchronous {
        use sqlx::sqlite::SqliteSynchronous as S;
        match self {
            Synchronous::Off => S::Off,
            Synchronous::Normal => S::Normal,
            Synchronous::Full => S::Full,
            Synchronous::Extra => S::Extra,
        }
    }
}

/// Options for opening a [`SqliteStore`]; the defaults are the fast durable settings.
///
/// | option | default | meaning |
/// |---|---|---|
/// | [`busy_timeout`](Self::busy_timeout) | 5 s | how long a write waits for another process's write lock before [`StoreError::Busy`] |
/// | [`synchronous`](Self::synchronous) | [`Synchronous::Normal`] | durability against machine crashes |
/// | [`readers`](Self::readers) | 2 | read connections for `job_get`, `job_list`, `queue_stats` (files only) |
/// | [`cache_size_kib`](Self::cache_size_kib) | 16,384 (16 MiB) | page cache per connection |
/// | [`wake_poll_interval`](Self::wake_poll_interval) | 10 ms | how often a listener checks for other processes' writes (files only) |
///
/// Files always use WAL mode and one writer connection per store (writes are serialised
/// in-process and never contend with each other; other processes are waited for up to the
/// busy timeout).
///
/// ```
/// # async fn demo() -> Result<(), jobs::StoreError> {
/// use std::time::Duration;
/// use jobs_sqlite::{SqliteStoreOptions, Synchronous};
///
/// let store = SqliteStoreOptions::new()
///     .busy_timeout(Duration::from_secs(10))
///     .synchronous(Synchronous::Full)
///     .open_in_memory()
///     .await?;
/// # store.close().await;
/// # Ok(())
/// # }
/// ```
#[must_use = "options do nothing until `open()`"]
#[derive(Clone, Debug)]
pub struct SqliteStoreOptions {
    pub(crate) busy_timeout: Duration,
    pub(crate) synchronous: Synchronous,
    pub(crate) readers: u32,
    pub(crate) cache_size_kib: u32,
    pub(crate) wake_poll_interval: Option<Duration>,
}

impl Default for SqliteStoreOptions {
    fn default() -> Self {
        SqliteStoreOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            readers: 2,
            cache_size_kib: 16 * 1024,
            wake_poll_interval: Some(DEFAULT_WAKE_POLL_INTERVAL),
        }
    }
}

impl SqliteStoreOptions {
    /// The default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a statement waits for a lock held by another connection (another process or
    /// another store on the same file) before failing with [`StoreError::Busy`]. Default 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The durability level. Default [`Synchronous::Normal`].
    pub fn synchronous(mut self, level: Synchronous) -> Self {
        self.synchronous = level;
        self
    }

    /// How many read-only connections serve `job_get`, `job_list` and `queue_stats` for a
    /// file (at least 1; in-memory stores use their one connection). Default 2.
    pub fn readers(mut self, readers: u32) -> Self {
        self.readers = readers.max(1);
        self
    }

    /// The page cache of each connection in KiB. Default 16 MiB.
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib;
        self
    }

    /// How often a listener ([`Store::listen`](jobs::store::Store::listen), which a pool
    /// opens) checks whether another process wrote to the file (`PRAGMA data_version` on the
    /// writer connection: no I/O, skipped while this store writes), so jobs enqueued or
    /// released by other processes are picked up within about this long. `None` turns it
    /// off (other processes' jobs are then found by the pool's poll). Default 10 ms; no
    /// effect on in-memory stores.
    pub fn wake_poll_interval(mut self, every: Option<Duration>) -> Self {
        self.wake_poll_interval = every.filter(|every| !every.is_zero());
        self
    }

    /// Opens (creating if missing) the database file at `path` and migrates its schema.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the file cannot be opened or created,
    /// [`StoreError::Schema`] if it holds a newer schema than this version understands.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: creating or migrating the schema is one transaction, so a dropped call
    /// leaves the schema as it was or wholly migrated, never half; opening again goes on.
    pub async fn open(&self, path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(self, Some(path.as_ref())).await
    }

    /// Opens a private in-memory database: one connection, shared by every call on this
    /// store, gone when the store is dropped or closed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if SQLite cannot allocate it.
    pub async fn open_in_memory(&self) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(self, None).await
    }

    /// The connect options the store uses for the database file at `path`, for an
    /// application's own pool on the same file (see [`SqliteStore::from_pool`]): WAL journal
    /// mode (readers never wait for the writer), `synchronous` as set (default `NORMAL`: a
    /// commit is durable across a process crash, and across a power loss once the WAL is
    /// checkpointed), the busy timeout (a write waits up to this long for another
    /// connection's write), `cache_size`, `temp_store = memory`, created if missing.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use jobs_sqlite::{SqliteStore, SqliteStoreOptions};
    ///
    /// let connect = SqliteStoreOptions::new().connect_options("app.db");
    /// let app_pool = sqlx::SqlitePool::connect_with(connect).await?;
    /// let store = SqliteStore::from_pool(&app_pool).await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn connect_options(&self, path: impl AsRef<Path>) -> sqlx::sqlite::SqliteConnectOptions {
        self.connect_options_for(Some(path.as_ref()))
    }

    pub(crate) fn connect_options_for(
        &self,
        path: Option<&Path>,
    ) -> sqlx::sqlite::SqliteConnectOptions {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
        let base = SqliteConnectOptions::new()
            .busy_timeout(self.busy_timeout)
            .synchronous(self.synchronous.to_sqlx())
            .pragma("cache_size", format!("-{}", self.cache_size_kib))
            .pragma("temp_store", "memory")
            // A claim or finish of hundreds of jobs streams its rows without stalling.
            .row_buffer_size(1024);
        match path {
            Some(path) => base
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
            None => base.filename(":memory:"),
        }
    }
}
