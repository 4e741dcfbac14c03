//! SSZ at the simulated chain's edge, as a real beacon node speaks it: on
//! the routes where the Beacon API offers SSZ, an SSZ request body is
//! decoded (the fork from `Eth-Consensus-Version`) and handed to the JSON
//! handlers in its JSON form, and an answer is re-encoded in SSZ when the
//! client's `Accept` prefers it. Everything else is JSON only, and an SSZ
//! body there is refused (415) as the handlers' JSON extractor refuses it.

use crate::chain::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use beacon_client::block_contents::{
    contents_ssz, signed_block_ssz, split_contents, split_signed_block,
};
use beacon_client::encoding::{is_ssz, ssz_list_len, wants_ssz, JSON, SSZ};
use beacon_client::BlobsBundle;
use dv_types::ssz::{Decode, Encode};
use dv_types::*;
use serde_json::{json, Value};

/// The most items an SSZ list body may hold here (far above any cluster's need).
const MAX_SSZ_ITEMS: usize = 1 << 16;
/// Request and answer bodies read for conversion, at most.
const MAX_BODY_BYTES: usize = 64 << 20;

fn fork_header(headers: &HeaderMap) -> Result<ForkName, String> {
    headers
        .get("Eth-Consensus-Version")
        .and_then(|v| v.to_str().ok())
        .ok_or("an SSZ body needs the Eth-Consensus-Version header")?
        .parse()
}

/// An SSZ list of `T` as its JSON list.
fn list_json<T: Decode + serde::Serialize>(bytes: &[u8]) -> Result<Value, String> {
    let count = ssz_list_len::<T>(bytes)?;
    if count > MAX_SSZ_ITEMS {
        return Err(format!("{count} items, more than {MAX_SSZ_ITEMS}"));
    }
    let items = Vec::<T>::from_ssz_bytes(bytes).map_err(|e| format!("{e:?}"))?;
    serde_json::to_value(items).map_err(|e| e.to_string())
}

