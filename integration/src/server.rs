//! The Beacon API subset a validator uses, served over the simulated chain.
//! Shapes follow `../shared/beacon-api-spec`; errors are `{code, message}`
//! (with `failures` for batch submissions) as a beacon node sends them.

use crate::chain::{ApiError, BlockBlobs, Chain, HeadEvent};
use crate::verify::SignedItem;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dv_types::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

pub struct AppState<P: Preset = Minimal> {
    chain: Mutex<Chain<P>>,
    heads: broadcast::Sender<HeadEvent>,
}

pub type Shared<P = Minimal> = Arc<AppState<P>>;

impl<P: Preset> AppState<P> {
    pub fn new(chain: Chain<P>) -> Shared<P> {
        let (heads, _) = broadcast::channel(64);
        Arc::new(Self {
            chain: Mutex::new(chain),
            heads,
        })
    }

    pub fn chain(&self) -> MutexGuard<'_, Chain<P>> {
        self.chain
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        let mut body = json!({"code": self.code, "message": self.message});
        if !self.failures.is_empty() {
            body["failures"] = self
                .failures
                .iter()
                .map(|(index, message)| json!({"index": index, "message": message}))
                .collect();
        }
        (status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Verifies a submission's signatures in one batch on a blocking thread,
/// without the chain's lock (see [`crate::verify`]): the judging that
/// follows under the lock finds them verified. `signatures` runs under the
/// lock and only computes signing roots.
async fn verify_outside_lock<P: Preset>(
    s: &Shared<P>,
    signatures: impl FnOnce(&Chain<P>) -> Vec<SignedItem>,
) {
    let (verifier, batch) = {
        let chain = s.chain();
        (chain.verifier(), signatures(&chain))
    };
    let _ = tokio::task::spawn_blocking(move || verifier.verify_batch(&batch)).await;
}

fn data(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(json!({"data": value})).into_response())
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {what}: {text:?}")))
}

/// The epoch of a duties request, refused as Lighthouse refuses it when it
/// is more than one epoch after the current one (sync duties: more than
/// one sync committee period after the current period).
fn duty_epoch<P: Preset>(chain: &Chain<P>, text: &str, sync: bool) -> Result<Epoch, ApiError> {
    let epoch: Epoch = parse(text, "epoch")?;
    let current = chain.spec.epoch_of_slot(chain.current_slot(now_ms()));
    let period = |e: Epoch| e / chain.spec.epochs_per_sync_committee_period;
    let too_far = if sync {
        period(epoch) > period(current) + 1
    } else {
        epoch > current + 1
    };
    if too_far {
        return Err(ApiError::bad_request(format!(
            "request epoch {epoch} is more than one {} past the current epoch {current}",
            if sync {
                "sync committee period"
            } else {
                "epoch"
            }
        )));
    }
    Ok(epoch)
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

fn consensus_version(headers: &HeaderMap) -> Result<ForkName, ApiError> {
    let text = headers
        .get("Eth-Consensus-Version")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("missing Eth-Consensus-Version header"))?;
    parse(text, "Eth-Consensus-Version")
}

pub fn router<P: Preset>(state: Shared<P>) -> Router {
    Router::new()
        .route("/eth/v1/beacon/genesis", get(genesis::<P>))
        .route("/eth/v1/config/spec", get(spec::<P>))
        .route("/eth/v1/config/fork_schedule", get(fork_schedule::<P>))
        .route(
            "/eth/v1/beacon/states/{state_id}/fork",
            get(state_fork::<P>),
        )
        .route("/eth/v1/node/syncing", get(syncing::<P>))
        .route("/eth/v1/node/version", get(version))
        .route("/eth/v1/node/health", get(|| async { StatusCode::OK }))
        .route(
            "/eth/v1/beacon/states/{state_id}/validators",
            get(validators_get::<P>).post(validators_post::<P>),
        )
        .route(
            "/eth/v1/validator/duties/attester/{epoch}",
            post(attester_duties::<P>),
        )
        .route(
            "/eth/v1/validator/duties/proposer/{epoch}",
            get(proposer_duties::<P>),
        )
        .route(
            "/eth/v1/validator/duties/sync/{epoch}",
            post(sync_duties::<P>),
        )
        .route(
            "/eth/v1/beacon/pool/sync_committees",
            post(submit_sync_messages::<P>),
        )
        .route(
            "/eth/v1/validator/sync_committee_contribution",
            get(sync_contribution::<P>),
        )
        .route(
            "/eth/v1/validator/contribution_and_proofs",
            post(submit_contributions::<P>),
        )
        .route(
            "/eth/v1/beacon/blocks/{block_id}/root",
            get(block_root::<P>),
        )
        .route(
            "/eth/v1/validator/attestation_data",
            get(attestation_data::<P>),
        )
        .route("/eth/v3/validator/blocks/{slot}", get(produce_block::<P>))
        .route(
            "/eth/v2/beacon/pool/attestations",
            post(submit_attestations::<P>),
        )
        .route("/eth/v2/beacon/blocks", post(publish_block::<P>))
        .route("/eth/v2/beacon/blocks/{block_id}", get(get_block::<P>))
        .route(
            "/eth/v1/beacon/states/{state_id}/committees",
            get(committees::<P>),
        )
        .route(
            "/eth/v2/validator/aggregate_attestation",
            get(aggregate_attestation::<P>),
        )
        .route(
            "/eth/v2/validator/aggregate_and_proofs",
            post(submit_aggregates::<P>),
        )
        .route(
            "/eth/v1/validator/aggregate_attestation",
            get(aggregate_attestation_v1::<P>),
        )
        .route(
            "/eth/v1/validator/aggregate_and_proofs",
            post(submit_aggregates_v1::<P>),
        )
        .route(
            "/eth/v1/validator/sync_committee_subscriptions",
            post(accept),
        )
        .route(
            "/eth/v2/beacon/blinded_blocks",
            post(publish_blinded_block::<P>),
        )
        .route("/eth/v1/validator/prepare_beacon_proposer", post(accept))
        .route(
            "/eth/v1/beacon/pool/voluntary_exits",
            post(submit_voluntary_exit::<P>).get(pooled_exits::<P>),
        )
        .route(
            "/eth/v1/validator/register_validator",
            post(register_validators::<P>),
        )
        .route(
            "/eth/v1/validator/beacon_committee_subscriptions",
            post(subscribe_beacon_committees::<P>),
        )
        .route("/eth/v1/events", get(events::<P>))
        .route("/dv/report", get(report::<P>))
        .layer(axum::middleware::from_fn(crate::ssz_edge::ssz_edge::<P>))
        .with_state(state)
}

async fn accept() -> StatusCode {
    StatusCode::OK
}

async fn genesis<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    let chain = s.chain();
    data(json!({
        "genesis_time": chain.genesis_time.to_string(),
        "genesis_validators_root": chain.genesis_validators_root,
        "genesis_fork_version": chain.spec.fork_schedule.genesis_fork_version,
    }))
}

