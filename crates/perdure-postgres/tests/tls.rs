//! TLS by `sslmode`, against the local server (PERDURE_TEST_POSTGRES; its
//! certificate is Debian's self-signed snakeoil one, naming `localhost`),
//! and the refusals that need no server: each one named behaviour, a row
//! of a table fed through one helper. Whether a store's connections are
//! encrypted is read from the server's side (`pg_stat_ssl` for every
//! connection with the store's application name: the pool's and the LISTEN
//! connection).

use perdure_postgres::PostgresStore;
use perdure_store::{StoreError, TlsFailure};
use std::time::{Duration, Instant};

/// The server's certificate, which is its own root.
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
/// Debian's bundle of public roots (Mozilla's), which does not hold it.
const PUBLIC_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How opening a store ends.
#[derive(Debug)]
enum End {
    /// Every connection of the store is encrypted.
    Encrypted,
    /// No connection of the store is.
    Plain,
    /// Refused with this kind of error (see [`kind`]), whose message holds
    /// these words.
    Refused(&'static str, &'static str),
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Tls(TlsFailure::NotTrusted(_)) => "not trusted",
        StoreError::Tls(TlsFailure::WrongName(_)) => "wrong name",
        StoreError::Tls(TlsFailure::NotOffered) => "not offered",
        StoreError::Tls(TlsFailure::Handshake(_)) => "handshake",
        StoreError::BadUrl(..) => "bad url",
        StoreError::Backend(_) => "backend",
        _ => "other",
    }
}

