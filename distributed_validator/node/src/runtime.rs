//! `dvnode run`, built-in validator, attester duties (Electra and later):
//! the stages wired in one place.
//!
//! Per slot with attester duties, at the attestation due time: fetch this
//! node's own `attestation_data` (the value it proposes and the chain-split
//! guard), run one QBFT instance over the cluster network, pass the decision
//! through the slashing database (one transaction for the slot), sign with
//! this node's shares (message hashed once), exchange partials, combine at the
//! threshold, verify, and submit `SingleAttestation`s. Block proposals, other
//! duties and the middleware attachment are not wired yet.

use crate::consensus::{decode, encode, P2pAuthenticator};
use crate::decided::{approve_attestation, attestation_allowed};
use crate::duty::{Duty, DutyType};
use crate::parsig::{Combined, ParSigStore, Partial, ValidatorKeys};
use crate::signer::Signer;
use beacon_client::BeaconNodes;
use dv_cluster::{ClusterLock, NodeDir};
use dv_crypto::keystore::read_password_file;
use dv_crypto::{Keystore, PartialSignature, PublicKey, SecretShare};
use dv_types::ssz::{Decode, Encode};
use dv_types::*;
use p2p::{Envelope, Member, Topic};
use qbft::{Action, Config as QbftConfig, Instance, InstanceId, RoundTiming};
use serde::{Deserialize, Serialize};
use slashing_protection::SlashingDatabase;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub struct RunConfig {
    pub data_dir: PathBuf,
    pub beacon_nodes: Vec<String>,
    /// Overrides the listen address the lock gives this node.
    pub p2p_listen: Option<String>,
}

#[derive(Clone, Copy)]
struct AttesterSlot {
    validator: PublicKeyBytes,
    index: u64,
    committee_index: u64,
}

#[derive(Serialize, Deserialize)]
struct PartialsMessage {
    root: Root,
    partials: Vec<(PublicKeyBytes, u64, SignatureBytes)>,
}

struct Running {
    engine: Instance<P2pAuthenticator>,
    start: Instant,
}

