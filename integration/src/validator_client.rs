//! A validator-client simulator for middleware mode: it behaves like a
//! validator client run with `--distributed` (the request sequence of
//! `../shared/beacon-api-samples/validator-client-requests.jsonl`), holding
//! one node's key shares as EIP-2335 keystores, and talks to that node's
//! validator API as if it were a beacon node.
//!
//! Per epoch: attester and proposer duties (current and next epoch),
//! `prepare_beacon_proposer` and builder registrations. Per slot: partial
//! beacon committee selection proofs (for the next slot) exchanged for
//! combined ones, and the subscriptions they decide; a proposal at slot start when one
//! of its validators proposes (partial randao reveal, block production v3,
//! partial block signature), and
//! attestations at a third of the slot (attestation data, partial
//! signatures, `SingleAttestation` from Electra or `Attestation` before)
//! and sync committee messages (over the head root it asks for, as
//! Lighthouse does), and at two thirds aggregates and sync contributions for
//! the members its combined selection proofs select. Each duty is a task of
//! its own, as in a real client.
//!
//! It checks what it is served (its share keys come back in duties, blocks
//! are for the right slot and proposer, selections come back combined) and
//! counts what it did; the simulated chain judges the outcome.
//!
//! It speaks SSZ wherever the Beacon API offers it, as Lodestar's client
//! does by default, or JSON throughout ([`Encoding`]).

use crate::server::now_ms;
use beacon_client::block_contents::{contents_ssz, signed_block_ssz, split_contents};
use dv_crypto::keystore::read_password_file;
use dv_crypto::{Keystore, SecretKey};
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

const SSZ: &str = "application/octet-stream";
/// How far ahead the client makes beacon committee selection proofs and
/// subscriptions, slot by slot: one slot, half way through the slot before,
/// as Lighthouse's validator client does with `--distributed`
/// (`SELECTION_PROOF_SLOT_LOOKAHEAD_DVT` = 1, `SELECTION_PROOF_SCHEDULE_DENOM`
/// = 2 in its duties service), instead of an epoch's worth at once.
const SELECTION_LOOKAHEAD_SLOTS: u64 = 1;
/// The gas limit this client registers with (`dvnode create cluster`'s default).
pub const GAS_LIMIT: u64 = 36_000_000;

/// What the client did, for the test's and the operator's eyes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClientCounts {
    pub attestations_submitted: u64,
    pub blocks_published: u64,
    pub selections_combined: u64,
    pub aggregates_published: u64,
    pub sync_messages_submitted: u64,
    pub contributions_published: u64,
    pub registrations_submitted: u64,
    pub errors: u64,
}

/// What the client speaks where the Beacon API offers both encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// SSZ answers asked for (with the header the Beacon API suggests and
    /// Lighthouse's HTTP client sends:
    /// `application/octet-stream;q=1.0,application/json;q=0.9`) and SSZ
    /// bodies posted, wherever the API has them: attestation data,
    /// aggregates, block production and publication, v2 attestations and
    /// aggregates, builder registrations.
    Ssz,
    /// JSON everywhere.
    Json,
}

/// The `Accept` header of an SSZ-speaking client (Lighthouse's `PREFERENCE_ACCEPT_VALUE`).
const ACCEPT_SSZ: &str = "application/octet-stream;q=1.0,application/json;q=0.9";

pub struct ValidatorClient {
    http: reqwest::Client,
    base: String,
    encoding: Encoding,
    /// Share secret keys by share public key.
    keys: HashMap<PublicKeyBytes, SecretKey>,
    /// Validator index by share public key (as the middleware maps it).
    indices: BTreeMap<PublicKeyBytes, u64>,
    spec: ChainSpec,
    genesis_validators_root: Root,
    genesis_ms: u64,
    /// Combined selection proofs the middleware answered, by (slot, validator index).
    selection_proofs: Mutex<HashMap<(Slot, u64), SignatureBytes>>,
    /// The last slot whose selection proofs came back (aggregations wait for it).
    selections_done: watch::Sender<Option<Slot>>,
    /// Combined sync selection proofs, by (slot, validator index, subcommittee).
    sync_selection_proofs: Mutex<HashMap<(Slot, u64, u64), SignatureBytes>>,
    counts: Mutex<ClientCounts>,
    /// The last slot whose selections were asked for.
    selected_until: Mutex<Option<Slot>>,
    /// Signed builder registrations by share key, signed once and sent again
    /// each epoch while fee recipient and gas limit stay the same, as
    /// Lighthouse's client caches them (its `validator_registration_cache`).
    registrations: Mutex<HashMap<PublicKeyBytes, SignedValidatorRegistration>>,
    /// A client that does not aggregate: it subscribes as no committee's
    /// aggregator and publishes no aggregate (to show the chain counts the
    /// attestations of such committees missed).
    skip_aggregation: bool,
}

/// Loads every `keystore-*.json` in `dir` with its `.txt` password (the
/// layout `dvnode create cluster` writes and validator clients import).
pub fn load_share_keys(dir: &Path) -> Result<HashMap<PublicKeyBytes, SecretKey>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut keys = HashMap::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let is_keystore = path.extension().is_some_and(|e| e == "json")
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("keystore-"));
        if !is_keystore {
            continue;
        }
        let password =
            read_password_file(&path.with_extension("txt")).map_err(|e| e.to_string())?;
        let secret = Keystore::load(&path, &password).map_err(|e| e.to_string())?;
        keys.insert(PublicKeyBytes(secret.public_key().to_bytes()), secret);
    }
    if keys.is_empty() {
        return Err(format!("{}: no keystore-*.json", dir.display()));
    }
    Ok(keys)
}

