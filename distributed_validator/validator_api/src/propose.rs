//! Block proposals through the middleware. Block production takes the
//! client's partial randao reveal, combines the reveal with the peers', has
//! the cluster agree on the block built with it and returns that block (JSON
//! or SSZ, as the client asked). The client's partially signed block must be
//! that block; it is checked, recorded, exchanged, combined and published.

use super::attest::consensus_version;
use super::encoding::{is_ssz, wants_ssz, SSZ};
use super::{ApiError, Middleware, Shared};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use beacon_client::block_contents::{block_slot, contents_ssz, split_contents, split_signed_block};
use beacon_client::{BlobsBundle, ProducedBlock};
use dv_node::duty::{Duty, DutyType};
use dv_node::scheduler::SlotClock;
use dv_node::tracker::Reason;
use dv_node::validator_store::{decode_block, DutyTiming};
use dv_types::*;
use serde_json::{json, Value};
use std::collections::HashMap;

fn block_response<P: Preset>(block: &ProducedBlock<P>, ssz: bool) -> Result<Response, ApiError> {
    let (fork, blinded) = match block {
        ProducedBlock::Full(b, _) => (b.fork_name(), false),
        ProducedBlock::Blinded(b) => (b.fork_name(), true),
    };
    let internal = |e: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decided block: {e}"),
        )
    };
    let body = match (block, ssz) {
        // From Deneb a full block comes as BlockContents {block, kzg_proofs, blobs}.
        (ProducedBlock::Full(b, blobs), true) => {
            Body::from(contents_ssz(&b.as_ssz_bytes(), blobs).map_err(internal)?)
        }
        (ProducedBlock::Blinded(b), true) => Body::from(b.as_ssz_bytes()),
        (ProducedBlock::Full(b, blobs), false) => Body::from(
            json!({
                "version": fork,
                "execution_payload_blinded": false,
                "execution_payload_value": "0",
                "consensus_block_value": "0",
                "data": {"block": b.to_json_value(), "kzg_proofs": blobs.kzg_proofs, "blobs": blobs.blobs},
            })
            .to_string(),
        ),
        (ProducedBlock::Blinded(b), false) => Body::from(
            json!({
                "version": fork,
                "execution_payload_blinded": true,
                "execution_payload_value": "0",
                "consensus_block_value": "0",
                "data": b.to_json_value(),
            })
            .to_string(),
        ),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    let content_type = if ssz { SSZ } else { "application/json" };
    for (name, value) in [
        ("content-type", content_type),
        ("Eth-Consensus-Version", fork.as_str()),
        (
            "Eth-Execution-Payload-Blinded",
            if blinded { "true" } else { "false" },
        ),
        ("Eth-Execution-Payload-Value", "0"),
        ("Eth-Consensus-Block-Value", "0"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

/// `GET /eth/v3/validator/blocks/{slot}`.
pub(super) async fn produce(
    State(mw): Shared,
    Path(slot): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let slot: Slot = slot
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid slot {slot:?}")))?;
    // Only near the current slot: a request for any other slot would have
    // the node look up (and keep) the duties of an epoch nobody needs.
    mw.check_slot_window(Duty::new(slot, DutyType::Proposer))
        .await?;
    // A client may ask at the first slot of an epoch before the slot loop
    // polled that epoch's duties: look them up rather than guess.
    let epoch = mw.store.spec().epoch_of_slot(slot);
    if !mw.scheduler.knows_proposers(epoch) {
        mw.scheduler.poll(&mw.beacon, epoch).await;
    }
    let Some(duty) = mw.scheduler.proposer_at(slot) else {
        // Not a proposal of the cluster's validators: the beacon node's business.
        return Ok(mw.forward(request).await);
    };
    let query: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?;
    let partial_reveal: SignatureBytes = query
        .get("randao_reveal")
        .ok_or_else(|| ApiError::bad_request("missing randao_reveal"))?
        .parse()
        .map_err(|e| ApiError::bad_request(format!("randao_reveal: {e}")))?;
    let graffiti: Graffiti = match query.get("graffiti") {
        Some(g) => g
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid graffiti {g:?}")))?,
        None => Graffiti::ZERO,
    };
    let ssz = wants_ssz(request.headers());
    if mw.minimal {
        produce_typed::<Minimal>(&mw, slot, duty, partial_reveal, graffiti, ssz).await
    } else {
        produce_typed::<Mainnet>(&mw, slot, duty, partial_reveal, graffiti, ssz).await
    }
}

async fn produce_typed<P: Preset>(
    mw: &Middleware,
    slot: Slot,
    duty: beacon_client::ProposerDuty,
    partial_reveal: SignatureBytes,
    graffiti: Graffiti,
    ssz: bool,
) -> Result<Response, ApiError> {
    let validator = duty.pubkey;
    let root = mw.store.randao_signing_root(slot);
    let partial = mw
        .verify_partial(&validator, root, &partial_reveal)
        .map_err(|e| ApiError::bad_request(format!("randao_reveal: {e}")))?;
    let deadline = mw.clock.slot_start(slot.saturating_add(1));
    let mut combined = mw
        .store
        .exchange_partials(
            Duty::new(slot, DutyType::Randao),
            root,
            vec![partial],
            &[validator],
            deadline,
        )
        .await
        .map_err(Middleware::sign_error)?;
    let reveal = combined.remove(&validator).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("insufficient partial randao reveals for slot {slot}"),
        )
    })?;
    let own = match mw
        .beacon
        .first_success(|n| n.produce_block::<P>(slot, &reveal, &graffiti))
        .await
    {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::warn!(
                slot,
                duty = "proposer",
                "own block unavailable (voting on peers' proposals only): {e}"
            );
            None
        }
    };
    let timing = DutyTiming {
        start: SlotClock::instant_at(mw.clock.slot_start_ms(slot)),
        deadline,
        rounds: mw.clock.round_timing(),
    };
    let block = mw
        .store
        .decide_block::<P>(validator, duty.validator_index, slot, reveal, own, timing)
        .await
        .map_err(Middleware::sign_error)?;
    block_response(&block, ssz)
}

