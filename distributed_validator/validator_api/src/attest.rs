//! Attestations through the middleware: the client gets the slot's decided
//! `AttestationData`; its partially signed attestations are checked (decided
//! data, this node's share, this node's slashing database), exchanged,
//! combined and submitted.

use super::{ApiError, Middleware, Shared, ToCombine};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use beacon_client::AttesterDuty;
use dv_node::decided::{approve_attestations, ToSign};
use dv_node::duty::{Duty, DutyType};
use dv_node::parsig::Partial;
use dv_node::scheduler::SlotClock;
use dv_node::validator_store::{Attester, DutyTiming, SignError, ValidatorStore};
use dv_types::ssz::Decode;
use dv_types::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn parse_u64(query: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let text = query
        .get(name)
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {name}")))?;
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {name}: {text:?}")))
}

/// The fork an `Eth-Consensus-Version` header names, if it is there.
pub(super) fn consensus_version(headers: &HeaderMap) -> Result<Option<ForkName>, ApiError> {
    match headers.get("Eth-Consensus-Version") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("invalid Eth-Consensus-Version {v:?}"))),
    }
}

impl Middleware {
    pub(super) fn sign_error(e: SignError) -> ApiError {
        let status = match e {
            SignError::SlashingRefused(_) | SignError::UnknownValidator(_) => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }

    /// The slot's decided attestation data: the decision if there is one,
    /// else this node joins (or starts) the slot's consensus with its own
    /// beacon node's data. The slot loop calls this at the attestation due
    /// time so the node takes part even when its client is late or down.
    pub async fn decide_attestation(&self, slot: Slot) -> Result<AttestationData, SignError> {
        if let Some(value) = self
            .store
            .workflow()
            .decided(Duty::new(slot, DutyType::Attester))
            .await
        {
            return AttestationData::from_ssz_bytes(&value)
                .map_err(|e| SignError::BadDecidedValue(format!("{e:?}")));
        }
        let own = dv_node::services::own_attestation_data(&self.beacon, slot).await;
        let attesters: Vec<Attester> = self
            .scheduler
            .attesters_at(slot)
            .iter()
            .map(Attester::from)
            .collect();
        let timing = DutyTiming {
            start: SlotClock::instant_at(self.clock.attestation_due_ms(slot)),
            deadline: self.clock.slot_start(slot.saturating_add(2)),
            rounds: self.clock.round_timing(),
        };
        self.store
            .decide_attestation(slot, own, &attesters, timing)
            .await
    }
}

/// `GET /eth/v1/validator/attestation_data`: the cluster's decision.
pub(super) async fn attestation_data(
    State(mw): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let slot = parse_u64(&query, "slot")?;
    let committee_index = match query.get("committee_index") {
        Some(_) => parse_u64(&query, "committee_index")?,
        None => 0,
    };
    mw.check_slot_window(Duty::new(slot, DutyType::Attester))
        .await?;
    let decided = mw
        .decide_attestation(slot)
        .await
        .map_err(Middleware::sign_error)?;
    // Before Electra the committee index is part of the data.
    let index = if mw.store.spec().fork_at_slot(slot).electra_enabled() {
        0
    } else {
        committee_index
    };
    Ok(super::encoding::data_response(
        &AttestationData { index, ..decided },
        super::encoding::wants_ssz(&headers),
        None,
    ))
}

/// One item of the client's batch, resolved to a cluster validator.
struct Item {
    position: usize,
    json: Value,
    to_sign: ToSign,
    partial: Partial,
}

/// The attester and committee of a pre-Electra attestation: its single bit
/// in its committee, matched against the slot's duties.
fn deneb_attester(
    duties: &[AttesterDuty],
    bits_hex: Option<&str>,
    data: &AttestationData,
) -> Result<Option<Attester>, String> {
    let bits_hex = bits_hex.ok_or("aggregation_bits missing")?;
    let bytes = hex::decode(bits_hex.trim_start_matches("0x"))
        .map_err(|e| format!("aggregation_bits: {e}"))?;
    let last = *bytes.last().ok_or("aggregation_bits empty")?;
    if last == 0 {
        return Err("aggregation_bits has no length bit".into());
    }
    let length = (bytes.len() - 1) * 8 + (7 - last.leading_zeros() as usize);
    let set: Vec<usize> = (0..length)
        .filter(|i| bytes[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    let [position] = set[..] else {
        return Err(format!(
            "{} aggregation bits set; a validator client sends one",
            set.len()
        ));
    };
    let duty = duties.iter().find(|d| {
        d.slot == data.slot
            && d.committee_index == data.index
            && d.validator_committee_index == position as u64
            && d.committee_length == length as u64
    });
    Ok(duty.map(|d| Attester {
        validator: d.pubkey,
        committee_index: d.committee_index,
    }))
}

/// `POST /eth/v1|v2/beacon/pool/attestations` with the client's partials.
pub(super) async fn submit(
    State(mw): Shared,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let header_fork = consensus_version(&headers)?;
    let what = "attestations";
    let ssz_allowed = uri.path().starts_with("/eth/v2/");
    let items = match header_fork {
        // v2 takes SSZ too, of the fork the header names.
        Some(fork) if ssz_allowed && super::encoding::is_ssz(&headers) => {
            match (fork.electra_enabled(), mw.minimal) {
                (true, _) => mw.batch_items::<SingleAttestation>(&headers, &body, what)?,
                (false, true) => {
                    mw.batch_items::<AttestationDeneb<Minimal>>(&headers, &body, what)?
                }
                (false, false) => {
                    mw.batch_items::<AttestationDeneb<Mainnet>>(&headers, &body, what)?
                }
            }
        }
        None if ssz_allowed && super::encoding::is_ssz(&headers) => {
            return Err(ApiError::bad_request(
                "an SSZ body needs the Eth-Consensus-Version header",
            ))
        }
        _ => mw.json_list(&headers, &body, what)?,
    };
    let mut failures = Vec::new();
    let mut outsiders = Vec::new();
    let mut claims = Vec::new();
    // Pre-Electra attestations name their attester by committee position:
    // the slot's duties, looked up once per slot of the request.
    let mut duties: HashMap<Slot, Vec<AttesterDuty>> = HashMap::new();
    for (position, json) in items.into_iter().enumerate() {
        match claim(&mw, &json, header_fork, &mut duties) {
            Ok(Some(c)) => claims.push((position, json, c)),
            Ok(None) => outsiders.push((position, json)),
            Err(reason) => failures.push((position, reason)),
        }
    }
    // The decided data of each slot the request names, asked for once.
    let slots: std::collections::BTreeSet<Slot> =
        claims.iter().map(|(_, _, c)| c.data.slot).collect();
    let mut decided: HashMap<Slot, Result<AttestationData, String>> = HashMap::new();
    for slot in slots {
        let data = mw
            .store
            .decided_attestation_data(slot)
            .await
            .ok_or_else(|| {
                format!("the cluster has no decided attestation data for slot {slot} (yet)")
            });
        decided.insert(slot, data);
    }
    let accepted: Vec<Item> = dv_node::cpu::cpu_bound(|| {
        let mut accepted = Vec::with_capacity(claims.len());
        for (position, json, c) in claims {
            match resolve(&mw, &decided, c) {
                Ok((to_sign, partial)) => accepted.push(Item {
                    position,
                    json,
                    to_sign,
                    partial,
                }),
                Err(reason) => failures.push((position, reason)),
            }
        }
        accepted
    });
    // Rule 4 for the client's partials, before anything is recorded: one
    // batch check for the request (a slot's attestations share one root),
    // each on its own only when it fails, to name the bad ones.
    let accepted: Vec<Item> = mw
        .keep_verified(
            accepted.into_iter().map(|i| (i.position, i)).collect(),
            |i| (i.to_sign.signing_root, i.partial),
            &mut failures,
        )
        .into_iter()
        .map(|(_, item)| item)
        .collect();
    // Rule 1 and 2 for the client's partials: this node's own database decides.
    let to_sign: Vec<ToSign> = accepted.iter().map(|i| i.to_sign).collect();
    let approval = approve_attestations(mw.store.slashing_db(), &to_sign).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("slashing database: {e}"),
        )
    })?;
    let mut approved = Vec::new();
    for item in accepted {
        match approval
            .refused
            .iter()
            .find(|(v, _)| *v == item.to_sign.validator)
        {
            Some((_, reason)) => failures.push((
                item.position,
                format!("slashing protection refused: {reason}"),
            )),
            None => approved.push(item),
        }
    }
    let mut by_root: HashMap<(Slot, Root), Vec<Item>> = HashMap::new();
    for item in approved {
        by_root
            .entry((item.to_sign.data.slot, item.to_sign.signing_root))
            .or_default()
            .push(item);
    }
    for ((slot, root), items) in by_root {
        tokio::spawn(combine_and_submit(mw.clone(), slot, root, items));
    }
    if !outsiders.is_empty() {
        let (positions, jsons): (Vec<usize>, Vec<Value>) = outsiders.into_iter().unzip();
        let response = mw
            .forward_json(uri.path(), &headers, Value::Array(jsons))
            .await;
        let status = response.status();
        if !status.is_success() {
            let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            failures.extend(positions.into_iter().map(|p| {
                (
                    p,
                    format!(
                        "validator outside the cluster; the beacon node answered {status}: {text}"
                    ),
                )
            }));
        }
    }
    if failures.is_empty() {
        Ok(StatusCode::OK.into_response())
    } else {
        failures.sort();
        Err(ApiError::batch("attestations", failures))
    }
}

