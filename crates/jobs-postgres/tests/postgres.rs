//! PostgreSQL-specific behaviour beyond the conformance suite: migrations and version checks,
//! clear start-up errors, privileges, the SQL enqueue function, transactional enqueue,
//! NOTIFY wake-ups, exact timestamps and deadlock-free concurrent batches.

use jobs_postgres_testkit as testkit;

use std::time::Duration;

use jobs::store::{
    FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, JobHeartbeatParams, JobInsertParams,
    NewJob, Store,
};
use jobs::{JobState, StoreError, Timestamp};
use jobs_postgres::{
    migrate, LeaseCommit, PostgresError, PostgresOptions, PostgresStore, SchemaName,
};
use serde_json::json;
use sqlx::PgPool;

fn job(queue: &str) -> NewJob {
    NewJob {
        kind: "test".into(),
        args: json!({"n": 1}),
        queue: queue.into(),
        priority: 0,
        max_attempts: 3,
        run_at: None,
        metadata: Default::default(),
    }
}

fn insert(jobs: Vec<NewJob>) -> JobInsertParams {
    JobInsertParams {
        jobs,
        now: Timestamp::now(),
    }
}

/// Claims as the worker `w`, the owner the tests' fenced writes name.
fn claim(queue: &str, limit: usize) -> JobClaimParams {
    JobClaimParams {
        queue: queue.into(),
        owner: "w".into(),
        limit,
        lease_ttl: Duration::from_secs(30),
        now: Timestamp::now(),
        kinds: None,
        suspects: false,
    }
}

/// A pool and a fresh, *unmigrated* schema name for a test.
async fn bare(test_name: &str) -> Option<(PgPool, SchemaName)> {
    let url = testkit::database_url()?;
    let pool = testkit::test_pool(&url).await;
    let schema = testkit::test_schema(test_name);
    testkit::drop_schema(&pool, &schema).await;
    Some((pool, schema))
}

/// Runs one SQL text (several statements allowed) as the test's superuser.
async fn exec(pool: &PgPool, sql: &str) {
    if let Err(error) = sqlx::raw_sql(sql).execute(pool).await {
        panic!("{sql}: {error}");
    }
}

/// A role name unique to this process.
fn role_name(what: &str) -> String {
    format!("jt_{what}_{}", std::process::id())
}

async fn drop_role(pool: &PgPool, role: &str) {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(pool)
            .await
            .expect("looking up a role");
    if exists {
        exec(
            pool,
            &format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""),
        )
        .await;
    }
}

#[tokio::test]
async fn schema_names_are_quoted_and_validated() {
    assert!(matches!(
        SchemaName::new("x\"; DROP SCHEMA public CASCADE; --"),
        Err(PostgresError::InvalidSchemaName { .. })
    ));
    let Some((pool, _)) = bare("mixed").await else {
        return;
    };
    // A mixed-case name works end to end, because every statement quotes it.
    let schema = SchemaName::new(&format!("Jt_Mixed_{}", std::process::id())).expect("valid");
    testkit::drop_schema(&pool, &schema).await;
    migrate(&pool, &schema).await.expect("migrate");
    let store = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect("open");
    let ids = store
        .job_insert_many(insert(vec![job("q")]))
        .await
        .expect("insert");
    assert_eq!(
        store.job_claim(claim("q", 5)).await.expect("claim").len(),
        ids.len()
    );
    testkit::drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn migrate_is_idempotent_and_safe_concurrently() {
    let Some((pool, schema)) = bare("migrate_concurrently").await else {
        return;
    };
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (pool, schema) = (pool.clone(), schema.clone());
            tokio::spawn(async move { migrate(&pool, &schema).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        let report = run.await.expect("task").expect("concurrent migrate");
        assert_eq!(report.to, jobs_postgres::SCHEMA_VERSION);
        applied.extend(report.applied);
    }
    applied.sort_unstable();
    let every_version: Vec<i32> = (1..=jobs_postgres::SCHEMA_VERSION).collect();
    assert_eq!(
        applied, every_version,
        "exactly one caller applied each version"
    );
    let again = migrate(&pool, &schema).await.expect("migrate again");
    assert_eq!(
        (again.from, again.applied.len()),
        (jobs_postgres::SCHEMA_VERSION, 0)
    );
    let versions: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {}.schema_version",
        schema.quoted()
    ))
    .fetch_one(&pool)
    .await
    .expect("count versions");
    assert_eq!(versions, i64::from(jobs_postgres::SCHEMA_VERSION));
}