async fn spec<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    data(s.chain().spec.to_beacon_node_json())
}

fn forks(spec: &ChainSpec) -> Vec<Fork> {
    let schedule = &spec.fork_schedule;
    let mut previous = schedule.genesis_fork_version;
    let mut out = vec![Fork {
        previous_version: previous,
        current_version: previous,
        epoch: 0,
    }];
    for (_, version, epoch) in schedule
        .forks
        .iter()
        .filter(|(_, _, e)| *e != FAR_FUTURE_EPOCH)
    {
        out.push(Fork {
            previous_version: previous,
            current_version: *version,
            epoch: *epoch,
        });
        previous = *version;
    }
    out
}

async fn fork_schedule<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    data(forks(&s.chain().spec))
}

async fn state_fork<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    let chain = s.chain();
    let epoch = chain.spec.epoch_of_slot(chain.current_slot(now_ms()));
    let current = forks(&chain.spec)
        .into_iter()
        .rev()
        .find(|f| f.epoch <= epoch);
    data(current)
}

async fn syncing<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    let chain = s.chain();
    data(json!({
        "head_slot": chain.head().0.to_string(),
        "sync_distance": "0",
        "is_syncing": false,
        "is_optimistic": false,
        "el_offline": false,
    }))
}

async fn version() -> ApiResult {
    data(json!({"version": format!("dv-simulated-beacon-chain/{}", env!("CARGO_PKG_VERSION"))}))
}

