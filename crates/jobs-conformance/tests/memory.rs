//! The store conformance suite, run against [`jobs::MemoryStore`].

use std::sync::Arc;

jobs_conformance::store_conformance_tests!(|_test_name: &'static str| async move {
    Some(Arc::new(jobs::MemoryStore::new()) as Arc<dyn jobs::store::Store>)
});
