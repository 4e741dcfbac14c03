//! The simulated beacon chain's state and rules, without HTTP.
//!
//! Interop validators `0..n`, all active from genesis with 32 ETH, on the
//! minimal or the mainnet preset (`P`), every fork up to the chosen one
//! active from genesis. Committees, proposers and the sync committee are
//! the consensus specs' (see [`crate::committees`]; the one stand-in is a
//! fixed RANDAO mix). The head is the highest block received; checkpoints
//! are the blocks at epoch starts, and the source of epoch `e` is the
//! target of `e - 1` (everything justifies, nothing reorgs).
//!
//! It is strict because it is the judge: every signature is verified with the
//! real domain, data that does not match the chain is refused with the reason
//! a beacon node would give, and any slashable pair a validator ever sends is
//! recorded, whether or not it was accepted.
//!
//! It counts duties the way the chain rewards them, not the way they arrive:
//! - An unaggregated attestation is kept only when some validator of its
//!   committee subscribed as aggregator for that slot (a beacon node listens
//!   on an attestation subnet only then); blocks carry the best aggregates
//!   received through `aggregate_and_proofs` and those it can make from what
//!   it kept, up to `MAX_ATTESTATIONS` (Electra: `MAX_ATTESTATIONS_ELECTRA`
//!   on-chain aggregates across committees); an attestation counts once a
//!   block on the chain includes it, with its inclusion delay and its
//!   timely source, target and head flags as Deneb's
//!   `get_attestation_participation_flag_indices` sets them.
//! - A block's sync aggregate is built from the best contribution received
//!   per subcommittee; a sync committee message counts once the next
//!   block's sync aggregate carries it.
//!
//! Voluntary exits are judged as `process_voluntary_exit` does (active long
//! enough by SHARD_COMMITTEE_PERIOD, no exit before, epoch not in the future,
//! signature under EIP-7044's domain), pooled, and count once a block on the
//! chain includes them; the exit epoch set is `compute_activation_exit_epoch`
//! of the inclusion epoch (no churn limit: the simulated chain's validator
//! set is small). Exited validators keep their duties here: runs end before
//! an exit epoch comes.

use crate::committees::{EpochCommittees, Shuffling, ShufflingParams};
use crate::verify::{SignedItem, Verifier};
use dv_crypto::{interop_secret_key, PublicKey, Signature};
use dv_types::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use ssz_types::typenum::Unsigned;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;
use tree_hash::TreeHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub message: String,
    /// Per-item failures of a batch submission (`IndexedErrorMessage`).
    pub failures: Vec<(usize, String)>,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            failures: Vec::new(),
        }
    }
}

/// One attester duty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttesterDuty {
    pub validator_index: u64,
    pub slot: Slot,
    pub committee_index: u64,
    pub committee_length: u64,
    pub committees_at_slot: u64,
    pub validator_committee_index: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub validators: usize,
    /// How the chain knows who had to aggregate.
    pub aggregators_known_from: String,
    pub fork: String,
    pub preset: String,
    /// Attestations a block on the chain included (one per validator and epoch).
    pub attestations_ok: u64,
    /// Unaggregated attestations accepted (first per validator and epoch).
    pub attestations_received: u64,
    /// Of those, the ones not kept: no aggregator of their committee had
    /// subscribed for the slot (first per validator and epoch, as above).
    pub attestations_unsubscribed: u64,
    pub attestations_rejected: u64,
    pub proposals_ok: u64,
    pub proposals_rejected: u64,
    /// Blocks published again after they landed (answered as Lodestar does).
    pub duplicate_blocks: u64,
    pub invalid_signatures: u64,
    pub aggregates_ok: u64,
    pub aggregates_rejected: u64,
    pub sync_messages_ok: u64,
    pub contributions_ok: u64,
    pub sync_rejected: u64,
    pub registrations_ok: u64,
    pub registrations_rejected: u64,
    /// Voluntary exits accepted into the pool, and refused.
    pub exits_accepted: u64,
    pub exits_rejected: u64,
    /// Validators whose exit a block on the chain included, with the exit epoch it set.
    pub exits_included: BTreeMap<u64, Epoch>,
    /// Every slashable pair received, described.
    pub slashable: Vec<String>,
    /// Arrival of each accepted attestation, in ms after its slot started.
    pub attestation_delays_ms: Vec<u64>,
    /// Arrival of each accepted attestation, in ms after its due time
    /// (`ATTESTATION_DUE_BPS` into the slot; 0 when it came earlier).
    pub attestation_after_due_ms: Vec<u64>,
    /// The latest arrival of an accepted attestation of each slot, in ms
    /// after that slot started (deadline checks per slot).
    pub latest_attestation_by_slot: BTreeMap<Slot, u64>,
    /// Included attestations by inclusion delay (slots), as counts.
    pub inclusion_delays: BTreeMap<u64, u64>,
    /// Why submissions were refused, with counts.
    pub rejections: BTreeMap<String, u64>,
}

/// The kind of a submitted batch: which report counters its outcomes go to.
#[derive(Debug, Clone, Copy)]
enum Batch {
    Attestations,
    Aggregates,
    SyncMessages,
    Contributions,
    Registrations,
}

impl Batch {
    fn noun(self) -> &'static str {
        match self {
            Batch::Attestations => "attestations",
            Batch::Aggregates => "aggregates",
            Batch::SyncMessages => "sync committee messages",
            Batch::Contributions => "contributions",
            Batch::Registrations => "validator registrations",
        }
    }
}

impl Report {
    /// Accepted attestations are counted where they are recorded.
    fn count(&mut self, batch: Batch, accepted: bool) {
        match (batch, accepted) {
            (Batch::Attestations, true) => {}
            (Batch::Attestations, false) => self.attestations_rejected += 1,
            (Batch::Aggregates, true) => self.aggregates_ok += 1,
            (Batch::Aggregates, false) => self.aggregates_rejected += 1,
            (Batch::SyncMessages, true) => self.sync_messages_ok += 1,
            (Batch::Contributions, true) => self.contributions_ok += 1,
            (Batch::SyncMessages | Batch::Contributions, false) => self.sync_rejected += 1,
            (Batch::Registrations, true) => self.registrations_ok += 1,
            (Batch::Registrations, false) => self.registrations_rejected += 1,
        }
    }
}

/// How a validator's attestation of an epoch made it on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inclusion {
    /// Slots from the attestation's slot to the including block's.
    pub delay: u64,
    pub source_timely: bool,
    pub target_timely: bool,
    pub head_timely: bool,
}

/// Attestations of one (data, committee): the data, the members (by
/// committee position) with their verified signatures.
struct Pooled {
    data: AttestationData,
    signatures: BTreeMap<usize, Signature>,
}

/// An aggregate of one committee: its data, the positions it covers and
/// their aggregate signature (verified).
#[derive(Clone)]
struct CommitteeAggregate {
    data: AttestationData,
    committee_index: u64,
    bits: Vec<bool>,
    signature: Signature,
}

impl CommitteeAggregate {
    fn count(&self) -> usize {
        self.bits.iter().filter(|b| **b).count()
    }

    fn disjoint(&self, other: &[bool]) -> bool {
        self.bits.iter().zip(other).all(|(a, b)| !(*a && *b))
    }

    /// Adds the positions of a disjoint `other` (same data and committee).
    fn merge(&mut self, other: &CommitteeAggregate) {
        if let Some(sum) = Signature::aggregate(&[self.signature, other.signature]) {
            for (a, b) in self.bits.iter_mut().zip(&other.bits) {
                *a |= *b;
            }
            self.signature = sum;
        }
    }
}

/// One epoch's committees and, by validator, its duty.
struct EpochDuties {
    committees: EpochCommittees,
    by_validator: Vec<Option<AttesterDuty>>,
}

/// Epochs of committees kept computed.
const CACHED_EPOCHS: usize = 8;

pub struct Chain<P: Preset = Minimal> {
    pub spec: ChainSpec,
    pub fork: ForkName,
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    /// The validator keys and the memo of verified signatures (shared with
    /// the server, which verifies batches outside the chain's lock).
    verifier: Verifier,
    key_bytes: Vec<PublicKeyBytes>,
    /// Validator index by public key.
    index_by_key: HashMap<PublicKeyBytes, u64>,
    shuffling: Shuffling,
    epoch_duties: RefCell<BTreeMap<Epoch, Arc<EpochDuties>>>,
    proposers: RefCell<HashMap<Slot, u64>>,
    sync_committees: RefCell<BTreeMap<u64, Arc<Vec<u64>>>>,
    /// Canonical blocks by slot (at most one per slot).
    blocks: BTreeMap<Slot, (Root, BeaconBlockHeader)>,
    /// The same blocks in full, with their signatures (served on `GET /eth/v2/beacon/blocks/{id}`).
    signed_blocks: BTreeMap<Slot, (VersionedBlock<P>, SignatureBytes)>,
    known_roots: HashSet<Root>,
    attestations: HashMap<u64, Vec<AttestationData>>,
    /// First accepted unaggregated attestation per (validator, epoch).
    received_attestations: HashSet<(u64, Epoch)>,
    /// How each (validator, epoch) attestation was included.
    included: HashMap<(u64, Epoch), Inclusion>,
    /// Positions already on chain, by (data root, committee).
    included_bits: HashMap<(Root, u64), Vec<bool>>,
    landed_proposals: HashSet<Slot>,
    /// (slot, committee) some validator subscribed to as aggregator.
    subscriptions: HashSet<(Slot, u64)>,
    /// Kept unaggregated attestations by (data root, committee).
    pool: HashMap<(Root, u64), Pooled>,
    /// The best aggregate received per (data root, committee).
    received_aggregates: HashMap<(Root, u64), CommitteeAggregate>,
    /// Accepted aggregates: (slot, aggregator).
    landed_aggregates: HashSet<(Slot, u64)>,
    /// Accepted sync committee messages by (slot, block root): position → signature.
    sync_pool: HashMap<(Slot, Root), BTreeMap<u64, Signature>>,
    /// The best contribution received per (slot, block root, subcommittee): bits, signature.
    best_contributions: HashMap<(Slot, Root, u64), (Vec<bool>, Signature)>,
    /// (slot, validator) whose sync committee message a block's sync aggregate carried.
    sync_included: HashSet<(Slot, u64)>,
    /// Accepted contributions: (slot, subcommittee, aggregator).
    landed_contributions: HashSet<(Slot, u64, u64)>,
    /// Selection outcomes computed for the summaries, by (slot, validator, subcommittee).
    selected_memo: RefCell<HashMap<(Slot, u64, u64), bool>>,
    /// Whether the validators are the interop keys (see [`Self::with_keys`]).
    interop: bool,
    pub report: Report,
    /// Builder mode: block production answers blinded blocks, which come
    /// back signed on the blinded endpoint and are unblinded from here.
    pub builder: bool,
    /// Full blocks this chain produced (with their blobs), by block root.
    produced: HashMap<Root, (VersionedBlock<P>, BlockBlobs)>,
    /// Fee recipient of each validator registered with the builder.
    pub registered: BTreeMap<u64, ExecutionAddress>,
    /// Verified voluntary exits waiting for a block, by validator.
    exit_pool: BTreeMap<u64, SignedVoluntaryExit>,
    preset: PhantomData<P>,
}

/// MAXIMUM_GOSSIP_CLOCK_DISPARITY of the p2p specs.
const MAX_CLOCK_DISPARITY_MS: u64 = 500;

/// MIN_ATTESTATION_INCLUSION_DELAY.
const MIN_INCLUSION_DELAY: u64 = 1;

