//! Forwarding to the beacon node what the middleware does not handle itself:
//! method, path, query, headers (`Eth-Consensus-Version`, `Accept`, ...) and
//! body unchanged except for the share ↔ validator key mapping (JSON and SSZ).
//! Responses stream back (the event stream stays a stream); beacon nodes are
//! tried in order while they fail to answer at all.

use super::encoding::{is_json, is_ssz};
use super::identity::Identity;
use super::ApiError;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Largest request body accepted from the validator client (a block with blobs fits).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Headers that describe one hop, not the message.
const HOP_BY_HOP: [HeaderName; 5] = [
    header::HOST,
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::ACCEPT_ENCODING,
];

pub struct Upstream {
    urls: Vec<String>,
    http: reqwest::Client,
}

/// Largest SSZ answer buffered for key mapping (a duties or validators
/// answer is far smaller); a larger one (a whole state) streams through as it is.
const MAX_MAPPED_SSZ_BYTES: u64 = 32 * 1024 * 1024;

impl Upstream {
    pub fn new(urls: &[String]) -> Result<Self, String> {
        // No overall timeout: the event stream stays open; connecting is bounded.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            http,
        })
    }

    /// Sends one request to the first beacon node that answers.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response, ApiError> {
        let mut failures = Vec::new();
        for url in &self.urls {
            let mut request = self
                .http
                .request(method.clone(), format!("{url}{path_and_query}"))
                .body(body.clone());
            for (name, value) in headers {
                if !HOP_BY_HOP.contains(name) {
                    request = request.header(name, value);
                }
            }
            match request.send().await {
                Ok(response) => return Ok(response),
                Err(e) => failures.push(format!("beacon node {url}: {e}")),
            }
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no beacon node answered: {}", failures.join("; ")),
        ))
    }

    /// Forwards a client request, mapping share keys to validator keys on the
    /// way in and back on the way out (JSON bodies; other bodies pass as they are).
    pub async fn forward(
        &self,
        identity: &Identity,
        method: Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let body = if is_json(headers) && !body.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(mut value) => {
                    identity.to_beacon_json(&mut value);
                    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
                }
                Err(e) => {
                    return ApiError::bad_request(format!(
                        "request body is not the JSON its content type says: {e}"
                    ))
                    .into_response()
                }
            }
        } else if is_ssz(headers) && !body.is_empty() {
            let mut bytes = body.to_vec();
            identity.to_beacon_ssz(&mut bytes);
            Bytes::from(bytes)
        } else {
            body
        };
        let path = identity.to_beacon_text(path_and_query);
        match self.send(method, &path, headers, body).await {
            Ok(response) => relay(response, identity).await,
            Err(e) => e.into_response(),
        }
    }
}

/// The beacon node's response for the client: JSON and SSZ get the key
/// mapping, anything else (the event stream) is streamed through.
pub async fn relay(response: reqwest::Response, identity: &Identity) -> Response {
    let status = response.status();
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if !HOP_BY_HOP.contains(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let body = if is_json(response.headers()) {
        match response.bytes().await {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(mut value) => {
                    identity.to_client_json(&mut value);
                    Body::from(serde_json::to_vec(&value).unwrap_or_default())
                }
                Err(_) => Body::from(bytes),
            },
            Err(e) => {
                return ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("beacon node response broke off: {e}"),
                )
                .into_response()
            }
        }
    } else if is_ssz(response.headers())
        && response
            .content_length()
            .is_none_or(|len| len <= MAX_MAPPED_SSZ_BYTES)
    {
        match read_capped(response, MAX_MAPPED_SSZ_BYTES).await {
            Ok(mut bytes) => {
                identity.to_client_ssz(&mut bytes);
                Body::from(bytes)
            }
            Err(e) => return ApiError::new(StatusCode::BAD_GATEWAY, e).into_response(),
        }
    } else {
        Body::from_stream(response.bytes_stream())
    };
    let mut out = Response::new(body);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// A response body of at most `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("beacon node response broke off: {e}"))?
    {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(format!(
                "beacon node SSZ answer larger than {cap} bytes without a content length"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
