//! The HTTP side of sync: every request signed by the device, every refusal turned into a typed
//! error, clock skew corrected from the relay's answer, rate limits waited out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use streetsync_wire::{ErrorBody, ErrorCode, MAX_BODY_BYTES, auth};

use crate::crypto::DeviceIdentity;
use crate::error::{Error, Result};

/// A relay endpoint as seen by one device.
pub(crate) struct RelayClient {
    http: reqwest::Client,
    base: String,
    /// Relay clock minus device clock, learned from `clock_skew` answers.
    offset_ms: AtomicI64,
    /// TLS settings shared by HTTP and the live WebSocket.
    tls: std::sync::Arc<rustls::ClientConfig>,
}

/// The TLS client configuration: rustls with the ring provider, the webpki root certificates,
/// and any extra roots the host trusts (a self-hosted relay's own CA), given as PEM.
pub(crate) fn tls_config(
    extra_roots_pem: Option<&str>,
) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots_pem {
        let mut reader = std::io::BufReader::new(pem.as_bytes());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|_| {
                crate::error::ValidationError::new(
                    "trusted_roots_pem",
                    "is not a PEM certificate list",
                )
            })?;
            roots.add(cert).map_err(|e| {
                crate::error::ValidationError::new(
                    "trusted_roots_pem",
                    format!("certificate refused: {e}"),
                )
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(crate::error::ValidationError::new(
                "trusted_roots_pem",
                "contains no certificate",
            )
            .into());
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| Error::Internal("TLS protocol versions"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

impl RelayClient {
    pub(crate) fn new(base_url: &str, extra_roots_pem: Option<&str>) -> Result<Self> {
        let base = base_url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(crate::error::ValidationError::new(
                "relay_url",
                "must start with http:// or https://",
            )
            .into());
        }
        if !base.is_ascii() {
            // The URL parser carries no Unicode tables (the `idna_adapter` stub keeps them out of
            // the library apps ship): an international domain name goes in as punycode.
            return Err(crate::error::ValidationError::new(
                "relay_url",
                "must be ASCII: write an international domain name as punycode (xn--...)",
            )
            .into());
        }
        let tls = tls_config(extra_roots_pem)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            // The relay closes a kept-alive connection that sends no request within its header
            // timeout (10 s by default); dropping idle ones sooner keeps a request from being
            // sent on a connection the relay is closing at that moment.
            .pool_idle_timeout(Duration::from_secs(5))
            .tls_backend_preconfigured((*tls).clone())
            .build()
            .map_err(|e| Error::Offline(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            offset_ms: AtomicI64::new(0),
            tls,
        })
    }

    pub(crate) fn tls(&self) -> std::sync::Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The device clock corrected by what the relay told us.
    pub(crate) fn now_ms(&self) -> i64 {
        crate::clock::now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    /// A signed `Authorization` header value for one request.
    pub(crate) fn sign(
        &self,
        id: &DeviceIdentity,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<String> {
        Ok(auth::authorization_header(
            id.signing_key(),
            id.device_id(),
            method,
            path,
            body,
            self.now_ms(),
            crate::crypto::random_bytes()?,
        ))
    }

    /// Sends a signed request and decodes the answer. Retries once after a clock correction and
    /// up to three times after a rate-limit answer.
    pub(crate) async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        id: &DeviceIdentity,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| Error::Protocol(e.to_string()))?,
            None => Vec::new(),
        };
        let mut skew_retry = true;
        let mut rate_retries = 3;
        loop {
            let header = self.sign(id, method.as_str(), path, &bytes)?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{}", self.base, path))
                .header(reqwest::header::AUTHORIZATION, header);
            if body.is_some() {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            let resp = req.send().await.map_err(|e| Error::Offline(describe(&e)))?;
            let status = resp.status();
            let text = read_capped(resp, path).await?;
            if status.is_success() {
                return serde_json::from_slice(&text).map_err(|e| {
                    Error::Protocol(format!("relay answered {path} with unexpected JSON: {e}"))
                });
            }
            let err: ErrorBody = match serde_json::from_slice(&text) {
                Ok(e) => e,
                Err(_) => {
                    return Err(Error::Relay {
                        code: streetsync_wire::ErrorCode::Unknown(format!(
                            "http_{}",
                            status.as_u16()
                        )),
                        message: String::from_utf8_lossy(&text).chars().take(200).collect(),
                    });
                }
            };
            match (err.error, err.server_time, err.retry_after_ms) {
                (ErrorCode::ClockSkew, Some(server), _) if skew_retry => {
                    skew_retry = false;
                    self.offset_ms
                        .store(server - crate::clock::now_ms(), Ordering::Relaxed);
                }
                // An erasure the relay stored but has not wiped yet: the same request is answered
                // once it has.
                (ErrorCode::RateLimited | ErrorCode::ErasurePending, _, wait)
                    if rate_retries > 0 =>
                {
                    rate_retries -= 1;
                    tokio::time::sleep(Duration::from_millis(wait.unwrap_or(500).min(5_000))).await;
                }
                // The relay is up but its database is not (PostgreSQL lost): to the device that is
                // the same as no signal. The outbox keeps everything, and the next sync retries.
                (ErrorCode::StorageUnavailable, _, _) => {
                    return Err(Error::Offline(format!(
                        "the relay's database is unavailable: {}",
                        err.message
                    )));
                }
                (code, _, _) => {
                    return Err(Error::Relay {
                        code,
                        message: err.message,
                    });
                }
            }
        }
    }
}

/// The most this client reads of one answer: a relay's answers are at most a pull page or a
/// mailbox page ([`MAX_BODY_BYTES`] of entries) plus the JSON around them. A relay (or something
/// in between) that sends more is cut off instead of filling the device's memory.
pub(crate) const MAX_ANSWER_BYTES: usize = MAX_BODY_BYTES + 1024 * 1024;

/// Reads an answer's body, refusing it once it is over [`MAX_ANSWER_BYTES`] (by its announced
/// length at once, else as the bytes arrive).
async fn read_capped(mut resp: reqwest::Response, path: &str) -> Result<Vec<u8>> {
    let too_large = || {
        Error::Protocol(format!(
            "the relay's answer to {path} is over {MAX_ANSWER_BYTES} bytes"
        ))
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::Offline(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if text.contains("certificate") || text.contains("Certificate") {
            return format!("the relay's TLS certificate is not trusted: {text}");
        }
        source = s.source();
    }
    if e.is_connect() {
        "cannot connect to the relay".into()
    } else if e.is_timeout() {
        "the relay did not answer in time".into()
    } else {
        format!("connection to the relay failed: {e}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn a_relay_url_must_be_ascii_and_punycode_is_taken() {
        let e = RelayClient::new("https://streetwork-bücher.example", None)
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Invalid(v) if v.field == "relay_url"),
            "{e:?}"
        );
        assert!(RelayClient::new("https://xn--streetwork-bcher-uzb.example", None).is_ok());
    }

    /// A fake relay on 127.0.0.1 that answers every request with `head` and then `body_len`
    /// bytes of JSON-looking filler (as fast as the client reads).
    async fn oversized_relay(head: String, body_len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let head = head.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b' '; 64 * 1024];
                    let mut sent = 0;
                    while sent < body_len {
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        sent += chunk.len();
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    async fn ask(url: &str) -> Result<serde_json::Value> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = RelayClient::new(url, None).unwrap();
        let id = DeviceIdentity::generate().unwrap();
        client
            .call::<(), serde_json::Value>(&id, Method::GET, "/v1/teams/x/pull", None)
            .await
    }

    /// A relay whose database is gone answers 503 `storage_unavailable`; the device treats it as
    /// offline (the outbox waits for the next sync), not as a refusal.
    #[tokio::test]
    async fn a_relay_without_its_database_counts_as_offline() {
        let body = r#"{"error":"storage_unavailable","message":"database unavailable"}"#;
        let url = oversized_relay(
            format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
            0,
        )
        .await;
        assert!(
            matches!(ask(&url).await, Err(Error::Offline(m)) if m.contains("database unavailable"))
        );
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_refused_by_its_length_or_as_it_arrives() {
        let big = MAX_ANSWER_BYTES + 1;
        let announced = oversized_relay(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {big}\r\n\r\n"
            ),
            big,
        )
        .await;
        assert!(matches!(ask(&announced).await, Err(Error::Protocol(m)) if m.contains("over")));
        // No length announced: the body is cut off once it passes the cap.
        let streamed = oversized_relay(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n"
                .to_owned(),
            2 * MAX_ANSWER_BYTES,
        )
        .await;
        assert!(matches!(ask(&streamed).await, Err(Error::Protocol(m)) if m.contains("over")));
    }
}
