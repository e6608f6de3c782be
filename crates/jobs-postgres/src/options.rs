//! Connection options, with the password kept out of every `Debug`, log line and error.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::bound::{release_check, CallBound};
use crate::error::{sqlstate, PostgresError};
use crate::lease_commit::LeaseCommit;
use crate::schema_name::SchemaName;

/// Default pool size: enough for overlapping claims, completions, heartbeats and inspection.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default time to wait for a pooled connection before a call fails as unavailable.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `application_name` the store's connections report in `pg_stat_activity`.
pub const DEFAULT_APPLICATION_NAME: &str = "jobs";
/// Default `statement_timeout` the store sets for its own sessions.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Server-side TCP keepalives for the store's sessions: the server notices a client that
/// vanished without a word (a partition, a frozen VM) after about 10 + 3 × 5 = 25 s idle, and
/// ends its session, releasing its locks and its connection slot.
const SERVER_KEEPALIVES: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "10"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
];

/// How to reach the database and where the job tables live.
///
/// `Debug` shows the URL with its password replaced by `***`; the password is kept only
/// inside sqlx's connect options and never printed.
///
/// ```
/// use jobs_postgres::{PostgresOptions, SchemaName};
///
/// let options = PostgresOptions::new("postgres://app:s3cret@db.internal:5432/app")?
///     .schema(SchemaName::new("background")?)
///     .max_connections(20);
/// assert!(!format!("{options:?}").contains("s3cret"));
/// assert_eq!(options.display_url(), "postgres://app:***@db.internal:5432/app");
/// # Ok::<(), jobs_postgres::PostgresError>(())
/// ```
#[must_use = "options do nothing until `connect_pool()` or `PostgresStore::connect`"]
#[derive(Clone)]
pub struct PostgresOptions {
    connect: PgConnectOptions,
    display_url: String,
    secrets: Vec<String>,
    schema: SchemaName,
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    lease_commit: LeaseCommit,
}

impl PostgresOptions {
    /// Options from a `postgres://user:password@host:port/database?…` URL (anything sqlx
    /// accepts), with the defaults: schema `jobs`, 10 connections, 10 s acquire timeout.
    ///
    /// # Errors
    ///
    /// [`PostgresError::InvalidUrl`] (the message shows the URL redacted).
    pub fn new(url: &str) -> Result<Self, PostgresError> {
        let secrets = url_secrets(url);
        let display_url = redact_url(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(PostgresError::InvalidUrl {
                url: display_url,
                reason: "the scheme must be postgres:// or postgresql://".to_owned(),
            });
        }
        let connect = PgConnectOptions::from_str(url).map_err(|e| PostgresError::InvalidUrl {
            url: display_url.clone(),
            reason: scrub(&e.to_string(), &secrets),
        })?;
        Ok(Self::with_parts(connect, display_url, secrets))
    }

    /// Options from sqlx connect options built by the application.
    pub fn from_connect_options(connect: PgConnectOptions) -> Self {
        let display_url = describe(&connect);
        Self::with_parts(connect, display_url, Vec::new())
    }