/// A new head, for the event stream.
#[derive(Debug, Clone, Serialize)]
pub struct HeadEvent {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    pub block: Root,
    pub state: Root,
    pub epoch_transition: bool,
    pub previous_duty_dependent_root: Root,
    pub current_duty_dependent_root: Root,
    pub execution_optimistic: bool,
}

fn bits_of<N: Unsigned + Clone>(bits: &ssz_types::BitList<N>) -> Vec<bool> {
    (0..bits.len())
        .map(|i| bits.get(i).unwrap_or(false))
        .collect()
}

fn bitlist<N: Unsigned + Clone>(bits: &[bool]) -> Result<ssz_types::BitList<N>, String> {
    let mut out = ssz_types::BitList::with_capacity(bits.len()).map_err(|e| format!("{e:?}"))?;
    for (i, set) in bits.iter().enumerate() {
        out.set(i, *set).map_err(|e| format!("{e:?}"))?;
    }
    Ok(out)
}

fn set_positions(bits: &[bool]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i)
}

/// The spec's `integer_squareroot`.
fn integer_squareroot(n: u64) -> u64 {
    let mut x = (n as f64).sqrt() as u64;
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

fn selected_by(selection_proof: &SignatureBytes, modulo: u64) -> bool {
    let hash = Sha256::digest(selection_proof.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first) % modulo.max(1) == 0
}

impl<P: Preset> Chain<P> {
    /// A chain of `validators` interop validators at `fork`, `slot_ms` per slot, starting at `genesis_time` (unix seconds).
    pub fn new(validators: usize, fork: ForkName, slot_ms: u64, genesis_time: u64) -> Self {
        let keys = (0..validators as u64)
            .map(|i| interop_secret_key(i).public_key())
            .collect();
        Self::with_keys(keys, true, fork, slot_ms, genesis_time)
    }

    /// A chain whose genesis validators are `keys` (index = position). With
    /// `interop`, they are the interop keys and the chain makes their
    /// selection proofs itself to know every aggregator; without, it knows
    /// only the aggregators whose verified selection proofs it received, so
    /// it cannot count an aggregation nobody submitted as missed.
    pub fn with_keys(
        keys: Vec<PublicKey>,
        interop: bool,
        fork: ForkName,
        slot_ms: u64,
        genesis_time: u64,
    ) -> Self {
        let validators = keys.len();
        assert!(validators > 0, "at least one validator");
        let mainnet = P::NAME == Mainnet::NAME;
        let mut spec = if mainnet {
            ChainSpec::mainnet()
        } else {
            ChainSpec::minimal()
        };
        spec.config_name = "dv-simulated".into();
        spec.slot_duration_ms = slot_ms;
        for entry in spec.fork_schedule.forks.iter_mut() {
            entry.2 = if entry.0 <= fork { 0 } else { FAR_FUTURE_EPOCH };
        }
        let params = if mainnet {
            ShufflingParams::MAINNET
        } else {
            ShufflingParams::MINIMAL
        };
        let key_bytes: Vec<PublicKeyBytes> =
            keys.iter().map(|k| PublicKeyBytes(k.to_bytes())).collect();
        let index_by_key = key_bytes
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i as u64))
            .collect();
        let genesis_validators_root = Root::from(<[u8; 32]>::from(Sha256::digest(
            b"dv simulated beacon chain",
        )));
        let genesis = BeaconBlockHeader {
            slot: 0,
            proposer_index: 0,
            parent_root: Root::ZERO,
            state_root: state_root_for(Root::ZERO, 0),
            body_root: Root::ZERO,
        };
        let genesis_root = genesis.tree_hash_root();
        let mut chain = Self {
            spec,
            fork,
            genesis_time,
            genesis_validators_root,
            verifier: Verifier::new(keys),
            key_bytes,
            index_by_key,
            shuffling: Shuffling::new(params, validators as u64),
            epoch_duties: RefCell::new(BTreeMap::new()),
            proposers: RefCell::new(HashMap::new()),
            sync_committees: RefCell::new(BTreeMap::new()),
            blocks: BTreeMap::new(),
            signed_blocks: BTreeMap::new(),
            known_roots: HashSet::new(),
            attestations: HashMap::new(),
            received_attestations: HashSet::new(),
            included: HashMap::new(),
            included_bits: HashMap::new(),
            landed_proposals: HashSet::new(),
            subscriptions: HashSet::new(),
            pool: HashMap::new(),
            received_aggregates: HashMap::new(),
            landed_aggregates: HashSet::new(),
            sync_pool: HashMap::new(),
            best_contributions: HashMap::new(),
            sync_included: HashSet::new(),
            landed_contributions: HashSet::new(),
            selected_memo: RefCell::new(HashMap::new()),
            interop,
            builder: false,
            produced: HashMap::new(),
            registered: BTreeMap::new(),
            exit_pool: BTreeMap::new(),
            report: Report {
                validators,
                aggregators_known_from: if interop {
                    "interop keys (every aggregator)"
                } else {
                    "received selection proofs (an aggregation nobody submitted is not counted)"
                }
                .into(),
                fork: fork.to_string(),
                preset: P::NAME.to_string(),
                ..Report::default()
            },
            preset: PhantomData,
        };
        chain.blocks.insert(0, (genesis_root, genesis));
        chain.known_roots.insert(genesis_root);
        chain
    }

    pub fn validator_count(&self) -> usize {
        self.verifier.keys().len()
    }

    pub fn pubkey(&self, index: u64) -> Option<PublicKeyBytes> {
        self.key_bytes.get(index as usize).copied()
    }

    pub fn index_of(&self, pubkey: &PublicKeyBytes) -> Option<u64> {
        self.index_by_key.get(pubkey).copied()
    }

    /// The signature checks, for verifying a submission outside the chain's lock.
    pub fn verifier(&self) -> Verifier {
        self.verifier.clone()
    }

    pub fn slot_start_ms(&self, slot: Slot) -> u64 {
        (self.genesis_time * 1000).saturating_add(slot.saturating_mul(self.spec.slot_duration_ms))
    }

    /// The current slot at `now_ms` (unix ms); slot 0 before genesis.
    pub fn current_slot(&self, now_ms: u64) -> Slot {
        now_ms.saturating_sub(self.genesis_time * 1000) / self.spec.slot_duration_ms
    }

    pub fn head(&self) -> (Slot, Root) {
        let (slot, (root, _)) = self
            .blocks
            .iter()
            .next_back()
            .map(|(s, b)| (*s, *b))
            .unwrap_or((0, (Root::ZERO, BeaconBlockHeader::default())));
        (slot, root)
    }

    /// The root of the latest block at or before `slot`.
    fn block_root_at(&self, slot: Slot) -> Root {
        self.blocks
            .range(..=slot)
            .next_back()
            .map(|(_, (root, _))| *root)
            .unwrap_or(Root::ZERO)
    }

    /// The latest block at or before `epoch`'s first slot on the chain that
    /// ends in `head` (the checkpoint block a vote for `head` implies).
    fn epoch_boundary_ancestor(&self, head: Root, epoch: Epoch) -> Option<Root> {
        let boundary = self.spec.start_slot_of_epoch(epoch);
        let mut root = head;
        loop {
            let header = self
                .blocks
                .values()
                .rev()
                .find(|(r, _)| *r == root)
                .map(|(_, h)| *h)?;
            if header.slot <= boundary {
                return Some(root);
            }
            root = header.parent_root;
        }
    }

    /// The block `id` names (`head`, a slot, or a 0x root), as the Beacon
    /// API's block ids read: 404 when there is none (the genesis block, which
    /// this chain does not hold in full, included), 400 for a malformed id.
    pub fn signed_block(&self, id: &str) -> Result<&(VersionedBlock<P>, SignatureBytes), ApiError> {
        let not_found = || ApiError::new(404, format!("NOT_FOUND: beacon block {id}"));
        let slot = match id {
            "head" => self.head().0,
            "genesis" => return Err(not_found()),
            _ if id.starts_with("0x") => {
                let root: Root = id
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid block id: {id}")))?;
                self.blocks
                    .iter()
                    .find(|(_, (r, _))| *r == root)
                    .map(|(s, _)| *s)
                    .ok_or_else(not_found)?
            }
            _ => id
                .parse::<Slot>()
                .map_err(|_| ApiError::bad_request(format!("invalid block id: {id}")))?,
        };
        self.signed_blocks.get(&slot).ok_or_else(not_found)
    }

    pub fn genesis_block_root(&self) -> Root {
        self.block_root_at(0)
    }

    /// The block root duties of `epoch` depend on, as the Beacon API defines
    /// `dependent_root`: attester duties on the last block before the
    /// previous epoch, proposer duties on the last block before the epoch
    /// (the genesis block when that slot is before genesis).
    pub fn dependent_root(&self, epoch: Epoch, attester: bool) -> Root {
        let base = if attester {
            epoch.saturating_sub(1)
        } else {
            epoch
        };
        match self.spec.start_slot_of_epoch(base).checked_sub(1) {
            Some(slot) => self.block_root_at(slot),
            None => self.genesis_block_root(),
        }
    }

    fn checkpoint(&self, epoch: Epoch) -> Checkpoint {
        Checkpoint {
            epoch,
            root: self.block_root_at(self.spec.start_slot_of_epoch(epoch)),
        }
    }

    fn duties_of(&self, epoch: Epoch) -> Arc<EpochDuties> {
        if let Some(duties) = self.epoch_duties.borrow().get(&epoch) {
            return Arc::clone(duties);
        }
        let committees = self.shuffling.epoch_committees(epoch);
        let mut by_validator = vec![None; self.verifier.keys().len()];
        let start = self.spec.start_slot_of_epoch(epoch);
        for (offset, slot_committees) in committees.slots.iter().enumerate() {
            for (index, members) in slot_committees.iter().enumerate() {
                for (position, v) in members.iter().enumerate() {
                    if let Some(entry) = by_validator.get_mut(*v as usize) {
                        *entry = Some(AttesterDuty {
                            validator_index: *v,
                            slot: start + offset as u64,
                            committee_index: index as u64,
                            committee_length: members.len() as u64,
                            committees_at_slot: slot_committees.len() as u64,
                            validator_committee_index: position as u64,
                        });
                    }
                }
            }
        }
        let duties = Arc::new(EpochDuties {
            committees,
            by_validator,
        });
        let mut cache = self.epoch_duties.borrow_mut();
        cache.insert(epoch, Arc::clone(&duties));
        while cache.len() > CACHED_EPOCHS {
            cache.pop_first();
        }
        duties
    }

    pub fn attester_duty(&self, validator_index: u64, epoch: Epoch) -> Option<AttesterDuty> {
        self.duties_of(epoch)
            .by_validator
            .get(validator_index as usize)
            .copied()
            .flatten()
    }

    /// The members of committee `index` at `slot`, in committee order.
    pub fn committee(&self, slot: Slot, index: u64) -> Option<Vec<u64>> {
        self.duties_of(self.spec.epoch_of_slot(slot))
            .committees
            .committees_at(slot)
            .get(index as usize)
            .cloned()
    }

    /// Every committee of `slot`.
    pub fn committees_at(&self, slot: Slot) -> Vec<Vec<u64>> {
        self.duties_of(self.spec.epoch_of_slot(slot))
            .committees
            .committees_at(slot)
            .to_vec()
    }

    /// The proposer of `slot` (the spec's `compute_proposer_index`).
    pub fn proposer_of(&self, slot: Slot) -> u64 {
        if let Some(p) = self.proposers.borrow().get(&slot) {
            return *p;
        }
        let proposer = self.shuffling.proposer(slot, self.fork);
        let mut cache = self.proposers.borrow_mut();
        if cache.len() > 4 * self.spec.slots_per_epoch as usize {
            cache.clear();
        }
        cache.insert(slot, proposer);
        proposer
    }

    /// The sync committee (validator by position) in force at `epoch`.
    pub fn sync_committee(&self, epoch: Epoch) -> Arc<Vec<u64>> {
        let period = epoch / self.spec.epochs_per_sync_committee_period.max(1);
        if let Some(c) = self.sync_committees.borrow().get(&period) {
            return Arc::clone(c);
        }
        let committee = Arc::new(self.shuffling.sync_committee(period, self.fork));
        let mut cache = self.sync_committees.borrow_mut();
        cache.insert(period, Arc::clone(&committee));
        while cache.len() > 3 {
            cache.pop_first();
        }
        committee
    }

    /// The sync committee positions of `validator` at `epoch`.
    pub fn sync_positions(&self, validator: u64, epoch: Epoch) -> Vec<u64> {
        self.sync_committee(epoch)
            .iter()
            .enumerate()
            .filter(|(_, v)| **v == validator)
            .map(|(p, _)| p as u64)
            .collect()
    }

    /// `attestation_data` as a beacon node answers it for `slot` (at `now_ms`).
    pub fn attestation_data(
        &self,
        slot: Slot,
        committee_index: u64,
        now_ms: u64,
    ) -> Result<AttestationData, ApiError> {
        if slot > self.current_slot(now_ms) {
            return Err(ApiError::bad_request(format!(
                "slot {slot} is in the future"
            )));
        }
        let epoch = self.spec.epoch_of_slot(slot);
        Ok(AttestationData {
            slot,
            index: if self.fork.electra_enabled() {
                0
            } else {
                committee_index
            },
            beacon_block_root: self.block_root_at(slot),
            source: self.checkpoint(epoch.saturating_sub(1)),
            target: self.checkpoint(epoch),
        })
    }

    fn reject(&mut self, reason: &str) {
        *self
            .report
            .rejections
            .entry(reason.to_string())
            .or_default() += 1;
    }

    fn verify(
        &mut self,
        validator: u64,
        root: Root,
        signature: &SignatureBytes,
    ) -> Result<(), String> {
        let key = *self
            .verifier
            .keys()
            .get(validator as usize)
            .ok_or_else(|| format!("unknown validator: {validator}"))?;
        if self.verifier.verify_aggregate(&[key], root, signature) {
            Ok(())
        } else {
            self.report.invalid_signatures += 1;
            Err(format!("invalid signature: validator {validator}"))
        }
    }

    /// Records a signed attestation and flags it if it is slashable against an earlier one.
    fn note_slashable_attestation(&mut self, validator: u64, data: &AttestationData) {
        let previous = self.attestations.entry(validator).or_default();
        for old in previous.iter() {
            let (o, n) = (old, data);
            let double = o.target.epoch == n.target.epoch && o != n;
            let surround = (o.source.epoch < n.source.epoch && n.target.epoch < o.target.epoch)
                || (n.source.epoch < o.source.epoch && o.target.epoch < n.target.epoch);
            if double || surround {
                let kind = if double {
                    "double vote"
                } else {
                    "surround vote"
                };
                self.report
                    .slashable
                    .push(format!("validator {validator}: {kind}: {o:?} and {n:?}"));
            }
        }
        if !previous.contains(data) {
            previous.push(*data);
        }
    }

    /// The signing root of an attestation's data.
    fn attester_root(&self, data: &AttestationData) -> Root {
        let domain = self.spec.domain(
            DomainKind::BeaconAttester,
            data.target.epoch,
            self.genesis_validators_root,
        );
        compute_signing_root(data, domain)
    }

    /// Checks one unaggregated attestation by `validator` and records it:
    /// kept for aggregation only if an aggregator subscribed to its committee.
    fn accept_attestation(
        &mut self,
        validator: u64,
        committee_index: u64,
        data: &AttestationData,
        signature: &SignatureBytes,
        now_ms: u64,
    ) -> Result<(), String> {
        let current = self.current_slot(now_ms);
        if data.slot > current {
            return Err(format!("future slot: {}", data.slot));
        }
        if data.slot + self.spec.slots_per_epoch < current {
            return Err(format!("too old: slot {}", data.slot));
        }
        let epoch = self.spec.epoch_of_slot(data.slot);
        if data.target.epoch != epoch {
            return Err(format!(
                "target epoch {} is not the epoch of slot {}",
                data.target.epoch, data.slot
            ));
        }
        let duty = self
            .attester_duty(validator, epoch)
            .ok_or_else(|| format!("unknown validator: {validator}"))?;
        if duty.slot != data.slot || committee_index != duty.committee_index {
            return Err(format!(
                "not in committee: validator {validator}, committee {committee_index}, slot {}",
                data.slot
            ));
        }
        if self.fork.electra_enabled() && data.index != 0 {
            return Err("attestation data index must be 0 from Electra".into());
        }
        // Verified before the chain checks: a slashable pair is evidence even when the data is stale.
        self.verify(validator, self.attester_root(data), signature)?;
        self.note_slashable_attestation(validator, data);
        if !self.known_roots.contains(&data.beacon_block_root) {
            return Err(format!(
                "unknown beacon block root: {}",
                data.beacon_block_root
            ));
        }
        // As a beacon node judges it: the checkpoints are those of the chain
        // the attestation votes for (the ancestors of its head block), so a
        // vote made before the epoch's first block arrived is still consistent.
        let on_head_chain = |epoch| Checkpoint {
            epoch,
            root: self
                .epoch_boundary_ancestor(data.beacon_block_root, epoch)
                .unwrap_or(Root::ZERO),
        };
        if data.target != on_head_chain(epoch)
            || data.source != on_head_chain(epoch.saturating_sub(1))
        {
            return Err("source or target does not match the chain".into());
        }
        let first = self.received_attestations.insert((validator, epoch));
        if first {
            self.report.attestations_received += 1;
            let started = self.slot_start_ms(data.slot);
            let due = started + self.spec.slot_duration_ms * self.spec.attestation_due_bps / 10_000;
            let delay = now_ms.saturating_sub(started);
            self.report.attestation_delays_ms.push(delay);
            let latest = self
                .report
                .latest_attestation_by_slot
                .entry(data.slot)
                .or_default();
            *latest = (*latest).max(delay);
            self.report
                .attestation_after_due_ms
                .push(now_ms.saturating_sub(due));
        }
        if !self.subscriptions.contains(&(data.slot, committee_index)) {
            if first {
                self.report.attestations_unsubscribed += 1;
            }
            return Ok(());
        }
        if let Ok(sig) = Signature::from_bytes(&signature.0) {
            self.pool
                .entry((data.tree_hash_root(), committee_index))
                .or_insert_with(|| Pooled {
                    data: *data,
                    signatures: BTreeMap::new(),
                })
                .signatures
                .entry(duty.validator_committee_index as usize)
                .or_insert(sig);
        }
        Ok(())
    }

    /// `POST /eth/v1/validator/beacon_committee_subscriptions`: the
    /// committees with an aggregator subscribed, whose unaggregated
    /// attestations this node then keeps. Subscriptions for slots already
    /// past are ignored, as is one for a committee the slot does not have.
    pub fn subscribe_beacon_committees(
        &mut self,
        items: &[(u64, u64, Slot, bool)],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let current = self.current_slot(now_ms);
        let horizon = current + 2 * self.spec.slots_per_epoch;
        for (i, (validator, committee, slot, is_aggregator)) in items.iter().enumerate() {
            if *validator as usize >= self.verifier.keys().len() {
                return Err(ApiError::bad_request(format!(
                    "subscription {i}: unknown validator {validator}"
                )));
            }
            if *slot > horizon {
                return Err(ApiError::bad_request(format!(
                    "subscription {i}: slot {slot} is more than two epochs ahead of {current}"
                )));
            }
            if *is_aggregator && *slot >= current && self.committee(*slot, *committee).is_some() {
                self.subscriptions.insert((*slot, *committee));
            }
        }
        let keep_from = current.saturating_sub(2 * self.spec.slots_per_epoch);
        self.subscriptions.retain(|(s, _)| *s >= keep_from);
        Ok(())
    }

    /// The signatures of `SingleAttestation`s, to verify in one batch.
    pub fn single_attestation_signatures(&self, items: &[SingleAttestation]) -> Vec<SignedItem> {
        items
            .iter()
            .map(|a| (a.attester_index, self.attester_root(&a.data), a.signature))
            .collect()
    }

    /// The signatures of pre-Electra single-bit `Attestation`s (those whose
    /// attester can be named), to verify in one batch.
    pub fn deneb_attestation_signatures(&self, items: &[AttestationDeneb<P>]) -> Vec<SignedItem> {
        items
            .iter()
            .filter_map(|a| {
                let v = self.deneb_attester(a).ok()?;
                Some((v, self.attester_root(&a.data), a.signature))
            })
            .collect()
    }

    /// The attester of a pre-Electra `Attestation` with one aggregation bit
    /// set (the committee is the data's `index`).
    fn deneb_attester(&self, a: &AttestationDeneb<P>) -> Result<u64, String> {
        let committee = self
            .committee(a.data.slot, a.data.index)
            .ok_or_else(|| format!("no committee {} at slot {}", a.data.index, a.data.slot))?;
        let bits = bits_of(&a.aggregation_bits);
        let set: Vec<usize> = set_positions(&bits).collect();
        if bits.len() != committee.len() || set.len() != 1 {
            return Err(format!(
                "aggregation bits must have {} bits with exactly one set",
                committee.len()
            ));
        }
        Ok(committee[set[0]])
    }

    /// The signatures of sync committee messages, to verify in one batch.
    pub fn sync_message_signatures(&self, items: &[SyncCommitteeMessage]) -> Vec<SignedItem> {
        items
            .iter()
            .map(|m| {
                let domain = self.spec.domain(
                    DomainKind::SyncCommittee,
                    self.spec.epoch_of_slot(m.slot),
                    self.genesis_validators_root,
                );
                (
                    m.validator_index,
                    compute_signing_root(&m.beacon_block_root, domain),
                    m.signature,
                )
            })
            .collect()
    }

    /// The signatures of builder registrations of known validators, to verify in one batch.
    pub fn registration_signatures(
        &self,
        items: &[SignedValidatorRegistration],
    ) -> Vec<SignedItem> {
        let domain = self.registration_domain();
        items
            .iter()
            .filter_map(|r| {
                let index = self.index_of(&r.message.pubkey)?;
                Some((index, compute_signing_root(&r.message, domain), r.signature))
            })
            .collect()
    }

    fn registration_domain(&self) -> Domain {
        self.spec
            .domain(DomainKind::ApplicationBuilder, 0, Root::ZERO)
    }

    /// `POST /eth/v2/beacon/pool/attestations` from Electra: `SingleAttestation`s.
    pub fn submit_single_attestations(
        &mut self,
        items: &[SingleAttestation],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let batch = self.single_attestation_signatures(items);
        self.verifier.verify_batch(&batch);
        self.judge_each(items, Batch::Attestations, |chain, a| {
            chain.accept_attestation(
                a.attester_index,
                a.committee_index,
                &a.data,
                &a.signature,
                now_ms,
            )
        })
    }

    /// Pre-Electra `Attestation`s with one aggregation bit set (the
    /// committee is the data's `index`).
    pub fn submit_deneb_attestations(
        &mut self,
        items: &[AttestationDeneb<P>],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let batch = self.deneb_attestation_signatures(items);
        self.verifier.verify_batch(&batch);
        self.judge_each(items, Batch::Attestations, |chain, a| {
            let validator = chain.deneb_attester(a)?;
            chain.accept_attestation(validator, a.data.index, &a.data, &a.signature, now_ms)
        })
    }

    /// Judges each item of a submitted batch with `check`, counts the
    /// outcomes in the report and answers as a beacon node does: 200, or
    /// 400 naming each refused item (the others are accepted).
    fn judge_each<T>(
        &mut self,
        items: &[T],
        batch: Batch,
        mut check: impl FnMut(&mut Self, &T) -> Result<(), String>,
    ) -> Result<(), ApiError> {
        let mut failures = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let outcome = check(self, item);
            self.report.count(batch, outcome.is_ok());
            if let Err(reason) = outcome {
                let key = reason.split(':').next().unwrap_or(&reason).to_string();
                self.reject(&key);
                failures.push((i, reason));
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        Err(ApiError {
            code: 400,
            message: format!("some {} failed validation", batch.noun()),
            failures,
        })
    }

    /// The best aggregate of each (data, committee) that adds positions not
    /// yet on chain and may go in a block at `slot` (EIP-7045: attestations
    /// of this epoch and the previous one, at least one slot old): the
    /// larger of the received aggregate and the one made from the kept
    /// attestations, with the other merged in when disjoint. Most new
    /// positions first.
    fn packable(&self, slot: Slot) -> Vec<(CommitteeAggregate, usize)> {
        let epoch = self.spec.epoch_of_slot(slot);
        let mut keys: HashSet<(Root, u64)> = self.received_aggregates.keys().copied().collect();
        keys.extend(self.pool.keys().copied());
        let mut out = Vec::new();
        for key in keys {
            let own = self
                .pool
                .get(&key)
                .and_then(|p| self.pooled_aggregate(p, key.1));
            let received = self.received_aggregates.get(&key).cloned();
            let (mut best, other) = match (received, own) {
                (Some(r), Some(o)) if o.count() > r.count() => (o, Some(r)),
                (Some(r), o) => (r, o),
                (None, Some(o)) => (o, None),
                (None, None) => continue,
            };
            if let Some(other) = other {
                if best.disjoint(&other.bits) {
                    best.merge(&other);
                }
            }
            let data = best.data;
            if data.slot + MIN_INCLUSION_DELAY > slot
                || self.spec.epoch_of_slot(data.slot) + 1 < epoch
            {
                continue;
            }
            let on_chain = self.included_bits.get(&key);
            let new = set_positions(&best.bits)
                .filter(|i| !on_chain.is_some_and(|b| b.get(*i).copied().unwrap_or(false)))
                .count();
            if new > 0 {
                out.push((best, new));
            }
        }
        out.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then(b.0.data.slot.cmp(&a.0.data.slot))
                .then(a.0.committee_index.cmp(&b.0.committee_index))
        });
        out
    }

    /// The aggregate of the kept attestations of one (data, committee).
    fn pooled_aggregate(
        &self,
        pooled: &Pooled,
        committee_index: u64,
    ) -> Option<CommitteeAggregate> {
        let length = self.committee(pooled.data.slot, committee_index)?.len();
        let mut bits = vec![false; length];
        let mut signatures = Vec::with_capacity(pooled.signatures.len());
        for (position, signature) in &pooled.signatures {
            if let Some(bit) = bits.get_mut(*position) {
                *bit = true;
                signatures.push(*signature);
            }
        }
        Some(CommitteeAggregate {
            data: pooled.data,
            committee_index,
            bits,
            signature: Signature::aggregate(&signatures)?,
        })
    }

    /// Deneb's block attestations: one per (data, committee), the
    /// `MAX_ATTESTATIONS` that add the most.
    fn pack_deneb(&self, slot: Slot) -> Vec<AttestationDeneb<P>> {
        self.packable(slot)
            .into_iter()
            .take(<P::MaxAttestations as Unsigned>::to_usize())
            .filter_map(|(a, _)| {
                Some(AttestationDeneb {
                    aggregation_bits: bitlist(&a.bits).ok()?,
                    data: a.data,
                    signature: SignatureBytes(a.signature.to_bytes()),
                })
            })
            .collect()
    }

    /// Electra's on-chain aggregates: per attestation data, the committees'
    /// aggregates side by side (committee bits set for each, aggregation
    /// bits concatenated in committee order, signatures summed); the
    /// `MAX_ATTESTATIONS_ELECTRA` that add the most.
    fn pack_electra(&self, slot: Slot) -> Vec<AttestationElectra<P>> {
        let mut by_data: HashMap<Root, (usize, BTreeMap<u64, CommitteeAggregate>)> = HashMap::new();
        for (aggregate, new) in self.packable(slot) {
            let entry = by_data.entry(aggregate.data.tree_hash_root()).or_default();
            entry.0 += new;
            entry.1.insert(aggregate.committee_index, aggregate);
        }
        let mut groups: Vec<(usize, BTreeMap<u64, CommitteeAggregate>)> =
            by_data.into_values().collect();
        groups.sort_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| {
                let slot_of = |g: &BTreeMap<u64, CommitteeAggregate>| {
                    g.values().next().map(|a| a.data.slot).unwrap_or(0)
                };
                slot_of(&b.1).cmp(&slot_of(&a.1))
            })
        });
        groups
            .into_iter()
            .take(<P::MaxAttestationsElectra as Unsigned>::to_usize())
            .filter_map(|(_, committees)| {
                let data = committees.values().next()?.data;
                let mut committee_bits = ssz_types::BitVector::new();
                let mut bits = Vec::new();
                let mut signatures = Vec::new();
                for (index, aggregate) in &committees {
                    committee_bits.set(*index as usize, true).ok()?;
                    bits.extend_from_slice(&aggregate.bits);
                    signatures.push(aggregate.signature);
                }
                Some(AttestationElectra {
                    aggregation_bits: bitlist(&bits).ok()?,
                    data,
                    signature: SignatureBytes(Signature::aggregate(&signatures)?.to_bytes()),
                    committee_bits,
                })
            })
            .collect()
    }

    /// The sync aggregate a block at `slot` carries: for the previous
    /// slot's messages over the parent root, the best contribution received
    /// per subcommittee, side by side.
    fn build_sync_aggregate(&self, slot: Slot, parent_root: Root) -> SyncAggregate<P> {
        let empty = SyncAggregate::<P> {
            sync_committee_bits: Default::default(),
            sync_committee_signature: SignatureBytes::infinity(),
        };
        let Some(previous) = slot.checked_sub(1) else {
            return empty;
        };
        let size = self.subcommittee_size();
        let mut bits = ssz_types::BitVector::new();
        let mut signatures = Vec::new();
        for sub in 0..self.spec.sync_committee_subnet_count {
            let Some((sub_bits, signature)) =
                self.best_contributions.get(&(previous, parent_root, sub))
            else {
                continue;
            };
            for b in set_positions(sub_bits) {
                if bits.set((sub * size) as usize + b, true).is_err() {
                    return empty;
                }
            }
            signatures.push(*signature);
        }
        match Signature::aggregate(&signatures) {
            Some(signature) => SyncAggregate {
                sync_committee_bits: bits,
                sync_committee_signature: SignatureBytes(signature.to_bytes()),
            },
            None => empty,
        }
    }

    /// Builds an unsigned block for `slot` on the head, after checking the randao reveal.
    pub fn produce_block(
        &mut self,
        slot: Slot,
        randao_reveal: SignatureBytes,
        graffiti: Graffiti,
        now_ms: u64,
    ) -> Result<VersionedBlock<P>, ApiError> {
        let (head_slot, head_root) = self.head();
        if slot <= head_slot || slot > self.current_slot(now_ms) + 1 {
            return Err(ApiError::bad_request(format!(
                "cannot produce a block for slot {slot} (head {head_slot})"
            )));
        }
        let proposer = self.proposer_of(slot);
        let epoch = self.spec.epoch_of_slot(slot);
        let domain = self
            .spec
            .domain(DomainKind::Randao, epoch, self.genesis_validators_root);
        if let Err(e) = self.verify(
            proposer,
            compute_signing_root(&epoch, domain),
            &randao_reveal,
        ) {
            self.reject("invalid randao reveal");
            return Err(ApiError::bad_request(format!("invalid randao reveal: {e}")));
        }
        let payload = ExecutionPayload::<P> {
            parent_hash: Root::from(<[u8; 32]>::from(Sha256::digest(head_root.as_slice()))),
            fee_recipient: Address::ZERO,
            state_root: Root::ZERO,
            receipts_root: Root::ZERO,
            logs_bloom: Default::default(),
            prev_randao: Root::from(<[u8; 32]>::from(Sha256::digest(randao_reveal.0))),
            block_number: slot,
            gas_limit: 30_000_000,
            gas_used: 0,
            timestamp: self.slot_start_ms(slot) / 1000,
            extra_data: Default::default(),
            base_fee_per_gas: U256::from(7u64),
            block_hash: Root::from(<[u8; 32]>::from(Sha256::digest(slot.to_le_bytes()))),
            transactions: Default::default(),
            withdrawals: Default::default(),
            blob_gas_used: 0,
            excess_blob_gas: 0,
        };
        let (commitment, blobs) = blob_for(slot, self.fork);
        let exits: Vec<SignedVoluntaryExit> = self
            .exit_pool
            .values()
            .take(<P::MaxVoluntaryExits as Unsigned>::to_usize())
            .cloned()
            .collect();
        let invalid = |e: ssz_types::Error| ApiError::bad_request(format!("{e:?}"));
        let electra = self.fork.electra_enabled();
        let fields = BodyFields::<P> {
            randao_reveal,
            graffiti,
            voluntary_exits: ssz_types::VariableList::new(exits).map_err(invalid)?,
            sync_aggregate: self.build_sync_aggregate(slot, head_root),
            execution_payload: payload,
            blob_kzg_commitments: ssz_types::VariableList::new(vec![commitment])
                .map_err(invalid)?,
            attestations_deneb: if electra {
                Default::default()
            } else {
                ssz_types::VariableList::new(self.pack_deneb(slot)).map_err(invalid)?
            },
            attestations_electra: if electra {
                ssz_types::VariableList::new(self.pack_electra(slot)).map_err(invalid)?
            } else {
                Default::default()
            },
        };
        let state_root = state_root_for(head_root, slot);
        fn assemble<B: BlockBody>(
            slot: Slot,
            proposer: u64,
            parent_root: Root,
            state_root: Root,
            body: B,
        ) -> BeaconBlock<B> {
            BeaconBlock {
                slot,
                proposer_index: proposer,
                parent_root,
                state_root,
                body,
            }
        }
        let block = match self.fork {
            ForkName::Deneb => VersionedBlock::Deneb(assemble(
                slot,
                proposer,
                head_root,
                state_root,
                fields.into_body(),
            )),
            ForkName::Electra => VersionedBlock::Electra(assemble(
                slot,
                proposer,
                head_root,
                state_root,
                fields.into_body(),
            )),
            ForkName::Fulu => VersionedBlock::Fulu(assemble(
                slot,
                proposer,
                head_root,
                state_root,
                fields.into_body(),
            )),
            other => {
                return Err(ApiError::bad_request(format!(
                    "fork {other} is not simulated"
                )))
            }
        };
        let keep_from = slot.saturating_sub(self.spec.slots_per_epoch);
        self.produced.retain(|_, (b, _)| b.slot() >= keep_from);
        self.produced.insert(block.root(), (block.clone(), blobs));
        Ok(block)
    }

    /// `POST /eth/v2/beacon/blinded_blocks` (builder mode): unblind a block
    /// this chain produced, then treat it as a published full block. A blinded
    /// block it did not produce is refused, as a relay refuses an unknown payload.
    pub fn publish_blinded_block(
        &mut self,
        block: &VersionedBlindedBlock<P>,
        signature: &SignatureBytes,
        now_ms: u64,
    ) -> Result<Option<HeadEvent>, ApiError> {
        let Some((full, blobs)) = self.produced.get(&block.root()).cloned() else {
            self.report.proposals_rejected += 1;
            self.reject("unknown blinded block");
            return Err(ApiError::bad_request(format!(
                "unknown blinded block: {} was not produced here",
                block.root()
            )));
        };
        self.publish_block(&full, &blobs, signature, now_ms)
    }

    /// `POST /eth/v2/beacon/blocks`: verify, flag slashable proposals, extend the chain.
    pub fn publish_block(
        &mut self,
        block: &VersionedBlock<P>,
        blobs: &BlockBlobs,
        signature: &SignatureBytes,
        now_ms: u64,
    ) -> Result<Option<HeadEvent>, ApiError> {
        let result = self.check_block(block, blobs, signature, now_ms);
        match &result {
            Ok(_) => self.report.proposals_ok += 1,
            Err(e) if e.message == BLOCK_ALREADY_KNOWN => self.report.duplicate_blocks += 1,
            Err(e) => {
                self.report.proposals_rejected += 1;
                let key = e
                    .message
                    .split(':')
                    .next()
                    .unwrap_or(&e.message)
                    .to_string();
                self.reject(&key);
            }
        }
        result
    }

    /// The blobs the block commits to must come with it (a beacon node could
    /// not make them available otherwise): here, those it was produced with.
    fn check_blobs(&self, block: &VersionedBlock<P>, blobs: &BlockBlobs) -> Result<(), ApiError> {
        if block.blob_commitment_count() == 0 {
            return Ok(());
        }
        match self.produced.get(&block.root()) {
            Some((_, produced)) if produced == blobs => Ok(()),
            Some(_) => Err(ApiError::bad_request(
                "blobs missing: the block's blobs and proofs did not come with it",
            )),
            None => Err(ApiError::bad_request(
                "unknown blobs: the block commits to blobs this chain did not produce",
            )),
        }
    }

    /// The blobs a produced block came with.
    pub fn blobs_of(&self, root: &Root) -> BlockBlobs {
        self.produced
            .get(root)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }

    /// A block's attestations as (data, committee index, attesting
    /// validators by committee position), checked against the committees
    /// the way `process_attestation` checks them.
    fn block_attestations(
        &self,
        block: &VersionedBlock<P>,
    ) -> Result<Vec<(AttestationData, u64, Vec<bool>)>, String> {
        let slot = block.slot();
        let mut out = Vec::new();
        let check_window = |data: &AttestationData| -> Result<(), String> {
            let epoch = self.spec.epoch_of_slot(slot);
            if data.slot + MIN_INCLUSION_DELAY > slot
                || self.spec.epoch_of_slot(data.slot) + 1 < epoch
            {
                return Err(format!(
                    "attestation of slot {} cannot be included at slot {slot}",
                    data.slot
                ));
            }
            Ok(())
        };
        match block {
            VersionedBlock::Deneb(b) => {
                for a in b.body.attestations.iter() {
                    check_window(&a.data)?;
                    let committee = self.committee(a.data.slot, a.data.index).ok_or_else(|| {
                        format!("no committee {} at slot {}", a.data.index, a.data.slot)
                    })?;
                    let bits = bits_of(&a.aggregation_bits);
                    if bits.len() != committee.len() {
                        return Err("aggregation bits do not match the committee".into());
                    }
                    out.push((a.data, a.data.index, bits));
                }
            }
            VersionedBlock::Electra(b) | VersionedBlock::Fulu(b) => {
                for a in b.body.attestations.iter() {
                    check_window(&a.data)?;
                    let bits = bits_of(&a.aggregation_bits);
                    let mut offset = 0;
                    for index in 0..a.committee_bits.len() {
                        if !a.committee_bits.get(index).unwrap_or(false) {
                            continue;
                        }
                        let committee =
                            self.committee(a.data.slot, index as u64).ok_or_else(|| {
                                format!("no committee {index} at slot {}", a.data.slot)
                            })?;
                        let part = bits
                            .get(offset..offset + committee.len())
                            .ok_or("aggregation bits shorter than the committees")?;
                        out.push((a.data, index as u64, part.to_vec()));
                        offset += committee.len();
                    }
                    if offset != bits.len() {
                        return Err("aggregation bits do not match the committees".into());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Records what a block that landed includes: each attester's first
    /// inclusion with its timeliness flags, and the sync committee members
    /// its sync aggregate carries.
    fn apply_inclusions(
        &mut self,
        block: &VersionedBlock<P>,
        attestations: Vec<(AttestationData, u64, Vec<bool>)>,
    ) {
        let slot = block.slot();
        let sqrt_epoch = integer_squareroot(self.spec.slots_per_epoch);
        for (data, committee_index, bits) in attestations {
            let Some(committee) = self.committee(data.slot, committee_index) else {
                continue;
            };
            let delay = slot - data.slot;
            let epoch = data.target.epoch;
            // get_attestation_participation_flag_indices (Deneb on).
            let source = true; // checked against the chain when it was received
            let target = data.target.root == self.checkpoint(epoch).root;
            let head = target && data.beacon_block_root == self.block_root_at(data.slot);
            let inclusion = Inclusion {
                delay,
                source_timely: source && delay <= sqrt_epoch,
                target_timely: target,
                head_timely: head && delay == MIN_INCLUSION_DELAY,
            };
            let key = (data.tree_hash_root(), committee_index);
            let on_chain = self
                .included_bits
                .entry(key)
                .or_insert_with(|| vec![false; bits.len()]);
            for position in set_positions(&bits) {
                if let Some(bit) = on_chain.get_mut(position) {
                    *bit = true;
                }
            }
            for position in set_positions(&bits) {
                let Some(validator) = committee.get(position).copied() else {
                    continue;
                };
                if let std::collections::hash_map::Entry::Vacant(e) =
                    self.included.entry((validator, epoch))
                {
                    e.insert(inclusion);
                    self.report.attestations_ok += 1;
                    *self.report.inclusion_delays.entry(delay).or_default() += 1;
                }
            }
        }
        let sync = match block {
            VersionedBlock::Deneb(b) => &b.body.sync_aggregate,
            VersionedBlock::Electra(b) | VersionedBlock::Fulu(b) => &b.body.sync_aggregate,
        };
        if let Some(previous) = slot.checked_sub(1) {
            let committee = self.sync_committee(self.spec.epoch_of_slot(previous));
            for position in 0..sync.sync_committee_bits.len() {
                if sync.sync_committee_bits.get(position).unwrap_or(false) {
                    if let Some(v) = committee.get(position) {
                        self.sync_included.insert((previous, *v));
                    }
                }
            }
        }
    }

    /// The signatures a block carries over others' messages: each
    /// attestation's aggregate and the sync aggregate.
    fn check_block_aggregates(
        &mut self,
        block: &VersionedBlock<P>,
        attestations: &[(AttestationData, u64, Vec<bool>)],
    ) -> Result<(), String> {
        let mut by_data: BTreeMap<Root, (AttestationData, Vec<PublicKey>)> = BTreeMap::new();
        for (data, committee_index, bits) in attestations {
            let committee = self
                .committee(data.slot, *committee_index)
                .unwrap_or_default();
            let entry = by_data
                .entry(data.tree_hash_root())
                .or_insert_with(|| (*data, Vec::new()));
            for position in set_positions(bits) {
                if let Some(key) = committee
                    .get(position)
                    .and_then(|v| self.verifier.keys().get(*v as usize))
                {
                    entry.1.push(*key);
                }
            }
        }
        let signatures: Vec<(AttestationData, SignatureBytes)> = match block {
            VersionedBlock::Deneb(b) => b
                .body
                .attestations
                .iter()
                .map(|a| (a.data, a.signature))
                .collect(),
            VersionedBlock::Electra(b) | VersionedBlock::Fulu(b) => b
                .body
                .attestations
                .iter()
                .map(|a| (a.data, a.signature))
                .collect(),
        };
        if block.fork_name().electra_enabled() {
            for (data, signature) in signatures {
                let (_, signers) = by_data
                    .get(&data.tree_hash_root())
                    .cloned()
                    .unwrap_or_default();
                if !self
                    .verifier
                    .verify_aggregate(&signers, self.attester_root(&data), &signature)
                {
                    self.report.invalid_signatures += 1;
                    return Err(format!(
                        "invalid attestation signature for slot {}",
                        data.slot
                    ));
                }
            }
        } else {
            for ((data, committee_index, bits), (_, signature)) in
                attestations.iter().zip(signatures)
            {
                let committee = self
                    .committee(data.slot, *committee_index)
                    .unwrap_or_default();
                let signers: Vec<PublicKey> = set_positions(bits)
                    .filter_map(|p| {
                        committee
                            .get(p)
                            .and_then(|v| self.verifier.keys().get(*v as usize))
                            .copied()
                    })
                    .collect();
                if !self
                    .verifier
                    .verify_aggregate(&signers, self.attester_root(data), &signature)
                {
                    self.report.invalid_signatures += 1;
                    return Err(format!(
                        "invalid attestation signature for slot {}",
                        data.slot
                    ));
                }
            }
        }
        let (sync_bits, sync_signature) = match block {
            VersionedBlock::Deneb(b) => (
                b.body.sync_aggregate.sync_committee_bits.clone(),
                b.body.sync_aggregate.sync_committee_signature,
            ),
            VersionedBlock::Electra(b) | VersionedBlock::Fulu(b) => (
                b.body.sync_aggregate.sync_committee_bits.clone(),
                b.body.sync_aggregate.sync_committee_signature,
            ),
        };
        let positions: Vec<usize> = (0..sync_bits.len())
            .filter(|p| sync_bits.get(*p).unwrap_or(false))
            .collect();
        if positions.is_empty() {
            return if sync_signature == SignatureBytes::infinity() {
                Ok(())
            } else {
                Err("an empty sync aggregate must carry the infinity signature".into())
            };
        }
        let previous = block.slot().saturating_sub(1);
        let committee = self.sync_committee(self.spec.epoch_of_slot(previous));
        let signers: Vec<PublicKey> = positions
            .iter()
            .filter_map(|p| {
                committee
                    .get(*p)
                    .and_then(|v| self.verifier.keys().get(*v as usize))
                    .copied()
            })
            .collect();
        let domain = self.spec.domain(
            DomainKind::SyncCommittee,
            self.spec.epoch_of_slot(previous),
            self.genesis_validators_root,
        );
        let root = compute_signing_root(&self.block_root_at(previous), domain);
        if !self
            .verifier
            .verify_aggregate(&signers, root, &sync_signature)
        {
            self.report.invalid_signatures += 1;
            return Err("invalid sync aggregate signature".into());
        }
        Ok(())
    }

    fn check_block(
        &mut self,
        block: &VersionedBlock<P>,
        blobs: &BlockBlobs,
        signature: &SignatureBytes,
        now_ms: u64,
    ) -> Result<Option<HeadEvent>, ApiError> {
        let slot = block.slot();
        let proposer = block.proposer_index();
        if block.fork_name() != self.fork {
            return Err(ApiError::bad_request(format!(
                "wrong fork: a {} block on a {} chain",
                block.fork_name(),
                self.fork
            )));
        }
        if slot > self.current_slot(now_ms) {
            return Err(ApiError::bad_request(format!("future slot: {slot}")));
        }
        if proposer != self.proposer_of(slot) {
            return Err(ApiError::bad_request(format!(
                "not the proposer: validator {proposer}, slot {slot}"
            )));
        }
        let epoch = self.spec.epoch_of_slot(slot);
        let gvr = self.genesis_validators_root;
        let root = block.root();
        let domain = self.spec.domain(DomainKind::BeaconProposer, epoch, gvr);
        self.verify(proposer, compute_signing_root(&root, domain), signature)
            .map_err(|e| ApiError::bad_request(format!("invalid block signature: {e}")))?;
        let randao_domain = self.spec.domain(DomainKind::Randao, epoch, gvr);
        self.verify(
            proposer,
            compute_signing_root(&epoch, randao_domain),
            &block.randao_reveal(),
        )
        .map_err(|e| ApiError::bad_request(format!("invalid randao reveal: {e}")))?;
        if let Some((existing, _)) = self.blocks.get(&slot) {
            if *existing == root {
                // The same block again (another operator published it
                // first): answered as Lodestar does.
                return Err(ApiError {
                    code: 500,
                    message: BLOCK_ALREADY_KNOWN.into(),
                    failures: Vec::new(),
                });
            }
            self.report.slashable.push(format!(
                "validator {proposer}: two blocks at slot {slot}: {existing} and {root}"
            ));
            return Err(ApiError::bad_request(format!(
                "slot already has a block: {slot}"
            )));
        }
        self.check_blobs(block, blobs)?;
        for exit in block.voluntary_exits() {
            self.check_exit(exit, epoch)
                .map_err(|e| ApiError::bad_request(format!("invalid voluntary exit: {e}")))?;
        }
        let header = block.header();
        if !self.known_roots.contains(&header.parent_root) {
            return Err(ApiError::bad_request(format!(
                "unknown parent: {}",
                header.parent_root
            )));
        }
        let attestations = self
            .block_attestations(block)
            .map_err(|e| ApiError::bad_request(format!("invalid attestations: {e}")))?;
        self.check_block_aggregates(block, &attestations)
            .map_err(|e| ApiError::bad_request(format!("invalid block aggregates: {e}")))?;
        let previous_head = self.head();
        self.blocks.insert(slot, (root, header));
        self.signed_blocks.insert(slot, (block.clone(), *signature));
        self.known_roots.insert(root);
        self.landed_proposals.insert(slot);
        self.apply_inclusions(block, attestations);
        for exit in block.voluntary_exits() {
            let validator = exit.message.validator_index;
            self.exit_pool.remove(&validator);
            self.report
                .exits_included
                .insert(validator, activation_exit_epoch(epoch));
        }
        self.prune(slot);
        if slot <= previous_head.0 {
            return Ok(None);
        }
        Ok(Some(HeadEvent {
            slot,
            block: root,
            state: header.state_root,
            epoch_transition: self.spec.epoch_of_slot(previous_head.0) != epoch,
            previous_duty_dependent_root: self.dependent_root(epoch, true),
            current_duty_dependent_root: self.dependent_root(epoch, false),
            execution_optimistic: false,
        }))
    }

    /// Forgets pooled messages no block can include any more.
    fn prune(&mut self, slot: Slot) {
        let keep_from = self
            .spec
            .start_slot_of_epoch(self.spec.epoch_of_slot(slot).saturating_sub(1));
        self.pool.retain(|_, p| p.data.slot >= keep_from);
        self.received_aggregates
            .retain(|_, a| a.data.slot >= keep_from);
        self.sync_pool.retain(|(s, _), _| *s >= keep_from);
        self.best_contributions
            .retain(|(s, _, _), _| *s >= keep_from);
    }

    /// `POST /eth/v1/beacon/pool/voluntary_exits`: a valid exit goes to the
    /// pool (again: accepted, as Lighthouse answers one it already has).
    pub fn submit_voluntary_exit(
        &mut self,
        exit: &SignedVoluntaryExit,
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let validator = exit.message.validator_index;
        if self.exit_pool.get(&validator) == Some(exit) {
            return Ok(());
        }
        let epoch = self.spec.epoch_of_slot(self.current_slot(now_ms));
        match self.check_exit(exit, epoch) {
            Ok(()) => {
                self.report.exits_accepted += 1;
                self.exit_pool.insert(validator, exit.clone());
                Ok(())
            }
            Err(e) => {
                self.report.exits_rejected += 1;
                self.reject(e.split(':').next().unwrap_or(&e));
                Err(ApiError::bad_request(format!(
                    "invalid voluntary exit: {e}"
                )))
            }
        }
    }

    /// The checks of the spec's `process_voluntary_exit` at `epoch` (every
    /// validator here was activated at genesis and never slashed).
    fn check_exit(&mut self, exit: &SignedVoluntaryExit, epoch: Epoch) -> Result<(), String> {
        let message = &exit.message;
        let validator = message.validator_index;
        if validator as usize >= self.verifier.keys().len() {
            return Err(format!("unknown validator: {validator}"));
        }
        if let Some(exit_epoch) = self.report.exits_included.get(&validator) {
            return Err(format!(
                "exit already initiated: validator {validator} exits at epoch {exit_epoch}"
            ));
        }
        if message.epoch > epoch {
            return Err(format!(
                "future exit epoch: {} is after the current epoch {epoch}",
                message.epoch
            ));
        }
        let period = self.spec.shard_committee_period;
        if epoch < period {
            return Err(format!(
                "not active long enough: validator {validator} may exit from epoch {period} (SHARD_COMMITTEE_PERIOD)"
            ));
        }
        let domain = self.spec.domain(
            DomainKind::VoluntaryExit,
            message.epoch,
            self.genesis_validators_root,
        );
        self.verify(
            validator,
            compute_signing_root(message, domain),
            &exit.signature,
        )
    }

    /// The exits waiting for a block (`GET /eth/v1/beacon/pool/voluntary_exits`).
    pub fn pooled_exits(&self) -> Vec<SignedVoluntaryExit> {
        self.exit_pool.values().cloned().collect()
    }

    /// The exit epoch an included exit set for `validator`, if any.
    pub fn exit_epoch_of(&self, validator: u64) -> Option<Epoch> {
        self.report.exits_included.get(&validator).copied()
    }

    /// Whether `selection_proof` makes its signer an aggregator of a
    /// committee of `committee_len` (the consensus specs' `is_aggregator`).
    pub fn is_aggregator(&self, committee_len: usize, selection_proof: &SignatureBytes) -> bool {
        selected_by(
            selection_proof,
            committee_len as u64 / self.spec.target_aggregators_per_committee,
        )
    }

    /// `GET /eth/v2/validator/aggregate_attestation` (Electra on): the
    /// aggregate of what was kept for `data_root` in `committee_index`.
    pub fn aggregate_attestation(
        &self,
        data_root: Root,
        slot: Slot,
        committee_index: u64,
    ) -> Result<AttestationElectra<P>, ApiError> {
        if !self.fork.electra_enabled() {
            return Err(ApiError::bad_request(format!(
                "an Electra aggregate was asked for on a {} chain",
                self.fork
            )));
        }
        let aggregate = self.aggregate_of(data_root, slot, committee_index)?;
        let mut committee_bits = ssz_types::BitVector::new();
        committee_bits
            .set(committee_index as usize, true)
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        Ok(AttestationElectra {
            aggregation_bits: bitlist(&aggregate.bits).map_err(ApiError::bad_request)?,
            data: aggregate.data,
            signature: SignatureBytes(aggregate.signature.to_bytes()),
            committee_bits,
        })
    }

    /// `GET /eth/v1/validator/aggregate_attestation` (before Electra; the
    /// committee is the data's `index`).
    pub fn aggregate_attestation_deneb(
        &self,
        data_root: Root,
        slot: Slot,
    ) -> Result<AttestationDeneb<P>, ApiError> {
        if self.fork.electra_enabled() {
            return Err(ApiError::bad_request(format!(
                "a pre-Electra aggregate was asked for on a {} chain",
                self.fork
            )));
        }
        let committee_index = self
            .pool
            .keys()
            .find(|(root, _)| *root == data_root)
            .map(|(_, c)| *c)
            .unwrap_or(0);
        let aggregate = self.aggregate_of(data_root, slot, committee_index)?;
        Ok(AttestationDeneb {
            aggregation_bits: bitlist(&aggregate.bits).map_err(ApiError::bad_request)?,
            data: aggregate.data,
            signature: SignatureBytes(aggregate.signature.to_bytes()),
        })
    }

    /// The kept attestations of `data_root` in `committee_index`, aggregated.
    fn aggregate_of(
        &self,
        data_root: Root,
        slot: Slot,
        committee_index: u64,
    ) -> Result<CommitteeAggregate, ApiError> {
        let pooled = self
            .pool
            .get(&(data_root, committee_index))
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    format!(
                        "no attestations for data root {data_root} in committee {committee_index}"
                    ),
                )
            })?;
        if pooled.data.slot != slot {
            return Err(ApiError::bad_request(format!(
                "no committee {committee_index} attestations with that root at slot {slot}"
            )));
        }
        self.pooled_aggregate(pooled, committee_index)
            .ok_or_else(|| ApiError::new(404, "nothing to aggregate"))
    }

    /// `POST /eth/v2/validator/aggregate_and_proofs` (Electra on): one
    /// committee bit set (the gossip rule), the aggregator in that committee
    /// and selected, the aggregate's signature its attesters', the whole
    /// signed by the aggregator.
    pub fn submit_aggregates(
        &mut self,
        items: &[SignedAggregateAndProofElectra<P>],
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Aggregates, |chain, item| {
            let m = &item.message;
            let committees: Vec<usize> = (0..m.aggregate.committee_bits.len())
                .filter(|i| m.aggregate.committee_bits.get(*i).unwrap_or(false))
                .collect();
            let [committee_index] = committees[..] else {
                return Err(format!(
                    "wrong committee bits: {committees:?} (an aggregate names exactly one committee)"
                ));
            };
            if m.aggregate.data.index != 0 {
                return Err(format!(
                    "wrong committee: data index {} (0 from Electra)",
                    m.aggregate.data.index
                ));
            }
            chain.check_aggregate(AggregateView {
                aggregator: m.aggregator_index,
                committee_index: committee_index as u64,
                data: m.aggregate.data,
                bits: bits_of(&m.aggregate.aggregation_bits),
                aggregate_signature: m.aggregate.signature,
                selection_proof: m.selection_proof,
                message_root: m.tree_hash_root(),
                signature: item.signature,
            })
        })
    }

    /// `POST /eth/v1/validator/aggregate_and_proofs` (before Electra): the
    /// same checks on Deneb's shape (the committee is the data's `index`).
    pub fn submit_aggregates_deneb(
        &mut self,
        items: &[SignedAggregateAndProofDeneb<P>],
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Aggregates, |chain, item| {
            let m = &item.message;
            chain.check_aggregate(AggregateView {
                aggregator: m.aggregator_index,
                committee_index: m.aggregate.data.index,
                data: m.aggregate.data,
                bits: bits_of(&m.aggregate.aggregation_bits),
                aggregate_signature: m.aggregate.signature,
                selection_proof: m.selection_proof,
                message_root: m.tree_hash_root(),
                signature: item.signature,
            })
        })
    }

    fn check_aggregate(&mut self, item: AggregateView) -> Result<(), String> {
        let aggregator = item.aggregator;
        let data = item.data;
        let committee = self
            .committee(data.slot, item.committee_index)
            .ok_or_else(|| {
                format!(
                    "wrong committee: slot {} has no committee {}",
                    data.slot, item.committee_index
                )
            })?;
        if !committee.contains(&aggregator) {
            return Err(format!(
                "aggregator not in committee: {aggregator} (committee {})",
                item.committee_index
            ));
        }
        if item.bits.len() != committee.len() {
            return Err(format!(
                "aggregation bits: {} bits for a committee of {}",
                item.bits.len(),
                committee.len()
            ));
        }
        let epoch = self.spec.epoch_of_slot(data.slot);
        let gvr = self.genesis_validators_root;
        let selection_domain = self.spec.domain(DomainKind::SelectionProof, epoch, gvr);
        self.verify(
            aggregator,
            compute_signing_root(&data.slot, selection_domain),
            &item.selection_proof,
        )?;
        if !self.is_aggregator(committee.len(), &item.selection_proof) {
            return Err(format!("not an aggregator: {aggregator}"));
        }
        self.remember_selection(data.slot, aggregator, None);
        let attesters: Vec<PublicKey> = set_positions(&item.bits)
            .filter_map(|b| {
                committee
                    .get(b)
                    .and_then(|v| self.verifier.keys().get(*v as usize))
                    .copied()
            })
            .collect();
        let root = self.attester_root(&data);
        if !self
            .verifier
            .verify_aggregate(&attesters, root, &item.aggregate_signature)
        {
            self.report.invalid_signatures += 1;
            return Err("invalid aggregate signature".into());
        }
        let domain = self.spec.domain(DomainKind::AggregateAndProof, epoch, gvr);
        self.verify(
            aggregator,
            compute_signing_root(&item.message_root, domain),
            &item.signature,
        )?;
        self.landed_aggregates.insert((data.slot, aggregator));
        if let Ok(signature) = Signature::from_bytes(&item.aggregate_signature.0) {
            let candidate = CommitteeAggregate {
                data,
                committee_index: item.committee_index,
                bits: item.bits,
                signature,
            };
            let key = (data.tree_hash_root(), item.committee_index);
            let better = self
                .received_aggregates
                .get(&key)
                .is_none_or(|best| candidate.count() > best.count());
            if better {
                self.received_aggregates.insert(key, candidate);
            }
        }
        Ok(())
    }

    /// Whether `validator`'s selection proof for `slot` (made here with its
    /// interop key) selects it (`subcommittee`: a sync subcommittee; `None`:
    /// its beacon committee of `committee_len`); remembered.
    fn selects(
        &self,
        slot: Slot,
        validator: u64,
        subcommittee: Option<u64>,
        committee_len: usize,
    ) -> bool {
        let key = (slot, validator, subcommittee.map_or(u64::MAX, |s| s));
        if let Some(s) = self.selected_memo.borrow().get(&key) {
            return *s;
        }
        if !self.interop {
            return false; // not seen selected (no key here to find out)
        }
        let epoch = self.spec.epoch_of_slot(slot);
        let gvr = self.genesis_validators_root;
        let secret = interop_secret_key(validator);
        let selected = match subcommittee {
            None => {
                let domain = self.spec.domain(DomainKind::SelectionProof, epoch, gvr);
                let root = compute_signing_root(&slot, domain);
                let proof = SignatureBytes(secret.sign(root.as_slice()).to_bytes());
                self.is_aggregator(committee_len, &proof)
            }
            Some(sub) => {
                let domain = self
                    .spec
                    .domain(DomainKind::SyncCommitteeSelectionProof, epoch, gvr);
                let data = SyncAggregatorSelectionData {
                    slot,
                    subcommittee_index: sub,
                };
                let root = compute_signing_root(&data, domain);
                let proof = SignatureBytes(secret.sign(root.as_slice()).to_bytes());
                self.is_sync_aggregator(&proof)
            }
        };
        let mut memo = self.selected_memo.borrow_mut();
        if memo.len() > 1_000_000 {
            memo.clear();
        }
        memo.insert(key, selected);
        selected
    }

    /// A verified selection proof that selects `validator`: known to aggregate.
    fn remember_selection(&self, slot: Slot, validator: u64, subcommittee: Option<u64>) {
        let key = (slot, validator, subcommittee.map_or(u64::MAX, |s| s));
        self.selected_memo.borrow_mut().insert(key, true);
    }

    /// Aggregation duties of slots `first..=last`: (landed, missed). An
    /// aggregator is whoever the selection proof (made here with the
    /// validator's interop key) selects.
    pub fn aggregation_summary(&self, first: Slot, last: Slot) -> (u64, u64) {
        let (mut landed, mut missed) = (0, 0);
        for slot in first..=last {
            for committee in self.committees_at(slot) {
                for v in &committee {
                    if !self.selects(slot, *v, None, committee.len()) {
                        continue;
                    }
                    if self.landed_aggregates.contains(&(slot, *v)) {
                        landed += 1;
                    } else {
                        missed += 1;
                    }
                }
            }
        }
        (landed, missed)
    }

    fn subcommittee_size(&self) -> u64 {
        (self.spec.sync_committee_size / self.spec.sync_committee_subnet_count).max(1)
    }

    /// The members of sync subcommittee `sub` at `epoch`, by position in it.
    fn subcommittee(&self, epoch: Epoch, sub: u64) -> Vec<u64> {
        let size = self.subcommittee_size() as usize;
        self.sync_committee(epoch)
            .iter()
            .skip(sub as usize * size)
            .take(size)
            .copied()
            .collect()
    }

    /// The consensus specs' `is_sync_committee_aggregator`.
    pub fn is_sync_aggregator(&self, selection_proof: &SignatureBytes) -> bool {
        selected_by(
            selection_proof,
            self.subcommittee_size() / self.spec.target_aggregators_per_sync_subcommittee,
        )
    }

    /// `POST /eth/v1/beacon/pool/sync_committees`.
    pub fn submit_sync_messages(
        &mut self,
        items: &[SyncCommitteeMessage],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        let batch = self.sync_message_signatures(items);
        self.verifier.verify_batch(&batch);
        self.judge_each(items, Batch::SyncMessages, |chain, m| {
            chain.check_sync_message(m, now_ms)
        })
    }

    /// Gossip accepts sync committee messages and contributions of the
    /// current slot only, give or take the clock disparity.
    fn check_current_slot(&self, slot: Slot, now_ms: u64) -> Result<(), String> {
        let opens = self
            .slot_start_ms(slot)
            .saturating_sub(MAX_CLOCK_DISPARITY_MS);
        let closes = self
            .slot_start_ms(slot.saturating_add(1))
            .saturating_add(MAX_CLOCK_DISPARITY_MS);
        if (opens..=closes).contains(&now_ms) {
            Ok(())
        } else {
            Err(format!(
                "not the current slot: {slot} (now {} ms into slot {})",
                now_ms.saturating_sub(self.slot_start_ms(self.current_slot(now_ms))),
                self.current_slot(now_ms)
            ))
        }
    }

    fn check_sync_message(&mut self, m: &SyncCommitteeMessage, now_ms: u64) -> Result<(), String> {
        self.check_current_slot(m.slot, now_ms)?;
        let epoch = self.spec.epoch_of_slot(m.slot);
        let positions = self.sync_positions(m.validator_index, epoch);
        if positions.is_empty() {
            return Err(format!("not in the sync committee: {}", m.validator_index));
        }
        let domain = self.spec.domain(
            DomainKind::SyncCommittee,
            epoch,
            self.genesis_validators_root,
        );
        self.verify(
            m.validator_index,
            compute_signing_root(&m.beacon_block_root, domain),
            &m.signature,
        )?;
        if !self.known_roots.contains(&m.beacon_block_root) {
            return Err(format!(
                "unknown beacon block root: {}",
                m.beacon_block_root
            ));
        }
        if let Ok(signature) = Signature::from_bytes(&m.signature.0) {
            let pool = self
                .sync_pool
                .entry((m.slot, m.beacon_block_root))
                .or_default();
            for p in positions {
                pool.entry(p).or_insert(signature);
            }
        }
        Ok(())
    }

    /// `GET /eth/v1/validator/sync_committee_contribution`.
    pub fn sync_committee_contribution(
        &self,
        slot: Slot,
        subcommittee: u64,
        root: Root,
    ) -> Result<SyncCommitteeContribution<P>, ApiError> {
        let size = self.subcommittee_size();
        let pool = self.sync_pool.get(&(slot, root));
        let mut bits = ssz_types::BitVector::new();
        let mut signatures = Vec::new();
        for (p, sig) in pool.into_iter().flatten() {
            if *p / size != subcommittee {
                continue;
            }
            bits.set((*p % size) as usize, true)
                .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
            signatures.push(*sig);
        }
        let signature = Signature::aggregate(&signatures).ok_or_else(|| {
            ApiError::new(
                404,
                format!("no sync committee messages for subcommittee {subcommittee} at slot {slot} on {root}"),
            )
        })?;
        Ok(SyncCommitteeContribution {
            slot,
            beacon_block_root: root,
            subcommittee_index: subcommittee,
            aggregation_bits: bits,
            signature: SignatureBytes(signature.to_bytes()),
        })
    }

    /// `POST /eth/v1/validator/contribution_and_proofs`.
    pub fn submit_contributions(
        &mut self,
        items: &[SignedContributionAndProof<P>],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Contributions, |chain, c| {
            chain.check_contribution(c, now_ms)
        })
    }

    fn check_contribution(
        &mut self,
        item: &SignedContributionAndProof<P>,
        now_ms: u64,
    ) -> Result<(), String> {
        let message = &item.message;
        let c = &message.contribution;
        self.check_current_slot(c.slot, now_ms)?;
        let aggregator = message.aggregator_index;
        let epoch = self.spec.epoch_of_slot(c.slot);
        let members = self.subcommittee(epoch, c.subcommittee_index);
        if !members.contains(&aggregator) {
            return Err(format!("aggregator not in subcommittee: {aggregator}"));
        }
        let gvr = self.genesis_validators_root;
        let selection = SyncAggregatorSelectionData {
            slot: c.slot,
            subcommittee_index: c.subcommittee_index,
        };
        let selection_domain =
            self.spec
                .domain(DomainKind::SyncCommitteeSelectionProof, epoch, gvr);
        self.verify(
            aggregator,
            compute_signing_root(&selection, selection_domain),
            &message.selection_proof,
        )?;
        if !self.is_sync_aggregator(&message.selection_proof) {
            return Err(format!("not a sync aggregator: {aggregator}"));
        }
        self.remember_selection(c.slot, aggregator, Some(c.subcommittee_index));
        let bits: Vec<bool> = (0..c.aggregation_bits.len())
            .map(|b| c.aggregation_bits.get(b).unwrap_or(false))
            .collect();
        let participants: Vec<PublicKey> = set_positions(&bits)
            .filter_map(|b| {
                members
                    .get(b)
                    .and_then(|v| self.verifier.keys().get(*v as usize))
                    .copied()
            })
            .collect();
        let domain = self.spec.domain(DomainKind::SyncCommittee, epoch, gvr);
        let root = compute_signing_root(&c.beacon_block_root, domain);
        if !self
            .verifier
            .verify_aggregate(&participants, root, &c.signature)
        {
            self.report.invalid_signatures += 1;
            return Err("invalid contribution signature".into());
        }
        let domain = self
            .spec
            .domain(DomainKind::ContributionAndProof, epoch, gvr);
        self.verify(
            aggregator,
            compute_signing_root(message, domain),
            &item.signature,
        )?;
        self.landed_contributions
            .insert((c.slot, c.subcommittee_index, aggregator));
        if let Ok(signature) = Signature::from_bytes(&c.signature.0) {
            let key = (c.slot, c.beacon_block_root, c.subcommittee_index);
            let count = |b: &[bool]| b.iter().filter(|x| **x).count();
            let better = self
                .best_contributions
                .get(&key)
                .is_none_or(|(best, _)| count(&bits) > count(best));
            if better {
                self.best_contributions.insert(key, (bits, signature));
            }
        }
        Ok(())
    }

    /// `POST /eth/v1/validator/register_validator`: each registration must
    /// be its validator key's signature under `DOMAIN_APPLICATION_BUILDER`.
    pub fn register_validators(
        &mut self,
        items: &[SignedValidatorRegistration],
    ) -> Result<(), ApiError> {
        let batch = self.registration_signatures(items);
        self.verifier.verify_batch(&batch);
        self.judge_each(items, Batch::Registrations, Self::check_registration)
    }

    fn check_registration(&mut self, r: &SignedValidatorRegistration) -> Result<(), String> {
        let index = self
            .index_of(&r.message.pubkey)
            .ok_or_else(|| format!("unknown validator: {}", r.message.pubkey))?;
        let domain = self.registration_domain();
        self.verify(
            index,
            compute_signing_root(&r.message, domain),
            &r.signature,
        )?;
        self.registered.insert(index, r.message.fee_recipient);
        Ok(())
    }

    /// The report as the testnet script reads it: what the chain received,
    /// every duty of slots 1 to the last complete one, landed or missed
    /// (attestations and sync committee messages up to the slot before:
    /// they land in the next slot's block), the attesters' timeliness, and
    /// the CPU time this process spent.
    pub fn report_json(&self, now_ms: u64) -> serde_json::Value {
        let cpu_ms = process_cpu_ms();
        let last = self.current_slot(now_ms).saturating_sub(1);
        let included_until = last.saturating_sub(1).max(1);
        let (messages, contributions) = self.sync_summary_split(1, last, included_until);
        serde_json::json!({
            "report": self.report,
            "duties_until_last_slot": self.duty_summary_split(1, included_until, last),
            "timeliness_until_last_slot": self.timeliness(1, included_until),
            "aggregates_until_last_slot": self.aggregation_summary(1, last),
            "sync_messages_until_last_slot": messages,
            "contributions_until_last_slot": contributions,
            "validators_registered": self.registered.len(),
            "cpu_ms": cpu_ms,
        })
    }

    /// Sync committee duties: messages of slots `first..=included_until`
    /// (landed: in the next block's sync aggregate), contributions of slots
    /// `first..=last` (landed: accepted); aggregators are whoever the
    /// selection proof (made here with interop keys) selects.
    fn sync_summary_split(
        &self,
        first: Slot,
        last: Slot,
        included_until: Slot,
    ) -> ((u64, u64), (u64, u64)) {
        let (mut messages, mut contributions) = ((0, 0), (0, 0));
        for slot in first..=last {
            let epoch = self.spec.epoch_of_slot(slot);
            if slot <= included_until {
                let mut members: Vec<u64> = self.sync_committee(epoch).to_vec();
                members.sort();
                members.dedup();
                for v in members {
                    if self.sync_included.contains(&(slot, v)) {
                        messages.0 += 1;
                    } else {
                        messages.1 += 1;
                    }
                }
            }
            for sub in 0..self.spec.sync_committee_subnet_count {
                let mut members = self.subcommittee(epoch, sub);
                members.sort();
                members.dedup();
                for v in members {
                    if !self.selects(slot, v, Some(sub), 0) {
                        continue;
                    }
                    if self.landed_contributions.contains(&(slot, sub, v)) {
                        contributions.0 += 1;
                    } else {
                        contributions.1 += 1;
                    }
                }
            }
        }
        (messages, contributions)
    }

    /// Sync committee duties of slots `first..=last`: messages and
    /// contributions, (landed, missed) each (messages need the block after `last`).
    pub fn sync_summary(&self, first: Slot, last: Slot) -> ((u64, u64), (u64, u64)) {
        self.sync_summary_split(first, last, last)
    }

    /// Duties of slots `first..=last` that landed and that were missed
    /// (attestations: included by a block; needs the block after `last`).
    pub fn duty_summary(&self, first: Slot, last: Slot) -> DutySummary {
        self.duty_summary_split(first, last, last)
    }

    /// Attestation duties of `first..=attestations_until`, proposals of `first..=last`.
    fn duty_summary_split(&self, first: Slot, attestations_until: Slot, last: Slot) -> DutySummary {
        let mut summary = DutySummary::default();
        for slot in first..=last {
            if slot <= attestations_until {
                let epoch = self.spec.epoch_of_slot(slot);
                for v in self.committees_at(slot).into_iter().flatten() {
                    if self.included.contains_key(&(v, epoch)) {
                        summary.attestations_ok += 1;
                    } else {
                        summary.attestations_missed += 1;
                    }
                }
            }
            if slot > 0 {
                if self.landed_proposals.contains(&slot) {
                    summary.proposals_ok += 1;
                } else {
                    summary.proposals_missed += 1;
                }
            }
        }
        summary
    }

    /// How the attestation duties of slots `first..=last` were rewarded.
    pub fn timeliness(&self, first: Slot, last: Slot) -> Timeliness {
        let mut t = Timeliness::default();
        for slot in first..=last {
            let epoch = self.spec.epoch_of_slot(slot);
            for v in self.committees_at(slot).into_iter().flatten() {
                t.duties += 1;
                if let Some(i) = self.included.get(&(v, epoch)) {
                    t.source_timely += u64::from(i.source_timely);
                    t.target_timely += u64::from(i.target_timely);
                    t.head_timely += u64::from(i.head_timely);
                }
            }
        }
        t
    }

    /// How `validator`'s attestation of `epoch` was included, if it was.
    pub fn inclusion_of(&self, validator: u64, epoch: Epoch) -> Option<Inclusion> {
        self.included.get(&(validator, epoch)).copied()
    }
}

