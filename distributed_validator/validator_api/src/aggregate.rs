//! Attestation aggregation through the middleware, in every fork (the
//! aggregate shapes are [`CommitteeAggregate`]'s). Every aggregator of the
//! cluster must sign the same aggregate, so each committee's aggregate is
//! agreed on (one consensus instance per slot and committee, the store's
//! [`decide_built`](dv_node::validator_store::DvValidatorStore::decide_built)).
//! The client's partially signed `AggregateAndProof` must carry that
//! aggregate and the validator's (combined) selection proof; it is checked,
//! exchanged, combined and submitted.

use super::attest::{consensus_version, parse_u64};
use super::encoding::{data_response, wants_ssz};
use super::{ApiError, Checked, Middleware, Shared, Sorted};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use dv_node::aggregation::{aggregate_is_valid, committee_modulo, CommitteeAggregate};
use dv_node::duty::{Duty, DutyType};
use dv_node::validator_store::{FetchBuilt, ValidatorStore};
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use futures::FutureExt;
use serde_json::Value;
use std::collections::HashMap;

/// `GET /eth/v2/validator/aggregate_attestation`: the committee's decided aggregate, any fork.
pub(super) async fn aggregate_attestation(
    State(mw): Shared,
    headers: axum::http::HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let slot = parse_u64(&query, "slot")?;
    let committee = parse_u64(&query, "committee_index")?;
    let root = data_root(&query)?;
    let fork = mw.store.spec().fork_at_slot(slot);
    let answer = Answer {
        ssz: wants_ssz(&headers),
        fork: Some(fork),
    };
    decided_for_fork(&mw, fork, root, slot, committee, answer).await
}

/// How the client wants its aggregate: SSZ or JSON, versioned (v2) or not (v1).
#[derive(Clone, Copy)]
struct Answer {
    ssz: bool,
    fork: Option<ForkName>,
}

/// `GET /eth/v1/validator/aggregate_attestation` (before Electra): the
/// committee is the one the attestation data names.
pub(super) async fn aggregate_attestation_v1(
    State(mw): Shared,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let slot = parse_u64(&query, "slot")?;
    let root = data_root(&query)?;
    let fork = mw.store.spec().fork_at_slot(slot);
    if fork.electra_enabled() {
        return Err(ApiError::bad_request(format!(
            "/eth/v1/validator/aggregate_attestation serves pre-Electra aggregates; slot {slot} is {fork}: use /eth/v2 with committee_index"
        )));
    }
    // The data's committee index is in the root, not the query: the
    // committee is the one of this cluster's attesters whose data has it.
    let decided = mw.store.decided_attestation_data(slot).await;
    let committee = decided
        .and_then(|d: AttestationData| {
            mw.scheduler
                .attesters_at(slot)
                .iter()
                .map(|a| a.committee_index)
                .find(|c| AttestationData { index: *c, ..d }.tree_hash_root() == root)
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no committee of this cluster attests to data root {root} at slot {slot}"
            ))
        })?;
    let answer = Answer {
        ssz: false,
        fork: None,
    };
    decided_for_fork(&mw, fork, root, slot, committee, answer).await
}

fn data_root(query: &HashMap<String, String>) -> Result<Root, ApiError> {
    query
        .get("attestation_data_root")
        .ok_or_else(|| ApiError::bad_request("missing attestation_data_root"))?
        .parse()
        .map_err(|e| ApiError::bad_request(format!("attestation_data_root: {e}")))
}

async fn decided_for_fork(
    mw: &Middleware,
    fork: ForkName,
    root: Root,
    slot: Slot,
    committee: u64,
    answer: Answer,
) -> Result<Response, ApiError> {
    let at = (root, slot, committee, answer);
    match (fork.electra_enabled(), mw.minimal) {
        (true, true) => decide::<AttestationElectra<Minimal>>(mw, at).await,
        (true, false) => decide::<AttestationElectra<Mainnet>>(mw, at).await,
        (false, true) => decide::<AttestationDeneb<Minimal>>(mw, at).await,
        (false, false) => decide::<AttestationDeneb<Mainnet>>(mw, at).await,
    }
}

