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

    /// The database file of one case, under Cargo's per-target temp directory.
    fn path_of(test_name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("jobs-sqlite-conformance");
        std::fs::create_dir_all(&dir).expect("create the conformance directory");
        dir.join(format!("{test_name}.db"))
    }

    /// A fresh database file for one case (files of an earlier run are removed first).
    pub(super) fn fresh_path(test_name: &str) -> PathBuf {
        let path = path_of(test_name);
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
        path
    }

    /// Writes args that are not JSON into job `id`'s row, on a connection of its own.
    async fn damage(test_name: &'static str, id: jobs::JobId) {
        use sqlx::Connection;
        let url = format!("sqlite://{}", path_of(test_name).display());
        let mut raw = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("a raw connection to the case's file");
        sqlx::query("UPDATE jobs SET args = '{not json' WHERE id = ?1")
            .bind(id.0)
            .execute(&mut raw)
            .await
            .expect("damage the row");
        raw.close().await.expect("close");
    }

    jobs_conformance::store_conformance_tests!(
        |test_name: &'static str| async move {
            let store = jobs_sqlite::SqliteStore::open(fresh_path(test_name))
                .await
                .expect("open a file store");
            Some(std::sync::Arc::new(store) as std::sync::Arc<dyn jobs::store::Store>)
        },
        damage = damage,
    );
}