fn validator_json<P: Preset>(chain: &Chain<P>, index: u64) -> Option<Value> {
    let pubkey = chain.pubkey(index)?;
    let mut credentials = [0u8; 32];
    credentials[0] = 1;
    let epoch = chain.spec.epoch_of_slot(chain.current_slot(now_ms()));
    let exit_epoch = chain.exit_epoch_of(index).unwrap_or(FAR_FUTURE_EPOCH);
    let status = match exit_epoch {
        FAR_FUTURE_EPOCH => "active_ongoing",
        e if epoch < e => "active_exiting",
        _ => "exited_unslashed",
    };
    Some(json!({
        "index": index.to_string(),
        "balance": "32000000000",
        "status": status,
        "validator": {
            "pubkey": pubkey,
            "withdrawal_credentials": Root::from(credentials),
            "effective_balance": "32000000000",
            "slashed": false,
            "activation_eligibility_epoch": "0",
            "activation_epoch": "0",
            "exit_epoch": exit_epoch.to_string(),
            // MIN_VALIDATOR_WITHDRAWABILITY_DELAY is 256 epochs in both presets.
            "withdrawable_epoch": exit_epoch.saturating_add(256).to_string(),
        }
    }))
}

/// Validators by index or pubkey; unknown ids are left out, as beacon nodes do.
fn validators<P: Preset>(chain: &Chain<P>, ids: &[String]) -> Result<Vec<Value>, ApiError> {
    let indices: Vec<u64> = if ids.is_empty() {
        (0..chain.validator_count() as u64).collect()
    } else {
        let mut out = Vec::new();
        for id in ids {
            let index = if id.starts_with("0x") {
                chain.index_of(&parse::<PublicKeyBytes>(id, "validator id")?)
            } else {
                Some(parse::<u64>(id, "validator id")?)
            };
            out.extend(index);
        }
        out
    };
    Ok(indices
        .into_iter()
        .filter_map(|i| validator_json(chain, i))
        .collect())
}

async fn validators_get<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let ids: Vec<String> = query
        .get("id")
        .map(|ids| ids.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    data(validators(&s.chain(), &ids)?)
}

#[derive(Deserialize)]
struct ValidatorsBody {
    #[serde(default)]
    ids: Vec<String>,
}

async fn validators_post<P: Preset>(
    State(s): State<Shared<P>>,
    body: Option<Json<ValidatorsBody>>,
) -> ApiResult {
    let ids = body.map(|Json(b)| b.ids).unwrap_or_default();
    data(validators(&s.chain(), &ids)?)
}

/// Sync committee duties: each validator's positions in the sync committee
/// of the requested epoch's period (drawn by the spec's rule).
async fn sync_duties<P: Preset>(
    State(s): State<Shared<P>>,
    Path(epoch): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let chain = s.chain();
    let epoch = duty_epoch(&chain, &epoch, true)?;
    let indices: Vec<String> = from_json(body, "validator indices")?;
    let mut duties = Vec::new();
    for text in &indices {
        let index: u64 = parse(text, "validator index")?;
        let Some(pubkey) = chain.pubkey(index) else {
            continue;
        };
        let positions: Vec<String> = chain
            .sync_positions(index, epoch)
            .iter()
            .map(u64::to_string)
            .collect();
        if !positions.is_empty() {
            duties.push(json!({
                "pubkey": pubkey,
                "validator_index": index.to_string(),
                "validator_sync_committee_indices": positions,
            }));
        }
    }
    Ok(Json(json!({"execution_optimistic": false, "data": duties})).into_response())
}

