//! The PostgreSQL store passes the store conformance kit against a real
//! server (PERDURE_TEST_POSTGRES; skipped, saying so, when it is not set).

use perdure_postgres::PostgresStore;

fn server() -> Option<String> {
    match std::env::var("PERDURE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: PERDURE_TEST_POSTGRES is not set, so the PostgreSQL store was not tested"
            );
            None
        }
    }
}

fn hub_url(base: &str) -> String {
    let hub = format!("t_{}", uuid::Uuid::new_v4().simple());
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}hub={hub}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(base) = server() else { return };
    let made = std::sync::Mutex::new(Vec::new());
    perdure_store::conformance::run_all(|| {
        let url = hub_url(&base);
        made.lock().expect("list").push(url.clone());
        async move {
            PostgresStore::open(&url)
                .await
                .expect("open the PostgreSQL store")
        }
    })
    .await;
    let urls: Vec<String> = made.lock().expect("list").clone();
    for url in &urls {
        PostgresStore::open(url)
            .await
            .expect("reopen")
            .drop_hub()
            .await
            .expect("drop hub");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_are_separate_and_reopening_keeps_data() {
    let Some(base) = server() else { return };
    use perdure_store::InstanceStore;
    let (a, b) = (hub_url(&base), hub_url(&base));
    {
        let s = PostgresStore::open(&a).await.expect("open");
        perdure_store::conformance::check_instances(&s).await;
    }
    let s = PostgresStore::open(&a).await.expect("reopen");
    assert!(
        s.get_instance("a").await.expect("get").is_some(),
        "data survives a reopen"
    );
    let other = PostgresStore::open(&b).await.expect("open");
    assert!(
        other.get_instance("a").await.expect("get").is_none(),
        "another hub sees nothing of it"
    );
    s.drop_hub().await.expect("drop");
    other.drop_hub().await.expect("drop");
    assert!(PostgresStore::open("postgres://u@h/db?hub=NO-PE")
        .await
        .is_err());
}