pub struct Node {
    me: usize,
    spec: ChainSpec,
    gvr: Root,
    genesis_ms: u64,
    beacon: BeaconNodes,
    db: Arc<SlashingDatabase>,
    net: p2p::Handle,
    /// Signs and checks consensus messages; built once from the lock.
    auth: P2pAuthenticator,
    members: usize,
    signer: Signer,
    parsig: ParSigStore,
    indices: HashMap<PublicKeyBytes, u64>,
    duties: BTreeMap<Slot, Vec<AttesterSlot>>,
    fetched_epochs: HashSet<Epoch>,
    instances: HashMap<Slot, Running>,
    early: HashMap<Slot, Vec<qbft::SignedMessage>>,
    decided: HashMap<Slot, (AttestationData, Root)>,
    waiting: Vec<Combined>,
    timers: BinaryHeap<Reverse<(Instant, Slot, u64)>>,
    incoming: Option<tokio::sync::mpsc::UnboundedReceiver<p2p::Incoming>>,
    /// Slots whose combined attestations went to the beacon node.
    submitted: HashSet<Slot>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A wall-clock instant (unix ms) as a tokio deadline.
fn instant_at(unix_ms: u64) -> Instant {
    let now = now_ms();
    if unix_ms >= now {
        Instant::now() + Duration::from_millis(unix_ms - now)
    } else {
        Instant::now() - Duration::from_millis((now - unix_ms).min(3_600_000))
    }
}

/// This node's shares and every validator's public keys, by validator public key.
type LoadedKeys = (
    HashMap<PublicKeyBytes, SecretShare>,
    HashMap<PublicKeyBytes, ValidatorKeys>,
);

fn load_shares(dir: &NodeDir, lock: &ClusterLock, me: usize) -> Result<LoadedKeys, String> {
    let mut shares = HashMap::new();
    let mut keys = HashMap::new();
    for (k, v) in lock.body.validators.iter().enumerate() {
        let password = read_password_file(&dir.password_path(k)).map_err(|e| e.to_string())?;
        let secret = Keystore::load(&dir.keystore_path(k), &password).map_err(|e| e.to_string())?;
        if secret.public_key().to_bytes() != v.public_shares[me].0 {
            return Err(format!(
                "{}: not this node's share of validator {}",
                dir.keystore_path(k).display(),
                v.public_key
            ));
        }
        let public_shares = v
            .public_shares
            .iter()
            .map(|s| PublicKey::from_bytes(&s.0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cluster lock: validator {}: {e}", v.public_key))?;
        let key =
            PublicKey::from_bytes(&v.public_key.0).map_err(|e| format!("cluster lock: {e}"))?;
        shares.insert(
            v.public_key,
            SecretShare {
                index: me as u64 + 1,
                secret,
            },
        );
        keys.insert(
            v.public_key,
            ValidatorKeys {
                key,
                shares: public_shares,
            },
        );
    }
    Ok((shares, keys))
}

impl Node {
    /// Loads the node's directory, connects to the beacon node and the cluster.
    pub async fn start(cfg: RunConfig) -> Result<Node, String> {
        let dir = NodeDir::new(&cfg.data_dir);
        let lock = ClusterLock::load(&dir.lock_path()).map_err(|e| e.to_string())?;
        let keypair = p2p::load_keypair(&dir.p2p_key_path())?;
        let peers = lock
            .body
            .operators
            .iter()
            .map(|o| {
                o.peer_id
                    .parse::<libp2p_identity::PeerId>()
                    .map_err(|e| format!("cluster lock: peer id {}: {e}", o.peer_id))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let me = peers
            .iter()
            .position(|p| *p == keypair.public().to_peer_id())
            .ok_or("the p2p key is not one of the lock's operators")?;
        let params = lock.body.threshold_params()?;
        let (shares, keys) = load_shares(&dir, &lock, me)?;
        let pubkeys: Vec<PublicKeyBytes> =
            lock.body.validators.iter().map(|v| v.public_key).collect();
        let db = SlashingDatabase::open_in_dir(&cfg.data_dir).map_err(|e| e.to_string())?;
        db.register_validators(&pubkeys)
            .map_err(|e| e.to_string())?;

        let beacon = BeaconNodes::new(&cfg.beacon_nodes, Duration::from_secs(4))
            .map_err(|e| e.to_string())?;
        let genesis = loop {
            match beacon.first_success(|n| n.genesis()).await {
                Ok(g) => break g,
                Err(e) => {
                    tracing::warn!("waiting for a beacon node: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        if genesis.genesis_fork_version != lock.body.fork_version {
            return Err(format!(
                "the beacon node's chain has genesis fork version {}, the cluster lock {}",
                genesis.genesis_fork_version, lock.body.fork_version
            ));
        }
        let spec = beacon
            .first_success(|n| n.spec())
            .await
            .map_err(|e| e.to_string())?;
        db.set_or_check_genesis_validators_root(genesis.genesis_validators_root)
            .map_err(|e| e.to_string())?;
        let ids: Vec<String> = pubkeys.iter().map(|k| k.to_string()).collect();
        let infos = beacon
            .first_success(|n| n.validators(&ids))
            .await
            .map_err(|e| e.to_string())?;
        let indices = infos
            .iter()
            .map(|i| (i.validator.pubkey, i.index))
            .collect();

        let members = lock
            .body
            .operators
            .iter()
            .zip(&peers)
            .map(|(o, p)| {
                o.address
                    .parse()
                    .map(|address| Member {
                        peer_id: *p,
                        address,
                    })
                    .map_err(|e| format!("cluster lock: address {}: {e}", o.address))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let listen = match &cfg.p2p_listen {
            Some(a) => a.parse().map_err(|e| format!("--p2p-listen {a}: {e}"))?,
            None => members[me].address.clone(),
        };
        let (net, incoming) = p2p::start(p2p::Config {
            keypair: keypair.clone(),
            members,
            listen,
            max_message_bytes: 4 * 1024 * 1024,
        })
        .await
        .map_err(|e| e.to_string())?;
        let auth = P2pAuthenticator::new(keypair.clone(), &peers, lock.lock_hash.as_bytes())
            .map_err(|e| format!("consensus keys: {e}"))?;
        let node = Node {
            me,
            spec,
            gvr: genesis.genesis_validators_root,
            genesis_ms: genesis.genesis_time * 1000,
            beacon,
            db: Arc::new(db),
            net,
            members: peers.len(),
            auth,
            signer: Signer::new(shares),
            parsig: ParSigStore::new(params, keys),
            indices,
            duties: BTreeMap::new(),
            fetched_epochs: HashSet::new(),
            instances: HashMap::new(),
            early: HashMap::new(),
            decided: HashMap::new(),
            waiting: Vec::new(),
            timers: BinaryHeap::new(),
            incoming: Some(incoming),
            submitted: HashSet::new(),
        };
        tracing::info!(node = me, validators = pubkeys.len(), "node started");
        Ok(node)
    }

    fn slot_start_ms(&self, slot: Slot) -> u64 {
        self.genesis_ms + slot * self.spec.slot_duration_ms
    }

    fn attestation_due_ms(&self, slot: Slot) -> u64 {
        self.slot_start_ms(slot)
            + self.spec.slot_duration_ms * self.spec.attestation_due_bps / 10_000
    }

    fn current_slot(&self) -> Slot {
        now_ms().saturating_sub(self.genesis_ms) / self.spec.slot_duration_ms
    }

    async fn fetch_duties(&mut self, epoch: Epoch) {
        if self.fetched_epochs.contains(&epoch) {
            return;
        }
        let indices: Vec<u64> = self.indices.values().copied().collect();
        match self
            .beacon
            .first_success(|n| n.attester_duties(epoch, &indices))
            .await
        {
            Ok(duties) => {
                self.fetched_epochs.insert(epoch);
                for d in duties.duties {
                    self.duties.entry(d.slot).or_default().push(AttesterSlot {
                        validator: d.pubkey,
                        index: d.validator_index,
                        committee_index: d.committee_index,
                    });
                }
            }
            Err(e) => tracing::warn!(epoch, "attester duties: {e}"),
        }
    }

    fn deadline(&self, slot: Slot) -> Instant {
        instant_at(self.slot_start_ms(slot + 2))
    }

    fn apply(&mut self, slot: Slot, start: Instant, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Broadcast(m) => {
                    let env = Envelope::new(
                        slot,
                        DutyType::Attester.code(),
                        Topic::Consensus,
                        encode(&m),
                    );
                    let _ = self.net.broadcast(env, self.deadline(slot));
                }
                Action::SendTo(to, m) => {
                    let env = Envelope::new(
                        slot,
                        DutyType::Attester.code(),
                        Topic::Consensus,
                        encode(&m),
                    );
                    let _ = self.net.send(to, env, self.deadline(slot));
                }
                Action::ArmTimer { round, deadline } => {
                    self.timers.push(Reverse((start + deadline, slot, round)))
                }
                Action::Decide { value, .. } => self.on_decided(slot, &value),
            }
        }
    }

    async fn start_duty(&mut self, slot: Slot) {
        let epoch = self.spec.epoch_of_slot(slot);
        self.fetch_duties(epoch).await;
        self.fetch_duties(epoch + 1).await;
        let Some(duties) = self.duties.get(&slot).cloned() else {
            return;
        };
        let own = match self
            .beacon
            .first_success(|n| n.attestation_data(slot, 0))
            .await
        {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(
                    slot,
                    duty = "attester",
                    "own attestation data unavailable: {e}"
                );
                None
            }
        };
        let validators: Vec<PublicKeyBytes> = duties.iter().map(|d| d.validator).collect();
        let db = self.db.clone();
        let (spec, gvr) = (self.spec.clone(), self.gvr);
        // Validity: right slot, index 0, the same source/target as our own beacon node, and the slashing DB allows it.
        let is_valid = Box::new(move |value: &[u8]| {
            let Ok(data) = AttestationData::from_ssz_bytes(value) else {
                return false;
            };
            // Without our own beacon node's view we cannot rule out a chain split: refuse.
            let same_chain =
                own.is_some_and(|o| o.source == data.source && o.target == data.target);
            let domain = spec.domain(DomainKind::BeaconAttester, data.target.epoch, gvr);
            let root = compute_signing_root(&data, domain);
            data.slot == slot
                && data.index == 0
                && same_chain
                && attestation_allowed(&db, &data, root, &validators).is_ok()
        });
        let auth = self.auth.clone();
        let start = instant_at(self.attestation_due_ms(slot));
        let cfg = QbftConfig {
            instance: InstanceId {
                slot,
                duty: DutyType::Attester.code(),
            },
            members: self.members,
            me: self.me,
            leader: Arc::new(qbft::default_leader),
            is_valid,
            timing: RoundTiming {
                first_round: Duration::from_millis(self.spec.slot_duration_ms / 3),
                round: Duration::from_millis(self.spec.slot_duration_ms / 3),
            },
        };
        let input = own.map(|d| Arc::from(d.as_ssz_bytes()));
        let (engine, actions) = Instance::new(cfg, auth, input);
        self.instances.insert(slot, Running { engine, start });
        self.apply(slot, start, actions);
        for m in self.early.remove(&slot).unwrap_or_default() {
            self.on_consensus(slot, m);
        }
    }

    fn on_consensus(&mut self, slot: Slot, msg: qbft::SignedMessage) {
        let Some(running) = self.instances.get_mut(&slot) else {
            if slot + 2 >= self.current_slot() {
                self.early.entry(slot).or_default().push(msg);
            }
            return;
        };
        let start = running.start;
        match running.engine.handle_message(msg) {
            Ok(actions) => self.apply(slot, start, actions),
            Err(qbft::Reject::Duplicate) => {}
            Err(e) => tracing::debug!(slot, duty = "attester", "consensus message refused: {e}"),
        }
    }

    fn on_decided(&mut self, slot: Slot, value: &[u8]) {
        let Ok(data) = AttestationData::from_ssz_bytes(value) else {
            tracing::error!(
                slot,
                duty = "attester",
                "decided value is not attestation data"
            );
            return;
        };
        let validators: Vec<PublicKeyBytes> = self
            .duties
            .get(&slot)
            .map(|d| d.iter().map(|x| x.validator).collect())
            .unwrap_or_default();
        let domain = self
            .spec
            .domain(DomainKind::BeaconAttester, data.target.epoch, self.gvr);
        let root = compute_signing_root(&data, domain);
        let approval = match approve_attestation(&self.db, &data, root, &validators) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(
                    slot,
                    duty = "attester",
                    "slashing database: {e}; not signing"
                );
                return;
            }
        };
        for (v, reason) in &approval.refused {
            tracing::warn!(slot, duty = "attester", validator = %v, "slashing protection refused: {reason}");
        }
        self.decided.insert(slot, (data, root));
        let partials = self.signer.sign_root(root, &approval.approved);
        let message = PartialsMessage {
            root,
            partials: partials
                .iter()
                .map(|(v, p)| (*v, p.index, SignatureBytes(p.signature.to_bytes())))
                .collect(),
        };
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        let _ = self.net.broadcast(
            Envelope::new(
                slot,
                DutyType::Attester.code(),
                Topic::PartialSignatures,
                payload,
            ),
            self.deadline(slot),
        );
        let own: Vec<Partial> = partials
            .into_iter()
            .map(|(validator, signature)| Partial {
                validator,
                signature,
            })
            .collect();
        self.store_partials(slot, root, &own, None);
    }

    fn store_partials(
        &mut self,
        slot: Slot,
        root: Root,
        partials: &[Partial],
        from: Option<usize>,
    ) {
        let (combined, errors) = self.parsig.insert(
            Duty {
                slot,
                kind: DutyType::Attester,
            },
            root,
            partials,
        );
        for e in errors {
            tracing::warn!(slot, duty = "attester", peer = ?from, "partial signature dropped: {e}");
        }
        self.waiting.extend(combined);
    }

    fn on_partials(&mut self, slot: Slot, from: usize, payload: &[u8]) {
        let Ok(message) = serde_json::from_slice::<PartialsMessage>(payload) else {
            tracing::warn!(slot, peer = from, "malformed partial signatures message");
            return;
        };
        let mut partials = Vec::new();
        for (validator, index, sig) in message.partials {
            if index != from as u64 + 1 {
                tracing::warn!(
                    slot,
                    peer = from,
                    "partial for share {index} from the holder of share {}",
                    from + 1
                );
                continue;
            }
            match PartialSignature::from_bytes(index, &sig.0) {
                Ok(signature) => partials.push(Partial {
                    validator,
                    signature,
                }),
                Err(e) => tracing::warn!(slot, peer = from, "bad partial signature: {e}"),
            }
        }
        self.store_partials(slot, message.root, &partials, Some(from));
    }

    async fn submit_ready(&mut self) {
        let waiting = std::mem::take(&mut self.waiting);
        let mut by_slot: BTreeMap<Slot, Vec<SingleAttestation>> = BTreeMap::new();
        for c in waiting {
            let slot = c.duty.slot;
            match self.decided.get(&slot) {
                Some((data, root)) if *root == c.root => {
                    let duty = self
                        .duties
                        .get(&slot)
                        .and_then(|d| d.iter().find(|x| x.validator == c.validator).copied());
                    if let Some(duty) = duty {
                        by_slot.entry(slot).or_default().push(SingleAttestation {
                            committee_index: duty.committee_index,
                            attester_index: duty.index,
                            data: *data,
                            signature: SignatureBytes(c.signature.to_bytes()),
                        });
                    }
                }
                Some(_) => tracing::warn!(
                    slot,
                    "combined a signature over a root this node did not decide"
                ),
                None => self.waiting.push(c),
            }
        }
        for (slot, items) in by_slot {
            let fork = self.spec.fork_at_slot(slot);
            if !fork.electra_enabled() {
                tracing::error!(
                    slot,
                    duty = "attester",
                    "pre-Electra attestation submission is not implemented"
                );
                continue;
            }
            let latency = now_ms().saturating_sub(self.slot_start_ms(slot));
            self.submitted.insert(slot);
            match self
                .beacon
                .first_success(|n| n.submit_single_attestations(fork, &items))
                .await
            {
                Ok(()) => tracing::info!(
                    slot,
                    duty = "attester",
                    count = items.len(),
                    latency_ms = latency,
                    "duty ok: attestations submitted"
                ),
                Err(e) => tracing::error!(
                    slot,
                    duty = "attester",
                    "duty failed: beacon node error: {e}"
                ),
            }
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let Some(mut incoming) = self.incoming.take() else {
            return;
        };
        tokio::pin!(shutdown);
        let mut next_slot = self.current_slot() + 1;
        loop {
            let due = instant_at(self.attestation_due_ms(next_slot));
            let timer = self
                .timers
                .peek()
                .map(|Reverse((at, _, _))| *at)
                .unwrap_or(due);
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep_until(due.min(timer)) => {
                    let now = Instant::now();
                    while let Some(Reverse((at, slot, round))) = self.timers.peek().copied() {
                        if at > now { break; }
                        self.timers.pop();
                        if let Some(running) = self.instances.get_mut(&slot) {
                            let start = running.start;
                            let actions = running.engine.handle_timeout(round);
                            self.apply(slot, start, actions);
                        }
                    }
                    if now >= due {
                        let slot = next_slot;
                        next_slot += 1;
                        self.start_duty(slot).await;
                        self.prune(slot);
                    }
                }
                Some(msg) = incoming.recv() => {
                    let slot = msg.envelope.slot;
                    match msg.envelope.topic {
                        Topic::Consensus => match decode(&msg.envelope.payload, self.members) {
                            Ok(m) if m.message.sender == msg.from => self.on_consensus(slot, m),
                            Ok(_) => tracing::warn!(peer = msg.from, "consensus message signed as another member"),
                            Err(e) => tracing::warn!(peer = msg.from, "{e}"),
                        },
                        Topic::PartialSignatures => self.on_partials(slot, msg.from, &msg.envelope.payload),
                    }
                }
            }
            self.submit_ready().await;
        }
    }

    /// Reports duties whose time is over (one outcome line each), then drops old state.
    fn prune(&mut self, current: Slot) {
        let expired = current.saturating_sub(2);
        let over: Vec<Slot> = self
            .instances
            .keys()
            .copied()
            .filter(|s| *s == expired)
            .collect();
        for slot in over {
            if !self.decided.contains_key(&slot) {
                tracing::error!(slot, duty = "attester", "duty failed: no consensus");
            } else if !self.submitted.contains(&slot) {
                tracing::error!(
                    slot,
                    duty = "attester",
                    "duty failed: insufficient partial signatures"
                );
            }
        }
        let keep_from = current.saturating_sub(2 * self.spec.slots_per_epoch);
        self.submitted.retain(|s| *s >= keep_from);
        self.instances.retain(|s, _| *s >= keep_from);
        self.early.retain(|s, _| *s + 2 >= current);
        self.decided.retain(|s, _| *s >= keep_from);
        self.duties.retain(|s, _| *s >= keep_from);
        self.parsig.prune(keep_from);
    }
}
