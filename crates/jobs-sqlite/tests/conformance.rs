//! The shared store conformance suite (crate `jobs-conformance`), against a fresh in-memory store
//! and a fresh database file per case.

mod memory {
    jobs_conformance::store_conformance_tests!(|_test_name: &'static str| async move {
        let store = jobs_sqlite::SqliteStore::open_in_memory()
            .await
            .expect("open an in-memory store");
        Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
    });
}

mod file {
    use std::path::PathBuf;

    /// A fresh database file for one case, under Cargo's per-target temp directory (files of
    /// an earlier run are removed first).
    pub(super) fn fresh_path(test_name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jobs-sqlite-conformance");
        std::fs::create_dir_all(&dir).expect("create the conformance directory");
        let path = dir.join(format!("{test_name}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
        path
    }

    jobs_conformance::store_conformance_tests!(|test_name: &'static str| async move {
        let store = jobs_sqlite::SqliteStore::open(fresh_path(test_name))
            .await
            .expect("open a file store");
        Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
    });
}