#[tokio::test]
async fn opening_checks_the_schema_version() {
    let Some((pool, schema)) = bare("schema_version").await else {
        return;
    };
    let err = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect_err("no schema");
    assert!(matches!(err, PostgresError::SchemaMissing { .. }), "{err}");
    assert!(err.to_string().contains("run migrate"), "{err}");

    exec(&pool, &format!("CREATE SCHEMA {}", schema.quoted())).await;
    let err = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect_err("empty schema");
    assert!(matches!(err, PostgresError::SchemaMissing { .. }), "{err}");

    migrate(&pool, &schema).await.expect("migrate");
    PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect("current version opens");

    let versions = format!("{}.schema_version", schema.quoted());
    exec(
        &pool,
        &format!("DELETE FROM {versions} WHERE version > 1; UPDATE {versions} SET version = 0"),
    )
    .await;
    let err = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect_err("old");
    assert!(
        matches!(
            err,
            PostgresError::SchemaTooOld {
                found: 0,
                expected: jobs_postgres::SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("run migrate"), "{err}");

    exec(&pool, &format!("UPDATE {versions} SET version = 99")).await;
    let err = PostgresStore::open(pool.clone(), schema.clone())
        .await
        .expect_err("new");
    assert!(
        matches!(err, PostgresError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade this binary"), "{err}");
    let err = migrate(&pool, &schema)
        .await
        .expect_err("migrate refuses to downgrade");
    assert!(matches!(err, PostgresError::SchemaTooNew { .. }), "{err}");
    testkit::drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn bad_urls_give_clear_errors_without_the_password() {
    let Some(url) = testkit::database_url() else {
        return;
    };
    let unreachable =
        PostgresOptions::new("postgres://postgres:hunter2@127.0.0.1:1/test").expect("valid URL");
    let err = unreachable
        .connect_pool()
        .await
        .expect_err("nothing listens on port 1");
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, PostgresError::Unreachable { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");

    let base = PostgresOptions::new(&url).expect("valid URL");
    let missing = format!(
        "postgres://{}:hunter2@{}:{}/jt_no_such_database",
        base.connect_options().get_username(),
        base.connect_options().get_host(),
        base.connect_options().get_port()
    );
    let err = PostgresOptions::new(&missing)
        .expect("valid URL")
        .connect_pool()
        .await
        .expect_err("no such database");
    let msg = format!("{err} {err:?}");
    assert!(
        matches!(err, PostgresError::DatabaseMissing { .. }),
        "{msg}"
    );
    assert_eq!(
        sqlstate_of(&err).as_deref(),
        Some("3D000"),
        "the server's error is the source"
    );
    assert!(
        msg.contains("jt_no_such_database") && !msg.contains("hunter2"),
        "{msg}"
    );

    let err = PostgresOptions::new("mysql://u:hunter2@x/y").expect_err("not postgres");
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, PostgresError::InvalidUrl { .. }), "{msg}");
    assert!(
        msg.contains("postgres://") && !msg.contains("hunter2"),
        "{msg}"
    );
}

#[tokio::test]
async fn insufficient_privileges_are_named() {
    let Some((pool, schema)) = bare("privileges").await else {
        return;
    };
    migrate(&pool, &schema).await.expect("migrate");
    let role = role_name("weak");
    drop_role(&pool, &role).await;
    exec(&pool, &format!("CREATE ROLE \"{role}\" LOGIN")).await;

    let url = testkit::database_url().expect("configured");
    let base = PostgresOptions::new(&url).expect("valid URL");
    let connect = base.connect_options().clone().username(&role);
    let weak = PostgresOptions::from_connect_options(connect).schema(schema.clone());
    let weak_pool = weak.connect_pool().await.expect("the role may log in");

    let err = PostgresStore::open(weak_pool.clone(), schema.clone())
        .await
        .expect_err("no usage");
    assert!(
        matches!(err, PostgresError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("GRANT USAGE ON SCHEMA"), "{err}");

    exec(
        &pool,
        &format!("GRANT USAGE ON SCHEMA {} TO \"{role}\"", schema.quoted()),
    )
    .await;
    let err = PostgresStore::open(weak_pool.clone(), schema.clone())
        .await
        .expect_err("no rights");
    let msg = err.to_string();
    assert!(
        msg.contains("SELECT") && msg.contains("GRANT SELECT, INSERT"),
        "{msg}"
    );

    let other = testkit::test_schema("privileges_other");
    testkit::drop_schema(&pool, &other).await;
    let err = migrate(&weak_pool, &other)
        .await
        .expect_err("no CREATE on the database");
    assert!(
        matches!(err, PostgresError::PermissionDenied { .. }),
        "{err}"
    );

    let q = schema.quoted();
    exec(
        &pool,
        &format!(
            "GRANT SELECT ON {q}.schema_version TO \"{role}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON {q}.jobs TO \"{role}\";
             GRANT USAGE ON SEQUENCE {q}.jobs_id_seq TO \"{role}\""
        ),
    )
    .await;
    let store = PostgresStore::open(weak_pool.clone(), schema.clone())
        .await
        .expect("granted");
    assert!(
        !store.auto_vacuum(),
        "a role that does not own the table never vacuums"
    );
    store
        .job_insert_many(insert(vec![job("q")]))
        .await
        .expect("insert as the app role");
    weak_pool.close().await;
    store.close().await;
    testkit::drop_schema(&pool, &schema).await;
    drop_role(&pool, &role).await;
}

#[tokio::test]
async fn sql_enqueue_works_for_a_role_with_no_table_rights() {
    let Some(store) = testkit::fresh_store("sql_enqueue").await else {
        return;
    };
    let pool = store.pool().clone();
    let q = store.schema().quoted();
    let role = role_name("enqueuer");
    drop_role(&pool, &role).await;
    exec(
        &pool,
        &format!(
            "CREATE ROLE \"{role}\";
             GRANT USAGE ON SCHEMA {q} TO \"{role}\";
             GRANT EXECUTE ON FUNCTION {q}.enqueue(text, jsonb, text, integer, integer, timestamptz, jsonb) TO \"{role}\""
        ),
    )
    .await;
    let mut conn = pool.acquire().await.expect("a connection");
    exec_on(&mut conn, &format!("SET ROLE \"{role}\"")).await;
    let id: i64 = sqlx::query_scalar(&format!(
        "SELECT {q}.enqueue('send_email', '{{\"to\": \"ada@example.com\"}}', queue => 'mail', priority => 5)"
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("the granted role can enqueue");
    let traced: i64 = sqlx::query_scalar(&format!(
        "SELECT {q}.enqueue('report', 'null', metadata => '{{\"request_id\": \"req-42\"}}')"
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("enqueue with metadata");
    let empty: i64 = sqlx::query_scalar(&format!(
        "SELECT {q}.enqueue('report', 'null', metadata => '{{}}')"
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("enqueue with empty metadata");
    let later: i64 = sqlx::query_scalar(&format!(
        "SELECT {q}.enqueue('report', 'null', run_at => now() + interval '1 hour')"
    ))
    .fetch_one(&mut *conn)
    .await
    .expect("scheduled enqueue");
    let select = sqlx::query(&format!("SELECT * FROM {q}.jobs"))
        .execute(&mut *conn)
        .await;
    assert_sqlstate(select, "42501", "reading the table");
    let insert_sql = format!(
        "INSERT INTO {q}.jobs (kind, queue, args, state, max_attempts, run_at, created_at) \
         VALUES ('x', 'q', '{{}}', 'available', 1, now(), now())"
    );
    assert_sqlstate(
        sqlx::query(&insert_sql).execute(&mut *conn).await,
        "42501",
        "inserting",
    );
    for (call, message) in [
        ("'k', '{}', max_attempts => 0", "invalid max_attempts 0"),
        ("'', '{}'", "invalid job kind"),
        ("'k', '{}', queue => ''", "invalid queue name"),
        ("'k', '{}', priority => 40000", "invalid priority 40000"),
        (
            "'k', '{}', run_at => 'infinity'",
            "run_at must be a finite time",
        ),
        ("'k', NULL", "args must be"),
        ("'k', '{}', metadata => '[]'", "metadata must be a JSON object"),
        ("'k', '{}', metadata => '{\"n\": 1}'", "metadata values must be JSON strings"),
        ("'k', '{}', metadata => '{\"bad key\": \"v\"}'", "invalid metadata key"),
        (
            "'k', '{}', metadata => jsonb_build_object('k', repeat('x', 4096))",
            "more than the 4096 bytes",
        ),
        (
            "'k', '{}', metadata => (SELECT jsonb_object_agg('k' || i, 'v') FROM generate_series(1, 33) i)",
            "more than the 32",
        ),
    ] {
        let sql = format!("SELECT {q}.enqueue({call})");
        let refused = sqlx::query(&sql).execute(&mut *conn).await;
        let err = assert_sqlstate(refused, "22023", call);
        assert!(err.contains(message), "{call}: {err}");
    }
    exec_on(&mut conn, "RESET ROLE").await;
    drop(conn);

    let record = store
        .job_get(jobs::JobId(id))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (record.kind.as_str(), record.queue.as_str()),
        ("send_email", "mail")
    );
    assert_eq!(
        (record.priority, record.max_attempts),
        (5, jobs::DEFAULT_MAX_ATTEMPTS)
    );
    assert_eq!(record.args, json!({"to": "ada@example.com"}));
    assert_eq!(record.state, JobState::Available);
    let record = store
        .job_get(jobs::JobId(later))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (record.state, record.args.clone()),
        (JobState::Scheduled, json!(null))
    );
    assert!(record.metadata.is_empty(), "none by default");
    let with = |id| store.job_get(jobs::JobId(id));
    let traced = with(traced).await.expect("get").expect("exists");
    assert_eq!(traced.metadata.get("request_id"), Some("req-42"));
    let empty = with(empty).await.expect("get").expect("exists");
    assert!(empty.metadata.is_empty());
    let stored: Option<serde_json::Value> =
        sqlx::query_scalar(&format!("SELECT metadata FROM {q}.jobs WHERE id = $1"))
            .bind(empty.id.0)
            .fetch_one(&pool)
            .await
            .expect("read the column");
    assert_eq!(stored, None, "empty metadata is stored as NULL");

    // PUBLIC cannot call it: a role without the grant is refused.
    let stranger = role_name("stranger");
    drop_role(&pool, &stranger).await;
    exec(
        &pool,
        &format!("CREATE ROLE \"{stranger}\"; GRANT USAGE ON SCHEMA {q} TO \"{stranger}\""),
    )
    .await;
    let mut conn = pool.acquire().await.expect("a connection");
    exec_on(&mut conn, &format!("SET ROLE \"{stranger}\"")).await;
    let refused = sqlx::query(&format!("SELECT {q}.enqueue('k', '{{}}')"))
        .execute(&mut *conn)
        .await;
    assert_sqlstate(refused, "42501", "calling enqueue without EXECUTE");
    exec_on(&mut conn, "RESET ROLE").await;
    drop(conn);
    drop_role(&pool, &role).await;
    drop_role(&pool, &stranger).await;
}

async fn exec_on(conn: &mut sqlx::PgConnection, sql: &str) {
    if let Err(error) = sqlx::raw_sql(sql).execute(conn).await {
        panic!("{sql}: {error}");
    }
}

/// Checks the call failed with SQLSTATE `code`; returns the error's message.
fn assert_sqlstate<T: std::fmt::Debug>(
    result: Result<T, sqlx::Error>,
    code: &str,
    what: &str,
) -> String {
    match result {
        Err(sqlx::Error::Database(db)) => {
            assert_eq!(db.code().as_deref(), Some(code), "{what}: {db}");
            db.to_string()
        }
        other => panic!("{what}: expected SQLSTATE {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn transactional_enqueue_follows_the_transaction() {
    let Some(store) = testkit::fresh_store("transactional").await else {
        return;
    };
    let mut listener = listen(&store).await;

    let mut tx = store.pool().begin().await.expect("begin");
    let rolled_back = store
        .insert_in(&mut tx, insert(vec![job("rolled")]))
        .await
        .expect("insert");
    let many: Vec<NewJob> = (0..100).map(|_| job("rolled")).collect();
    let copied = store
        .insert_in(&mut tx, insert(many))
        .await
        .expect("bulk insert in tx");
    assert_eq!(copied.len(), 100);
    tx.rollback().await.expect("rollback");
    for id in rolled_back.iter().chain(&copied) {
        assert_eq!(store.job_get(*id).await.expect("get"), None, "rolled back");
    }

    let mut tx = store.pool().begin().await.expect("begin");
    let committed = store
        .insert_in(&mut tx, insert(vec![job("committed")]))
        .await
        .expect("insert");
    assert_eq!(
        store.job_get(committed[0]).await.expect("get"),
        None,
        "invisible before commit"
    );
    tx.commit().await.expect("commit");
    let record = store
        .job_get(committed[0])
        .await
        .expect("get")
        .expect("committed");
    assert_eq!(record.queue, "committed");

    // The rolled-back inserts sent nothing: the first wake-up is the committed one.
    let woken = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("a wake-up within 5 s")
        .expect("listener works");
    assert_eq!(woken, "committed");
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Welcome {
    user: i64,
}
impl jobs::JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

struct Welcomer(tokio::sync::mpsc::UnboundedSender<i64>);
impl jobs::Worker for Welcomer {
    type Args = Welcome;
    async fn perform(&self, _ctx: jobs::JobContext, args: Welcome) -> Result<(), jobs::JobError> {
        let _ = self.0.send(args.user);
        Ok(())
    }
}

#[tokio::test]
async fn enqueue_in_the_applications_transaction_runs_on_commit_and_vanishes_on_rollback() {
    let Some(store) = testkit::fresh_store("enqueue_in").await else {
        return;
    };
    let store = std::sync::Arc::new(store);
    let users = format!("{}.users", store.schema().quoted());
    exec(
        store.pool(),
        &format!("CREATE TABLE {users} (id bigint PRIMARY KEY)"),
    )
    .await;
    let (ran, mut runs) = tokio::sync::mpsc::unbounded_channel();
    let pool = jobs::Pool::builder(store.clone())
        .register(Welcomer(ran))
        .start()
        .await
        .expect("pool starts");
    let client = pool.client();
    let options = jobs::EnqueueOptions::new;

    let mut tx = store.pool().begin().await.expect("begin");
    exec_on(&mut tx, &format!("INSERT INTO {users} VALUES (1)")).await;
    let rolled_back = store
        .enqueue_in(&mut tx, &Welcome { user: 1 }, options())
        .await
        .expect("enqueue_in");
    let many = store
        .enqueue_many_in(&mut tx, (10..20).map(|user| Welcome { user }), options())
        .await
        .expect("enqueue_many_in");
    let refused = store
        .enqueue_in(&mut tx, &Welcome { user: 1 }, options().queue("no spaces"))
        .await;
    assert!(
        matches!(refused, Err(jobs::EnqueueError::InvalidQueue(_))),
        "{refused:?}"
    );
    tx.rollback().await.expect("rollback");
    for id in std::iter::once(rolled_back).chain(many) {
        assert_eq!(client.job(id).await.expect("get"), None, "rolled back");
    }

    let mut tx = store.pool().begin().await.expect("begin");
    exec_on(&mut tx, &format!("INSERT INTO {users} VALUES (2)")).await;
    let id = store
        .enqueue_in(&mut tx, &Welcome { user: 2 }, options())
        .await
        .expect("enqueue_in");
    assert_eq!(
        client.job(id).await.expect("get"),
        None,
        "invisible before commit"
    );
    tx.commit().await.expect("commit");
    // The NOTIFY sent inside the transaction wakes the pool at commit.
    let user = tokio::time::timeout(Duration::from_secs(10), runs.recv())
        .await
        .expect("the committed job runs")
        .expect("the worker reports");
    assert_eq!(user, 2);
    assert!(pool.shutdown().await.clean);
    let job = client.job(id).await.expect("get").expect("committed");
    assert_eq!(job.state, JobState::Completed);
    assert!(runs.try_recv().is_err(), "no rolled-back job ever ran");
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {users}"))
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(rows, 1);
}

/// (Which changes wake a listener is a rule of every store: the conformance suite's
/// `listener_wakes_whenever_jobs_become_available`.)
#[tokio::test]
async fn notify_wakes_listeners_for_sql_enqueue_and_once_per_statement_and_queue() {
    let Some(store) = testkit::fresh_store("notify_paths").await else {
        return;
    };
    let mut listener = listen(&store).await;
    let q = store.schema().quoted();
    exec(
        store.pool(),
        &format!("SELECT {q}.enqueue('k', '{{}}', queue => 'from_sql')"),
    )
    .await;
    assert_eq!(next_queue(&mut listener).await, "from_sql");

    // One notification per statement and queue, not per row.
    let bulk: Vec<NewJob> = (0..500).map(|_| job("bulk")).collect();
    store
        .job_insert_many(insert(bulk))
        .await
        .expect("bulk insert");
    assert_eq!(next_queue(&mut listener).await, "bulk");
    exec(
        store.pool(),
        &format!("SELECT {q}.enqueue('k', '{{}}', queue => 'marker')"),
    )
    .await;
    assert_eq!(
        next_queue(&mut listener).await,
        "marker",
        "no second 'bulk' notification"
    );
}

/// The store's listener (PostgreSQL always has one).
async fn listen(store: &PostgresStore) -> Box<dyn jobs::store::JobListener> {
    store
        .listen()
        .await
        .expect("listen")
        .expect("postgres listens")
}

async fn next_queue(listener: &mut Box<dyn jobs::store::JobListener>) -> String {
    tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("a wake-up within 5 s")
        .expect("listener works")
}

#[tokio::test]
async fn listener_reports_a_lost_connection() {
    let Some(store) = testkit::fresh_store("listener_lost").await else {
        return;
    };
    let mut listener = listen(&store).await;
    let channel = store.channel().to_owned();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE query = format('LISTEN %I', $1::text) AND pid <> pg_backend_pid()",
    )
    .bind(&channel)
    .fetch_all(store.pool())
    .await
    .expect("terminate the listener's backend");
    assert_eq!(terminated, vec![true], "exactly the listener's backend");
    let result = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .expect("next() returns promptly after the connection dies");
    let err = result.expect_err("a lost connection is an error");
    assert!(err.is_transient(), "{err}");

    let mut reopened = listen(&store).await;
    store
        .job_insert_many(insert(vec![job("again")]))
        .await
        .expect("insert");
    assert_eq!(next_queue(&mut reopened).await, "again");
}

#[tokio::test]
async fn pool_recovers_after_backends_are_terminated() {
    let Some(seed) = testkit::fresh_store("pool_recovers").await else {
        return;
    };
    let url = testkit::database_url().expect("configured");
    let app = role_name("recover");
    let options = PostgresOptions::new(&url)
        .expect("valid URL")
        .schema(seed.schema().clone())
        .application_name(&app)
        .max_connections(3);
    let store = PostgresStore::connect(&options).await.expect("connect");
    store
        .job_insert_many(insert(vec![job("q")]))
        .await
        .expect("insert");
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(seed.pool())
    .await
    .expect("terminate");
    assert!(!killed.is_empty(), "the store had a connection open");
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(store.queue_stats().await.map(|s| s.len()));
    }
    for outcome in &outcomes {
        if let Err(error) = outcome {
            assert!(
                error.is_transient(),
                "a broken connection is transient: {error}"
            );
        }
    }
    let last = outcomes.last().and_then(|o| o.as_ref().ok().copied());
    assert_eq!(
        last,
        Some(1),
        "the pool reconnected by itself: {outcomes:?}"
    );
}

#[tokio::test]
async fn timestamps_round_trip_exactly() {
    let Some(store) = testkit::fresh_store("timestamps").await else {
        return;
    };
    let now = Timestamp::from_micros(1_700_000_000_123_457);
    let run_ats = [
        -2_208_988_800_000_001,    // 1899-12-31T23:59:59.999999Z
        -1,                        // just before the epoch
        946_684_799_999_999,       // just before PostgreSQL's epoch
        1_700_000_000_123_457,     // now
        32_503_680_000_000_001,    // year 3000
        9_000_000_000_000_000_000, // year 287,000: beyond float precision
    ];
    for copy in [false, true] {
        let jobs: Vec<NewJob> = run_ats
            .iter()
            .map(|&t| NewJob {
                run_at: Some(Timestamp::from_micros(t)),
                ..job("t")
            })
            .collect();
        // 64+ jobs go through COPY; fewer through INSERT … UNNEST.
        let padded = if copy {
            jobs.iter().cycle().take(70).cloned().collect()
        } else {
            jobs
        };
        let ids = store
            .job_insert_many(JobInsertParams { jobs: padded, now })
            .await
            .expect("insert");
        for (id, &t) in ids.iter().zip(&run_ats) {
            let record = store.job_get(*id).await.expect("get").expect("exists");
            assert_eq!(record.run_at.as_micros(), t, "copy={copy}");
            assert_eq!(record.created_at, now, "copy={copy}");
            let expected = if t > now.as_micros() {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            assert_eq!(record.state, expected);
        }
    }
    // i64::MAX µs (year 294,247) is inside PostgreSQL's range; i64::MIN is not.
    let extreme = |t: i64| NewJob {
        run_at: Some(Timestamp::from_micros(t)),
        ..job("t")
    };
    let ids = store
        .job_insert_many(JobInsertParams {
            jobs: vec![extreme(i64::MAX)],
            now,
        })
        .await
        .expect("insert at i64::MAX");
    let record = store.job_get(ids[0]).await.expect("get").expect("exists");
    assert_eq!(record.run_at.as_micros(), i64::MAX);
    for count in [1, 64] {
        let err = store
            .job_insert_many(JobInsertParams {
                jobs: vec![extreme(i64::MIN); count],
                now,
            })
            .await
            .expect_err("before PostgreSQL's timestamptz range");
        assert!(
            matches!(err, StoreError::Invalid { .. }),
            "{count} jobs: {err}"
        );
    }
}

/// (That concurrent heartbeats and finishes of the same leases never deadlock is a rule of
/// every store: the conformance suite's `concurrent_heartbeats_and_finishes_complete`.)
#[tokio::test]
async fn the_owner_vacuums_and_an_explicit_vacuum_runs() {
    let Some(store) = testkit::fresh_store("vacuum").await else {
        return;
    };
    let jobs: Vec<NewJob> = (0..100).map(|_| job("q")).collect();
    store.job_insert_many(insert(jobs)).await.expect("insert");
    assert!(store.auto_vacuum(), "the owner vacuums the table");
    // Each call reads fresh statistics, not the transaction's cached snapshot.
    let vacuums_sql = format!(
        "SELECT pg_stat_clear_snapshot() IS NULL, coalesce(vacuum_count, 0) \
           FROM pg_stat_user_tables WHERE relid = '{}.jobs'::regclass",
        store.schema().quoted()
    );
    let vacuums = || async {
        let (_, n): (bool, i64) = sqlx::query_as(&vacuums_sql)
            .fetch_one(store.pool())
            .await
            .expect("vacuum count");
        n
    };
    let before = vacuums().await;
    store.vacuum().await.expect("an explicit vacuum");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while vacuums().await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the explicit vacuum ran (vacuum_count went up)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lease_commit_mode_round_trips_and_explain_refuses_a_zero_limit() {
    let Some(store) = testkit::fresh_store("lease_mode").await else {
        return;
    };
    assert_eq!(
        store.lease_commit(),
        LeaseCommit::Asynchronous,
        "the default"
    );
    store.set_lease_commit(LeaseCommit::Synchronous);
    assert_eq!(store.lease_commit(), LeaseCommit::Synchronous);
    store.set_lease_commit(LeaseCommit::Asynchronous);
    assert_eq!(store.lease_commit(), LeaseCommit::Asynchronous);
    let err = store.explain_claim("q", 0).await.expect_err("limit 0");
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(store.explain_claim("q", 10).await.is_ok());
}

/// A heartbeat never waits for a row lock (that is what keeps finishes, which lock rows as
/// they meet them, deadlock-free): a lease whose row someone else holds is reported as the
/// snapshot shows it, and the others are renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_skip_locked_rows() {
    let Some(store) = testkit::fresh_store("heartbeat_skips").await else {
        return;
    };
    store
        .job_insert_many(insert(vec![job("q"), job("q")]))
        .await
        .expect("insert");
    let claimed = store.job_claim(claim("q", 2)).await.expect("claim");
    let leases: Vec<_> = claimed.iter().map(|c| c.lease).collect();
    let (locked, free) = (leases[0], leases[1]);
    let mut holder = store.pool().begin().await.expect("begin");
    sqlx::query(&format!(
        "SELECT 1 FROM {}.jobs WHERE id = $1 FOR UPDATE",
        store.schema().quoted()
    ))
    .bind(locked.job.0)
    .execute(&mut *holder)
    .await
    .expect("lock one row");
    let heartbeat = JobHeartbeatParams {
        owner: "w".into(),
        leases: leases.clone(),
        lease_ttl: Duration::from_secs(600),
        now: Timestamp::now(),
    };
    let held = tokio::time::timeout(Duration::from_secs(10), store.job_heartbeat_many(heartbeat))
        .await
        .expect("the heartbeat does not wait for the locked row")
        .expect("heartbeat");
    assert_eq!(held, vec![true, true]);
    holder.rollback().await.expect("rollback");
    let store = &store;
    let expiry = |id| async move {
        let job = store.job_get(id).await.expect("get").expect("exists");
        job.lease_expires_at.expect("leased")
    };
    let (locked_expiry, free_expiry) = (expiry(locked.job).await, expiry(free.job).await);
    assert!(free_expiry > locked_expiry, "only the free row was renewed");
}

#[tokio::test]
async fn close_ends_listeners_and_later_calls() {
    let Some(store) = testkit::fresh_store("close").await else {
        return;
    };
    let mut listener = listen(&store).await;
    let waiting = tokio::spawn(async move { listener.next().await });
    tokio::task::yield_now().await;
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .expect("close does not hang on an open listener");
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the listener notices")
        .expect("no panic");
    assert!(ended.is_err(), "a closed store's listener ends: {ended:?}");
    let err = store.queue_stats().await.expect_err("closed");
    assert!(matches!(err, StoreError::Closed), "{err}");
}

/// The SQLSTATE of the `sqlx::Error` that `err` keeps as its `source()`.
fn sqlstate_of(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let source = err.source()?;
    let db = source.downcast_ref::<sqlx::Error>()?.as_database_error()?;
    db.code().map(|code| code.into_owned())
}

#[tokio::test]
async fn a_refused_statement_keeps_the_sqlx_error_with_its_sqlstate() {
    let Some(store) = testkit::fresh_store("error_source").await else {
        return;
    };
    // The store trusts the facade's validation; straight to the store, the table's CHECK
    // refuses the empty kind.
    let mut bad = job("q");
    bad.kind = String::new();
    let err = store.job_insert_many(insert(vec![bad])).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(
        sqlstate_of(&err).as_deref(),
        Some("23514"),
        "check_violation: {err}"
    );
}

/// One enqueue case for both sides: kind, args, queue, priority, max_attempts, and whether
/// the rules accept it.
struct EnqueueCase {
    kind: String,
    args: serde_json::Value,
    queue: String,
    priority: i32,
    max_attempts: i32,
    valid: bool,
}

/// `depth` levels of arrays and objects.
fn nested_json(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, level| {
        if level % 2 == 0 {
            json!([inner])
        } else {
            json!({ "k": inner })
        }
    })
}

fn enqueue_cases() -> Vec<EnqueueCase> {
    let case = |kind: &str, queue: &str, valid| EnqueueCase {
        kind: kind.to_owned(),
        args: json!({"n": 1}),
        queue: queue.to_owned(),
        priority: 0,
        max_attempts: 20,
        valid,
    };
    let max_name = "n".repeat(jobs::store::MAX_NAME_LEN);
    let too_long = "n".repeat(jobs::store::MAX_NAME_LEN + 1);
    let depth = jobs::store::MAX_JSON_DEPTH;
    vec![
        case("send_email", "default", true),
        case("a.b:c-d_9", "A.z:0-9_", true),
        case(&max_name, &max_name, true),
        case("k", "bad queue!", false),
        case("k", "", false),
        case("k", &too_long, false),
        case("k", "tab\tqueue", false),
        case("k", "ünïcode", false),
        case("bad kind!", "q", false),
        case("", "q", false),
        case(&too_long, "q", false),
        case("k", "q'; DROP TABLE x; --", false),
        EnqueueCase {
            args: nested_json(depth),
            ..case("k", "q", true)
        },
        EnqueueCase {
            args: nested_json(depth + 1),
            ..case("k", "q", false)
        },
        EnqueueCase {
            args: nested_json(129),
            ..case("k", "q", false)
        },
        EnqueueCase {
            args: json!(null),
            ..case("k", "q", true)
        },
        EnqueueCase {
            priority: i32::from(i16::MIN),
            ..case("k", "q", true)
        },
        EnqueueCase {
            priority: i32::from(i16::MAX),
            ..case("k", "q", true)
        },
        EnqueueCase {
            priority: i32::from(i16::MAX) + 1,
            ..case("k", "q", false)
        },
        EnqueueCase {
            priority: i32::from(i16::MIN) - 1,
            ..case("k", "q", false)
        },
        EnqueueCase {
            max_attempts: 1,
            ..case("k", "q", true)
        },
        EnqueueCase {
            max_attempts: i32::MAX,
            ..case("k", "q", true)
        },
        EnqueueCase {
            max_attempts: 0,
            ..case("k", "q", false)
        },
        EnqueueCase {
            max_attempts: -1,
            ..case("k", "q", false)
        },
    ]
}

/// The Rust enqueue (the rules of `NewJob::validate`, checked by the store facade
/// `Client::enqueue` goes through) and the SQL `enqueue()` accept and refuse the same jobs,
/// case by case from one table, and give a job the same default `max_attempts`.
#[tokio::test]
async fn rust_and_sql_enqueue_follow_one_rule_set() {
    let Some(store) = testkit::fresh_store("enqueue_rules").await else {
        return;
    };
    let pool = store.pool().clone();
    let q = store.schema().quoted();
    let facade = jobs::store::StoreFacade::new(std::sync::Arc::new(store.clone()));
    for case in enqueue_cases() {
        let what = format!(
            "kind {:?} queue {:?} priority {} max_attempts {} args depth {}",
            case.kind.chars().take(20).collect::<String>(),
            case.queue.chars().take(20).collect::<String>(),
            case.priority,
            case.max_attempts,
            jobs::store::json_depth(&case.args)
        );
        let rust = match (
            i16::try_from(case.priority),
            u32::try_from(case.max_attempts),
        ) {
            (Ok(priority), Ok(max_attempts)) => {
                let job = NewJob {
                    kind: case.kind.clone(),
                    args: case.args.clone(),
                    queue: case.queue.clone(),
                    priority,
                    max_attempts,
                    run_at: None,
                    metadata: Default::default(),
                };
                assert_eq!(
                    job.validate().is_ok(),
                    case.valid,
                    "NewJob::validate: {what}"
                );
                facade.job_insert_many(insert(vec![job])).await.is_ok()
            }
            _ => false, // not even representable: the types are the rule
        };
        let sql = sqlx::query_scalar::<_, i64>(&format!(
            "SELECT {q}.enqueue($1, $2, queue => $3, priority => $4, max_attempts => $5)"
        ))
        .bind(&case.kind)
        .bind(&case.args)
        .bind(&case.queue)
        .bind(case.priority)
        .bind(case.max_attempts)
        .fetch_one(&pool)
        .await;
        assert_eq!(rust, case.valid, "Rust enqueue: {what}");
        match sql {
            Ok(_) => assert!(case.valid, "SQL enqueue() accepted: {what}"),
            Err(error) => {
                assert!(!case.valid, "SQL enqueue() refused: {what}: {error}");
                assert_sqlstate::<()>(Err(error), "22023", &what);
            }
        }
    }
    // The defaults agree too.
    let id: i64 = sqlx::query_scalar(&format!("SELECT {q}.enqueue('k', '{{}}')"))
        .fetch_one(&pool)
        .await
        .expect("enqueue with defaults");
    let from_sql = store
        .job_get(jobs::JobId(id))
        .await
        .expect("get")
        .expect("exists");
    #[derive(serde::Serialize, serde::Deserialize)]
    struct K {}
    impl jobs::JobArgs for K {
        const KIND: &'static str = "k";
    }
    let client = jobs::Client::new(std::sync::Arc::new(store.clone()));
    let id = client.enqueue(&K {}).await.expect("enqueue with defaults");
    let from_rust = client.job(id).await.expect("get").expect("exists");
    assert_eq!(
        (
            from_sql.queue.as_str(),
            from_sql.priority,
            from_sql.max_attempts
        ),
        (
            from_rust.queue.as_str(),
            from_rust.priority,
            from_rust.max_attempts
        ),
    );
    assert_eq!(from_sql.max_attempts, jobs::DEFAULT_MAX_ATTEMPTS);
}

/// A row written behind the store's back (args nested deeper than the decoder reads, errors
/// that are not an array) never fails its claim batch: the others are claimed as usual, the
/// damaged ones `unreadable` with a reason naming their id; a `Dead` finish of them applies
/// beside the others' completions, and a rescue reads past them.
#[tokio::test]
async fn a_damaged_row_is_claimed_unreadable_naming_the_job() {
    let Some(store) = testkit::fresh_store("damaged_row").await else {
        return;
    };
    let pool = store.pool().clone();
    let q = store.schema().quoted();
    let ids = store
        .job_insert_many(insert(vec![job("q"), job("q"), job("q"), job("q")]))
        .await
        .expect("insert");
    let too_deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
    exec(
        &pool,
        &format!(
            "UPDATE {q}.jobs SET args = '{too_deep}' WHERE id = {};
             UPDATE {q}.jobs SET errors = '{{}}' WHERE id = {};
             UPDATE {q}.jobs SET checkpoint = '{too_deep}' WHERE id = {}",
            ids[1].0, ids[2].0, ids[3].0
        ),
    )
    .await;
    let claimed = store
        .job_claim(claim("q", 10))
        .await
        .expect("the batch is claimed");
    assert_eq!(claimed.len(), 4);
    let mut claimed = claimed;
    claimed.sort_by_key(|c| c.record.id);
    assert!(claimed[0].unreadable.is_none());
    for (n, column) in [(1, "args"), (2, "errors"), (3, "checkpoint")] {
        let reason = claimed[n].unreadable.as_deref().unwrap_or_default();
        assert!(reason.contains(&format!("job {}", ids[n])), "{reason}");
        assert!(reason.contains(column), "{reason}");
    }
    assert_eq!(claimed[1].record.args, json!(null));
    let finish = |c: &jobs::store::ClaimedJob, outcome| JobFinish {
        lease: c.lease,
        outcome,
    };
    let dead = || FinishOutcome::Dead {
        error: jobs::AttemptError {
            attempt: 1,
            at: Timestamp::now(),
            message: "unreadable".into(),
        },
    };
    let applied = store
        .job_finish_many(JobFinishParams {
            owner: "w".into(),
            finishes: vec![
                finish(&claimed[0], FinishOutcome::Completed),
                finish(&claimed[1], dead()),
                finish(&claimed[2], dead()),
                finish(&claimed[3], FinishOutcome::Release),
            ],
            now: Timestamp::now(),
        })
        .await
        .expect("finish");
    assert_eq!(applied, vec![true; 4]);
    let repaired = store
        .job_get(ids[2])
        .await
        .expect("readable again")
        .expect("exists");
    assert_eq!((repaired.state, repaired.errors.len()), (JobState::Dead, 1));
    let damaged = store
        .job_get(ids[1])
        .await
        .expect("read in part")
        .expect("exists");
    let reason = damaged.unreadable.unwrap_or_default();
    assert!(reason.contains(&format!("job {}", ids[1])), "{reason}");
    // The released one, rescued after its lease expires (a suspect), then again in
    // quarantine, is buried without an error.
    let rescue = || {
        store.job_rescue_expired(jobs::store::JobRescueParams {
            now: Timestamp::now() + Duration::from_secs(3600),
            max_rescues: 0,
            limit: 10,
        })
    };
    let again = store.job_claim(claim("q", 10)).await.expect("claim");
    assert_eq!(again.len(), 1);
    let rescued = rescue()
        .await
        .expect("the rescue reads past the damaged row");
    assert_eq!(rescued.requeued_ids(), vec![again[0].record.id]);
    let suspects = JobClaimParams {
        suspects: true,
        ..claim("q", 10)
    };
    let again = store.job_claim(suspects).await.expect("quarantine claim");
    assert_eq!(again.len(), 1);
    let rescued = rescue()
        .await
        .expect("the rescue reads past the damaged row");
    assert_eq!(rescued.dead.len(), 1);
    assert_eq!(rescued.dead[0].checkpoint, None);
}
