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
    match std::env::var("PERDURE_TEST_POSTGRES") {
        Ok(pg) if !pg.is_empty() => {
            let hub = format!(
                "e_{}_{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            let sep = if pg.contains('?') { '&' } else { '?' };
            let store = perdure::open_store(&format!("{pg}{sep}hub={hub}"))
                .await
                .expect("postgres");
            out.push(("postgres", store, tempfile::tempdir().expect("tempdir")));
        }
        _ => eprintln!(
            "skipped: PERDURE_TEST_POSTGRES is not set, so these tests ran without PostgreSQL"
        ),
    }
    out
}