/// `POST /eth/v1|v2/beacon/blocks`.
pub(super) async fn publish_full(
    State(mw): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    publish(&mw, &headers, &body, false).await
}

/// `POST /eth/v1|v2/beacon/blinded_blocks`.
pub(super) async fn publish_blinded(
    State(mw): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    publish(&mw, &headers, &body, true).await
}

async fn publish(
    mw: &Middleware,
    headers: &HeaderMap,
    body: &[u8],
    blinded: bool,
) -> Result<Response, ApiError> {
    if mw.minimal {
        publish_typed::<Minimal>(mw, headers, body, blinded).await
    } else {
        publish_typed::<Mainnet>(mw, headers, body, blinded).await
    }
}

/// A signed block in JSON, its message decoded once the fork is known.
#[derive(serde::Deserialize)]
struct SignedBlockJson {
    message: Value,
    signature: SignatureBytes,
}

/// Deneb's `SignedBlockContents` in JSON.
#[derive(serde::Deserialize)]
struct SignedBlockContentsJson {
    signed_block: SignedBlockJson,
    #[serde(default)]
    kzg_proofs: Vec<String>,
    #[serde(default)]
    blobs: Vec<String>,
}

/// [`parse_signed`] of a body with the two headers it reads, for the fuzz
/// targets (a fork a validator client names, SSZ or JSON).
#[doc(hidden)]
pub fn parse_submitted_block<P: Preset>(
    ssz: bool,
    fork: Option<&str>,
    body: &[u8],
    blinded: bool,
) -> Result<(ProducedBlock<P>, SignatureBytes), String> {
    let mut headers = HeaderMap::new();
    if ssz {
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    if let Some(value) = fork.and_then(|f| HeaderValue::from_str(f).ok()) {
        headers.insert("eth-consensus-version", value);
    }
    parse_signed(&headers, body, blinded, |_| ForkName::Fulu)
}

/// The submitted block (with the blobs the client sent along) and its
/// (partial) signature. The fork comes from the
/// `Eth-Consensus-Version` header, or else from the block's slot.
fn parse_signed<P: Preset>(
    headers: &HeaderMap,
    body: &[u8],
    blinded: bool,
    fork_at_slot: impl Fn(Slot) -> ForkName,
) -> Result<(ProducedBlock<P>, SignatureBytes), String> {
    let header_fork = consensus_version(headers).map_err(|e| e.message)?;
    if is_ssz(headers) {
        let (signed, blobs) = if blinded {
            (body, BlobsBundle::default())
        } else {
            split_contents(body)?
        };
        let (message, signature) = split_signed_block(signed)?;
        let slot = block_slot(message)?;
        let fork = header_fork.unwrap_or_else(|| fork_at_slot(slot));
        let block = if blinded {
            ProducedBlock::Blinded(
                VersionedBlindedBlock::from_ssz_bytes(fork, message).map_err(|e| e.to_string())?,
            )
        } else {
            ProducedBlock::Full(
                VersionedBlock::from_ssz_bytes(fork, message).map_err(|e| e.to_string())?,
                blobs,
            )
        };
        return Ok((block, signature));
    }
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let object = json
        .as_object()
        .ok_or("a signed block must be a JSON object")?;
    // From Deneb a full block comes as SignedBlockContents {signed_block, kzg_proofs, blobs}.
    let (signed, blobs) = if object.contains_key("signed_block") {
        let contents: SignedBlockContentsJson =
            serde_json::from_value(json).map_err(|e| format!("not a SignedBlockContents: {e}"))?;
        let blobs = BlobsBundle {
            kzg_proofs: contents.kzg_proofs,
            blobs: contents.blobs,
        };
        (contents.signed_block, blobs)
    } else {
        let signed: SignedBlockJson =
            serde_json::from_value(json).map_err(|e| format!("not a signed block: {e}"))?;
        (signed, BlobsBundle::default())
    };
    let SignedBlockJson { message, signature } = signed;
    let slot: Slot = message
        .get("slot")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or("block without a slot")?;
    let fork = header_fork.unwrap_or_else(|| fork_at_slot(slot));
    let block = if blinded {
        ProducedBlock::Blinded(
            VersionedBlindedBlock::from_json_value(fork, message).map_err(|e| e.to_string())?,
        )
    } else {
        ProducedBlock::Full(
            VersionedBlock::from_json_value(fork, message).map_err(|e| e.to_string())?,
            blobs,
        )
    };
    Ok((block, signature))
}

async fn publish_typed<P: Preset>(
    mw: &Middleware,
    headers: &HeaderMap,
    body: &[u8],
    blinded: bool,
) -> Result<Response, ApiError> {
    const DUTY: &str = "proposer";
    let spec = mw.store.spec();
    let (block, signature) =
        parse_signed::<P>(headers, body, blinded, |slot| spec.fork_at_slot(slot))
            .map_err(|e| ApiError::bad_request(format!("signed block: {e}")))?;
    let (_, slot, proposer, _, root) = dv_node::validator_store::block_summary(&block);
    let decided = mw
        .store
        .workflow()
        .decided(Duty::new(slot, DutyType::Proposer))
        .await
        .ok_or_else(|| {
            ApiError::bad_request(format!("the cluster decided no block for slot {slot}"))
        })?;
    let decided = decode_block::<P>(&decided).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("decided block: {e}"),
        )
    })?;
    let (_, _, _, _, decided_root) = dv_node::validator_store::block_summary(&decided);
    if root != decided_root {
        return Err(ApiError::bad_request(format!(
            "block {root} is not the block the cluster decided for slot {slot} ({decided_root})"
        )));
    }
    let validator = mw.scheduler.validator_by_index(proposer).ok_or_else(|| {
        ApiError::bad_request(format!(
            "proposer {proposer} is not a validator of this cluster"
        ))
    })?;
    let signing_root = mw.store.block_signing_root(&decided);
    let partial = mw
        .verify_partial(&validator, signing_root, &signature)
        .map_err(ApiError::bad_request)?;
    // Rules 1 and 2: this node's database, durably, before the partial is used.
    mw.store
        .record_block(&validator, &decided)
        .map_err(Middleware::sign_error)?;
    let deadline = mw.clock.slot_start(slot.saturating_add(1));
    let mut combined = mw
        .store
        .exchange_partials(
            Duty::new(slot, DutyType::Proposer),
            signing_root,
            vec![partial],
            &[validator],
            deadline,
        )
        .await
        .map_err(Middleware::sign_error)?;
    let Some(signature) = combined.remove(&validator) else {
        mw.metrics.duty_failed(
            slot,
            DUTY,
            Reason::InsufficientPartials,
            1,
            "insufficient partial signatures: 0 of 1 signatures combined",
        );
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("insufficient partial signatures for the block of slot {slot}"),
        ));
    };
    let published = match &decided {
        // The blobs the client sent along go with the block if they fit its
        // commitments; otherwise those decided with it (every node has them).
        ProducedBlock::Full(b, carried) => {
            let blobs = match &block {
                ProducedBlock::Full(_, sent)
                    if sent.check(b.fork_name(), b.blob_commitment_count()).is_ok() =>
                {
                    sent.clone()
                }
                _ => carried.clone(),
            };
            mw.beacon
                .first_success(|n| n.publish_block(b, &blobs, &signature))
                .await
        }
        ProducedBlock::Blinded(b) => {
            mw.beacon
                .first_success(|n| n.publish_blinded_block(b, &signature))
                .await
        }
    };
    match published {
        Ok(publication) => {
            let (_, _, proposer, _, root) = dv_node::validator_store::block_summary(&decided);
            mw.inclusion.block_submitted(slot, root, proposer);
            let what = publication.outcome();
            mw.metrics
                .duty_ok(slot, DUTY, mw.clock.slot_start_ms(slot), what, 1);
            Ok(StatusCode::OK.into_response())
        }
        Err(e) => {
            mw.metrics.duty_failed(
                slot,
                DUTY,
                Reason::BroadcastFailed,
                1,
                format!("beacon node error: {e}"),
            );
            let status = match &e {
                beacon_client::Error::Status { status, .. } => {
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            Err(ApiError::new(status, e.to_string()))
        }
    }
}