    fn with_parts(connect: PgConnectOptions, display_url: String, secrets: Vec<String>) -> Self {
        let connect = connect.application_name(DEFAULT_APPLICATION_NAME);
        PostgresOptions {
            connect,
            display_url,
            secrets,
            schema: SchemaName::default(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            min_connections: 0,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            lease_commit: LeaseCommit::default(),
        }
    }

    /// The schema holding the job tables (default `jobs`).
    pub fn schema(mut self, schema: SchemaName) -> Self {
        self.schema = schema;
        self
    }

    /// Most connections in the pool (default 10).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections the pool keeps open even when idle (default 0).
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long a call waits for a pooled connection before failing as unavailable
    /// (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The `statement_timeout` of the store's own sessions (default 30 s; at least 1 ms).
    ///
    /// The store sends it when it connects, so it overrides a default set on the role or
    /// the database (`ALTER ROLE … SET statement_timeout = '20ms'` cannot cancel the store's
    /// claims or its vacuum). It also bounds every store call on the client side: a call
    /// that has no answer after the acquire timeout plus this plus one second is abandoned
    /// (its connection is dropped) and fails as [`jobs::StoreError::Unavailable`], so a
    /// network that silently drops traffic cannot hang a worker. Raise it if you enqueue
    /// batches so large that one statement takes longer.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The configured statement timeout.
    pub fn statement_timeout_value(&self) -> Duration {
        self.statement_timeout
    }

    /// The `application_name` shown in `pg_stat_activity` (default `jobs`).
    pub fn application_name(mut self, name: &str) -> Self {
        self.connect = self.connect.application_name(name);
        self
    }

    /// Whether lease writes wait for their WAL flush, for stores made by
    /// [`PostgresStore::connect`](crate::PostgresStore::connect) (default
    /// [`LeaseCommit::Asynchronous`]; see [`LeaseCommit`] for what a database crash can undo).
    pub fn lease_commit(mut self, commit: LeaseCommit) -> Self {
        self.lease_commit = commit;
        self
    }

    /// The configured [`LeaseCommit`].
    pub fn lease_commit_mode(&self) -> LeaseCommit {
        self.lease_commit
    }

    /// The configured schema.
    pub fn schema_name(&self) -> &SchemaName {
        &self.schema
    }

    /// The connection target with its password replaced by `***`, for logs.
    pub fn display_url(&self) -> &str {
        &self.display_url
    }

    /// The sqlx connect options (they contain the password: don't log them).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.connect
    }

    /// The client-side bound of every store call on connections made with these options.
    pub(crate) fn call_bound(&self) -> CallBound {
        CallBound::new(self.acquire_timeout, self.statement_timeout)
    }

    /// The connect options with the store's session settings: its statement timeout and the
    /// server-side TCP keepalives (sent at connection start, so they override role and
    /// database defaults; an `options` parameter in the URL is kept, these come after it).
    fn session_options(&self) -> PgConnectOptions {
        let timeout = format!("{}ms", self.statement_timeout.as_millis());
        let mut settings = vec![("statement_timeout", timeout.as_str())];
        settings.extend(SERVER_KEEPALIVES);
        self.connect.clone().options(settings)
    }

    /// Connects once to check the target (so a wrong URL fails now with a clear error, not
    /// after the pool's timeout), then returns a pool with these options.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Unreachable`], [`PostgresError::AuthenticationFailed`],
    /// [`PostgresError::DatabaseMissing`], or [`PostgresError::Store`] for anything else.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call closes the connections it opened.
    pub async fn connect_pool(&self) -> Result<PgPool, PostgresError> {
        let session = self.session_options();
        let probe = PgConnection::connect_with(&session)
            .await
            .map_err(|e| self.connect_error(e))?;
        // The probe only checks the target; closing it cleanly is a courtesy.
        let _ = probe.close().await;
        tracing::debug!(target = %self.display_url, schema = %self.schema, "connected to PostgreSQL");
        Ok(self.pool_options().connect_lazy_with(session))
    }

    fn pool_options(&self) -> PgPoolOptions {
        pool_options(self.max_connections, self.acquire_timeout)
            .min_connections(self.min_connections)
    }

    fn connect_error(&self, err: sqlx::Error) -> PostgresError {
        let target = self.display_url.clone();
        let reason = scrub(&err.to_string(), &self.secrets);
        match sqlstate(&err).as_deref() {
            Some("28P01" | "28000") => PostgresError::AuthenticationFailed {
                target,
                reason,
                source: err,
            },
            Some("3D000") => PostgresError::DatabaseMissing {
                target,
                reason,
                source: err,
            },
            Some(_) => PostgresError::Store(
                jobs::StoreError::other(format!("connecting to {target}: {reason}"))
                    .with_source(err),
            ),
            None => PostgresError::Unreachable {
                target,
                reason,
                source: err,
            },
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &self.display_url)
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("lease_commit", &self.lease_commit)
            .finish_non_exhaustive()
    }
}

