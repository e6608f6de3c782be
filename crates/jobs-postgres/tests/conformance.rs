//! The shared store conformance suite, against PostgreSQL (`JOBS_TEST_DATABASE_URL`), each
//! case in its own schema.

use jobs_postgres_testkit as testkit;

jobs_conformance::store_conformance_tests!(|test_name: &'static str| async move {
    let store = testkit::fresh_store(test_name).await?;
    Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
});
