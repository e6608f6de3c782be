//! Store-level benchmarks of `jobs-postgres` (stock PostgreSQL, fsync on): bulk insert of
//! 20,000 jobs (binary COPY), and the claim 100 + complete 100 loop over 20,000 jobs with a
//! backlog of 20,000 and of 1,000,000 waiting jobs (the loop must not slow down as the
//! backlog grows), next to the protocol's bare SQL loop on the same table for scale. At the
//! end it prints the median and range of each figure over the runs, and the claim query's
//! `EXPLAIN (ANALYZE, BUFFERS)` with 1,000,000 available jobs.
//!
//! Run: `cargo bench --bench postgres_store` with `JOBS_BENCH_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); it uses and drops the schema `jobs_store_bench`.
//! `JOBS_BENCH_WRITE_PLAN=1` also writes the plan to `crates/jobs-postgres/CLAIM_PLAN.txt`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use jobs::store::{
    FinishOutcome, JobClaimParams, JobFinish, JobFinishParams, JobInsertParams, JobPromoteParams,
    NewJob, Store,
};
use jobs::Timestamp;
use jobs_postgres::{migrate, sqlx, PostgresOptions, PostgresStore, SchemaName};
use tokio::runtime::Runtime;

const BULK: usize = 20_000;
const BATCH: usize = 100;
const BIG_BACKLOG: usize = 1_000_000;

/// Per-iteration rates (jobs/s) of each benchmark, for the summary.
type Rates = Arc<Mutex<Vec<(String, f64)>>>;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn database_url() -> String {
    std::env::var("JOBS_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("JOBS_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store on a freshly created `jobs_store_bench` schema.
async fn fresh_store() -> PostgresStore {
    let schema = SchemaName::new("jobs_store_bench").expect("a valid name");
    let options = PostgresOptions::new(&database_url())
        .expect("a valid database URL")
        .schema(schema.clone());
    let pool = options
        .connect_pool()
        .await
        .expect("PostgreSQL is reachable");
    sqlx::query("DROP SCHEMA IF EXISTS jobs_store_bench CASCADE")
        .execute(&pool)
        .await
        .expect("drop the bench schema");
    migrate(&pool, &schema).await.expect("migrate");
    PostgresStore::open(pool, schema).await.expect("open")
}

async fn sql(store: &PostgresStore, statement: &str) {
    sqlx::query(statement)
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

fn new_jobs(n: usize, offset: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            kind: "noop".into(),
            args: serde_json::json!({ "n": offset + i }),
            queue: "default".into(),
            priority: 0,
            max_attempts: 25,
            run_at: None,
            metadata: Default::default(),
        })
        .collect()
}

async fn insert(store: &PostgresStore, n: usize, offset: usize) {
    for start in (0..n).step_by(BULK) {
        let jobs = new_jobs(BULK.min(n - start), offset + start);
        let now = Timestamp::now();
        store
            .job_insert_many(JobInsertParams { jobs, now })
            .await
            .expect("bulk insert");
    }
}

/// Claims 100 and completes those 100, until `total` jobs are done; like the engine's
/// scheduler, promotes scheduled jobs once a second (which lets the store vacuum).
async fn claim_finish(store: &PostgresStore, total: usize) {
    let mut done = 0;
    let mut promoted_at = Instant::now();
    while done < total {
        if promoted_at.elapsed() >= Duration::from_secs(1) {
            let params = JobPromoteParams {
                now: Timestamp::now(),
                limit: 1000,
            };
            store.job_promote_scheduled(params).await.expect("promote");
            promoted_at = Instant::now();
        }
        let now = Timestamp::now();
        let claimed = store
            .job_claim(JobClaimParams {
                queue: "default".into(),
                owner: "bench".into(),
                limit: BATCH.min(total - done),
                lease_ttl: Duration::from_secs(30),
                now,
                kinds: None,
                suspects: false,
            })
            .await
            .expect("claim");
        assert!(!claimed.is_empty(), "ran out of jobs after {done}");
        let finishes = claimed
            .iter()
            .map(|job| JobFinish {
                lease: job.lease,
                outcome: FinishOutcome::Completed,
            })
            .collect();
        let applied = store
            .job_finish_many(JobFinishParams {
                owner: "bench".into(),
                finishes,
                now: Timestamp::now(),
            })
            .await
            .expect("finish");
        done += applied.iter().filter(|&&ok| ok).count();
    }
}

/// The protocol's "bare loop" on the same table, for scale: minimal claim SQL returning ids,
/// completion by `id = ANY($1)`, one connection, no fencing or records.
async fn bare_claim_complete(store: &PostgresStore, total: usize) {
    let mut conn = store.pool().acquire().await.expect("a connection");
    let mut done = 0;
    while done < total {
        let ids: Vec<i64> = sqlx::query_scalar(
            "WITH c AS (SELECT id FROM jobs_store_bench.jobs \
                         WHERE state = 'available' AND queue = 'default' \
                         ORDER BY priority DESC, run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs_store_bench.jobs j SET state = 'running', lease_owner = 'bare', \
                    lease_expires_at = now() + interval '30 seconds' \
               FROM c WHERE j.id = c.id RETURNING j.id",
        )
        .fetch_all(&mut *conn)
        .await
        .expect("bare claim");
        assert!(!ids.is_empty(), "ran out of jobs after {done}");
        sqlx::query(
            "UPDATE jobs_store_bench.jobs SET state = 'completed', finalized_at = now(), \
                    lease_owner = NULL, lease_expires_at = NULL WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&mut *conn)
        .await
        .expect("bare complete");
        done += ids.len();
    }
}

fn record(rates: &Rates, name: &str, jobs: usize, elapsed: Duration) {
    let rate = jobs as f64 / elapsed.as_secs_f64();
    rates
        .lock()
        .expect("no bench thread panics holding the lock")
        .push((name.to_owned(), rate));
}

fn bench_insert(c: &mut Criterion, rt: &Runtime, store: &PostgresStore, rates: &Rates) {
    let mut group = c.benchmark_group("postgres_insert");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(BULK as u64));
    group.bench_function("copy_20000", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, rates) = (store.clone(), rates.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    sql(&store, "TRUNCATE jobs_store_bench.jobs").await;
                    let jobs = new_jobs(BULK, 0);
                    let start = Instant::now();
                    store
                        .job_insert_many(JobInsertParams {
                            jobs,
                            now: Timestamp::now(),
                        })
                        .await
                        .expect("bulk insert");
                    let elapsed = start.elapsed();
                    record(&rates, "bulk insert 20,000 (COPY)", BULK, elapsed);
                    total += elapsed;
                }
                total
            }
        });
    });
    group.finish();
}

