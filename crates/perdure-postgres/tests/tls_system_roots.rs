//! `verify-full` and `verify-ca` without `sslrootcert=` check the server
//! against the system's roots, and refuse the local server's self-signed
//! certificate, which they do not hold (PERDURE_TEST_POSTGRES).
//!
//! The system's roots are pinned here to Debian's public bundle through
//! `SSL_CERT_FILE` (with `SSL_CERT_DIR` unset), the variables OpenSSL and
//! the store read. As the machine stands, its roots would trust the
//! server: Debian's ssl-cert package links its snakeoil certificate into
//! `/etc/ssl/certs` under its hash, the directory OpenSSL (and so libpq's
//! `sslrootcert=system`) trusts too. This binary holds this one test, so
//! changing the environment races with nothing.

use perdure_postgres::PostgresStore;
use perdure_store::{StoreError, TlsFailure};

const PUBLIC_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// (behaviour, URL parameters)
const REFUSED: &[(&str, &str)] = &[
    (
        "verify-full refuses a certificate the system's roots do not hold",
        "sslmode=verify-full",
    ),
    ("verify-ca refuses it too", "sslmode=verify-ca"),
    (
        "sslrootcert=system names the system's roots",
        "sslmode=verify-full&sslrootcert=system",
    ),
];

#[test]
fn the_system_roots_refuse_a_self_signed_server() {
    let Some(base) = perdure_store::conformance::postgres_test_url("the system-roots test") else {
        return;
    };
    if !std::path::Path::new(PUBLIC_ROOTS).exists() {
        eprintln!("skipped: {PUBLIC_ROOTS} is missing, so the system-roots test did not run");
        return;
    }
    std::env::set_var("SSL_CERT_FILE", PUBLIC_ROOTS);
    std::env::remove_var("SSL_CERT_DIR");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // The chain is checked before the name, so the host the URL names
    // does not matter.
    for (what, params) in REFUSED {
        let url = format!("{base}&{params}");
        match runtime.block_on(PostgresStore::open(&url)) {
            Err(StoreError::Tls(TlsFailure::NotTrusted(why))) => {
                assert!(why.contains("the system's trusted roots"), "{what}: {why}")
            }
            Err(e) => panic!("{what}: expected an untrusted certificate, got {e}"),
            Ok(_) => panic!("{what}: the store opened"),
        }
    }
}
