//! Answers in the encoding the client asked for (see
//! [`beacon_client::encoding`] for the negotiation itself).

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
pub use beacon_client::encoding::{is_json, is_ssz, ssz_list_len, wants_ssz, JSON, SSZ};
use dv_types::ssz::Encode;
use dv_types::ForkName;
use serde::Serialize;
use serde_json::json;

/// A `{"data": …}` answer, or the value's SSZ when `ssz`; with
/// `Eth-Consensus-Version` (and `version` in JSON) when `fork` is given.
pub fn data_response<T: Serialize + Encode>(
    value: &T,
    ssz: bool,
    fork: Option<ForkName>,
) -> Response {
    let (body, content_type) = if ssz {
        (Body::from(value.as_ssz_bytes()), SSZ)
    } else {
        let json = match fork {
            Some(fork) => json!({"version": fork, "data": value}),
            None => json!({ "data": value }),
        };
        (Body::from(json.to_string()), JSON)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(v) = fork.and_then(|f| HeaderValue::from_str(f.as_str()).ok()) {
        headers.insert("Eth-Consensus-Version", v);
    }
    response
}
