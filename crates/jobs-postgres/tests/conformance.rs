//! The shared store conformance suite, against PostgreSQL (`JOBS_TEST_DATABASE_URL`), each
//! case in its own schema.

use jobs_postgres_testkit as testkit;

/// Writes args nested deeper than the decoder reads into job `id`'s row, behind the store.
async fn damage(test_name: &'static str, id: jobs::JobId) {
    let url = testkit::database_url().expect("the case ran, so a database is configured");
    let pool = testkit::test_pool(&url).await;
    let too_deep = format!("{}1{}", "[".repeat(129), "]".repeat(129));
    let table = format!("{}.jobs", testkit::test_schema(test_name).quoted());
    sqlx::query(&format!(
        "UPDATE {table} SET args = $1::jsonb WHERE id = $2"
    ))
    .bind(too_deep)
    .bind(id.0)
    .execute(&pool)
    .await
    .expect("damage the row");
}

jobs_conformance::store_conformance_tests!(
    |test_name: &'static str| async move {
        let store = testkit::fresh_store(test_name).await?;
        Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
    },
    damage = damage,
);
