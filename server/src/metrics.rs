//! Prometheus metrics of the relay, served as text at `/metrics`.
//!
//! Labels carry route templates (`/v1/teams/{team}/push`), methods, status codes and error codes
//! only: never ids, so the metrics cannot be used to follow a team or a device. Every label comes
//! from a closed set (a route template, [`MethodLabel`], a status, an [`ErrorCode`]), so no
//! request, authenticated or not, can add a series of its own.

use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use streetsync_wire::ErrorCode;

/// Labels of the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, or `unmatched`.
    pub route: String,
    /// The HTTP method.
    pub method: MethodLabel,
    /// The HTTP status code.
    pub status: u16,
}

/// The method label: the methods the relay serves, and `other` for any other string a client
/// sends (HTTP lets a client invent methods; each would have been a new series).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum MethodLabel {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// `PATCH`.
    Patch,
    /// Anything else.
    Other,
}

impl EncodeLabelValue for MethodLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

impl MethodLabel {
    /// The label of `method`.
    pub fn of(method: &Method) -> Self {
        match *method {
            Method::GET => MethodLabel::Get,
            Method::HEAD => MethodLabel::Head,
            Method::POST => MethodLabel::Post,
            Method::PUT => MethodLabel::Put,
            Method::DELETE => MethodLabel::Delete,
            Method::OPTIONS => MethodLabel::Options,
            Method::PATCH => MethodLabel::Patch,
            _ => MethodLabel::Other,
        }
    }

    /// The label's text, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodLabel::Get => "GET",
            MethodLabel::Head => "HEAD",
            MethodLabel::Post => "POST",
            MethodLabel::Put => "PUT",
            MethodLabel::Delete => "DELETE",
            MethodLabel::Options => "OPTIONS",
            MethodLabel::Patch => "PATCH",
            MethodLabel::Other => "other",
        }
    }
}

/// Labels of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The protocol error code.
    pub code: String,
}

/// Every metric the relay exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route template, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request body bytes received.
    pub bytes_in: Counter,
    /// Response body bytes sent (known-length bodies only).
    pub bytes_out: Counter,
    /// Envelopes newly appended to a log.
    pub envelopes_stored: Counter,
    /// Envelopes pushed again (idempotent duplicates).
    pub envelopes_duplicate: Counter,
    /// Log entries deleted by compaction or erasure.
    pub envelopes_dropped: Counter,
    /// Refusals by error code.
    pub errors: Family<ErrorLabels, Counter>,
    /// Open live WebSocket connections (devices online).
    pub devices_online: Gauge,
    /// Nonces held by the replay cache (set when the metrics are read).
    pub replay_nonces: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("streetsync_relay");
        let requests = Family::<RequestLabels, Counter>::default();
        let bytes_in = Counter::default();
        let bytes_out = Counter::default();
        let envelopes_stored = Counter::default();
        let envelopes_duplicate = Counter::default();
        let envelopes_dropped = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let devices_online = Gauge::default();
        let replay_nonces = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_bytes",
            "Request body bytes received",
            bytes_in.clone(),
        );
        registry.register(
            "http_response_bytes",
            "Response body bytes sent",
            bytes_out.clone(),
        );
        registry.register(
            "envelopes_stored",
            "Envelopes appended to a team log",
            envelopes_stored.clone(),
        );
        registry.register(
            "envelopes_duplicate",
            "Pushed envelopes the log already held",
            envelopes_duplicate.clone(),
        );
        registry.register(
            "envelopes_dropped",
            "Log entries deleted by compaction or erasure",
            envelopes_dropped.clone(),
        );
        registry.register("errors", "Refused requests by error code", errors.clone());
        registry.register(
            "devices_online",
            "Open live WebSocket connections",
            devices_online.clone(),
        );
        registry.register(
            "replay_nonces",
            "Nonces held by the replay cache",
            replay_nonces.clone(),
        );
        Metrics {
            registry,
            requests,
            bytes_in,
            bytes_out,
            envelopes_stored,
            envelopes_duplicate,
            envelopes_dropped,
            errors,
            devices_online,
            replay_nonces,
        }
    }

    /// Counts one refusal.
    pub fn error(&self, code: ErrorCode) {
        self.errors
            .get_or_create(&ErrorLabels {
                code: code.as_str().to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
