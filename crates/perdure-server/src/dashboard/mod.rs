//! The web dashboard: one page (HTML, CSS and JavaScript compiled into the
//! binary, no build step) served at `/`, that reads and acts through the
//! same management API as any client, with the same API key (`/?code=KEY`;
//! the page sends it in a header, never in the URLs it polls). The page is
//! behind the key like the API; its two static assets, which hold no data,
//! are not. Every file carries a Content-Security-Policy that allows only
//! this server's own script and style (no inline code) and no framing.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Scripts and styles from this server's files only (none inline, none
/// evaluated), data only from its API, never framed, no referrer sent.
const POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
}

/// `GET /`: the page (behind the API key).
pub fn page<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route(
        "/",
        get(|| async { asset("text/html; charset=utf-8", INDEX) }),
    )
}

/// The page's script and style sheet (no key needed).
pub fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/dashboard/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