/// The options of every pool the store makes: `max` connections, waiting at most
/// `acquire_timeout` for one, each released connection checked within a bound after a call
/// was abandoned (see [`crate::bound`]).
pub(crate) fn pool_options(max: u32, acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire_timeout)
        // Every statement reports a broken connection itself, and sqlx checks each
        // connection when it is returned; a ping before each use would double round trips.
        .test_before_acquire(false)
        .after_release(release_check)
}

/// The URL with its password replaced by `***` (or a placeholder if it does not parse).
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Setting a password only fails for URLs that cannot have one.
                let _ = parsed.set_password(Some("***"));
            }
            redact_query(&mut parsed);
            parsed.to_string()
        }
        Err(_) => "<unparseable URL>".to_owned(),
    }
}

fn redact_query(url: &mut url::Url) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret = k.eq_ignore_ascii_case("password");
            (
                k.into_owned(),
                if secret { "***".into() } else { v.into_owned() },
            )
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    url.query_pairs_mut().clear().extend_pairs(pairs);
}

/// Every spelling of the URL's password that could show up in a message.
fn url_secrets(url: &str) -> Vec<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut secrets: Vec<String> = parsed.password().map(str::to_owned).into_iter().collect();
    secrets.extend(
        parsed
            .query_pairs()
            .filter(|(k, _)| k.eq_ignore_ascii_case("password"))
            .map(|(_, v)| v.into_owned()),
    );
    let decoded: Vec<String> = secrets
        .iter()
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `message` with every secret replaced by `***`.
pub(crate) fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_owned(), |msg, secret| {
        msg.replace(secret.as_str(), "***")
    })
}

fn describe(connect: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_password() {
        let options =
            PostgresOptions::new("postgres://app:hunter2@localhost:5433/db?password=hunter2")
                .expect("a valid URL");
        let debug = format!("{options:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("app:***@localhost:5433/db"), "{debug}");
        assert!(!options.display_url().contains("hunter2"));
    }

    #[test]
    fn invalid_url_error_hides_the_password() {
        let err = PostgresOptions::new("postgres://app:hunter2@localhost:notaport/db")
            .expect_err("the port is not a number");
        let msg = err.to_string();
        assert!(matches!(err, PostgresError::InvalidUrl { .. }));
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!format!("{err:?}").contains("hunter2"));
    }

    #[test]
    fn percent_encoded_passwords_are_scrubbed_in_both_forms() {
        let secrets = url_secrets("postgres://u:p%40ss@h/db");
        assert!(secrets.contains(&"p%40ss".to_owned()));
        assert!(secrets.contains(&"p@ss".to_owned()));
        assert_eq!(scrub("bad p@ss and p%40ss", &secrets), "bad *** and ***");
    }

    #[test]
    fn built_options_have_defaults() {
        let options = PostgresOptions::new("postgres://localhost/db").expect("a valid URL");
        assert_eq!(options.schema_name().as_str(), "jobs");
        assert_eq!(options.display_url(), "postgres://localhost/db");
        let from = PostgresOptions::from_connect_options(options.connect_options().clone());
        assert!(from.display_url().starts_with("postgres://"));
        assert_eq!(options.lease_commit_mode(), LeaseCommit::Asynchronous);
        let synchronous = options.lease_commit(LeaseCommit::Synchronous);
        assert_eq!(synchronous.lease_commit_mode(), LeaseCommit::Synchronous);
    }

    #[test]
    fn both_url_schemes_are_accepted() {
        assert!(PostgresOptions::new("postgresql://app@db.internal:5432/app").is_ok());
        assert!(PostgresOptions::new("postgres://app@db.internal/app").is_ok());
    }
}
