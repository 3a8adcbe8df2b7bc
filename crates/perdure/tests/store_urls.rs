//! A store URL's password never shows in what opening it reports: not in
//! `open_store`'s errors, nor in those of a task hub opened beside it, nor
//! in `hub_store_url`'s. Each row a URL holding the password `s3cret` that
//! cannot be opened, fed through one helper. No server is needed: the
//! PostgreSQL rows name a port nobody listens on.

use perdure::{hub_store_url, open_store, Client, TaskHubs};

/// (behaviour, URL with `{closed}` for a port nobody listens on, words the
/// error holds)
const CASES: &[(&str, &str, &str)] = &[
    (
        "a mistyped scheme is echoed without the password",
        "postgress://app:s3cret@db/orders",
        "postgress://app:***@db/orders",
    ),
    (
        "an unknown sslmode is refused by name, without the password",
        "postgres://app:s3cret@127.0.0.1:{closed}/orders?sslmode=maybe",
        "postgres://app:***@127.0.0.1",
    ),
    (
        "a password parameter is hidden too",
        "postgres://app@127.0.0.1:{closed}/orders?password=s3cret&sslmode=maybe",
        "password=***",
    ),
    (
        "a server that cannot be reached says why, without the password",
        "postgres://app:s3cret@127.0.0.1:{closed}/orders?sslmode=disable",
        "Connection refused",
    ),
];

#[tokio::test]
async fn passwords_never_show_in_errors() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    for (what, url, words) in CASES {
        let url = url.replace("{closed}", &closed);
        let opened = open_store(&url).await.map(|_| ());
        shows(what, "open_store", opened, words);
        // A hub beside it, opened on first use by a server.
        let hubs = TaskHubs::new(Client::new(memory().await), Some(url.clone()));
        let hub = hubs.client("orders").await.map(|_| ());
        shows(what, "a task hub", hub, words);
    }
    let bad_base = hub_store_url("mysql://app:s3cret@db/orders", "orders").map(|_| ());
    shows(
        "a base store no hub can be beside",
        "hub_store_url",
        bad_base,
        "app:***@",
    );
}

/// Checks that `result` failed with an error holding `words` and not the
/// password, in its message and its debug form.
fn shows<E: std::fmt::Display + std::fmt::Debug>(
    what: &str,
    via: &str,
    result: Result<(), E>,
    words: &str,
) {
    let Err(e) = result else {
        panic!("{what} ({via}): it opened");
    };
    let (text, debug) = (e.to_string(), format!("{e:?}"));
    assert!(
        text.contains(words),
        "{what} ({via}): `{text}` lacks `{words}`"
    );
    assert!(
        !text.contains("s3cret") && !debug.contains("s3cret"),
        "{what} ({via}): {debug}"
    );
}

async fn memory() -> std::sync::Arc<dyn perdure::Store> {
    open_store("memory").await.expect("memory store")
}