/// Attestation duties and how many earned each timeliness flag.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timeliness {
    pub duties: u64,
    pub source_timely: u64,
    pub target_timely: u64,
    pub head_timely: u64,
}

/// User plus system CPU time of this process, in ms (from `/proc/self/stat`).
pub fn process_cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the command (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; here 0 is field 3.
    (ticks(11) + ticks(12)) * 1000 / clock_ticks_per_second()
}

/// `sysconf(_SC_CLK_TCK)`, which is 100 on Linux.
fn clock_ticks_per_second() -> u64 {
    100
}

/// Lodestar's answer (HTTP 500) to a block it already has.
pub const BLOCK_ALREADY_KNOWN: &str = "BLOCK_ERROR_ALREADY_KNOWN";

/// A signed aggregate of either fork, as the chain checks it.
struct AggregateView {
    aggregator: u64,
    committee_index: u64,
    data: AttestationData,
    bits: Vec<bool>,
    aggregate_signature: SignatureBytes,
    selection_proof: SignatureBytes,
    /// The `AggregateAndProof`'s hash tree root.
    message_root: Root,
    signature: SignatureBytes,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DutySummary {
    pub attestations_ok: u64,
    pub attestations_missed: u64,
    pub proposals_ok: u64,
    pub proposals_missed: u64,
}

/// A deterministic stand-in for the post-state root.
fn state_root_for(parent: Root, slot: Slot) -> Root {
    let mut hasher = Sha256::new();
    hasher.update(parent.as_slice());
    hasher.update(slot.to_le_bytes());
    Root::from(<[u8; 32]>::from(hasher.finalize()))
}

/// The fields a produced body fills in; everything else is empty.
struct BodyFields<P: Preset> {
    randao_reveal: SignatureBytes,
    graffiti: Graffiti,
    voluntary_exits: ssz_types::VariableList<SignedVoluntaryExit, P::MaxVoluntaryExits>,
    sync_aggregate: SyncAggregate<P>,
    execution_payload: ExecutionPayload<P>,
    blob_kzg_commitments: ssz_types::VariableList<KzgCommitment, P::MaxBlobCommitmentsPerBlock>,
    attestations_deneb: ssz_types::VariableList<AttestationDeneb<P>, P::MaxAttestations>,
    attestations_electra: ssz_types::VariableList<AttestationElectra<P>, P::MaxAttestationsElectra>,
}

/// A produced block's blobs and proofs, as the Beacon API carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BlockBlobs {
    pub kzg_proofs: Vec<String>,
    pub blobs: Vec<String>,
}

