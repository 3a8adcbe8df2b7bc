//! The stores every end-to-end test runs on: memory, SQLite, and PostgreSQL
//! when PERDURE_TEST_POSTGRES names a server (each run in a fresh hub).

use perdure::Store;
use std::sync::Arc;

pub async fn stores() -> Vec<(&'static str, Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("e.db").display());
    let mut out = vec![
        (
            "memory",
            perdure::open_store("memory").await.expect("memory"),
            tempfile::tempdir().expect("tempdir"),
        ),
        (
            "sqlite",
            perdure::open_store(&url).await.expect("sqlite"),
            dir,
        ),
    ];
    if let Some(url) = perdure_store::conformance::postgres_test_url("these tests") {
        let store = perdure::open_store(&url).await.expect("postgres");
        out.push(("postgres", store, tempfile::tempdir().expect("tempdir")));
    }
    out
}
