//! The web dashboard: one page (HTML, CSS and JavaScript compiled into the
//! binary, no build step) served at `/`, that reads and acts through the
//! same management API as any client, with the same API key (`/?code=KEY`).
//! The page is behind the key like the API; its two static assets, which
//! hold no data, are not.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("index.html");
const APP: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
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
