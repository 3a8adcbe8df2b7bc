//! The SQLite store passes the store conformance kit.

use perdure_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = std::sync::atomic::AtomicU32::new(0);
    perdure_store::conformance::run_all(|| {
        let path = dir.path().join(format!(
            "c{}.db",
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        async move { SqliteStore::open(path).expect("open") }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_time_never_before_last_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = std::sync::Arc::new(perdure_store::ManualClock::new(chrono::Utc::now()));
    let s = SqliteStore::open_with_clock(dir.path().join("t.db"), clock.clone()).expect("open");
    perdure_store::conformance::check_turn_time_never_before_last_update(&s, &clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_everything_and_refuses_newer_schemas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("r.db");
    {
        let s = SqliteStore::open(&path).expect("open");
        perdure_store::conformance::check_instances(&s).await;
    }
    let s = SqliteStore::open(&path).expect("reopen");
    use perdure_store::InstanceStore;
    assert!(
        s.get_instance("a").await.expect("get").is_some(),
        "data survives a reopen"
    );
    drop(s);
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    drop(conn);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(perdure_store::StoreError::Corrupt(_))
    ));
}
