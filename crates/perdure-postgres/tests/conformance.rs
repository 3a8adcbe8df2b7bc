//! The PostgreSQL store passes the store conformance kit against a real
//! server (PERDURE_TEST_POSTGRES; skipped, saying so, when it is not set).

use perdure_postgres::PostgresStore;

fn hub_url(what: &str) -> Option<String> {
    perdure_store::conformance::postgres_test_url(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    if hub_url("the conformance kit").is_none() {
        return;
    }
    let made = std::sync::Mutex::new(Vec::new());
    perdure_store::conformance::run_all(|| {
        let url = hub_url("the conformance kit").expect("set above");
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
async fn a_wait_in_one_process_sees_another_finish_the_instance() {
    let Some(url) = hub_url("the cross-process finish") else {
        return;
    };
    let waiter = PostgresStore::open(&url).await.expect("open");
    let worker = PostgresStore::open(&url).await.expect("open again");
    perdure_store::conformance::check_finish_seen_elsewhere(&waiter, &worker).await;
    drop(worker);
    waiter.drop_hub().await.expect("drop hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_arrived_during_a_turn_wakes_a_dispatcher_when_the_turn_commits() {
    let Some(url) = hub_url("the message during a turn") else {
        return;
    };
    let s = PostgresStore::open(&url).await.expect("open");
    perdure_store::conformance::check_message_during_a_turn_wakes(&s).await;
    s.drop_hub().await.expect("drop hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubs_are_separate_and_reopening_keeps_data() {
    use perdure_store::InstanceStore;
    let (Some(a), Some(b)) = (hub_url("the hub test"), hub_url("the hub test")) else {
        return;
    };
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
