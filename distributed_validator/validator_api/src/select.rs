//! Signatures that need no consensus because every honest operator signs the
//! same message: aggregation selection proofs (beacon committee and sync
//! committee) and voluntary exits. The client's partials are verified,
//! exchanged and combined; selections are answered with the combined proofs;
//! exits join the node's pending exits (`exits.rs`), which both attachments share.

use super::{ApiError, Middleware, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dv_node::duty::{Duty, DutyType};
use dv_node::exits::PendingExit;
use dv_node::parsig::{not_our_partial, Partial};
use dv_types::*;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use tokio::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BeaconCommitteeSelection {
    #[serde(with = "serde_utils::quoted_u64")]
    validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    slot: Slot,
    selection_proof: SignatureBytes,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SyncCommitteeSelection {
    #[serde(with = "serde_utils::quoted_u64")]
    validator_index: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    subcommittee_index: u64,
    selection_proof: SignatureBytes,
}

/// One partial to combine: which duty, over which root.
struct Pending {
    position: usize,
    duty: Duty,
    root: Root,
    partial: Partial,
}

impl Middleware {
    /// The partial of the validator with `index`, not verified yet.
    fn parse_partial_of(&self, index: u64, signature: &SignatureBytes) -> Result<Partial, String> {
        let validator = self
            .scheduler
            .validator_by_index(index)
            .ok_or_else(|| format!("validator {index} is not in this cluster"))?;
        self.parse_partial(&validator, signature)
    }

    /// Exchanges every pending partial (grouped by duty and root) until
    /// `deadline`; returns the combined signature of each position that got one.
    async fn combine_all(
        &self,
        pending: Vec<Pending>,
        deadline: Instant,
    ) -> BTreeMap<usize, SignatureBytes> {
        let mut groups: BTreeMap<(Duty, Root), Vec<Pending>> = BTreeMap::new();
        for p in pending {
            groups.entry((p.duty, p.root)).or_default().push(p);
        }
        let exchanges = groups.iter().map(|((duty, root), items)| {
            let partials = items.iter().map(|p| p.partial).collect();
            let validators: Vec<PublicKeyBytes> =
                items.iter().map(|p| p.partial.validator).collect();
            async move {
                self.store
                    .exchange_partials(*duty, *root, partials, &validators, deadline)
                    .await
            }
        });
        let mut out = BTreeMap::new();
        for (items, result) in groups.values().zip(join_all(exchanges).await) {
            let Ok(combined) = result else { continue };
            for p in items {
                if let Some(signature) = combined.get(&p.partial.validator) {
                    out.insert(p.position, *signature);
                }
            }
        }
        out
    }

    /// How long a selections request waits for the peers' partials: clients
    /// of one cluster ask at about the same time (epoch start, or each slot).
    fn selection_deadline(&self) -> Instant {
        Instant::now() + std::time::Duration::from_millis(self.clock.slot_ms)
    }
}

/// A selection request item: whose proof, for which slot, over what.
trait Selection: Clone + Serialize + serde::de::DeserializeOwned {
    const DUTY: DutyType;
    fn validator_index(&self) -> u64;
    fn slot(&self) -> Slot;
    fn proof(&self) -> &SignatureBytes;
    fn with_proof(&self, proof: SignatureBytes) -> Self;
    /// What the proof signs.
    fn signing_root(&self, mw: &Middleware) -> Root;
}

impl Selection for BeaconCommitteeSelection {
    const DUTY: DutyType = DutyType::Selection;
    fn validator_index(&self) -> u64 {
        self.validator_index
    }
    fn slot(&self) -> Slot {
        self.slot
    }
    fn proof(&self) -> &SignatureBytes {
        &self.selection_proof
    }
    fn with_proof(&self, selection_proof: SignatureBytes) -> Self {
        Self {
            selection_proof,
            ..self.clone()
        }
    }
    fn signing_root(&self, mw: &Middleware) -> Root {
        mw.store.selection_signing_root(self.slot)
    }
}

impl Selection for SyncCommitteeSelection {
    const DUTY: DutyType = DutyType::SyncSelection;
    fn validator_index(&self) -> u64 {
        self.validator_index
    }
    fn slot(&self) -> Slot {
        self.slot
    }
    fn proof(&self) -> &SignatureBytes {
        &self.selection_proof
    }
    fn with_proof(&self, selection_proof: SignatureBytes) -> Self {
        Self {
            selection_proof,
            ..self.clone()
        }
    }
    fn signing_root(&self, mw: &Middleware) -> Root {
        mw.store
            .sync_selection_signing_root(self.slot, self.subcommittee_index)
    }
}

/// Verifies every partial proof, exchanges them, answers the combined ones.
async fn combine_selections<S: Selection>(
    mw: &Middleware,
    body: &[u8],
) -> Result<Response, ApiError> {
    let selections: Vec<S> = super::bounded_list(body, "selections", mw.max_batch())?;
    let mut failures = Vec::new();
    let mut pending = Vec::new();
    for (position, s) in selections.iter().enumerate() {
        let root = s.signing_root(mw);
        match mw.parse_partial_of(s.validator_index(), s.proof()) {
            Ok(partial) => pending.push(Pending {
                position,
                duty: Duty::new(s.slot(), S::DUTY),
                root,
                partial,
            }),
            Err(e) => failures.push((position, e)),
        }
    }
    // Rule 4: every partial verified against this node's share (in one batch).
    let checked: Vec<(Root, Partial)> = pending.iter().map(|p| (p.root, p.partial)).collect();
    for (p, valid) in pending.iter().zip(mw.own.verify_all(&checked)) {
        if !valid {
            failures.push((p.position, not_our_partial(&p.partial.validator)));
        }
    }
    if !failures.is_empty() {
        failures.sort_by_key(|(position, _)| *position);
        return Err(ApiError::batch("selections", failures));
    }
    let combined = mw.combine_all(pending, mw.selection_deadline()).await;
    let data: Vec<S> = combined
        .into_iter()
        .map(|(position, proof)| selections[position].with_proof(proof))
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// `POST /eth/v1/validator/beacon_committee_selections`.
pub(super) async fn beacon_committee_selections(
    State(mw): Shared,
    body: Bytes,
) -> Result<Response, ApiError> {
    combine_selections::<BeaconCommitteeSelection>(&mw, &body).await
}

/// `POST /eth/v1/validator/sync_committee_selections`.
pub(super) async fn sync_committee_selections(
    State(mw): Shared,
    body: Bytes,
) -> Result<Response, ApiError> {
    combine_selections::<SyncCommitteeSelection>(&mw, &body).await
}

/// `POST /eth/v1/beacon/pool/voluntary_exits`: the client's exit is this
/// operator's partial; once verified it joins the node's pending exits
/// (on disk), which the exit service offers the peers every epoch until `t`
/// operators' partials combine and the exit is submitted.
pub(super) async fn voluntary_exit(
    State(mw): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let exit: SignedVoluntaryExit = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("voluntary exit: {e}")))?;
    let Some(validator) = mw
        .scheduler
        .validator_by_index(exit.message.validator_index)
    else {
        let value = serde_json::to_value(&exit).unwrap_or_default();
        return Ok(mw
            .forward_json("/eth/v1/beacon/pool/voluntary_exits", &headers, value)
            .await);
    };
    let root = mw
        .store
        .signing_root(DomainKind::VoluntaryExit, exit.message.epoch, &exit.message);
    mw.verify_partial(&validator, root, &exit.signature)
        .map_err(ApiError::bad_request)?;
    let path = mw
        .exits
        .add(&PendingExit {
            validator,
            exit: exit.clone(),
        })
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    tracing::info!(
        validator_index = exit.message.validator_index,
        file = %path.display(),
        "partial voluntary exit accepted from the validator client"
    );
    Ok((StatusCode::OK, Json(json!({"message": "partial exit accepted; submitted once the cluster's threshold of operators sent theirs"}))).into_response())
}
