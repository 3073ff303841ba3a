//! The desk's assets, compiled into the binary (no CDN, no outside fonts): the style sheet, the
//! small script for live updates, and the icon. Their license is the project's (see
//! `cli/assets/desk/README.md`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &[u8] = include_bytes!("../../assets/desk/desk.css");
const JS: &[u8] = include_bytes!("../../assets/desk/desk.js");
const ICON: &[u8] = include_bytes!("../../assets/desk/icon.svg");

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "desk.css" => (CSS, "text/css; charset=utf-8"),
        "desk.js" => (JS, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    res
}
