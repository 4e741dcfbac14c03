//! Sync committee duties through the middleware.
//!
//! Messages sign the head block root, which the operators' beacon nodes can
//! see differently around a block's arrival: partials over different roots
//! never combine. So the cluster agrees on the slot's root (one consensus
//! instance per slot, each node proposing its beacon node's head) and a
//! client asking for the head (`GET /eth/v1/beacon/blocks/head/root`, what
//! validator clients sign sync committee messages over) gets the decided
//! root. Partials are combined per root; a message over another root is
//! still combined if t operators signed it. Contributions are built by
//! beacon nodes from what they received, so each subcommittee's
//! contribution is agreed on (one consensus instance per slot and
//! subcommittee), as aggregates are.

use super::attest::parse_u64;
use super::{ApiError, Checked, Middleware, Shared, Sorted};
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dv_node::duty::{Duty, DutyType};
use dv_node::validator_store::{FetchBuilt, ValidatorStore};
use dv_types::ssz::Encode;
use dv_types::*;
use futures::FutureExt;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `GET /eth/v1/beacon/blocks/head/root`: the head root the cluster agreed
/// on for the current slot's sync committee messages; the beacon node's own
/// answer if the cluster cannot agree in time.
pub(super) async fn head_root(State(mw): Shared, request: Request) -> Response {
    let slot = mw.clock.current_slot();
    match agreed_head_root(&mw, slot).await {
        Ok(root) => Json(json!({
            "execution_optimistic": false,
            "finalized": false,
            "data": { "root": root },
        }))
        .into_response(),
        Err(e) => {
            tracing::warn!(
                slot,
                "no agreed head root, the beacon node's is served: {e}"
            );
            mw.forward(request).await
        }
    }
}

async fn agreed_head_root(mw: &Middleware, slot: Slot) -> Result<Root, String> {
    let duty = Duty::new(slot, DutyType::SyncMessage);
    let own = match mw.store.workflow().decided(duty).await {
        // Decided already: the beacon node need not be asked.
        Some(_) => None,
        None => Some(
            mw.beacon
                .first_success(|n| n.head_root())
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    mw.store
        .decide_sync_head_root(slot, own)
        .await
        .map_err(|e| e.to_string())
}

/// `POST /eth/v1/beacon/pool/sync_committees` with the client's partials.
pub(super) async fn submit_messages(
    State(mw): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let items = mw.json_list(&headers, &body, "sync committee messages")?;
    let mut sorted = Sorted::default();
    for (position, json) in items.into_iter().enumerate() {
        let checked = check_message(&mw, &json);
        sorted.add(position, json, checked);
    }
    mw.finish_batch(
        sorted,
        &uri,
        &headers,
        "/eth/v1/beacon/pool/sync_committees",
        "sync committee messages submitted",
        "sync committee messages",
    )
    .await
}

/// Checks one sync committee message of the client (its partial is verified with the batch).
fn check_message(mw: &Middleware, json: &Value) -> Checked {
    let message: SyncCommitteeMessage = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SyncCommitteeMessage: {e}"))?;
    let Some(validator) = mw.scheduler.validator_by_index(message.validator_index) else {
        return Ok(None);
    };
    let root = mw
        .store
        .roots()
        .sync_message(message.slot, &message.beacon_block_root);
    let partial = mw.parse_partial(&validator, &message.signature)?;
    Ok(Some((
        Duty::new(message.slot, DutyType::SyncMessage),
        root,
        partial,
    )))
}

/// `GET /eth/v1/validator/sync_committee_contribution`: the subcommittee's decided contribution.
pub(super) async fn contribution(
    State(mw): Shared,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let slot = parse_u64(&query, "slot")?;
    let subcommittee = parse_u64(&query, "subcommittee_index")?;
    let root: Root = query
        .get("beacon_block_root")
        .ok_or_else(|| ApiError::bad_request("missing beacon_block_root"))?
        .parse()
        .map_err(|e| ApiError::bad_request(format!("beacon_block_root: {e}")))?;
    let decided = if mw.minimal {
        decide_contribution::<Minimal>(&mw, slot, subcommittee, root).await?
    } else {
        decide_contribution::<Mainnet>(&mw, slot, subcommittee, root).await?
    };
    Ok(Json(json!({ "data": decided })).into_response())
}

async fn decide_contribution<P: Preset>(
    mw: &Middleware,
    slot: Slot,
    subcommittee: u64,
    root: Root,
) -> Result<Value, ApiError> {
    let duty = Duty::new(slot, DutyType::SyncContribution { subcommittee });
    mw.check_slot_window(duty).await?;
    let is_valid = dv_node::aggregation::contribution_is_valid::<P>(slot, subcommittee, root);
    let beacon = &mw.beacon;
    let fetch: FetchBuilt<'_, SyncCommitteeContribution<P>> = Box::new(move || {
        beacon
            .first_success(move |n| n.sync_committee_contribution::<P>(slot, subcommittee, root))
            .boxed()
    });
    let contribution = mw
        .store
        .decide_built(duty, fetch, is_valid)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if contribution.beacon_block_root != root {
        return Err(ApiError::bad_request(format!(
            "the cluster decided a contribution for another block root at slot {slot}"
        )));
    }
    Ok(json!(contribution))
}

