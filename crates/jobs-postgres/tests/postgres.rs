//! PostgreSQL-specific behaviour beyond the conformance suite: migrations and version checks,
//! clear start-up errors, privileges, the SQL enqueue function, transactional enqueue,
//! NOTIFY wake-ups, exact timestamps and deadlock-free concurrent batches.

use jobs_postgres_testkit as testkit;

use std::time::Duration;

use jobs::store::{
    FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, JobHeartbeatParams, JobInsertParams,
    JobPromoteParams, NewJob, Store,
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
    let every: Vec<i32> = (1..=jobs_postgres::SCHEMA_VERSION).collect();
    assert_eq!(applied, every, "exactly one caller applied each version");
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
             GRANT EXECUTE ON FUNCTION {q}.enqueue(text, jsonb, text, integer, integer, timestamptz) TO \"{role}\""
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
        (
            "'k', '{}', max_attempts => 0",
            "max_attempts must be at least 1",
        ),
        ("'', '{}'", "kind must be"),
        ("'k', '{}', queue => ''", "queue must be"),
        ("'k', '{}', priority => 40000", "priority must be between"),
        (
            "'k', '{}', run_at => 'infinity'",
            "run_at must be a finite time",
        ),
        ("'k', NULL", "args must be"),
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
    assert_eq!((record.priority, record.max_attempts), (5, 25));
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

#[tokio::test]
async fn notify_wakes_listeners_for_sql_inserts_releases_and_promotions() {
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

    let claimed = store.job_claim(claim("from_sql", 1)).await.expect("claim");
    let finish = JobFinishParams {
        owner: "w".into(),
        finishes: vec![JobFinish {
            lease: claimed[0].lease,
            outcome: FinishOutcome::Release,
        }],
        now: Timestamp::now(),
    };
    assert_eq!(
        store.job_finish_many(finish).await.expect("release"),
        vec![true]
    );
    assert_eq!(
        next_queue(&mut listener).await,
        "from_sql",
        "a release wakes fetchers"
    );

    let mut later = job("scheduled_q");
    let now = Timestamp::now();
    later.run_at = Some(now + Duration::from_secs(60));
    store
        .job_insert_many(JobInsertParams {
            jobs: vec![later],
            now,
        })
        .await
        .expect("insert scheduled");
    let promote = JobPromoteParams {
        now: now + Duration::from_secs(61),
        limit: 10,
    };
    assert_eq!(
        store.job_promote_scheduled(promote).await.expect("promote"),
        1
    );
    assert_eq!(
        next_queue(&mut listener).await,
        "scheduled_q",
        "scheduled inserts don't notify; promotion does"
    );

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
        assert!(matches!(err, StoreError::Invalid(_)), "{count} jobs: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_heartbeats_and_finishes_do_not_deadlock() {
    let Some(store) = testkit::fresh_store("no_deadlock").await else {
        return;
    };
    let jobs: Vec<NewJob> = (0..400).map(|_| job("q")).collect();
    store.job_insert_many(insert(jobs)).await.expect("insert");
    for _ in 0..4 {
        let claimed = store.job_claim(claim("q", 100)).await.expect("claim");
        let mut leases: Vec<_> = claimed.iter().map(|c| c.lease).collect();
        let heartbeat = JobHeartbeatParams {
            owner: "w".into(),
            leases: leases.clone(),
            lease_ttl: Duration::from_secs(30),
            now: Timestamp::now(),
        };
        leases.reverse();
        let finish = JobFinishParams {
            owner: "w".into(),
            finishes: leases
                .iter()
                .map(|&lease| JobFinish {
                    lease,
                    outcome: FinishOutcome::Completed,
                })
                .collect(),
            now: Timestamp::now(),
        };
        let (beat, done) = tokio::join!(
            store.job_heartbeat_many(heartbeat),
            store.job_finish_many(finish)
        );
        beat.expect("heartbeat does not deadlock");
        assert!(done.expect("finish does not deadlock").iter().all(|&ok| ok));
    }
    let stats = store.queue_stats().await.expect("stats");
    assert_eq!(stats[0].completed, 400);
    assert!(store.auto_vacuum(), "the owner vacuums the churned table");
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
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
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
