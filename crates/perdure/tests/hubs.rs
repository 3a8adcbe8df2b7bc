//! Task hub names and the store URL each hub gets beside the base store.

use perdure::{hub_name, hub_store_url};

fn url(base: &str, hub: &str) -> String {
    hub_store_url(base, hub).unwrap_or_else(|e| format!("error: {e}"))
}

#[test]
fn the_default_hub_is_the_base_store() {
    for base in ["sqlite://perdure.db", "memory", "postgres://u@h/db?hub=abc"] {
        assert_eq!(url(base, ""), base);
        assert_eq!(url(base, "default"), base);
        assert_eq!(url(base, "Default"), base);
    }
}

#[test]
fn a_sqlite_hub_is_a_file_beside_the_base() {
    assert_eq!(
        url("sqlite:///data/perdure.db", "orders"),
        "sqlite:///data/perdure.orders.db"
    );
    assert_eq!(url("sqlite://store", "orders"), "sqlite://store.orders");
}

#[test]
fn a_postgres_hub_is_a_schema_in_the_same_database() {
    assert_eq!(
        url("postgres://u@h/db", "orders"),
        "postgres://u@h/db?hub=orders"
    );
    assert_eq!(
        url("postgres://u@h/db?pool_size=4&hub=default", "orders"),
        "postgres://u@h/db?pool_size=4&hub=orders"
    );
    assert_eq!(
        url("postgres://u@h/db?hub=team", "orders"),
        "postgres://u@h/db?hub=team_orders"
    );
}

#[test]
fn hub_names_are_lowercase_with_dashes_read_as_underscores() {
    assert_eq!(hub_name("My-Hub").ok().as_deref(), Some("my_hub"));
    assert_eq!(hub_name("").ok().as_deref(), Some("default"));
}

#[test]
fn hub_names_with_other_characters_or_too_long_are_refused() {
    for bad in ["a/b", "a b", "ü", "x'; drop", &"h".repeat(41)] {
        assert!(hub_name(bad).is_err(), "{bad:?}");
    }
}
