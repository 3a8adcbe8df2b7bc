//! What the HTTP door refuses before any handler runs: requests a web page
//! could forge, and requests without the API key.
//!
//! - **Without an API key** (a server on loopback), a request is served
//!   only when its `Host` is a loopback name or address (so a DNS-rebinding
//!   page, whose requests name its own host, is refused) and its `Origin`,
//!   when a browser sends one, is the server's own (so a page on another
//!   site cannot drive it, with or without a CORS preflight).
//! - **Bodies that claim a media type** must claim JSON on the API's routes:
//!   `text/plain`, forms and multipart, which a page may send cross-site
//!   without a preflight, are refused with 415.
//! - **With an API key**, every route but the dashboard's static assets
//!   needs it, as `Authorization: Bearer KEY` or a `code` query parameter
//!   (percent-decoded, so keys with `+`, `/` and `=` work), compared in
//!   constant time. The key is never ambient: no cookie carries it. A
//!   second, read-only key (`read_key`) is accepted for GET and HEAD only
//!   (403 `ReadOnlyKey` otherwise); the request is marked with the
//!   [`Access`] it was granted, so that the URLs a response hands out
//!   carry the key the client presented, never the other one.

use crate::wire;
use crate::{AppState, BASE_PATH};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// What a request's key lets it do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// The API key, or a server without one.
    Full,
    /// The read-only key.
    Read,
}

impl Access {
    /// The key URLs handed to this request may carry.
    pub(crate) fn key<'a>(
        access: Option<&Access>,
        config: &'a crate::ServerConfig,
    ) -> Option<&'a str> {
        match access {
            Some(Access::Read) => config.read_key.as_deref(),
            _ => config.api_key.as_deref(),
        }
    }
}

/// The checks of this module, in order: origin (keyless servers), media
/// type, key.
pub(crate) async fn check(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let refusal = match state.config.api_key {
        None => same_site(req.headers()),
        Some(_) => None,
    };
    if let Some(refusal) = refusal.or_else(|| json_media_type(&req)) {
        return refusal;
    }
    let mut access = Access::Full;
    if let Some(key) = state.config.api_key.as_deref() {
        if !is_public_asset(req.uri().path()) && !carries_key(&req, key) {
            let read = state.config.read_key.as_deref();
            if !read.is_some_and(|k| carries_key(&req, k)) {
                return wire::error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "an API key is required: pass ?code=KEY or Authorization: Bearer KEY",
                )
                .into_response();
            }
            if !matches!(*req.method(), Method::GET | Method::HEAD) {
                return wire::error(
                    StatusCode::FORBIDDEN,
                    "ReadOnlyKey",
                    "this key may only read; changes need the API key",
                )
                .into_response();
            }
            access = Access::Read;
        }
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

fn forbidden(error: &str, message: String) -> Response {
    wire::error(StatusCode::FORBIDDEN, error, message).into_response()
}

/// A keyless server answers its own pages and local tools only: the
/// refusal of anything else.
fn same_site(headers: &HeaderMap) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or_default());
    if let Some(host) = host {
        if !is_loopback_authority(host) {
            return Some(forbidden(
                "ForbiddenHost",
                format!(
                    "this server has no API key, so it answers only requests for a loopback host, not `{host}`"
                ),
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let own = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .is_some_and(|authority| authority.eq_ignore_ascii_case(h))
        });
        if !own {
            return Some(forbidden(
                "ForbiddenOrigin",
                format!(
                    "this server has no API key, so it answers only its own pages, not a request from `{origin}`"
                ),
            ));
        }
    }
    None
}

/// `host[:port]` names this machine: `localhost` (or a `.localhost` name),
/// an address in 127.0.0.0/8, or `[::1]`.
pub(crate) fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, port)) if port.is_empty() || is_port(port) => h,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return false,
            None => authority,
        }
    };
    let host = host.to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

/// A body on an API route is JSON, or says nothing of its type: the
/// refusal of anything else.
fn json_media_type(req: &Request) -> Option<Response> {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        || !req.uri().path().starts_with(BASE_PATH)
    {
        return None;
    }
    let ct = req.headers().get(header::CONTENT_TYPE)?;
    let ct = ct.to_str().unwrap_or_default();
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return None;
    }
    Some(
        wire::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("request bodies are JSON: send `Content-Type: application/json`, not `{ct}`"),
        )
        .into_response(),
    )
}

/// The dashboard's script and style sheet hold no data and need no key.
fn is_public_asset(path: &str) -> bool {
    path.starts_with("/dashboard/")
}

fn carries_key(req: &Request, key: &str) -> bool {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|v| same_key(v, key));
    from_header
        || req.uri().query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "code" && same_key(&v, key))
        })
}

/// Compares in time that depends on the lengths alone, not on where the
/// texts first differ.
pub(crate) fn same_key(given: &str, key: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_authorities() {
        for (authority, loopback) in [
            ("localhost", true),
            ("localhost:7071", true),
            ("LOCALHOST:7071", true),
            ("app.localhost:80", true),
            ("127.0.0.1:7071", true),
            ("127.8.9.10", true),
            ("[::1]:7071", true),
            ("[::1]", true),
            ("evil.example:7071", false),
            ("localhost.evil.example", false),
            ("192.168.1.2:7071", false),
            ("[::2]:7071", false),
            ("127.0.0.1:notaport", false),
            ("", false),
        ] {
            assert_eq!(is_loopback_authority(authority), loopback, "{authority}");
        }
    }

    #[test]
    fn keys_compare_whole() {
        for (given, key, same) in [
            ("a+b/c=", "a+b/c=", true),
            ("a+b/c", "a+b/c=", false),
            ("a+b/c==", "a+b/c=", false),
            ("", "k", false),
            ("x", "k", false),
        ] {
            assert_eq!(same_key(given, key), same, "{given} vs {key}");
        }
    }
}