/// One attestation of the client, its attester found among the cluster's.
struct Claim {
    data: AttestationData,
    signature: SignatureBytes,
    attester: Attester,
}

/// Reads one attestation of the client: `None` if its validator is not the cluster's.
fn claim(
    mw: &Middleware,
    json: &Value,
    header_fork: Option<ForkName>,
    duties: &mut HashMap<Slot, Vec<AttesterDuty>>,
) -> Result<Option<Claim>, String> {
    /// The fields every attestation shape has (`Attestation`, `SingleAttestation`).
    #[derive(serde::Deserialize)]
    struct Common {
        data: AttestationData,
        signature: SignatureBytes,
        aggregation_bits: Option<String>,
    }
    let Common {
        data,
        signature,
        aggregation_bits,
    } = serde_json::from_value(json.clone()).map_err(|e| format!("not an attestation: {e}"))?;
    let fork = header_fork.unwrap_or_else(|| mw.store.spec().fork_at_slot(data.slot));
    let attester = if fork.electra_enabled() {
        let single: SingleAttestation = serde_json::from_value(json.clone())
            .map_err(|e| format!("not a SingleAttestation: {e}"))?;
        mw.scheduler
            .validator_by_index(single.attester_index)
            .map(|validator| Attester {
                validator,
                committee_index: single.committee_index,
            })
    } else {
        let slot_duties = duties
            .entry(data.slot)
            .or_insert_with(|| mw.scheduler.attesters_at(data.slot));
        deneb_attester(slot_duties, aggregation_bits.as_deref(), &data)?
    };
    Ok(attester.map(|attester| Claim {
        data,
        signature,
        attester,
    }))
}