/// (behaviour, host to connect by, URL parameters, how it ends)
const MODES: &[(&str, &str, &str, End)] = &[
    (
        "sslmode=require encrypts",
        "127.0.0.1",
        "sslmode=require",
        End::Encrypted,
    ),
    (
        "sslmode=disable does not",
        "127.0.0.1",
        "sslmode=disable",
        End::Plain,
    ),
    (
        "sslmode=prefer encrypts when the server offers TLS",
        "127.0.0.1",
        "sslmode=prefer",
        End::Encrypted,
    ),
    ("no sslmode is prefer", "127.0.0.1", "", End::Encrypted),
    (
        "verify-full trusts the root sslrootcert names, by the name the certificate bears",
        "localhost",
        "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ssl-cert-snakeoil.pem",
        End::Encrypted,
    ),
    (
        "verify-ca checks the chain and not the name",
        "127.0.0.1",
        "sslmode=verify-ca&sslrootcert=/etc/ssl/certs/ssl-cert-snakeoil.pem",
        End::Encrypted,
    ),
    (
        "verify-full refuses a certificate that does not name the host",
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ssl-cert-snakeoil.pem",
        End::Refused("wrong name", "localhost"),
    ),
    (
        "verify-full refuses a certificate no root signs",
        "localhost",
        "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt",
        End::Refused("not trusted", "ca-certificates.crt"),
    ),
    (
        "require with sslrootcert checks the chain, as libpq does",
        "127.0.0.1",
        "sslmode=require&sslrootcert=/etc/ssl/certs/ca-certificates.crt",
        End::Refused("not trusted", "not signed by any of"),
    ),
    (
        "an unknown sslmode is refused by name",
        "127.0.0.1",
        "sslmode=verify-identity",
        End::Refused("bad url", "unknown sslmode `verify-identity`"),
    ),
    (
        "an sslrootcert that cannot be read is refused by name",
        "127.0.0.1",
        "sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
        End::Refused("bad url", "/nonexistent/root.pem"),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_against_the_local_server() {
    let Some(base) = hub_url("the TLS tests") else {
        return;
    };
    for file in [SNAKEOIL, PUBLIC_ROOTS] {
        if !std::path::Path::new(file).exists() {
            eprintln!("skipped: {file} is missing, so the TLS tests did not run");
            return;
        }
    }
    for (what, host, params, want) in MODES {
        let url = with_host(&base, host, params);
        ends(what, open(&url).await, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_store_works_over_tls() {
    // Each check on a fresh hub, as the conformance kit runs them.
    let open = || async {
        let base = hub_url("the store-over-TLS test")?;
        let url = format!("{base}&sslmode=require");
        Some(PostgresStore::open(&url).await.expect("open over TLS"))
    };
    let Some(s) = open().await else {
        return;
    };
    perdure_store::conformance::check_commit(&s).await;
    s.drop_hub().await.expect("drop hub");
    let s = open().await.expect("set above");
    perdure_store::conformance::check_activities(&s).await;
    s.drop_hub().await.expect("drop hub");
}

/// (behaviour, URL with `{port}` for a server that refuses TLS and
/// `{closed}` for a port nobody listens on, how it ends)
const REFUSALS: &[(&str, &str, End)] = &[
    (
        "require refuses a server that does not offer TLS",
        "postgres://app:s3cret@127.0.0.1:{port}/db?sslmode=require",
        End::Refused("not offered", "the server does not offer it"),
    ),
    (
        "a server that cannot be reached is a backend error without the password",
        "postgres://app:s3cret@127.0.0.1:{closed}/db?sslmode=disable&connect_timeout=5",
        End::Refused("backend", "Connection refused"),
    ),
    (
        "a bad URL is shown without its password",
        "postgres://app:s3cret@127.0.0.1:{closed}/db?sslmode=on&password=s3cret",
        End::Refused("bad url", "postgres://app:***@127.0.0.1"),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_without_a_server() {
    let port = refuses_tls().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for (what, url, want) in REFUSALS {
        let url = url
            .replace("{port}", &port.to_string())
            .replace("{closed}", &closed.to_string());
        ends(what, open(&url).await, want);
    }
}

/// Checks that opening a store ended as `want` says: `Ok(encrypted)` or
/// the error. No error may show the password `s3cret`.
fn ends(what: &str, got: Result<bool, StoreError>, want: &End) {
    match (got, want) {
        (Ok(true), End::Encrypted) | (Ok(false), End::Plain) => {}
        (Err(e), End::Refused(k, words)) => {
            let (text, debug) = (e.to_string(), format!("{e:?}"));
            assert_eq!(kind(&e), *k, "{what}: {text}");
            assert!(text.contains(words), "{what}: `{text}` lacks `{words}`");
            assert!(
                !text.contains("s3cret") && !debug.contains("s3cret"),
                "{what}: {debug}"
            );
        }
        (got, _) => panic!("{what}: expected {want:?}, got {got:?}"),
    }
}

/// Opens the store at `url`: whether its connections are encrypted (it
/// drops the hub it made), or why it could not be opened.
async fn open(url: &str) -> Result<bool, StoreError> {
    let store = PostgresStore::open(url).await?;
    let encrypted = connections_encrypted(url, store.hub()).await;
    store.drop_hub().await.expect("drop hub");
    assert!(
        encrypted.iter().all(|e| *e == encrypted[0]),
        "some connections are encrypted, some are not: {encrypted:?}"
    );
    Ok(encrypted[0])
}

/// Whether each connection of hub `hub`'s store is encrypted, read once
/// its LISTEN connection is up beside its pooled ones.
async fn connections_encrypted(url: &str, hub: &str) -> Vec<bool> {
    let base = url.split('?').next().unwrap_or(url);
    let admin = format!("{base}?sslmode=disable");
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    let driver = tokio::spawn(conn);
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = client
            .query(
                "SELECT s.ssl, a.query LIKE 'LISTEN%' FROM pg_stat_ssl s \
                 JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1",
                &[&format!("perdure:{hub}")],
            )
            .await
            .expect("pg_stat_ssl");
        if rows.iter().any(|r| r.get::<_, bool>(1)) && rows.len() > 1 {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the store's LISTEN connection never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(client);
    let _ = driver.await;
    rows.iter().map(|r| r.get::<_, bool>(0)).collect()
}

/// A listener that answers every TLS request `N` (no TLS here), as a
/// server with `ssl=off` does; its port.
async fn refuses_tls() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_ok() {
                    let _ = socket.write_all(b"N").await;
                    let mut rest = Vec::new();
                    let _ = socket.read_to_end(&mut rest).await;
                }
            });
        }
    });
    port
}

fn hub_url(what: &str) -> Option<String> {
    perdure_store::conformance::postgres_test_url(what)
}

/// `url` (with its `?hub=` parameter) connecting by `host`, with `params`
/// added.
fn with_host(url: &str, host: &str, params: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let host_start = start + url[start..].find('@').map_or(0, |i| i + 1);
    let host_end = host_start
        + url[host_start..]
            .find([':', '/', '?'])
            .unwrap_or(url.len() - host_start);
    let url = format!("{}{host}{}", &url[..host_start], &url[host_end..]);
    if params.is_empty() {
        url
    } else {
        format!("{url}&{params}")
    }
}
