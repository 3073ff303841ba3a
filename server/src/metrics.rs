//! Prometheus metrics of the relay, served as text at `/metrics`.
//!
//! Labels carry route templates (`/v1/teams/{team}/push`), methods, status codes and error codes
//! only: never ids, so the metrics cannot be used to follow a team or a device.

use prometheus_client::encoding::EncodeLabelSet;
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
    pub method: String,
    /// The HTTP status code.
    pub status: u16,
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
