//! Attestation aggregation through the middleware (Electra on). Nodes'
//! beacon nodes can hold different aggregates for one committee, and every
//! aggregator of the cluster must sign the same one, so each committee's
//! aggregate is agreed on (one consensus instance per slot and committee).
//! The client's partially signed `AggregateAndProof` must carry that
//! aggregate and the validator's (combined) selection proof; it is checked,
//! exchanged, combined and submitted.

use super::attest::{consensus_version, parse_u64};
use super::{json_list, ApiError, Checked, Middleware, Shared, Sorted};
use crate::duty::{Duty, DutyType};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dv_types::ssz::Encode;
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use serde_json::{json, Value};
use std::collections::HashMap;

fn not_before_electra(fork: ForkName) -> Result<(), ApiError> {
    if fork.electra_enabled() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "aggregation before Electra ({fork}) is not supported by the dvnode middleware"
            ),
        ))
    }
}

/// The committee an Electra aggregate is for: its single committee bit.
fn committee_of<P: Preset>(aggregate: &AttestationElectra<P>) -> Result<u64, String> {
    let set: Vec<usize> = (0..aggregate.committee_bits.len())
        .filter(|i| aggregate.committee_bits.get(*i).unwrap_or(false))
        .collect();
    match set[..] {
        [one] => Ok(one as u64),
        _ => Err(format!(
            "an aggregate has one committee bit set, this one {}",
            set.len()
        )),
    }
}

/// `GET /eth/v2/validator/aggregate_attestation`: the committee's decided aggregate.
pub(super) async fn aggregate_attestation(
    State(mw): Shared,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let slot = parse_u64(&query, "slot")?;
    let committee = parse_u64(&query, "committee_index")?;
    let root: Root = query
        .get("attestation_data_root")
        .ok_or_else(|| ApiError::bad_request("missing attestation_data_root"))?
        .parse()
        .map_err(|e| ApiError::bad_request(format!("attestation_data_root: {e}")))?;
    let fork = mw.store.spec().fork_at_slot(slot);
    not_before_electra(fork)?;
    let aggregate = if mw.minimal {
        decide_aggregate::<Minimal>(&mw, root, slot, committee).await?
    } else {
        decide_aggregate::<Mainnet>(&mw, root, slot, committee).await?
    };
    let mut response = Json(json!({"version": fork, "data": aggregate})).into_response();
    if let Ok(v) = HeaderValue::from_str(fork.as_str()) {
        response.headers_mut().insert("Eth-Consensus-Version", v);
    }
    Ok(response)
}

async fn decide_aggregate<P: Preset>(
    mw: &Middleware,
    root: Root,
    slot: Slot,
    committee: u64,
) -> Result<Value, ApiError> {
    let duty = Duty::new(slot, DutyType::Aggregator { committee });
    // Valid: an aggregate of this committee's attestations to the data the client asked about.
    let is_valid = move |a: &AttestationElectra<P>| {
        a.data.slot == slot
            && a.data.tree_hash_root() == root
            && committee_of(a) == Ok(committee)
            && a.aggregation_bits.num_set_bits() > 0
    };
    let fetch = || async move {
        mw.beacon
            .first_success(|n| n.aggregate_attestation::<P>(root, slot, committee))
            .await
    };
    let aggregate = mw.decide_built(duty, fetch, is_valid).await?;
    if aggregate.data.tree_hash_root() != root {
        return Err(ApiError::bad_request(format!(
            "the cluster decided an aggregate of other data for committee {committee} at slot {slot}"
        )));
    }
    Ok(json!(aggregate))
}

/// `POST /eth/v1|v2/validator/aggregate_and_proofs` with the client's partials.
pub(super) async fn submit(
    State(mw): Shared,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let items = json_list(&body, "aggregates")?;
    let fork = match consensus_version(&headers)? {
        Some(f) => f,
        None => mw.store.spec().fork_at_slot(mw.clock.current_slot()),
    };
    not_before_electra(fork)?;
    let mut sorted = Sorted::default();
    for (position, json) in items.into_iter().enumerate() {
        let checked = if mw.minimal {
            check::<Minimal>(&mw, &json).await
        } else {
            check::<Mainnet>(&mw, &json).await
        };
        sorted.add(position, json, checked);
    }
    mw.finish_batch(
        sorted,
        &uri,
        &headers,
        "/eth/v2/validator/aggregate_and_proofs",
        "aggregates submitted",
        "aggregates",
    )
    .await
}

/// Checks one signed aggregate of the client; `None` if the aggregator is
/// not the cluster's.
async fn check<P: Preset>(mw: &Middleware, json: &Value) -> Checked {
    let signed: SignedAggregateAndProofElectra<P> = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SignedAggregateAndProof: {e}"))?;
    let message = &signed.message;
    let Some(validator) = mw.scheduler.validator_by_index(message.aggregator_index) else {
        return Ok(None);
    };
    let slot = message.aggregate.data.slot;
    let committee = committee_of(&message.aggregate)?;
    let duty = Duty::new(slot, DutyType::Aggregator { committee });
    let decided = mw.store.workflow().decided(duty).await.ok_or_else(|| {
        format!("the cluster decided no aggregate for committee {committee} at slot {slot}")
    })?;
    if decided != message.aggregate.as_ssz_bytes().into() {
        return Err(format!(
            "not the aggregate the cluster decided for committee {committee} at slot {slot}"
        ));
    }
    // The selection proof must be the validator's own (the combined one),
    // and must select it: the beacon node would refuse anything else.
    let epoch = mw.store.spec().epoch_of_slot(slot);
    let selection_root = mw
        .store
        .signing_root(DomainKind::SelectionProof, epoch, &slot);
    let committee_len = message.aggregate.aggregation_bits.len() as u64;
    let modulo = committee_len / mw.store.spec().target_aggregators_per_committee;
    mw.check_selection_proof(
        Duty::new(slot, DutyType::Selection),
        &validator,
        selection_root,
        &message.selection_proof,
        modulo,
    )
    .await?;
    let root = mw
        .store
        .signing_root(DomainKind::AggregateAndProof, epoch, message);
    let partial = mw.parse_partial(&validator, &signed.signature)?;
    Ok(Some((duty, root, partial)))
}