async fn decide<A: CommitteeAggregate>(
    mw: &Middleware,
    (root, slot, committee, answer): (Root, Slot, u64, Answer),
) -> Result<Response, ApiError> {
    let duty = Duty::new(slot, DutyType::Aggregator { committee });
    mw.check_slot_window(duty).await?;
    let beacon = &mw.beacon;
    let fetch: FetchBuilt<'_, A> = Box::new(move || {
        beacon
            .first_success(move |n| A::fetch(n, root, slot, committee))
            .boxed()
    });
    let aggregate: A = mw
        .store
        .decide_built(duty, fetch, aggregate_is_valid::<A>(slot, committee, root))
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if aggregate.data().tree_hash_root() != root {
        return Err(ApiError::bad_request(format!(
            "the cluster decided an aggregate of other data for committee {committee} at slot {slot}"
        )));
    }
    Ok(data_response(&aggregate, answer.ssz, answer.fork))
}

/// `POST /eth/v1|v2/validator/aggregate_and_proofs` with the client's partials.
pub(super) async fn submit(
    State(mw): Shared,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let fork = match consensus_version(&headers)? {
        Some(f) => f,
        None => mw.store.spec().fork_at_slot(mw.clock.current_slot()),
    };
    let v1 = uri.path().starts_with("/eth/v1/");
    let sorted = match (fork.electra_enabled(), mw.minimal) {
        (true, true) => sort::<AttestationElectra<Minimal>>(&mw, v1, &headers, &body).await?,
        (true, false) => sort::<AttestationElectra<Mainnet>>(&mw, v1, &headers, &body).await?,
        (false, true) => sort::<AttestationDeneb<Minimal>>(&mw, v1, &headers, &body).await?,
        (false, false) => sort::<AttestationDeneb<Mainnet>>(&mw, v1, &headers, &body).await?,
    };
    let path = if fork.electra_enabled() {
        "/eth/v2/validator/aggregate_and_proofs"
    } else {
        "/eth/v1/validator/aggregate_and_proofs"
    };
    mw.finish_batch(
        sorted,
        &uri,
        &headers,
        path,
        "aggregates submitted",
        "aggregates",
    )
    .await
}

/// The client's batch of `A`'s signed aggregates (JSON; on v2 SSZ too),
/// each checked and sorted.
async fn sort<A: CommitteeAggregate>(
    mw: &Middleware,
    v1: bool,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Sorted, ApiError> {
    let what = "aggregates";
    let items = if v1 {
        mw.json_list(headers, body, what)?
    } else {
        mw.batch_items::<A::Signed>(headers, body, what)?
    };
    let mut sorted = Sorted::default();
    for (position, json) in items.into_iter().enumerate() {
        let checked = check::<A>(mw, &json).await;
        sorted.add(position, json, checked);
    }
    Ok(sorted)
}

/// Checks one signed aggregate of the client; `None` if the aggregator is
/// not the cluster's.
async fn check<A: CommitteeAggregate>(mw: &Middleware, json: &Value) -> Checked {
    let signed: A::Signed = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SignedAggregateAndProof: {e}"))?;
    let (message, signature) = A::unsign(&signed);
    let (aggregator_index, aggregate, selection_proof) = A::message_parts(message);
    let Some(validator) = mw.scheduler.validator_by_index(aggregator_index) else {
        return Ok(None);
    };
    let slot = aggregate.data().slot;
    let committee = aggregate.committee()?;
    let duty = Duty::new(slot, DutyType::Aggregator { committee });
    let decided = mw.store.workflow().decided(duty).await.ok_or_else(|| {
        format!("the cluster decided no aggregate for committee {committee} at slot {slot}")
    })?;
    if decided != aggregate.as_ssz_bytes().into() {
        return Err(format!(
            "not the aggregate the cluster decided for committee {committee} at slot {slot}"
        ));
    }
    // The selection proof must be the validator's own (the combined one),
    // and must select it: the beacon node would refuse anything else.
    let committee_len = aggregate.committee_len() as u64;
    mw.check_selection_proof(
        Duty::new(slot, DutyType::Selection),
        &validator,
        mw.store.selection_signing_root(slot),
        &selection_proof,
        committee_modulo(mw.store.spec(), committee_len),
    )
    .await?;
    let epoch = mw.store.spec().epoch_of_slot(slot);
    let root = mw
        .store
        .signing_root(DomainKind::AggregateAndProof, epoch, message);
    let partial = mw.parse_partial(&validator, &signature)?;
    Ok(Some((duty, root, partial)))
}