fn bench_claim_finish(
    c: &mut Criterion,
    rt: &Runtime,
    store: &PostgresStore,
    rates: &Rates,
    backlog: usize,
) {
    let label = format!("claim 100 + complete 100, backlog {backlog}");
    rt.block_on(async {
        sql(store, "TRUNCATE jobs_store_bench.jobs").await;
        if backlog > BULK {
            insert(store, backlog - BULK, 0).await;
        }
        sql(store, "VACUUM ANALYZE jobs_store_bench.jobs").await;
    });
    let mut group = c.benchmark_group("postgres_claim_finish");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(BULK as u64));
    group.bench_function(format!("backlog_{backlog}"), |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, rates, label) = (store.clone(), rates.clone(), label.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Small backlog: a fresh table of 20,000 jobs each run. Large: top up
                    // what the last run consumed, so the backlog stays at its size.
                    if backlog == BULK {
                        sql(&store, "TRUNCATE jobs_store_bench.jobs").await;
                    }
                    insert(&store, BULK, 0).await;
                    let start = Instant::now();
                    claim_finish(&store, BULK).await;
                    let elapsed = start.elapsed();
                    record(&rates, &label, BULK, elapsed);
                    total += elapsed;
                }
                total
            }
        });
    });
    group.finish();
}

fn bench_bare(c: &mut Criterion, rt: &Runtime, store: &PostgresStore, rates: &Rates) {
    let mut group = c.benchmark_group("postgres_bare_loop");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(BULK as u64));
    group.bench_function("backlog_20000", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (store, rates) = (store.clone(), rates.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    sql(&store, "TRUNCATE jobs_store_bench.jobs").await;
                    insert(&store, BULK, 0).await;
                    let start = Instant::now();
                    bare_claim_complete(&store, BULK).await;
                    let elapsed = start.elapsed();
                    record(
                        &rates,
                        "bare SQL loop 100 + 100, backlog 20000",
                        BULK,
                        elapsed,
                    );
                    total += elapsed;
                }
                total
            }
        });
    });
    group.finish();
}

fn explain_plan(rt: &Runtime, store: &PostgresStore) -> String {
    rt.block_on(async {
        sql(store, "TRUNCATE jobs_store_bench.jobs").await;
        insert(store, BIG_BACKLOG, 0).await;
        sql(store, "VACUUM ANALYZE jobs_store_bench.jobs").await;
        let available: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs_store_bench.jobs WHERE state = 'available'",
        )
        .fetch_one(store.pool())
        .await
        .expect("count");
        // The first run warms the cache; the second is the steady state.
        store.explain_claim("default", BATCH).await.expect("explain");
        let plan = store.explain_claim("default", BATCH).await.expect("explain");
        format!(
            "-- EXPLAIN (ANALYZE, BUFFERS) of the claim query (limit {BATCH}) with {available} available jobs,\n\
             -- PostgreSQL stock config, run in a rolled-back transaction by PostgresStore::explain_claim.\n{plan}\n"
        )
    })
}

fn summary(rates: &Rates) {
    let rates = rates
        .lock()
        .expect("no bench thread panics holding the lock");
    let mut names: Vec<&String> = rates.iter().map(|(name, _)| name).collect();
    names.dedup();
    println!(
        "\n{:<48} {:>6} {:>12} {:>26}",
        "figure", "runs", "median/s", "range/s"
    );
    for name in names {
        let mut values: Vec<f64> = rates
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect();
        values.sort_by(f64::total_cmp);
        let median = values[values.len() / 2];
        let (low, high) = (values[0], values[values.len() - 1]);
        println!(
            "{name:<48} {:>6} {median:>12.0} {:>26}",
            values.len(),
            format!("{low:.0} – {high:.0}")
        );
    }
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let store = rt.block_on(fresh_store());
    let rates: Rates = Arc::default();
    bench_insert(c, &rt, &store, &rates);
    bench_bare(c, &rt, &store, &rates);
    bench_claim_finish(c, &rt, &store, &rates, BULK);
    bench_claim_finish(c, &rt, &store, &rates, BIG_BACKLOG);
    let plan = explain_plan(&rt, &store);
    summary(&rates);
    println!("\n{plan}");
    if std::env::var("JOBS_BENCH_WRITE_PLAN").as_deref() == Ok("1") {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/jobs-postgres/CLAIM_PLAN.txt"
        );
        std::fs::write(path, &plan).expect("write CLAIM_PLAN.txt");
        println!("plan written to {path}");
    }
    rt.block_on(sql(&store, "DROP SCHEMA jobs_store_bench CASCADE"));
}

criterion_group!(postgres_store, benches);
criterion_main!(postgres_store);
