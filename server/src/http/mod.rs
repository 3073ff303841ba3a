//! The HTTP surface of the relay: shared state, the router and the request middleware.
//!
//! Handlers live in one module per area (`teams`, `bundles`, `sync`, `live`); authentication is
//! an extractor (`auth`), refusals are one type (`error`).

pub mod auth;
pub mod bundles;
pub mod connections;
pub mod error;
pub mod invites;
pub mod limits;
pub mod live;
pub mod sync;
pub mod teams;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use streetsync_wire::{ErrorCode, MAX_BODY_BYTES};
use tokio::sync::{mpsc, watch};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use self::error::ApiError;
use self::limits::{Founding, MailboxQuota, RateLimiter, ReplayCache};
use self::live::LiveHub;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError};

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The persistent state.
    pub storage: Arc<dyn Storage>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Seen `(device, nonce)` pairs.
    pub replay: Arc<ReplayCache>,
    /// Per-device token buckets.
    pub rate_limit: Arc<RateLimiter>,
    /// Per-team head broadcasts for the live WebSockets.
    pub live: Arc<LiveHub>,
    /// How many bundles may wait per sender and per recipient.
    pub mailbox: MailboxQuota,
    /// Who may found a team.
    pub founding: Arc<Founding>,
    /// When this relay process started (unix ms); older request timestamps are refused.
    pub started_ms: i64,
    /// Turns true when the relay begins shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Each live WebSocket task holds a clone; shutdown waits until all are dropped.
    pub live_tasks: mpsc::Sender<()>,
}

impl AppState {
    /// Runs blocking storage work on tokio's blocking pool, never on an async worker.
    pub async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Storage) -> Result<T, StorageError> + Send + 'static,
    {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(storage.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("storage task failed: {e}")))?
            .map_err(ApiError::from)
    }
}

/// The relay's router with every route and layer. `request_timeout` bounds a whole request (its
/// body upload included; an upgraded live WebSocket is no longer a request), `body_timeout` the
/// time a request body may go without sending a byte.
pub fn router(state: AppState, request_timeout: Duration, body_timeout: Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/teams", post(teams::create_team))
        .route(
            "/v1/teams/{team}/devices",
            post(teams::add_device).get(teams::list_devices),
        )
        .route(
            "/v1/teams/{team}/devices/{device}",
            delete(teams::revoke_device),
        )
        .route(
            "/v1/teams/{team}/bundles",
            post(bundles::post_bundle).get(bundles::list_bundles),
        )
        .route(
            "/v1/teams/{team}/bundles/{id}",
            delete(bundles::delete_bundle),
        )
        .route(
            "/v1/teams/{team}/invites",
            post(invites::create_invite).get(invites::list_invites),
        )
        .route(
            "/v1/teams/{team}/invites/{id}",
            delete(invites::cancel_invite),
        )
        .route("/v1/invites/{id}/redeem", post(invites::redeem))
        .route("/v1/teams/{team}/push", post(sync::push))
        .route("/v1/teams/{team}/pull", get(sync::pull))
        .route("/v1/teams/{team}/snapshot", post(sync::snapshot))
        .route("/v1/teams/{team}/live", get(live::live))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .with_state(state)
}

/// The private router of `--metrics-listen`: `/metrics` and `/healthz` only.
pub fn private_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /healthz`: the process is up and its database answers.
async fn healthz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state
        .db(|s| s.head(streetsync_wire::TeamId::from_bytes([0; 16])))
        .await?;
    Ok("ok")
}

/// `GET /metrics`: Prometheus text.
async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .metrics
        .replay_nonces
        .set(i64::try_from(state.replay.len()).unwrap_or(i64::MAX));
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

/// Counts and logs every request: route template, method, status, sizes and time. Never bodies,
/// headers or ids.
async fn track(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = crate::metrics::MethodLabel::of(req.method());
    let bytes_in = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status();
    let bytes_out = response.body().size_hint().exact().unwrap_or(0);
    let m = &state.metrics;
    m.requests
        .get_or_create(&crate::metrics::RequestLabels {
            route: route.clone(),
            method,
            status: status.as_u16(),
        })
        .inc();
    m.bytes_in.inc_by(bytes_in);
    m.bytes_out.inc_by(bytes_out);
    let code = response.extensions().get::<ErrorCode>().cloned();
    if let Some(code) = &code {
        m.error(code.clone());
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        m.error(ErrorCode::TooLarge);
    }
    tracing::info!(
        method = method.as_str(),
        %route,
        status = status.as_u16(),
        error = code.as_ref().map(ErrorCode::as_str),
        bytes_in,
        bytes_out,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}