/// The JSON form of an SSZ request body on `path`; `None` if the Beacon API
/// takes no SSZ body there.
fn request_json<P: Preset>(
    path: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Option<Result<Value, String>> {
    let convert = |f: &dyn Fn(ForkName) -> Result<Value, String>| fork_header(headers).and_then(f);
    Some(match path {
        "/eth/v2/beacon/pool/attestations" => convert(&|fork| {
            if fork.electra_enabled() {
                list_json::<SingleAttestation>(bytes)
            } else {
                list_json::<AttestationDeneb<P>>(bytes)
            }
        }),
        "/eth/v2/validator/aggregate_and_proofs" => convert(&|fork| {
            if fork.electra_enabled() {
                list_json::<SignedAggregateAndProofElectra<P>>(bytes)
            } else {
                list_json::<SignedAggregateAndProofDeneb<P>>(bytes)
            }
        }),
        "/eth/v1/validator/register_validator" => list_json::<SignedValidatorRegistration>(bytes),
        "/eth/v2/beacon/blocks" => convert(&|fork| {
            let (signed, blobs) = split_contents(bytes)?;
            let (message, signature) = split_signed_block(signed)?;
            let block =
                VersionedBlock::<P>::from_ssz_bytes(fork, message).map_err(|e| e.to_string())?;
            Ok(json!({
                "signed_block": {"message": block.to_json_value(), "signature": signature},
                "kzg_proofs": blobs.kzg_proofs,
                "blobs": blobs.blobs,
            }))
        }),
        "/eth/v2/beacon/blinded_blocks" => convert(&|fork| {
            let (message, signature) = split_signed_block(bytes)?;
            let block = VersionedBlindedBlock::<P>::from_ssz_bytes(fork, message)
                .map_err(|e| e.to_string())?;
            Ok(json!({"message": block.to_json_value(), "signature": signature}))
        }),
        _ => return None,
    })
}

/// The SSZ of a JSON answer on `path`; `None` if the Beacon API offers no
/// SSZ answer there.
fn answer_ssz<P: Preset>(
    path: &str,
    headers: &HeaderMap,
    answer: &Value,
) -> Option<Result<Vec<u8>, String>> {
    let typed = |what: &str| -> Result<Value, String> {
        match &answer["data"] {
            Value::Null => Err(format!("{what}: no data")),
            data => Ok(data.clone()),
        }
    };
    let fork = || fork_header(headers);
    fn ssz_of<T: Encode + serde::de::DeserializeOwned>(v: Value) -> Result<Vec<u8>, String> {
        serde_json::from_value::<T>(v)
            .map(|t| t.as_ssz_bytes())
            .map_err(|e| e.to_string())
    }
    Some(if path == "/eth/v1/validator/attestation_data" {
        typed("attestation data").and_then(ssz_of::<AttestationData>)
    } else if path == "/eth/v2/validator/aggregate_attestation" {
        fork().and_then(|fork| {
            let data = typed("aggregate")?;
            if fork.electra_enabled() {
                ssz_of::<AttestationElectra<P>>(data)
            } else {
                ssz_of::<AttestationDeneb<P>>(data)
            }
        })
    } else if path.starts_with("/eth/v3/validator/blocks/") {
        fork().and_then(|fork| {
            let data = typed("block")?;
            if answer["execution_payload_blinded"] == json!(true) {
                let block = VersionedBlindedBlock::<P>::from_json_value(fork, data)
                    .map_err(|e| e.to_string())?;
                return Ok(block.as_ssz_bytes());
            }
            let block = VersionedBlock::<P>::from_json_value(fork, data["block"].clone())
                .map_err(|e| e.to_string())?;
            let blobs: BlobsBundle = serde_json::from_value(json!({
                "kzg_proofs": data["kzg_proofs"], "blobs": data["blobs"],
            }))
            .map_err(|e| e.to_string())?;
            contents_ssz(&block.as_ssz_bytes(), &blobs)
        })
    } else if path.starts_with("/eth/v2/beacon/blocks/") {
        fork().and_then(|fork| {
            let data = typed("block")?;
            let block = VersionedBlock::<P>::from_json_value(fork, data["message"].clone())
                .map_err(|e| e.to_string())?;
            let signature: SignatureBytes =
                serde_json::from_value(data["signature"].clone()).map_err(|e| e.to_string())?;
            Ok(signed_block_ssz(&block.as_ssz_bytes(), &signature))
        })
    } else {
        return None;
    })
}

/// The layer: SSZ bodies in, SSZ answers out, where the API has them.
pub async fn ssz_edge<P: Preset>(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let ssz_answer = wants_ssz(request.headers());
    let request = if is_ssz(request.headers()) {
        let (mut parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(b) => b,
            Err(e) => return ApiError::bad_request(format!("request body: {e}")).into_response(),
        };
        match request_json::<P>(&path, &parts.headers, &bytes) {
            None => {
                return ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE.as_u16(),
                    format!("{path} takes JSON (the Beacon API defines no SSZ body for it)"),
                )
                .into_response()
            }
            Some(Err(e)) => {
                return ApiError::bad_request(format!("invalid SSZ body: {e}")).into_response()
            }
            Some(Ok(json)) => {
                parts
                    .headers
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
                parts.headers.remove(header::CONTENT_LENGTH);
                Request::from_parts(parts, Body::from(json.to_string()))
            }
        }
    } else {
        request
    };
    let response = next.run(request).await;
    if !ssz_answer || !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => return ApiError::new(500, e.to_string()).into_response(),
    };
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match answer_ssz::<P>(&path, &parts.headers, &answer) {
        None => Response::from_parts(parts, Body::from(bytes)),
        Some(Ok(ssz)) => {
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(SSZ));
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(ssz))
        }
        Some(Err(e)) => ApiError::new(500, format!("the answer in SSZ: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use beacon_client::block_contents::signed_block_ssz;

    #[test]
    fn ssz_bodies_become_the_json_the_handlers_take() {
        let registration = SignedValidatorRegistration::default();
        let bytes = vec![registration.clone()].as_ssz_bytes();
        let json = request_json::<Minimal>(
            "/eth/v1/validator/register_validator",
            &HeaderMap::new(),
            &bytes,
        )
        .unwrap()
        .unwrap();
        assert_eq!(json, serde_json::to_value(vec![registration]).unwrap());
        // No fork header, no conversion; no SSZ route, none.
        assert!(request_json::<Minimal>(
            "/eth/v2/beacon/pool/attestations",
            &HeaderMap::new(),
            &[]
        )
        .unwrap()
        .is_err());
        assert!(request_json::<Minimal>(
            "/eth/v1/beacon/pool/sync_committees",
            &HeaderMap::new(),
            &[]
        )
        .is_none());
        let signed = signed_block_ssz(b"not a block", &SignatureBytes::infinity());
        let mut headers = HeaderMap::new();
        headers.insert("Eth-Consensus-Version", HeaderValue::from_static("fulu"));
        assert!(
            request_json::<Minimal>("/eth/v2/beacon/blinded_blocks", &headers, &signed)
                .unwrap()
                .is_err()
        );
    }
}