/// `POST /eth/v1/validator/beacon_committee_subscriptions`.
async fn subscribe_beacon_committees<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    #[derive(Deserialize)]
    struct Subscription {
        #[serde(with = "serde_utils::quoted_u64")]
        validator_index: u64,
        #[serde(with = "serde_utils::quoted_u64")]
        committee_index: u64,
        #[serde(with = "serde_utils::quoted_u64")]
        slot: u64,
        is_aggregator: bool,
    }
    let items: Vec<Subscription> = from_json(body, "beacon committee subscription list")?;
    let items: Vec<(u64, u64, Slot, bool)> = items
        .iter()
        .map(|i| {
            (
                i.validator_index,
                i.committee_index,
                i.slot,
                i.is_aggregator,
            )
        })
        .collect();
    s.chain().subscribe_beacon_committees(&items, now_ms())?;
    Ok(StatusCode::OK.into_response())
}

/// A query parameter the request must carry.
fn query_field<'a>(query: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing {name}")))
}

async fn register_validators<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    let items: Vec<SignedValidatorRegistration> =
        from_json(body, "SignedValidatorRegistration list")?;
    verify_outside_lock(&s, |c| c.registration_signatures(&items)).await;
    s.chain().register_validators(&items)?;
    Ok(StatusCode::OK.into_response())
}

async fn pooled_exits<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    data(s.chain().pooled_exits())
}

async fn submit_voluntary_exit<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    let exit: SignedVoluntaryExit = from_json(body, "SignedVoluntaryExit")?;
    s.chain().submit_voluntary_exit(&exit, now_ms())?;
    Ok(StatusCode::OK.into_response())
}

async fn submit_sync_messages<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    let arrived = now_ms();
    let items: Vec<SyncCommitteeMessage> = from_json(body, "SyncCommitteeMessage list")?;
    verify_outside_lock(&s, |c| c.sync_message_signatures(&items)).await;
    s.chain().submit_sync_messages(&items, arrived)?;
    Ok(StatusCode::OK.into_response())
}

async fn sync_contribution<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let field = |name: &str| query_field(&query, name);
    let slot: Slot = parse(field("slot")?, "slot")?;
    let sub: u64 = parse(field("subcommittee_index")?, "subcommittee_index")?;
    let root: Root = parse(field("beacon_block_root")?, "beacon_block_root")?;
    data(s.chain().sync_committee_contribution(slot, sub, root)?)
}

