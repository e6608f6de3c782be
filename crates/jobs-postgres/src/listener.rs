//! LISTEN/NOTIFY wake-ups: the [`JobListener`] the engine's idle fetchers wait on.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use jobs::store::JobListener;
use jobs::StoreError;
use sqlx::postgres::{PgConnectOptions, PgListener};
use tokio_util::sync::CancellationToken;

use crate::bound::CallBound;
use crate::error::store_error;
use crate::options::pool_options;

/// How long a listener waits for a notification before it checks that its connection still
/// answers (a connection cut without a word would otherwise wait forever).
pub(crate) const LIVENESS_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Where listeners connect, and how long their calls may take.
#[derive(Clone, Debug)]
pub(crate) struct ListenTarget {
    pub(crate) connect: PgConnectOptions,
    pub(crate) acquire_timeout: Duration,
    pub(crate) bound: CallBound,
    /// Cancelled when the store is closed: open listeners then fail with `Closed`.
    pub(crate) closed: CancellationToken,
}

/// Yields the queue named by each notification on the schema's channel.
///
/// It holds a connection of its own (a one-connection pool, so a connection that hangs
/// while it is dropped holds nothing anyone else needs). When that connection is lost, or
/// does not answer a liveness check within the store's call bound after
/// [`LIVENESS_CHECK_INTERVAL`] without a notification, [`next`](JobListener::next) returns
/// [`StoreError::Unavailable`] and the listener is spent: the engine's supervisor opens a new
/// one (with backoff), and polling covers the gap.
pub(crate) struct PgJobListener {
    listener: PgListener,
    channel: String,
    bound: CallBound,
    closed: CancellationToken,
}

impl PgJobListener {
    /// Connects and LISTENs on `channel`, within the call bound.
    pub(crate) async fn open(target: &ListenTarget, channel: &str) -> Result<Self, StoreError> {
        if target.closed.is_cancelled() {
            return Err(StoreError::Closed);
        }
        let pool =
            pool_options(1, target.acquire_timeout).connect_lazy_with(target.connect.clone());
        let listener = target
            .bound
            .run("listen", async {
                let mut listener = PgListener::connect_with(&pool).await.map_err(store_error)?;
                // Report a lost connection at once instead of quietly reconnecting: wake-ups
                // sent while it was down are gone, and the engine must know to poll.
                listener.eager_reconnect(false);
                listener.listen(channel).await.map_err(store_error)?;
                Ok(listener)
            })
            .await?;
        tracing::debug!(channel, "listening for job notifications");
        Ok(PgJobListener {
            listener,
            channel: channel.to_owned(),
            bound: target.bound,
            closed: target.closed.clone(),
        })
    }

    /// The next notification, or an error once the connection is lost or stops answering.
    async fn receive(&mut self) -> Result<String, StoreError> {
        loop {
            let waited =
                tokio::time::timeout(LIVENESS_CHECK_INTERVAL, self.listener.try_recv()).await;
            match waited {
                Ok(Ok(Some(notification))) => return Ok(notification.payload().to_owned()),
                Ok(Ok(None)) => {
                    return Err(StoreError::unavailable(format!(
                        "the LISTEN connection for channel {:?} was lost; open a new listener",
                        self.channel
                    )))
                }
                Ok(Err(error)) => return Err(store_error(error)),
                Err(_quiet) => self.check_alive().await?,
            }
        }
    }

    /// One round trip on the listening connection, within the call bound.
    async fn check_alive(&mut self) -> Result<(), StoreError> {
        let listener = &mut self.listener;
        self.bound
            .run("listener liveness check", async move {
                sqlx::query("SELECT 1")
                    .execute(&mut *listener)
                    .await
                    .map(drop)
                    .map_err(store_error)
            })
            .await
    }
}

impl fmt::Debug for PgJobListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJobListener")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl JobListener for PgJobListener {
    /// # Cancel safety
    ///
    /// Cancel safe while it waits: `PgListener::try_recv` buffers partial reads and
    /// undelivered notifications in the connection, so a dropped call loses nothing. A call
    /// dropped during its liveness check (one round trip every few seconds of silence) may
    /// leave the connection mid-query; the next call then reports an error, and the
    /// listener is replaced.
    fn next(&mut self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            let closed = self.closed.clone();
            tokio::select! {
                biased;
                () = closed.cancelled() => Err(StoreError::Closed),
                received = self.receive() => received,
            }
        })
    }
}