impl ValidatorClient {
    /// Connects to `base` (the node's validator API) and looks its validators up.
    pub async fn start(
        base: &str,
        keys: HashMap<PublicKeyBytes, SecretKey>,
        encoding: Encoding,
    ) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let mut client = Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            encoding,
            keys,
            indices: BTreeMap::new(),
            spec: ChainSpec::minimal(),
            genesis_validators_root: Root::ZERO,
            genesis_ms: 0,
            selection_proofs: Mutex::new(HashMap::new()),
            selections_done: watch::channel(None).0,
            sync_selection_proofs: Mutex::new(HashMap::new()),
            counts: Mutex::new(ClientCounts::default()),
            selected_until: Mutex::new(None),
            registrations: Mutex::default(),
            skip_aggregation: false,
        };
        let genesis = client.get_json("/eth/v1/beacon/genesis").await?;
        client.genesis_validators_root =
            serde_json::from_value(genesis["data"]["genesis_validators_root"].clone())
                .map_err(|e| format!("genesis: {e}"))?;
        client.genesis_ms = genesis["data"]["genesis_time"]
            .as_str()
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or("genesis: no genesis_time")?
            * 1000;
        let spec = client.get_json("/eth/v1/config/spec").await?;
        client.spec = ChainSpec::from_beacon_node_json(&spec["data"]).map_err(|e| e.to_string())?;
        client.get_json("/eth/v1/node/syncing").await?;
        let ids: Vec<String> = client.keys.keys().map(|k| k.to_string()).collect();
        let found = client
            .post_json(
                "/eth/v1/beacon/states/head/validators",
                &json!({ "ids": ids }),
                None,
            )
            .await?;
        for v in found["data"].as_array().ok_or("validators: no data")? {
            let pubkey: PublicKeyBytes = serde_json::from_value(v["validator"]["pubkey"].clone())
                .map_err(|e| format!("validators: {e}"))?;
            let index: u64 = v["index"]
                .as_str()
                .and_then(|i| i.parse().ok())
                .ok_or("validators: no index")?;
            if !client.keys.contains_key(&pubkey) {
                return Err(format!(
                    "validators: answered with {pubkey}, which is not one of this client's keys"
                ));
            }
            client.indices.insert(pubkey, index);
        }
        if client.indices.len() != client.keys.len() {
            return Err(format!(
                "validators: {} of {} keys known to the beacon node",
                client.indices.len(),
                client.keys.len()
            ));
        }
        Ok(client)
    }

    /// The client neither subscribes as aggregator nor aggregates.
    pub fn without_aggregation(mut self) -> Self {
        self.skip_aggregation = true;
        self
    }

    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        read_json(response, path).await
    }

    async fn post_json(
        &self,
        path: &str,
        body: &Value,
        fork: Option<ForkName>,
    ) -> Result<Value, String> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(fork) = fork {
            request = request.header("Eth-Consensus-Version", fork.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        read_json(response, path).await
    }

    /// A GET where the API offers SSZ: asked for in the client's encoding;
    /// an error status, or an answer in the other encoding, is an error.
    /// The answer's headers and body.
    async fn get_encoded(
        &self,
        path: &str,
    ) -> Result<(reqwest::header::HeaderMap, axum::body::Bytes), String> {
        let ssz = self.encoding == Encoding::Ssz;
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("Accept", if ssz { ACCEPT_SSZ } else { "application/json" })
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ssz != content_type.starts_with(SSZ) {
            return Err(format!(
                "{path}: asked for {}, got {content_type:?}",
                if ssz { "SSZ" } else { "JSON" }
            ));
        }
        Ok((headers, bytes))
    }

    /// A `data` answer where the API offers SSZ (see [`Self::get_encoded`]).
    async fn get_data<T: serde::de::DeserializeOwned + ssz::Decode>(
        &self,
        path: &str,
    ) -> Result<T, String> {
        let (_, bytes) = self.get_encoded(path).await?;
        if self.encoding == Encoding::Ssz {
            return T::from_ssz_bytes(&bytes).map_err(|e| format!("{path}: SSZ: {e:?}"));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{path}: {e}"))?;
        serde_json::from_value(v["data"].clone()).map_err(|e| format!("{path}: {e}"))
    }

    /// Posts a list where the API takes SSZ bodies: in the client's encoding.
    async fn post_list<T: serde::Serialize + ssz::Encode>(
        &self,
        path: &str,
        items: Vec<T>,
        fork: Option<ForkName>,
    ) -> Result<(), String> {
        if self.encoding == Encoding::Json {
            return self.post_json(path, &json!(items), fork).await.map(|_| ());
        }
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", SSZ)
            .body(ssz::Encode::as_ssz_bytes(&items));
        if let Some(fork) = fork {
            request = request.header("Eth-Consensus-Version", fork.as_str());
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        read_json(response, path).await.map(|_| ())
    }

    fn sign<T: tree_hash::TreeHash>(
        &self,
        share: &PublicKeyBytes,
        kind: DomainKind,
        epoch: Epoch,
        object: &T,
    ) -> SignatureBytes {
        let domain = self.spec.domain(kind, epoch, self.genesis_validators_root);
        let root = compute_signing_root(object, domain);
        SignatureBytes(self.keys[share].sign(root.as_slice()).to_bytes())
    }

    pub fn current_slot(&self) -> Slot {
        now_ms().saturating_sub(self.genesis_ms) / self.spec.slot_duration_ms.max(1)
    }

    /// The first slot a client starting now runs: the genesis slot when it
    /// is up before genesis, otherwise the slot after the current one.
    pub fn first_slot_to_run(&self) -> Slot {
        if now_ms() < self.genesis_ms {
            0
        } else {
            self.current_slot() + 1
        }
    }

    fn slot_start_ms(&self, slot: Slot) -> u64 {
        self.genesis_ms + slot * self.spec.slot_duration_ms
    }

    async fn sleep_until_ms(at: u64) {
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
    }

    /// What the client did so far.
    pub fn counts(&self) -> ClientCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn count(&self, update: impl FnOnce(&mut ClientCounts)) {
        if let Ok(mut counts) = self.counts.lock() {
            update(&mut counts);
        }
    }

    /// Logs and counts a failed step; passes a successful one through.
    fn note<T>(&self, what: &str, slot: Slot, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.count(|c| c.errors += 1);
                tracing::error!(slot, "validator client: {what}: {e}");
                None
            }
        }
    }

    fn at_bps(&self, slot: Slot, bps: u64) -> u64 {
        self.slot_start_ms(slot) + self.spec.slot_duration_ms * bps / 10_000
    }

    /// Runs slots `first..=last`, each at its time. As a validator client's
    /// services do, each duty is its own task: at slot start the proposal
    /// (proposer duties are fetched first thing in a new epoch), then the
    /// epoch's attester and sync duties, preparations and selections; at a
    /// third of the slot attestations and sync committee messages; at two
    /// thirds aggregates and sync contributions. Returns when the last
    /// slot's tasks are done.
    pub async fn run_slots(self: &Arc<Self>, first: Slot, last: Slot) {
        if self.spec.preset_base == Mainnet::NAME {
            self.run_slots_of::<Mainnet>(first, last).await
        } else {
            self.run_slots_of::<Minimal>(first, last).await
        }
    }

    async fn run_slots_of<P: Preset>(self: &Arc<Self>, first: Slot, last: Slot) {
        let mut attesters: Arc<BTreeMap<Slot, Vec<Value>>> = Arc::default();
        let mut proposers: BTreeMap<Slot, (PublicKeyBytes, u64)> = BTreeMap::new();
        let mut sync: Arc<SyncDuties> = Arc::default();
        let mut polled = None;
        let mut tasks = tokio::task::JoinSet::new();
        for slot in first..=last {
            Self::sleep_until_ms(self.slot_start_ms(slot)).await;
            while tasks.try_join_next().is_some() {}
            let epoch = self.spec.epoch_of_slot(slot);
            let new_epoch = polled != Some(epoch);
            if new_epoch {
                let duties = self.proposer_duties(epoch).await;
                if let Some(p) = self.note("proposer duties", slot, duties) {
                    proposers = p;
                }
            }
            // No block at the genesis slot: the genesis block is it.
            if let Some((share, index)) = proposers.get(&slot).copied().filter(|_| slot > 0) {
                let me = Arc::clone(self);
                tasks.spawn(async move {
                    let proposed = me.propose::<P>(slot, share, index).await;
                    if me.note("block proposal", slot, proposed).is_some() {
                        me.count(|c| c.blocks_published += 1);
                    }
                });
            }
            if new_epoch {
                polled = Some(epoch);
                let duties = self.attester_duties(epoch).await;
                if let Some(a) = self.note("attester duties", slot, duties) {
                    attesters = Arc::new(a);
                }
                let duties = self.sync_duties(epoch).await;
                if let Some(d) = self.note("sync duties", slot, duties) {
                    sync = Arc::new(d);
                }
                // Beside the slot's duties, not before them.
                let me = Arc::clone(self);
                tasks.spawn(async move {
                    let registered = me.register().await;
                    if let Some(count) = me.note("builder registrations", slot, registered) {
                        me.count(|c| c.registrations_submitted += count);
                    }
                });
            }
            // Selections and subscriptions slot by slot, for the slots up to
            // SELECTION_LOOKAHEAD_SLOTS ahead not yet done, so the beacon node
            // knows a committee's aggregators before its attestations come.
            // The first slot does its own too, at once; later ones wait for
            // the middle of the slot.
            let ahead = slot + SELECTION_LOOKAHEAD_SLOTS;
            let from = self
                .selected_until
                .lock()
                .map(|mut until| {
                    let from = until.map_or(slot, |u| (u + 1).max(slot));
                    *until = Some(ahead);
                    from
                })
                .unwrap_or(slot);
            if from <= ahead {
                let (me, attesters) = (Arc::clone(self), Arc::clone(&attesters));
                tasks.spawn(async move {
                    if from > slot {
                        Self::sleep_until_ms(me.at_bps(slot, 5_000)).await;
                    }
                    let selections = me.selections(from..=ahead, &attesters).await;
                    me.note("beacon committee selections", slot, selections);
                    let subscribed = me.subscribe(from..=ahead, &attesters).await;
                    me.note("beacon committee subscriptions", slot, subscribed);
                    me.selections_done
                        .send_modify(|done| *done = Some(done.map_or(ahead, |d| d.max(ahead))));
                });
            }
            // Sync selections slot by slot (the other timing the endpoint
            // allows), ready before the contributions at two thirds.
            let (me, members) = (Arc::clone(self), Arc::clone(&sync));
            let sync_selected = tokio::spawn(async move {
                let selections = me.sync_selections(slot, &members).await;
                me.note("sync committee selections", slot, selections);
            });
            let me = Arc::clone(self);
            let duties = attesters.get(&slot).cloned().unwrap_or_default();
            let attested = tokio::spawn(async move {
                Self::sleep_until_ms(me.at_bps(slot, me.spec.attestation_due_bps)).await;
                me.attest_if_due::<P>(slot, &duties).await
            });
            let (me, members) = (Arc::clone(self), Arc::clone(&sync));
            let synced = tokio::spawn(async move {
                Self::sleep_until_ms(me.at_bps(slot, me.spec.attestation_due_bps)).await;
                me.sync_messages_if_due(slot, &members).await
            });
            let (me, members) = (Arc::clone(self), Arc::clone(&sync));
            let duties = attesters.get(&slot).cloned().unwrap_or_default();
            tasks.spawn(async move {
                Self::sleep_until_ms(me.at_bps(slot, me.spec.aggregate_due_bps)).await;
                let aggregates = async {
                    let data_by_committee = attested.await.ok().flatten().unwrap_or_default();
                    if duties.is_empty() || me.skip_aggregation {
                        return;
                    }
                    me.wait_for_selections(slot).await;
                    let aggregated = me.aggregate::<P>(slot, &duties, &data_by_committee).await;
                    if let Some(count) = me.note("aggregates", slot, aggregated) {
                        me.count(|c| c.aggregates_published += count);
                    }
                };
                let contributions = async {
                    let Some(root) = synced.await.ok().flatten() else {
                        return;
                    };
                    let _ = sync_selected.await;
                    let contributed = me.contributions::<P>(slot, &members, root).await;
                    if let Some(count) = me.note("sync contributions", slot, contributed) {
                        me.count(|c| c.contributions_published += count);
                    }
                };
                tokio::join!(aggregates, contributions);
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Waits until the selection proofs of `slot` came back, at most until the slot ends.
    async fn wait_for_selections(&self, slot: Slot) {
        let mut done = self.selections_done.subscribe();
        let until = Duration::from_millis(self.slot_start_ms(slot + 1).saturating_sub(now_ms()));
        let _ = tokio::time::timeout(until, done.wait_for(|s| s.is_some_and(|s| s >= slot))).await;
    }

    /// The slot's attestations, if it has attester duties; the attestation
    /// data it signed, by committee.
    async fn attest_if_due<P: Preset>(
        &self,
        slot: Slot,
        duties: &[Value],
    ) -> Option<HashMap<u64, AttestationData>> {
        if duties.is_empty() {
            return None;
        }
        let attested = self.attest::<P>(slot, duties).await;
        let (count, data) = self.note("attestations", slot, attested)?;
        self.count(|c| c.attestations_submitted += count);
        Some(data)
    }

    /// The slot's sync committee messages, if it has sync duties; the block
    /// root they signed.
    async fn sync_messages_if_due(&self, slot: Slot, sync: &SyncDuties) -> Option<Root> {
        if sync.is_empty() {
            return None;
        }
        let sent = self.sync_messages(slot, sync).await;
        let (count, root) = self.note("sync committee messages", slot, sent)?;
        self.count(|c| c.sync_messages_submitted += count);
        Some(root)
    }

    /// Builder registrations of this client's validators (each epoch, as
    /// Lighthouse sends them), signed with its shares the first time.
    async fn register(&self) -> Result<u64, String> {
        let items: Vec<SignedValidatorRegistration> = {
            let mut cache = self
                .registrations
                .lock()
                .map_err(|_| "registration cache poisoned".to_string())?;
            let timestamp = now_ms() / 1000;
            self.keys
                .keys()
                .map(|share| {
                    let fresh = || {
                        let message = ValidatorRegistration {
                            fee_recipient: ExecutionAddress::ZERO,
                            gas_limit: GAS_LIMIT,
                            timestamp,
                            pubkey: *share,
                        };
                        let signature =
                            self.sign(share, DomainKind::ApplicationBuilder, 0, &message);
                        SignedValidatorRegistration { message, signature }
                    };
                    cache.entry(*share).or_insert_with(fresh).clone()
                })
                .collect()
        };
        let count = items.len() as u64;
        // In requests of at most REGISTRATION_BATCH_SIZE, as Lighthouse's client sends them.
        for batch in items.chunks(beacon_client::REGISTRATION_BATCH_SIZE) {
            self.post_list("/eth/v1/validator/register_validator", batch.to_vec(), None)
                .await?;
        }
        Ok(count)
    }

    /// This client's sync committee members: share key → (index, positions).
    async fn sync_duties(&self, epoch: Epoch) -> Result<SyncDuties, String> {
        let indices: Vec<String> = self.indices.values().map(u64::to_string).collect();
        let duties = self
            .post_json(
                &format!("/eth/v1/validator/duties/sync/{epoch}"),
                &json!(indices),
                None,
            )
            .await?;
        let mut out = BTreeMap::new();
        for d in duties["data"].as_array().ok_or("sync duties: no data")? {
            let share = self.check_own_key(d)?;
            let positions = d["validator_sync_committee_indices"]
                .as_array()
                .ok_or("sync duties: no positions")?
                .iter()
                .map(quoted)
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(share, (quoted(&d["validator_index"])?, positions));
        }
        Ok(out)
    }

    fn subcommittee_size(&self) -> u64 {
        (self.spec.sync_committee_size / self.spec.sync_committee_subnet_count).max(1)
    }

    /// The subcommittees a member's positions fall in.
    fn subcommittees(&self, positions: &[u64]) -> Vec<u64> {
        let mut subs: Vec<u64> = positions
            .iter()
            .map(|p| p / self.subcommittee_size())
            .collect();
        subs.sort();
        subs.dedup();
        subs
    }

    /// Partial sync selection proofs for `slot`, combined by the middleware.
    async fn sync_selections(&self, slot: Slot, sync: &SyncDuties) -> Result<(), String> {
        let epoch = self.spec.epoch_of_slot(slot);
        let mut request = Vec::new();
        {
            for (share, (index, positions)) in sync {
                for sub in self.subcommittees(positions) {
                    let data = SyncAggregatorSelectionData {
                        slot,
                        subcommittee_index: sub,
                    };
                    let proof =
                        self.sign(share, DomainKind::SyncCommitteeSelectionProof, epoch, &data);
                    request.push(
                        json!({"validator_index": index.to_string(), "slot": slot.to_string(),
                        "subcommittee_index": sub.to_string(), "selection_proof": proof}),
                    );
                }
            }
        }
        if request.is_empty() {
            return Ok(());
        }
        let answer = self
            .post_json(
                "/eth/v1/validator/sync_committee_selections",
                &json!(request),
                None,
            )
            .await?;
        let returned = answer["data"]
            .as_array()
            .ok_or("sync selections: no data")?;
        for r in returned {
            let proof: SignatureBytes =
                serde_json::from_value(r["selection_proof"].clone()).map_err(|e| e.to_string())?;
            let key = (
                quoted(&r["slot"])?,
                quoted(&r["validator_index"])?,
                quoted(&r["subcommittee_index"])?,
            );
            if let Ok(mut proofs) = self.sync_selection_proofs.lock() {
                proofs.insert(key, proof);
            }
        }
        if returned.len() != request.len() {
            return Err(format!(
                "{} of {} sync selection proofs came back combined",
                returned.len(),
                request.len()
            ));
        }
        Ok(())
    }

    /// Partial sync committee messages over the head block's root, asked
    /// for as a validator client asks for it.
    async fn sync_messages(&self, slot: Slot, sync: &SyncDuties) -> Result<(u64, Root), String> {
        let answer = self.get_json("/eth/v1/beacon/blocks/head/root").await?;
        let root: Root = serde_json::from_value(answer["data"]["root"].clone())
            .map_err(|e| format!("head root: {e}"))?;
        let epoch = self.spec.epoch_of_slot(slot);
        let items: Vec<Value> = sync
            .iter()
            .map(|(share, (index, _))| {
                json!(SyncCommitteeMessage {
                    slot,
                    beacon_block_root: root,
                    validator_index: *index,
                    signature: self.sign(share, DomainKind::SyncCommittee, epoch, &root),
                })
            })
            .collect();
        let count = items.len() as u64;
        self.post_json("/eth/v1/beacon/pool/sync_committees", &json!(items), None)
            .await?;
        Ok((count, root))
    }

    /// Contributions for the subcommittees whose combined selection proof
    /// selects this client's members: each subcommittee's contribution is
    /// fetched once and signed by every selected member (as Lighthouse does).
    async fn contributions<P: Preset>(
        &self,
        slot: Slot,
        sync: &SyncDuties,
        root: Root,
    ) -> Result<u64, String> {
        let modulo =
            (self.subcommittee_size() / self.spec.target_aggregators_per_sync_subcommittee).max(1);
        let mut by_subcommittee: BTreeMap<u64, Vec<(PublicKeyBytes, u64, SignatureBytes)>> =
            BTreeMap::new();
        for (share, (index, positions)) in sync {
            for sub in self.subcommittees(positions) {
                let proof = self
                    .sync_selection_proofs
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&(slot, *index, sub)).copied());
                if let Some(proof) = proof {
                    if selected(&proof, modulo) {
                        by_subcommittee
                            .entry(sub)
                            .or_default()
                            .push((*share, *index, proof));
                    }
                }
            }
        }
        let published = by_subcommittee
            .into_iter()
            .map(|(sub, aggregators)| self.contribute::<P>(slot, sub, root, aggregators));
        let mut count = 0;
        for result in futures::future::join_all(published).await {
            count += result?;
        }
        Ok(count)
    }

    /// One subcommittee's decided contribution, signed by each of this
    /// client's selected members of it and published.
    async fn contribute<P: Preset>(
        &self,
        slot: Slot,
        sub: u64,
        root: Root,
        aggregators: Vec<(PublicKeyBytes, u64, SignatureBytes)>,
    ) -> Result<u64, String> {
        let epoch = self.spec.epoch_of_slot(slot);
        let answer = self
            .get_json(&format!(
                "/eth/v1/validator/sync_committee_contribution?slot={slot}&subcommittee_index={sub}&beacon_block_root={root}"
            ))
            .await?;
        let contribution: SyncCommitteeContribution<P> =
            serde_json::from_value(answer["data"].clone())
                .map_err(|e| format!("contribution: {e}"))?;
        if contribution.beacon_block_root != root || contribution.subcommittee_index != sub {
            return Err("contribution: for another root or subcommittee".into());
        }
        let items: Vec<Value> = aggregators
            .into_iter()
            .map(|(share, index, proof)| {
                let message = ContributionAndProof {
                    aggregator_index: index,
                    contribution: contribution.clone(),
                    selection_proof: proof,
                };
                let signature =
                    self.sign(&share, DomainKind::ContributionAndProof, epoch, &message);
                json!(SignedContributionAndProof { message, signature })
            })
            .collect();
        let count = items.len() as u64;
        self.post_json(
            "/eth/v1/validator/contribution_and_proofs",
            &json!(items),
            None,
        )
        .await?;
        Ok(count)
    }

    /// This client's proposals of `epoch`, by slot.
    async fn proposer_duties(
        &self,
        epoch: Epoch,
    ) -> Result<BTreeMap<Slot, (PublicKeyBytes, u64)>, String> {
        let duties = self
            .get_json(&format!("/eth/v1/validator/duties/proposer/{epoch}"))
            .await?;
        let mut proposers = BTreeMap::new();
        for d in duties["data"]
            .as_array()
            .ok_or("proposer duties: no data")?
        {
            let pubkey: PublicKeyBytes =
                serde_json::from_value(d["pubkey"].clone()).map_err(|e| e.to_string())?;
            if self.keys.contains_key(&pubkey) {
                proposers.insert(
                    quoted(&d["slot"])?,
                    (pubkey, quoted(&d["validator_index"])?),
                );
            }
        }
        Ok(proposers)
    }

    /// Attester duties of `epoch` and the next, by slot; proposer preparations.
    async fn attester_duties(&self, epoch: Epoch) -> Result<BTreeMap<Slot, Vec<Value>>, String> {
        let indices: Vec<String> = self.indices.values().map(u64::to_string).collect();
        let mut attesters: BTreeMap<Slot, Vec<Value>> = BTreeMap::new();
        for e in [epoch, epoch + 1] {
            let duties = self
                .post_json(
                    &format!("/eth/v1/validator/duties/attester/{e}"),
                    &json!(indices),
                    None,
                )
                .await?;
            for d in duties["data"]
                .as_array()
                .ok_or("attester duties: no data")?
            {
                self.check_own_key(d)?;
                let slot = quoted(&d["slot"])?;
                attesters.entry(slot).or_default().push(d.clone());
            }
        }
        let preparations: Vec<Value> = self
            .indices
            .values()
            .map(|i| json!({"validator_index": i.to_string(), "fee_recipient": format!("0x{}", "00".repeat(20))}))
            .collect();
        self.post_json(
            "/eth/v1/validator/prepare_beacon_proposer",
            &json!(preparations),
            None,
        )
        .await?;
        Ok(attesters)
    }

    fn check_own_key(&self, duty: &Value) -> Result<PublicKeyBytes, String> {
        let pubkey: PublicKeyBytes =
            serde_json::from_value(duty["pubkey"].clone()).map_err(|e| e.to_string())?;
        if self.keys.contains_key(&pubkey) {
            Ok(pubkey)
        } else {
            Err(format!(
                "a duty for {pubkey}, which is not one of this client's keys"
            ))
        }
    }

    /// Partial selection proofs for the epoch's attester duties, combined by the middleware.
    async fn selections(
        &self,
        slots: RangeInclusive<Slot>,
        attesters: &BTreeMap<Slot, Vec<Value>>,
    ) -> Result<(), String> {
        let mut request = Vec::new();
        for (slot, duties) in attesters.range(slots) {
            let epoch = self.spec.epoch_of_slot(*slot);
            for d in duties {
                let share = self.check_own_key(d)?;
                let proof = self.sign(&share, DomainKind::SelectionProof, epoch, slot);
                request.push(json!({"validator_index": d["validator_index"], "slot": slot.to_string(), "selection_proof": proof}));
            }
        }
        if request.is_empty() {
            return Ok(());
        }
        let answer = self
            .post_json(
                "/eth/v1/validator/beacon_committee_selections",
                &json!(request),
                None,
            )
            .await?;
        let returned = answer["data"].as_array().ok_or("selections: no data")?;
        let sent: Vec<&Value> = request.iter().map(|r| &r["selection_proof"]).collect();
        if returned
            .iter()
            .any(|r| sent.contains(&&r["selection_proof"]))
        {
            return Err("a selection proof came back as the partial that was sent".into());
        }
        for r in returned {
            let proof: SignatureBytes =
                serde_json::from_value(r["selection_proof"].clone()).map_err(|e| e.to_string())?;
            if let Ok(mut proofs) = self.selection_proofs.lock() {
                proofs.insert((quoted(&r["slot"])?, quoted(&r["validator_index"])?), proof);
            }
        }
        let combined = returned.len();
        self.count(|c| c.selections_combined += combined as u64);
        if combined != request.len() {
            return Err(format!(
                "{combined} of {} selection proofs came back combined",
                request.len()
            ));
        }
        Ok(())
    }

    /// `beacon_committee_subscriptions` for `epoch`'s duties, each marked
    /// aggregator as its combined selection proof says (as Lighthouse's
    /// client subscribes after its selections in `--distributed` mode).
    async fn subscribe(
        &self,
        slots: RangeInclusive<Slot>,
        attesters: &BTreeMap<Slot, Vec<Value>>,
    ) -> Result<(), String> {
        let mut items = Vec::new();
        for (slot, duties) in attesters.range(slots) {
            for d in duties {
                let index = quoted(&d["validator_index"])?;
                let proof = self
                    .selection_proofs
                    .lock()
                    .ok()
                    .and_then(|p| p.get(&(*slot, index)).copied());
                let is_aggregator = !self.skip_aggregation
                    && proof.is_some_and(|p| {
                        quoted(&d["committee_length"])
                            .is_ok_and(|len| is_aggregator(&self.spec, len, &p))
                    });
                items.push(json!({
                    "validator_index": index.to_string(),
                    "committee_index": d["committee_index"],
                    "committees_at_slot": d["committees_at_slot"],
                    "slot": slot.to_string(),
                    "is_aggregator": is_aggregator,
                }));
            }
        }
        if items.is_empty() {
            return Ok(());
        }
        self.post_json(
            "/eth/v1/validator/beacon_committee_subscriptions",
            &json!(items),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn propose<P: Preset>(
        &self,
        slot: Slot,
        share: PublicKeyBytes,
        index: u64,
    ) -> Result<(), String> {
        let epoch = self.spec.epoch_of_slot(slot);
        let reveal = self.sign(&share, DomainKind::Randao, epoch, &epoch);
        let ssz = self.encoding == Encoding::Ssz;
        let path = format!(
            "/eth/v3/validator/blocks/{slot}?randao_reveal={reveal}&graffiti=0x{}",
            "00".repeat(32)
        );
        let (headers, bytes) = self.get_encoded(&path).await?;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let blinded = header("Eth-Execution-Payload-Blinded") == Some("true");
        let fork: ForkName = header("Eth-Consensus-Version")
            .ok_or("block: no Eth-Consensus-Version header")?
            .parse()?;
        // What comes back with the signed block: the blobs (a full block's
        // contents, as received).
        let mut ssz_blobs = beacon_client::BlobsBundle::default();
        let mut json_blobs = (json!([]), json!([]));
        let (block_root, block_slot, proposer, message_ssz, message_json) = match (blinded, ssz) {
            (false, true) => {
                // BlockContents {block, kzg_proofs, blobs}.
                let (block_bytes, blobs) = split_contents(&bytes)?;
                ssz_blobs = blobs;
                let b = VersionedBlock::<P>::from_ssz_bytes(fork, block_bytes)
                    .map_err(|e| e.to_string())?;
                (
                    b.root(),
                    b.slot(),
                    b.proposer_index(),
                    Some(block_bytes.to_vec()),
                    None,
                )
            }
            (true, true) => {
                let b = VersionedBlindedBlock::<P>::from_ssz_bytes(fork, &bytes)
                    .map_err(|e| e.to_string())?;
                (
                    b.root(),
                    b.slot(),
                    b.proposer_index(),
                    Some(bytes.to_vec()),
                    None,
                )
            }
            (false, false) => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let message = v["data"]["block"].clone();
                json_blobs = (v["data"]["kzg_proofs"].clone(), v["data"]["blobs"].clone());
                let b = VersionedBlock::<P>::from_json_value(fork, message.clone())
                    .map_err(|e| e.to_string())?;
                (b.root(), b.slot(), b.proposer_index(), None, Some(message))
            }
            (true, false) => {
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                let message = v["data"].clone();
                let b = VersionedBlindedBlock::<P>::from_json_value(fork, message.clone())
                    .map_err(|e| e.to_string())?;
                (b.root(), b.slot(), b.proposer_index(), None, Some(message))
            }
        };
        if block_slot != slot || proposer != index {
            return Err(format!(
                "block: for slot {block_slot} by {proposer}, asked slot {slot} by {index}"
            ));
        }
        let signature = self.sign(&share, DomainKind::BeaconProposer, epoch, &block_root);
        let path = if blinded {
            "/eth/v2/beacon/blinded_blocks"
        } else {
            "/eth/v2/beacon/blocks"
        };
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Eth-Consensus-Version", fork.as_str());
        let request = match (message_ssz, message_json) {
            (Some(message), _) => {
                let signed = signed_block_ssz(&message, &signature);
                let body = if blinded {
                    signed
                } else {
                    // SignedBlockContents {signed_block, kzg_proofs, blobs}.
                    contents_ssz(&signed, &ssz_blobs)?
                };
                request.header("content-type", SSZ).body(body)
            }
            (None, Some(message)) => {
                let signed = json!({"message": message, "signature": signature});
                let body = if blinded {
                    signed
                } else {
                    json!({"signed_block": signed, "kzg_proofs": json_blobs.0, "blobs": json_blobs.1})
                };
                request.json(&body)
            }
            (None, None) => return Err("internal: no block".into()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST block: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("POST block: HTTP {status}: {text}"));
        }
        Ok(())
    }

    /// For each of the slot's duties whose combined selection proof selects
    /// it: the aggregate (as the middleware decided it), a partial signature
    /// over the `AggregateAndProof`, submitted. Electra on.
    async fn aggregate<P: Preset>(
        &self,
        slot: Slot,
        duties: &[Value],
        data_by_committee: &HashMap<u64, AttestationData>,
    ) -> Result<u64, String> {
        let fork = self.spec.fork_at_slot(slot);
        let epoch = self.spec.epoch_of_slot(slot);
        // The selected aggregators, by committee.
        let mut by_committee: BTreeMap<u64, Vec<(PublicKeyBytes, u64, SignatureBytes)>> =
            BTreeMap::new();
        for d in duties {
            let share = self.check_own_key(d)?;
            let index = quoted(&d["validator_index"])?;
            let committee_index = quoted(&d["committee_index"])?;
            let proof = self
                .selection_proofs
                .lock()
                .ok()
                .and_then(|p| p.get(&(slot, index)).copied());
            let Some(proof) = proof else {
                continue;
            };
            if !is_aggregator(&self.spec, quoted(&d["committee_length"])?, &proof) {
                continue;
            }
            by_committee
                .entry(committee_index)
                .or_default()
                .push((share, index, proof));
        }
        // One task per committee, side by side, as Lighthouse's attestation
        // service spawns them: a client that waited on one committee's
        // aggregate before asking the next could wait on an instance its
        // node's peers (their clients asking in another order) never join.
        let per_committee = by_committee
            .into_iter()
            .map(|(committee_index, aggregators)| {
                self.aggregate_committee::<P>(
                    slot,
                    epoch,
                    committee_index,
                    aggregators,
                    data_by_committee,
                )
            });
        let mut electra_items = Vec::new();
        let mut deneb_items = Vec::new();
        // A committee that failed does not hold back the others' aggregates.
        let mut first_error = None;
        for result in futures::future::join_all(per_committee).await {
            match result {
                Ok((electra, deneb)) => {
                    electra_items.extend(electra);
                    deneb_items.extend(deneb);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let count = (electra_items.len() + deneb_items.len()) as u64;
        if !electra_items.is_empty() {
            self.post_list(
                "/eth/v2/validator/aggregate_and_proofs",
                electra_items,
                Some(fork),
            )
            .await?;
        }
        if !deneb_items.is_empty() {
            // (v1 takes JSON only.)
            self.post_json(
                "/eth/v1/validator/aggregate_and_proofs",
                &json!(deneb_items),
                None,
            )
            .await?;
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(count),
        }
    }

    /// One committee's aggregate (as the middleware decided it) and each of
    /// its selected aggregators' signed `AggregateAndProof`.
    async fn aggregate_committee<P: Preset>(
        &self,
        slot: Slot,
        epoch: Epoch,
        committee_index: u64,
        aggregators: Vec<(PublicKeyBytes, u64, SignatureBytes)>,
        data_by_committee: &HashMap<u64, AttestationData>,
    ) -> Result<(Vec<SignedAggregateAndProofElectra<P>>, Vec<Value>), String> {
        let fork = self.spec.fork_at_slot(slot);
        let data = data_by_committee
            .get(&committee_index)
            .ok_or("aggregate: no attestation data for the committee")?;
        let root = data.tree_hash_root();
        let mut electra_items = Vec::new();
        let mut deneb_items = Vec::new();
        if fork.electra_enabled() {
            let aggregate: AttestationElectra<P> = self
                .get_data(&format!(
                    "/eth/v2/validator/aggregate_attestation?attestation_data_root={root}&slot={slot}&committee_index={committee_index}"
                ))
                .await?;
            if aggregate.data != *data {
                return Err("aggregate: of other data than this client attested to".into());
            }
            for (share, index, proof) in aggregators {
                let message = AggregateAndProofElectra {
                    aggregator_index: index,
                    aggregate: aggregate.clone(),
                    selection_proof: proof,
                };
                let signature = self.sign(&share, DomainKind::AggregateAndProof, epoch, &message);
                electra_items.push(SignedAggregateAndProofElectra { message, signature });
            }
        } else {
            // Before Electra, what Lighthouse's client asks: /eth/v1, the
            // committee named by the data.
            let answer = self
                .get_json(&format!(
                    "/eth/v1/validator/aggregate_attestation?attestation_data_root={root}&slot={slot}"
                ))
                .await?;
            let aggregate: AttestationDeneb<P> = serde_json::from_value(answer["data"].clone())
                .map_err(|e| format!("aggregate: {e}"))?;
            if aggregate.data != *data {
                return Err("aggregate: of other data than this client attested to".into());
            }
            for (share, index, proof) in aggregators {
                let message = AggregateAndProofDeneb {
                    aggregator_index: index,
                    aggregate: aggregate.clone(),
                    selection_proof: proof,
                };
                let signature = self.sign(&share, DomainKind::AggregateAndProof, epoch, &message);
                deneb_items.push(json!(SignedAggregateAndProofDeneb { message, signature }));
            }
        }
        Ok((electra_items, deneb_items))
    }

    async fn attest<P: Preset>(
        &self,
        slot: Slot,
        duties: &[Value],
    ) -> Result<(u64, HashMap<u64, AttestationData>), String> {
        let fork = self.spec.fork_at_slot(slot);
        let mut electra_items = Vec::new();
        let mut deneb_items = Vec::new();
        let mut data_by_committee: HashMap<u64, AttestationData> = HashMap::new();
        for d in duties {
            let share = self.check_own_key(d)?;
            let committee_index = quoted(&d["committee_index"])?;
            let data = match data_by_committee.get(&committee_index) {
                Some(data) => *data,
                None => {
                    let data: AttestationData = self
                        .get_data(&format!(
                            "/eth/v1/validator/attestation_data?slot={slot}&committee_index={committee_index}"
                        ))
                        .await?;
                    if data.slot != slot {
                        return Err(format!(
                            "attestation data for slot {} when {slot} was asked",
                            data.slot
                        ));
                    }
                    data_by_committee.insert(committee_index, data);
                    data
                }
            };
            let signature = self.sign(&share, DomainKind::BeaconAttester, data.target.epoch, &data);
            if fork.electra_enabled() {
                electra_items.push(SingleAttestation {
                    committee_index,
                    attester_index: quoted(&d["validator_index"])?,
                    data,
                    signature,
                });
            } else {
                let length = quoted(&d["committee_length"])? as usize;
                let position = quoted(&d["validator_committee_index"])? as usize;
                let mut aggregation_bits =
                    ssz_types::BitList::with_capacity(length).map_err(|e| format!("{e:?}"))?;
                aggregation_bits
                    .set(position, true)
                    .map_err(|e| format!("{e:?}"))?;
                deneb_items.push(AttestationDeneb::<P> {
                    aggregation_bits,
                    data,
                    signature,
                });
            }
        }
        let count = (electra_items.len() + deneb_items.len()) as u64;
        let path = "/eth/v2/beacon/pool/attestations";
        if fork.electra_enabled() {
            self.post_list(path, electra_items, Some(fork)).await?;
        } else {
            self.post_list(path, deneb_items, Some(fork)).await?;
        }
        Ok((count, data_by_committee))
    }
}

fn quoted(v: &Value) -> Result<u64, String> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("expected a quoted integer, got {v}"))
}

async fn read_json(response: reqwest::Response, path: &str) -> Result<Value, String> {
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{path}: HTTP {status}: {text}"));
    }
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))
}

/// The consensus specs' `is_aggregator` for a committee of `committee_len`.
fn is_aggregator(spec: &ChainSpec, committee_len: u64, selection_proof: &SignatureBytes) -> bool {
    selected(
        selection_proof,
        (committee_len / spec.target_aggregators_per_committee).max(1),
    )
}

/// Whether a selection proof selects its signer: the first 8 bytes of its
/// hash, little endian, divisible by `modulo`.
fn selected(selection_proof: &SignatureBytes, modulo: u64) -> bool {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(selection_proof.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first) % modulo == 0
}

/// Share key → (validator index, sync committee positions).
type SyncDuties = BTreeMap<PublicKeyBytes, (u64, Vec<u64>)>;