async fn submit_contributions<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    let items: Vec<SignedContributionAndProof<P>> =
        from_json(body, "SignedContributionAndProof list")?;
    s.chain().submit_contributions(&items, now_ms())?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /eth/v1/beacon/blocks/head/root` (only the head is served).
async fn block_root<P: Preset>(
    State(s): State<Shared<P>>,
    Path(block_id): Path<String>,
) -> ApiResult {
    if block_id != "head" {
        return Err(ApiError::bad_request(format!(
            "only the head's root is served, not {block_id:?}"
        )));
    }
    let (_, root) = s.chain().head();
    Ok(
        Json(json!({"execution_optimistic": false, "finalized": false, "data": {"root": root}}))
            .into_response(),
    )
}

async fn attester_duties<P: Preset>(
    State(s): State<Shared<P>>,
    Path(epoch): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult {
    let chain = s.chain();
    let epoch = duty_epoch(&chain, &epoch, false)?;
    let indices: Vec<String> = from_json(body, "validator indices")?;
    let mut duties = Vec::new();
    for text in &indices {
        let index: u64 = parse(text, "validator index")?;
        if let (Some(duty), Some(pubkey)) = (chain.attester_duty(index, epoch), chain.pubkey(index))
        {
            duties.push(json!({
                "pubkey": pubkey,
                "validator_index": index.to_string(),
                "committee_index": duty.committee_index.to_string(),
                "committee_length": duty.committee_length.to_string(),
                "committees_at_slot": duty.committees_at_slot.to_string(),
                "validator_committee_index": duty.validator_committee_index.to_string(),
                "slot": duty.slot.to_string(),
            }));
        }
    }
    Ok(Json(json!({
        "dependent_root": chain.dependent_root(epoch, true),
        "execution_optimistic": false,
        "data": duties,
    }))
    .into_response())
}

async fn proposer_duties<P: Preset>(
    State(s): State<Shared<P>>,
    Path(epoch): Path<String>,
) -> ApiResult {
    let chain = s.chain();
    let epoch = duty_epoch(&chain, &epoch, false)?;
    let start = chain.spec.start_slot_of_epoch(epoch);
    let duties: Vec<Value> = (start..start + chain.spec.slots_per_epoch)
        .map(|slot| {
            let index = chain.proposer_of(slot);
            json!({"pubkey": chain.pubkey(index), "validator_index": index.to_string(), "slot": slot.to_string()})
        })
        .collect();
    Ok(Json(json!({
        "dependent_root": chain.dependent_root(epoch, false),
        "execution_optimistic": false,
        "data": duties,
    }))
    .into_response())
}

async fn attestation_data<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let slot: Slot = parse(query.get("slot").map(String::as_str).unwrap_or(""), "slot")?;
    let committee_index: u64 = parse(
        query
            .get("committee_index")
            .map(String::as_str)
            .unwrap_or("0"),
        "committee_index",
    )?;
    let chain = s.chain();
    data(chain.attestation_data(slot, committee_index, now_ms())?)
}

async fn produce_block<P: Preset>(
    State(s): State<Shared<P>>,
    Path(slot): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let slot: Slot = parse(&slot, "slot")?;
    let randao: SignatureBytes = parse(
        query.get("randao_reveal").map(String::as_str).unwrap_or(""),
        "randao_reveal",
    )?;
    let graffiti: Graffiti = match query.get("graffiti") {
        Some(g) => parse(g, "graffiti")?,
        None => Graffiti::ZERO,
    };
    let mut chain = s.chain();
    let block = chain.produce_block(slot, randao, graffiti, now_ms())?;
    let blinded = chain.builder;
    let blobs = chain.blobs_of(&block.root());
    drop(chain);
    let fork = block.fork_name();
    let data = if blinded {
        block.to_blinded().to_json_value()
    } else {
        json!({"block": block.to_json_value(), "kzg_proofs": blobs.kzg_proofs, "blobs": blobs.blobs})
    };
    let body = json!({
        "version": fork,
        "execution_payload_blinded": blinded,
        "execution_payload_value": "0",
        "consensus_block_value": "0",
        "data": data,
    });
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("Eth-Consensus-Version", fork.as_str()),
        (
            "Eth-Execution-Payload-Blinded",
            if blinded { "true" } else { "false" },
        ),
        ("Eth-Execution-Payload-Value", "0"),
        ("Eth-Consensus-Block-Value", "0"),
    ] {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    Ok(response)
}

/// `GET /eth/v2/beacon/blocks/{block_id}`: JSON, or SSZ at the edge.
async fn get_block<P: Preset>(
    State(s): State<Shared<P>>,
    Path(block_id): Path<String>,
) -> ApiResult {
    let chain = s.chain();
    let (block, signature) = chain.signed_block(&block_id)?;
    let fork = block.fork_name();
    let body = json!({
        "version": fork,
        "execution_optimistic": false,
        "finalized": false,
        "data": {"message": block.to_json_value(), "signature": signature},
    });
    drop(chain);
    let mut response = Json(body).into_response();
    if let Ok(v) = fork.as_str().parse() {
        response.headers_mut().insert("Eth-Consensus-Version", v);
    }
    Ok(response)
}

/// `GET /eth/v1/beacon/states/{state_id}/committees?epoch=&index=&slot=`
/// over the head state (`head` or the head's slot); an epoch more than one
/// past the state's is refused (its shuffling is not determined yet:
/// MIN_SEED_LOOKAHEAD).
async fn committees<P: Preset>(
    State(s): State<Shared<P>>,
    Path(state_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let chain = s.chain();
    let head = chain.head().0;
    match state_id.as_str() {
        "head" => {}
        id if id.parse::<Slot>().ok() == Some(head) => {}
        id if id.parse::<Slot>().is_ok() || id.starts_with("0x") => {
            return Err(ApiError::new(
                404,
                format!("NOT_FOUND: state {id} (only the head state is held)"),
            ))
        }
        id => return Err(ApiError::bad_request(format!("invalid state id: {id}"))),
    }
    let state_epoch = chain.spec.epoch_of_slot(head);
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query.get(name).map(|v| parse::<u64>(v, name)).transpose()
    };
    let slot = number("slot")?;
    let epoch = match (number("epoch")?, slot) {
        (Some(e), _) => e,
        (None, Some(slot)) => chain.spec.epoch_of_slot(slot),
        (None, None) => state_epoch,
    };
    if epoch > state_epoch + 1 {
        return Err(ApiError::bad_request(format!(
            "epoch {epoch} is more than one past the state's epoch {state_epoch}"
        )));
    }
    if slot.is_some_and(|slot| chain.spec.epoch_of_slot(slot) != epoch) {
        return Err(ApiError::bad_request(
            "slot is not in the epoch".to_string(),
        ));
    }
    let index = number("index")?;
    let first = chain.spec.start_slot_of_epoch(epoch);
    let slots: Vec<Slot> = match slot {
        Some(slot) => vec![slot],
        None => (first..first + chain.spec.slots_per_epoch).collect(),
    };
    let mut out = Vec::new();
    for slot in slots {
        for (i, members) in chain.committees_at(slot).into_iter().enumerate() {
            if index.is_some_and(|index| index != i as u64) {
                continue;
            }
            out.push(json!({
                "index": i.to_string(),
                "slot": slot.to_string(),
                "validators": members.iter().map(u64::to_string).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(
        Json(json!({"execution_optimistic": false, "finalized": false, "data": out}))
            .into_response(),
    )
}

async fn submit_attestations<P: Preset>(
    State(s): State<Shared<P>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult {
    let arrived = now_ms();
    let fork = consensus_version(&headers)?;
    let chain_fork = s.chain().fork;
    if fork != chain_fork {
        return Err(ApiError::bad_request(format!(
            "Eth-Consensus-Version {fork} on a {chain_fork} chain"
        )));
    }
    if fork.electra_enabled() {
        let items: Vec<SingleAttestation> = from_json(body, "SingleAttestation list")?;
        verify_outside_lock(&s, |c| c.single_attestation_signatures(&items)).await;
        s.chain().submit_single_attestations(&items, arrived)?;
    } else {
        let items: Vec<AttestationDeneb<P>> = from_json(body, "Attestation list")?;
        verify_outside_lock(&s, |c| c.deneb_attestation_signatures(&items)).await;
        s.chain().submit_deneb_attestations(&items, arrived)?;
    }
    Ok(StatusCode::OK.into_response())
}

async fn aggregate_attestation<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let field = |name: &str| query_field(&query, name);
    let root: Root = parse(field("attestation_data_root")?, "attestation_data_root")?;
    let slot: Slot = parse(field("slot")?, "slot")?;
    let committee_index: u64 = parse(field("committee_index")?, "committee_index")?;
    let chain = s.chain();
    let fork = chain.fork;
    let data = if fork.electra_enabled() {
        json!(chain.aggregate_attestation(root, slot, committee_index)?)
    } else {
        json!(chain.aggregate_attestation_deneb(root, slot)?)
    };
    let mut response = Json(json!({"version": fork, "data": data})).into_response();
    if let Ok(v) = fork.as_str().parse() {
        response.headers_mut().insert("Eth-Consensus-Version", v);
    }
    Ok(response)
}

/// The pre-Electra route: Deneb's `Attestation`, unversioned.
async fn aggregate_attestation_v1<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let field = |name: &str| query_field(&query, name);
    let root: Root = parse(field("attestation_data_root")?, "attestation_data_root")?;
    let slot: Slot = parse(field("slot")?, "slot")?;
    data(s.chain().aggregate_attestation_deneb(root, slot)?)
}

async fn submit_aggregates<P: Preset>(
    State(s): State<Shared<P>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult {
    let fork = consensus_version(&headers)?;
    let mut chain = s.chain();
    if fork != chain.fork {
        return Err(ApiError::bad_request(format!(
            "Eth-Consensus-Version {fork} on a {} chain",
            chain.fork
        )));
    }
    if fork.electra_enabled() {
        let items: Vec<SignedAggregateAndProofElectra<P>> =
            from_json(body, "SignedAggregateAndProof list")?;
        chain.submit_aggregates(&items)?;
    } else {
        let items: Vec<SignedAggregateAndProofDeneb<P>> =
            from_json(body, "SignedAggregateAndProof list")?;
        chain.submit_aggregates_deneb(&items)?;
    }
    Ok(StatusCode::OK.into_response())
}

/// The pre-Electra route: Deneb's `SignedAggregateAndProof`s.
async fn submit_aggregates_v1<P: Preset>(
    State(s): State<Shared<P>>,
    Json(body): Json<Value>,
) -> ApiResult {
    let mut chain = s.chain();
    if chain.fork.electra_enabled() {
        return Err(ApiError::bad_request(format!(
            "/eth/v1/validator/aggregate_and_proofs takes pre-Electra aggregates; this chain is {}",
            chain.fork
        )));
    }
    let items: Vec<SignedAggregateAndProofDeneb<P>> =
        from_json(body, "SignedAggregateAndProof list")?;
    chain.submit_aggregates_deneb(&items)?;
    Ok(StatusCode::OK.into_response())
}

async fn publish_blinded_block<P: Preset>(
    State(s): State<Shared<P>>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> ApiResult {
    let fork = consensus_version(&headers)?;
    let signature: SignatureBytes =
        from_json(take_field(&mut body, "signature"), "block signature")?;
    let block = VersionedBlindedBlock::<P>::from_json_value(fork, take_field(&mut body, "message"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let head = s
        .chain()
        .publish_blinded_block(&block, &signature, now_ms())?;
    if let Some(event) = head {
        let _ = s.heads.send(event);
    }
    Ok(StatusCode::OK.into_response())
}

async fn publish_block<P: Preset>(
    State(s): State<Shared<P>>,
    headers: HeaderMap,
    Json(mut body): Json<Value>,
) -> ApiResult {
    let fork = consensus_version(&headers)?;
    // Deneb on: SignedBlockContents {signed_block, kzg_proofs, blobs}.
    let mut signed = take_field(&mut body, "signed_block");
    let signature: SignatureBytes =
        from_json(take_field(&mut signed, "signature"), "block signature")?;
    let block = VersionedBlock::<P>::from_json_value(fork, take_field(&mut signed, "message"))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let blobs = BlockBlobs {
        kzg_proofs: from_json(take_field(&mut body, "kzg_proofs"), "kzg_proofs")?,
        blobs: from_json(take_field(&mut body, "blobs"), "blobs")?,
    };
    let head = s
        .chain()
        .publish_block(&block, &blobs, &signature, now_ms())?;
    if let Some(event) = head {
        let _ = s.heads.send(event);
    }
    Ok(StatusCode::OK.into_response())
}

async fn events<P: Preset>(
    State(s): State<Shared<P>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let topics = query.get("topics").cloned().unwrap_or_default();
    if !topics.split(',').any(|t| t == "head") {
        return Err(ApiError::bad_request(format!(
            "unsupported topics {topics:?} (head is served)"
        )));
    }
    let stream = BroadcastStream::new(s.heads.subscribe()).filter_map(|event| {
        let event = event.ok()?;
        let data = serde_json::to_string(&event).ok()?;
        Some(Ok::<_, Infallible>(
            Event::default().event("head").data(data),
        ))
    });
    Ok(Sse::new(stream).into_response())
}

/// The chain's counters while it runs (the duty summaries, which sign a
/// selection proof per committee member to know the aggregators, are
/// computed once, in the report written at exit).
async fn report<P: Preset>(State(s): State<Shared<P>>) -> ApiResult {
    Ok(Json(json!({"report": s.chain().report})).into_response())
}