/// Checks a claimed attestation against the cluster's decision for its slot
/// and parses its partial (verified with the request's others, in one batch).
fn resolve(
    mw: &Middleware,
    decided: &HashMap<Slot, Result<AttestationData, String>>,
    claim: Claim,
) -> Result<(ToSign, Partial), String> {
    let decided = match decided.get(&claim.data.slot) {
        Some(Ok(data)) => data,
        Some(Err(e)) => return Err(e.clone()),
        None => return Err("internal: the slot's decision was not looked up".into()),
    };
    let [to_sign] = mw.store.attestations_to_sign(decided, &[claim.attester])[..] else {
        return Err("internal: one attester, one message".into());
    };
    if to_sign.data != claim.data {
        return Err(format!(
            "attestation data differs from what the cluster decided for slot {}",
            claim.data.slot
        ));
    }
    let partial = mw.parse_partial(&claim.attester.validator, &claim.signature)?;
    Ok((to_sign, partial))
}

/// Exchanges the partials of one signing root, then submits the combined
/// attestations in the client's own shape.
async fn combine_and_submit(mw: Arc<Middleware>, slot: Slot, root: Root, items: Vec<Item>) {
    let items = items
        .into_iter()
        .map(|i| ToCombine {
            partial: i.partial,
            json: i.json,
        })
        .collect();
    mw.combine_and_post(
        vec![((Duty::new(slot, DutyType::Attester), root), items)],
        "/eth/v2/beacon/pool/attestations",
        "attestations submitted",
    )
    .await
}
