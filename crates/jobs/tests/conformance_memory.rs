//! The store conformance suite, run against [`jobs::MemoryStore`].
#![cfg(feature = "conformance")]

use std::sync::Arc;

jobs::store_conformance_tests!(|_test_name: &'static str| async move {
    Some(Arc::new(jobs::MemoryStore::new()) as Arc<dyn jobs::store::Store>)
});