/// Bytes of a blob.
const BLOB_BYTES: usize = 131_072;

/// One blob per block with stand-in commitment and proofs (the simulator does
/// not do KZG; what it checks is that a published block comes with exactly
/// the blobs it was produced with, as a beacon node needs them).
fn blob_for(slot: Slot, fork: ForkName) -> (KzgCommitment, BlockBlobs) {
    let seed: [u8; 32] = Sha256::digest(slot.to_le_bytes()).into();
    let mut commitment = [0u8; 48];
    commitment[..32].copy_from_slice(&seed);
    let mut blob = vec![0u8; BLOB_BYTES];
    blob[..32].copy_from_slice(&seed);
    let proofs = if fork >= ForkName::Fulu { 128 } else { 1 };
    let proof = format!("0x{}", "c0".repeat(48));
    (
        KzgCommitment(commitment),
        BlockBlobs {
            kzg_proofs: vec![proof; proofs],
            blobs: vec![format!("0x{}", hex_string(&blob))],
        },
    )
}

/// The spec's `compute_activation_exit_epoch` (MAX_SEED_LOOKAHEAD is 4 in both presets).
fn activation_exit_epoch(epoch: Epoch) -> Epoch {
    epoch + 1 + 4
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

trait IntoBody<B> {
    fn into_body(self) -> B;
}

impl<P: Preset> IntoBody<BeaconBlockBodyDeneb<P>> for BodyFields<P> {
    fn into_body(self) -> BeaconBlockBodyDeneb<P> {
        BeaconBlockBodyDeneb {
            randao_reveal: self.randao_reveal,
            eth1_data: Eth1Data::default(),
            graffiti: self.graffiti,
            proposer_slashings: Default::default(),
            attester_slashings: Default::default(),
            attestations: self.attestations_deneb,
            deposits: Default::default(),
            voluntary_exits: self.voluntary_exits,
            sync_aggregate: self.sync_aggregate,
            execution_payload: self.execution_payload,
            bls_to_execution_changes: Default::default(),
            blob_kzg_commitments: self.blob_kzg_commitments,
        }
    }
}

impl<P: Preset> IntoBody<BeaconBlockBodyElectra<P>> for BodyFields<P> {
    fn into_body(self) -> BeaconBlockBodyElectra<P> {
        BeaconBlockBodyElectra {
            randao_reveal: self.randao_reveal,
            eth1_data: Eth1Data::default(),
            graffiti: self.graffiti,
            proposer_slashings: Default::default(),
            attester_slashings: Default::default(),
            attestations: self.attestations_electra,
            deposits: Default::default(),
            voluntary_exits: self.voluntary_exits,
            sync_aggregate: self.sync_aggregate,
            execution_payload: self.execution_payload,
            bls_to_execution_changes: Default::default(),
            blob_kzg_commitments: self.blob_kzg_commitments,
            execution_requests: ExecutionRequests {
                deposits: Default::default(),
                withdrawals: Default::default(),
                consolidations: Default::default(),
            },
        }
    }
}