/// `POST /eth/v1/validator/contribution_and_proofs` with the client's partials.
pub(super) async fn submit_contributions(
    State(mw): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let items = mw.json_list(&headers, &body, "contributions")?;
    let mut sorted = Sorted::default();
    for (position, json) in items.into_iter().enumerate() {
        let checked = if mw.minimal {
            check_contribution::<Minimal>(&mw, &json).await
        } else {
            check_contribution::<Mainnet>(&mw, &json).await
        };
        sorted.add(position, json, checked);
    }
    mw.finish_batch(
        sorted,
        &uri,
        &headers,
        "/eth/v1/validator/contribution_and_proofs",
        "sync contributions submitted",
        "contributions",
    )
    .await
}

/// Checks one signed contribution of the client; `None` if the aggregator
/// is not the cluster's.
async fn check_contribution<P: Preset>(mw: &Middleware, json: &Value) -> Checked {
    let signed: SignedContributionAndProof<P> = serde_json::from_value(json.clone())
        .map_err(|e| format!("not a SignedContributionAndProof: {e}"))?;
    let message = &signed.message;
    let c = &message.contribution;
    let Some(validator) = mw.scheduler.validator_by_index(message.aggregator_index) else {
        return Ok(None);
    };
    let duty = Duty::new(
        c.slot,
        DutyType::SyncContribution {
            subcommittee: c.subcommittee_index,
        },
    );
    let decided = mw.store.workflow().decided(duty).await.ok_or_else(|| {
        format!(
            "the cluster decided no contribution for subcommittee {} at slot {}",
            c.subcommittee_index, c.slot
        )
    })?;
    if decided != c.as_ssz_bytes().into() {
        return Err(format!(
            "not the contribution the cluster decided for subcommittee {} at slot {}",
            c.subcommittee_index, c.slot
        ));
    }
    // The selection proof must be the validator's combined one and select it.
    let spec = mw.store.spec();
    let epoch = spec.epoch_of_slot(c.slot);
    let selection_root = mw
        .store
        .sync_selection_signing_root(c.slot, c.subcommittee_index);
    let modulo = dv_node::aggregation::sync_modulo(spec);
    mw.check_selection_proof(
        Duty::new(c.slot, DutyType::SyncSelection),
        &validator,
        selection_root,
        &message.selection_proof,
        modulo,
    )
    .await?;
    let root = mw
        .store
        .signing_root(DomainKind::ContributionAndProof, epoch, message);
    let partial = mw.parse_partial(&validator, &signed.signature)?;
    Ok(Some((duty, root, partial)))
}
