//! The store's connections: one writer (all writes of this process, serialised) and a pool
//! of read-only readers for files; an in-memory store has only the writer.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use jobs::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Sqlite, SqliteConnection};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::error::during;
use crate::options::SqliteStoreOptions;

/// The writer connection, held exclusively.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    conn: MappedMutexGuard<'a, SqliteConnection>,
    in_script: &'a AtomicBool,
}

impl Writer<'_> {
    /// Marks the start of a multi-statement script that opens its own transaction: until
    /// [`end_script`](Self::end_script), the script may have left the transaction open
    /// (an error, or its caller cancelled it midway), and the next writer rolls it back.
    pub(crate) fn begin_script(&self) {
        self.in_script.store(true, Ordering::Release);
    }

    /// Marks a script as run to its end (committed).
    pub(crate) fn end_script(&self) {
        self.in_script.store(false, Ordering::Release);
    }
}

impl Deref for Writer<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// The writer and readers of one store.
#[derive(Debug)]
pub(crate) struct Connections {
    writer: Mutex<Option<SqliteConnection>>,
    readers: Option<SqlitePool>,
    closed: AtomicBool,
    /// A script on the writer did not run to its end: roll back before the next use.
    in_script: AtomicBool,
}

impl Connections {
    /// Connects the writer (which migrates the schema) and, for a file, the reader pool.
    pub(crate) async fn open(
        options: &SqliteStoreOptions,
        path: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let connect = options.connect_options_for(path);
        let named = |error| match path {
            Some(path) => crate::error::opening(path, error),
            None => error,
        };
        Self::connect(options, connect, path.is_some())
            .await
            .map_err(named)
    }

    /// Connects the writer with `connect` (which migrates the schema) and, for a file, the
    /// reader pool with the same options, read-only.
    pub(crate) async fn connect(
        options: &SqliteStoreOptions,
        connect: SqliteConnectOptions,
        file: bool,
    ) -> Result<Self, StoreError> {
        let mut writer = connect.connect().await.map_err(during("open"))?;
        crate::schema::migrate(&mut writer).await?;
        let readers = file.then(|| reader_pool(options, connect));
        Ok(Connections {
            writer: Mutex::new(Some(writer)),
            readers,
            closed: AtomicBool::new(false),
            in_script: AtomicBool::new(false),
        })
    }

    /// The writer, once any other write of this process has finished, outside any
    /// transaction (one left open by an unfinished script is rolled back first).
    pub(crate) async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        self.check_open()?;
        let mut conn = MutexGuard::try_map(self.writer.lock().await, Option::as_mut)
            .map_err(|_| StoreError::Closed)?;
        if self.in_script.load(Ordering::Acquire) {
            roll_back(&mut conn).await;
            self.in_script.store(false, Ordering::Release);
        }
        Ok(Writer {
            conn,
            in_script: &self.in_script,
        })
    }

    /// The writer if no other write of this process holds it now and no unfinished script
    /// left a transaction open; `None` otherwise (or once closed).
    pub(crate) fn try_writer(&self) -> Option<Writer<'_>> {
        if self.is_closed() || self.in_script.load(Ordering::Acquire) {
            return None;
        }
        let guard = self.writer.try_lock().ok()?;
        let conn = MutexGuard::try_map(guard, Option::as_mut).ok()?;
        Some(Writer {
            conn,
            in_script: &self.in_script,
        })
    }

    /// A connection for reads: a pooled reader for a file, the writer in memory.
    pub(crate) async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        self.check_open()?;
        match &self.readers {
            Some(pool) => pool
                .acquire()
                .await
                .map(Reader::Pooled)
                .map_err(during("acquire reader")),
            None => self.writer().await.map(Reader::Writer),
        }
    }

    /// Fails with [`StoreError::Closed`] once [`close`](Self::close) started.
    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses new calls, waits for the write in flight, then closes every connection.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(pool) = &self.readers {
            pool.close().await;
        }
        let writer = self.writer.lock().await.take();
        if let Some(writer) = writer {
            if let Err(err) = writer.close().await {
                tracing::warn!(error = %err, "closing the sqlite writer connection failed");
            }
        }
    }
}

/// Rolls back whatever transaction an unfinished script left open ("no transaction is
/// active" if it had none, which is fine).
async fn roll_back(conn: &mut SqliteConnection) {
    if let Err(err) = sqlx::query("ROLLBACK").execute(conn).await {
        tracing::debug!(error = %err, "rollback after an unfinished script");
    }
}

fn reader_pool(options: &SqliteStoreOptions, connect: SqliteConnectOptions) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(options.readers)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(options.busy_timeout.max(std::time::Duration::from_secs(1)))
        .connect_lazy_with(connect.read_only(true))
}

/// A connection to read from.
#[derive(Debug)]
pub(crate) enum Reader<'a> {
    /// A pooled read-only connection (files).
    Pooled(PoolConnection<Sqlite>),
    /// The one connection of an in-memory store.
    Writer(Writer<'a>),
}

impl Deref for Reader<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match self {
            Reader::Pooled(conn) => conn,
            Reader::Writer(conn) => conn,
        }
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match self {
            Reader::Pooled(conn) => conn,
            Reader::Writer(conn) => conn,
        }
    }
}
