//! The guards of a web app on the lead's own computer. Other pages in the same browser and DNS
//! rebinding are the adversaries: a page on `evil.example` may make the browser send requests to
//! `127.0.0.1:<port>`, and a rebinding name may even make them same-origin to itself. So every
//! request is checked, in this order:
//!
//! 1. the `Host` header must be exactly `127.0.0.1:<port>` or `localhost:<port>` (a rebound name
//!    carries its own host name): else 421;
//! 2. the run's token: the printed URL carries `?token=`; the first load trades it for an
//!    `HttpOnly; SameSite=Strict` cookie and redirects to the same address without it; every later
//!    request must bring the cookie: else 403 (assets only are exempt: they hold no data);
//! 3. on every request that is not GET or HEAD, the `Origin` header must be the desk's own origin,
//!    and the CSRF token must come as form field `csrf` or header `X-CSRF-Token`: else 403;
//! 4. every response carries a strict Content-Security-Policy, `nosniff`, `same-origin` referrers, no framing,
//!    and pages are `no-store` so nothing decrypted lands in the browser's disk cache.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::{LANG_COOKIE, Lang, form_pairs, query_lang};
use super::pages::layout::error_page;
use super::state::DeskState;

/// The cookie that carries the run's token after the first load.
pub(crate) const TOKEN_COOKIE: &str = "desk_token";
/// The CSRF header for fetch and htmx.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// The form field of the CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";
/// The header the live refresh sends (it does not count as activity for the idle lock).
pub(crate) const LIVE_HEADER: &str = "x-desk-live";
/// The largest form body the desk reads (a note is at most 10,000 characters).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A cookie's value from the request headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `host` is one of the desk's own names.
fn own_host(state: &DeskState, host: &str) -> bool {
    let port = state.port();
    host == format!("127.0.0.1:{port}") || host == format!("localhost:{port}")
}

fn refuse(lang: Lang, status: StatusCode, key: &str) -> Response {
    (status, error_page(lang, status, key)).into_response()
}

/// Adds the security headers to every response.
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` on a
    // form POST, and the Origin check above would refuse the desk's own forms
    // (tests/desk/desk.test.mjs found it). Nothing is sent to another origin either way.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The Host, token, Origin and CSRF checks (see the module comment), then the idle clock.
pub(crate) async fn guard(State(state): State<DeskState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let lang = Lang::of_parts(&parts);

    // 1. Host: against DNS rebinding.
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !own_host(&state, host) {
        return refuse(lang, StatusCode::MISDIRECTED_REQUEST, "error-host");
    }
    let path = parts.uri.path().to_owned();
    let is_asset = path.starts_with("/assets/");

    // 2. The token: in the URL once, then the cookie.
    let url_token = parts.uri.query().and_then(|q| {
        form_pairs(q)
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
    });
    if let Some(t) = url_token {
        if !same_secret(&t, state.token()) {
            return refuse(lang, StatusCode::FORBIDDEN, "error-token");
        }
        // Trade it for the cookie, and drop it from the address bar and history.
        let mut target = path.clone();
        if let Some(l) = query_lang(parts.uri.query()) {
            target.push_str(&format!("?lang={}", l.code()));
        }
        let mut res = Redirect::to(&target).into_response();
        *res.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            state.token()
        )) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
        return res;
    }
    if !is_asset {
        let ok =
            cookie(&parts.headers, TOKEN_COOKIE).is_some_and(|c| same_secret(&c, state.token()));
        if !ok {
            return refuse(lang, StatusCode::FORBIDDEN, "error-token");
        }
    }

    // 3. State changes: the desk's own origin and the CSRF token.
    let safe = parts.method == Method::GET || parts.method == Method::HEAD;
    let body = if safe {
        body
    } else {
        let origin = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|h| own_host(&state, h));
        if !own {
            return refuse(lang, StatusCode::FORBIDDEN, "error-origin");
        }
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => return refuse(lang, StatusCode::PAYLOAD_TOO_LARGE, "error-too-large"),
        };
        let from_header = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let from_form = || {
            std::str::from_utf8(&bytes).ok().and_then(|text| {
                form_pairs(text)
                    .into_iter()
                    .find(|(k, _)| k == CSRF_FIELD)
                    .map(|(_, v)| v)
            })
        };
        let ok = from_header
            .or_else(from_form)
            .is_some_and(|t| same_secret(&t, state.csrf()));
        if !ok {
            return refuse(lang, StatusCode::FORBIDDEN, "error-csrf");
        }
        Body::from(bytes)
    };

    // 4. The idle lock: a request after the idle time finds the store closed.
    let passive = path == "/events" || is_asset || parts.headers.contains_key(LIVE_HEADER);
    if !state.is_locked() && state.idle_expired() {
        state.lock().await;
    }
    if !passive {
        state.touch();
    }

    let set_lang = query_lang(parts.uri.query());
    let mut res = next.run(Request::from_parts(parts, body)).await;
    if let Some(l) = set_lang
        && let Ok(v) = HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Strict",
            l.code()
        ))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
