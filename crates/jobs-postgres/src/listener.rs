//! LISTEN/NOTIFY wake-ups: the [`JobListener`] the engine's idle fetchers wait on.

use std::fmt;

use futures::future::BoxFuture;
use jobs::store::JobListener;
use jobs::StoreError;
use sqlx::postgres::PgListener;
use sqlx::PgPool;

use crate::error::store_error;

/// Yields the queue named by each notification on the schema's channel.
///
/// It holds one connection of the store's listener pool. When that connection is lost,
/// [`next`](JobListener::next) returns [`StoreError::Unavailable`] and the listener is spent:
/// the engine's supervisor opens a new one (with backoff), and polling covers the gap.
pub(crate) struct PgJobListener {
    listener: PgListener,
    channel: String,
}

impl PgJobListener {
    /// Takes a connection from `pool` and LISTENs on `channel`.
    pub(crate) async fn open(pool: &PgPool, channel: &str) -> Result<Self, StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(store_error)?;
        // Report a lost connection at once instead of quietly reconnecting: wake-ups sent
        // while it was down are gone, and the engine must know to poll.
        listener.eager_reconnect(false);
        listener.listen(channel).await.map_err(store_error)?;
        tracing::debug!(channel, "listening for job notifications");
        Ok(PgJobListener {
            listener,
            channel: channel.to_owned(),
        })
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
    /// Cancel safe: `PgListener::try_recv` buffers partial reads and undelivered
    /// notifications in the connection, so a dropped call loses nothing.
    fn next(&mut self) -> BoxFuture<'_, Result<String, StoreError>> {
        Box::pin(async move {
            match self.listener.try_recv().await {
                Ok(Some(notification)) => Ok(notification.payload().to_owned()),
                Ok(None) => Err(StoreError::unavailable(format!(
                    "the LISTEN connection for channel {:?} was lost; open a new listener",
                    self.channel
                ))),
                Err(error) => Err(store_error(error)),
            }
        })
    }
}
