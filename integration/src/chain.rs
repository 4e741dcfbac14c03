//! The simulated beacon chain's state and rules, without HTTP.
//!
//! Interop validators `0..n` on the minimal preset, every fork up to the chosen
//! one active from genesis. Each validator attests once per epoch (at slot
//! `epoch_start + index % SLOTS_PER_EPOCH`, committee 0); the proposer of slot
//! `s` is validator `s % n`. The head is the highest block received; checkpoints
//! are the blocks at epoch starts, and the source of epoch `e` is the target of
//! `e - 1` (everything justifies, nothing reorgs).
//!
//! It is strict because it is the judge: every signature is verified with the
//! real domain, data that does not match the chain is refused with the reason
//! a beacon node would give, and any slashable pair a validator ever sends is
//! recorded, whether or not it was accepted.
//!
//! Voluntary exits are judged as `process_voluntary_exit` does (active long
//! enough by SHARD_COMMITTEE_PERIOD, no exit before, epoch not in the future,
//! signature under EIP-7044's domain), pooled, and count once a block on the
//! chain includes them; the exit epoch set is `compute_activation_exit_epoch`
//! of the inclusion epoch (no churn limit: the simulated chain's validator
//! set is small). Exited validators keep their duties here: runs end before
//! an exit epoch comes.

use dv_crypto::{interop_secret_key, PublicKey, Signature};
use dv_types::*;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use tree_hash::TreeHash;

pub type P = Minimal;

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
    pub validator_committee_index: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub validators: usize,
    pub fork: String,
    pub attestations_ok: u64,
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

struct AttestationRecord {
    data: AttestationData,
}

pub struct Chain {
    pub spec: ChainSpec,
    pub fork: ForkName,
    pub genesis_time: u64,
    pub genesis_validators_root: Root,
    keys: Vec<PublicKey>,
    key_bytes: Vec<PublicKeyBytes>,
    /// Canonical blocks by slot (at most one per slot).
    blocks: BTreeMap<Slot, (Root, BeaconBlockHeader)>,
    known_roots: HashSet<Root>,
    attestations: HashMap<u64, Vec<AttestationRecord>>,
    landed_attestations: HashSet<(u64, Epoch)>,
    landed_proposals: HashSet<Slot>,
    /// Accepted attestations by data root: the data and each signer's
    /// position in the committee with its signature (what aggregates are made of).
    pool: HashMap<Root, (AttestationData, BTreeMap<usize, SignatureBytes>)>,
    /// Accepted aggregates: (slot, aggregator).
    landed_aggregates: HashSet<(Slot, u64)>,
    /// Accepted sync committee messages by (slot, block root): position → signature.
    sync_pool: HashMap<(Slot, Root), BTreeMap<u64, SignatureBytes>>,
    landed_sync_messages: HashSet<(Slot, u64)>,
    /// Accepted contributions: (slot, subcommittee, aggregator).
    landed_contributions: HashSet<(Slot, u64, u64)>,
    pub report: Report,
    /// Builder mode: block production answers blinded blocks, which come
    /// back signed on the blinded endpoint and are unblinded from here.
    pub builder: bool,
    /// Full blocks this chain produced (with their blobs), by block root.
    produced: HashMap<Root, (VersionedBlock<P>, BlockBlobs)>,
    /// Fee recipient of each validator registered with the builder.
    pub registered: BTreeMap<u64, ExecutionAddress>,
    /// Digests of (signers, signing root, signature) that verified: every
    /// node of a cluster submits the same combined signature, and a beacon
    /// node does not check a message it already accepted again.
    verified: HashSet<[u8; 32]>,
    /// Verified voluntary exits waiting for a block, by validator.
    exit_pool: BTreeMap<u64, SignedVoluntaryExit>,
}

/// MAXIMUM_GOSSIP_CLOCK_DISPARITY of the p2p specs.
const MAX_CLOCK_DISPARITY_MS: u64 = 500;

/// Past this many remembered verifications the memo starts over.
const MAX_VERIFIED_MEMO: usize = 200_000;

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

impl Chain {
    /// A chain of `validators` interop validators at `fork`, `slot_ms` per slot, starting at `genesis_time` (unix seconds).
    pub fn new(validators: usize, fork: ForkName, slot_ms: u64, genesis_time: u64) -> Self {
        assert!(validators > 0, "at least one validator");
        let mut spec = ChainSpec::minimal();
        spec.config_name = "dv-simulated".into();
        spec.slot_duration_ms = slot_ms;
        for entry in spec.fork_schedule.forks.iter_mut() {
            entry.2 = if entry.0 <= fork { 0 } else { FAR_FUTURE_EPOCH };
        }
        let keys: Vec<PublicKey> = (0..validators as u64)
            .map(|i| interop_secret_key(i).public_key())
            .collect();
        let key_bytes = keys.iter().map(|k| PublicKeyBytes(k.to_bytes())).collect();
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
            keys,
            key_bytes,
            blocks: BTreeMap::new(),
            known_roots: HashSet::new(),
            attestations: HashMap::new(),
            landed_attestations: HashSet::new(),
            landed_proposals: HashSet::new(),
            pool: HashMap::new(),
            landed_aggregates: HashSet::new(),
            sync_pool: HashMap::new(),
            landed_sync_messages: HashSet::new(),
            landed_contributions: HashSet::new(),
            builder: false,
            produced: HashMap::new(),
            registered: BTreeMap::new(),
            verified: HashSet::new(),
            exit_pool: BTreeMap::new(),
            report: Report {
                validators,
                fork: fork.to_string(),
                ..Report::default()
            },
        };
        chain.blocks.insert(0, (genesis_root, genesis));
        chain.known_roots.insert(genesis_root);
        chain
    }

    pub fn validator_count(&self) -> usize {
        self.keys.len()
    }

    pub fn pubkey(&self, index: u64) -> Option<PublicKeyBytes> {
        self.key_bytes.get(index as usize).copied()
    }

    pub fn index_of(&self, pubkey: &PublicKeyBytes) -> Option<u64> {
        self.key_bytes
            .iter()
            .position(|k| k == pubkey)
            .map(|i| i as u64)
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
                .find(|(r, _)| *r == root)
                .map(|(_, h)| *h)?;
            if header.slot <= boundary {
                return Some(root);
            }
            root = header.parent_root;
        }
    }

    pub fn genesis_block_root(&self) -> Root {
        self.block_root_at(0)
    }

    fn checkpoint(&self, epoch: Epoch) -> Checkpoint {
        Checkpoint {
            epoch,
            root: self.block_root_at(self.spec.start_slot_of_epoch(epoch)),
        }
    }

    pub fn proposer_of(&self, slot: Slot) -> u64 {
        slot % self.keys.len() as u64
    }

    pub fn attester_duty(&self, validator_index: u64, epoch: Epoch) -> Option<AttesterDuty> {
        let n = self.keys.len() as u64;
        if validator_index >= n {
            return None;
        }
        let spe = self.spec.slots_per_epoch;
        let offset = validator_index % spe;
        let committee: Vec<u64> = (0..n).filter(|v| v % spe == offset).collect();
        let position = committee.iter().position(|v| *v == validator_index)? as u64;
        Some(AttesterDuty {
            validator_index,
            slot: self.spec.start_slot_of_epoch(epoch) + offset,
            committee_index: 0,
            committee_length: committee.len() as u64,
            validator_committee_index: position,
        })
    }

    fn committee_at(&self, slot: Slot) -> Vec<u64> {
        let spe = self.spec.slots_per_epoch;
        (0..self.keys.len() as u64)
            .filter(|v| v % spe == slot % spe)
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
            .keys
            .get(validator as usize)
            .ok_or_else(|| format!("unknown validator: {validator}"))?;
        if self.verify_aggregate(&[key], root, signature) {
            Ok(())
        } else {
            self.report.invalid_signatures += 1;
            Err(format!("invalid signature: validator {validator}"))
        }
    }

    /// Whether `signature` is the aggregate of `signers` over `root`
    /// (false for no signers); a verification that succeeded is remembered.
    fn verify_aggregate(
        &mut self,
        signers: &[PublicKey],
        root: Root,
        signature: &SignatureBytes,
    ) -> bool {
        if signers.is_empty() {
            return false;
        }
        let mut digest = Sha256::new();
        for key in signers {
            digest.update(key.to_bytes());
        }
        digest.update(root.as_slice());
        digest.update(signature.0);
        let memo: [u8; 32] = digest.finalize().into();
        if self.verified.contains(&memo) {
            return true;
        }
        let ok = Signature::from_bytes(&signature.0).is_ok_and(|sig| match signers {
            [key] => key.verify(root.as_slice(), &sig),
            _ => sig.fast_aggregate_verify(root.as_slice(), signers),
        });
        if ok {
            if self.verified.len() >= MAX_VERIFIED_MEMO {
                self.verified.clear();
            }
            self.verified.insert(memo);
        }
        ok
    }

    /// Records a signed attestation and flags it if it is slashable against an earlier one.
    fn note_slashable_attestation(&mut self, validator: u64, data: &AttestationData) {
        let previous = self.attestations.entry(validator).or_default();
        for old in previous.iter() {
            let (o, n) = (&old.data, data);
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
        if !previous.iter().any(|r| r.data == *data) {
            previous.push(AttestationRecord { data: *data });
        }
    }

    /// Checks one unaggregated attestation by `validator` and records it.
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
        let domain = self.spec.domain(
            DomainKind::BeaconAttester,
            data.target.epoch,
            self.genesis_validators_root,
        );
        self.verify(validator, compute_signing_root(data, domain), signature)?;
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
        let position = duty.validator_committee_index as usize;
        self.pool
            .entry(data.tree_hash_root())
            .or_insert_with(|| (*data, BTreeMap::new()))
            .1
            .entry(position)
            .or_insert(*signature);
        if self.landed_attestations.insert((validator, epoch)) {
            self.report.attestations_ok += 1;
            let delay = now_ms.saturating_sub(self.slot_start_ms(data.slot));
            self.report.attestation_delays_ms.push(delay);
        }
        Ok(())
    }

    /// `POST /eth/v2/beacon/pool/attestations` from Electra: `SingleAttestation`s.
    pub fn submit_single_attestations(
        &mut self,
        items: &[SingleAttestation],
        now_ms: u64,
    ) -> Result<(), ApiError> {
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

    /// Pre-Electra `Attestation`s with one aggregation bit set.
    pub fn submit_deneb_attestations(
        &mut self,
        items: &[AttestationDeneb<P>],
        now_ms: u64,
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Attestations, |chain, a| {
            let committee = chain.committee_at(a.data.slot);
            let set: Vec<usize> = (0..a.aggregation_bits.len())
                .filter(|b| a.aggregation_bits.get(*b).unwrap_or(false))
                .collect();
            if a.aggregation_bits.len() != committee.len() || set.len() != 1 {
                return Err(format!(
                    "aggregation bits must have {} bits with exactly one set",
                    committee.len()
                ));
            }
            chain.accept_attestation(
                committee[set[0]],
                a.data.index,
                &a.data,
                &a.signature,
                now_ms,
            )
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
        let sync_aggregate = SyncAggregate::<P> {
            sync_committee_bits: Default::default(),
            sync_committee_signature: SignatureBytes::infinity(),
        };
        let (commitment, blobs) = blob_for(slot, self.fork);
        let exits: Vec<SignedVoluntaryExit> = self
            .exit_pool
            .values()
            .take(<<P as Preset>::MaxVoluntaryExits as ssz_types::typenum::Unsigned>::to_usize())
            .cloned()
            .collect();
        let fields = BodyFields {
            randao_reveal,
            graffiti,
            voluntary_exits: ssz_types::VariableList::new(exits)
                .map_err(|e| ApiError::bad_request(format!("{e:?}")))?,
            sync_aggregate,
            execution_payload: payload,
            blob_kzg_commitments: ssz_types::VariableList::new(vec![commitment])
                .map_err(|e| ApiError::bad_request(format!("{e:?}")))?,
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
        let previous_head = self.head();
        self.blocks.insert(slot, (root, header));
        self.known_roots.insert(root);
        self.landed_proposals.insert(slot);
        for exit in block.voluntary_exits() {
            let validator = exit.message.validator_index;
            self.exit_pool.remove(&validator);
            self.report
                .exits_included
                .insert(validator, activation_exit_epoch(epoch));
        }
        if slot <= previous_head.0 {
            return Ok(None);
        }
        let spe = self.spec.slots_per_epoch;
        Ok(Some(HeadEvent {
            slot,
            block: root,
            state: header.state_root,
            epoch_transition: self.spec.epoch_of_slot(previous_head.0) != epoch,
            previous_duty_dependent_root: self.genesis_block_root(),
            current_duty_dependent_root: self.block_root_at((epoch * spe).saturating_sub(1)),
            execution_optimistic: false,
        }))
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
        if validator as usize >= self.keys.len() {
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
        let modulo = (committee_len as u64 / self.spec.target_aggregators_per_committee).max(1);
        let hash = Sha256::digest(selection_proof.0);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        u64::from_le_bytes(first) % modulo == 0
    }

    /// `GET /eth/v2/validator/aggregate_attestation` (Electra on): the
    /// aggregate of what was received for `data_root` (one committee per
    /// slot here).
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
        let (data, bits, signature) = self.aggregate_of(data_root, slot, committee_index)?;
        let mut aggregation_bits = ssz_types::BitList::with_capacity(bits.len())
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        for (i, set) in bits.iter().enumerate() {
            aggregation_bits
                .set(i, *set)
                .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        }
        let mut committee_bits = ssz_types::BitVector::new();
        committee_bits
            .set(committee_index as usize, true)
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        Ok(AttestationElectra {
            aggregation_bits,
            data,
            signature,
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
        let (data, bits, signature) = self.aggregate_of(data_root, slot, 0)?;
        let mut aggregation_bits = ssz_types::BitList::with_capacity(bits.len())
            .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        for (i, set) in bits.iter().enumerate() {
            aggregation_bits
                .set(i, *set)
                .map_err(|e| ApiError::bad_request(format!("{e:?}")))?;
        }
        Ok(AttestationDeneb {
            aggregation_bits,
            data,
            signature,
        })
    }

    /// The attestations received for `data_root`: their data, which
    /// committee positions they cover, and their aggregate signature.
    fn aggregate_of(
        &self,
        data_root: Root,
        slot: Slot,
        committee_index: u64,
    ) -> Result<(AttestationData, Vec<bool>, SignatureBytes), ApiError> {
        let (data, received) = self.pool.get(&data_root).ok_or_else(|| ApiError {
            code: 404,
            message: format!("no attestations for data root {data_root}"),
            failures: Vec::new(),
        })?;
        if data.slot != slot || committee_index != 0 {
            return Err(ApiError::bad_request(format!(
                "no committee {committee_index} attestations with that root at slot {slot}"
            )));
        }
        let committee = self.committee_at(slot);
        let mut bits = vec![false; committee.len()];
        let mut signatures = Vec::new();
        for (position, signature) in received {
            if let Some(bit) = bits.get_mut(*position) {
                *bit = true;
            }
            // Verified when it arrived.
            if let Ok(sig) = Signature::from_bytes(&signature.0) {
                signatures.push(sig);
            }
        }
        let aggregate = Signature::aggregate(&signatures)
            .ok_or_else(|| ApiError::bad_request("nothing to aggregate"))?;
        Ok((*data, bits, SignatureBytes(aggregate.to_bytes())))
    }

    /// `POST /eth/v2/validator/aggregate_and_proofs` (Electra on): the
    /// aggregator is in the committee and selected, the aggregate's
    /// signature is its attesters', and the aggregator signed the whole.
    pub fn submit_aggregates(
        &mut self,
        items: &[SignedAggregateAndProofElectra<P>],
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Aggregates, |chain, item| {
            let m = &item.message;
            let committees: Vec<usize> = (0..m.aggregate.committee_bits.len())
                .filter(|i| m.aggregate.committee_bits.get(*i).unwrap_or(false))
                .collect();
            if committees != [0] || m.aggregate.data.index != 0 {
                return Err(format!(
                    "wrong committee: committee bits {committees:?}, data index {} (one committee, 0, per slot here)",
                    m.aggregate.data.index
                ));
            }
            chain.check_aggregate(AggregateView {
                aggregator: m.aggregator_index,
                data: m.aggregate.data,
                bits: (0..m.aggregate.aggregation_bits.len())
                    .map(|b| m.aggregate.aggregation_bits.get(b).unwrap_or(false))
                    .collect(),
                aggregate_signature: m.aggregate.signature,
                selection_proof: m.selection_proof,
                message_root: m.tree_hash_root(),
                signature: item.signature,
            })
        })
    }

    /// `POST /eth/v1/validator/aggregate_and_proofs` (before Electra): the
    /// same checks on Deneb's shape.
    pub fn submit_aggregates_deneb(
        &mut self,
        items: &[SignedAggregateAndProofDeneb<P>],
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Aggregates, |chain, item| {
            let m = &item.message;
            if m.aggregate.data.index != 0 {
                return Err(format!(
                    "wrong committee: data index {} (one committee, 0, per slot here)",
                    m.aggregate.data.index
                ));
            }
            chain.check_aggregate(AggregateView {
                aggregator: m.aggregator_index,
                data: m.aggregate.data,
                bits: (0..m.aggregate.aggregation_bits.len())
                    .map(|b| m.aggregate.aggregation_bits.get(b).unwrap_or(false))
                    .collect(),
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
        let committee = self.committee_at(data.slot);
        if !committee.contains(&aggregator) {
            return Err(format!("aggregator not in committee: {aggregator}"));
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
        let attesters: Vec<PublicKey> = item
            .bits
            .iter()
            .enumerate()
            .filter(|(_, set)| **set)
            .filter_map(|(b, _)| {
                committee
                    .get(b)
                    .and_then(|v| self.keys.get(*v as usize))
                    .copied()
            })
            .collect();
        let attester_domain = self
            .spec
            .domain(DomainKind::BeaconAttester, data.target.epoch, gvr);
        let root = compute_signing_root(&data, attester_domain);
        if !self.verify_aggregate(&attesters, root, &item.aggregate_signature) {
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
        Ok(())
    }

    /// Aggregation duties of slots `first..=last`: (landed, missed). An
    /// aggregator is whoever the selection proof (made here with the
    /// validator's interop key) selects.
    pub fn aggregation_summary(&self, first: Slot, last: Slot) -> (u64, u64) {
        let (mut landed, mut missed) = (0, 0);
        for slot in first..=last {
            let committee = self.committee_at(slot);
            let epoch = self.spec.epoch_of_slot(slot);
            let domain = self.spec.domain(
                DomainKind::SelectionProof,
                epoch,
                self.genesis_validators_root,
            );
            let root = compute_signing_root(&slot, domain);
            for v in &committee {
                let proof = SignatureBytes(interop_secret_key(*v).sign(root.as_slice()).to_bytes());
                if !self.is_aggregator(committee.len(), &proof) {
                    continue;
                }
                if self.landed_aggregates.contains(&(slot, *v)) {
                    landed += 1;
                } else {
                    missed += 1;
                }
            }
        }
        (landed, missed)
    }

    /// The sync committee positions of `validator`: position `p` is validator
    /// `p mod n`, the same every period.
    pub fn sync_positions(&self, validator: u64) -> Vec<u64> {
        let n = self.keys.len() as u64;
        (0..self.spec.sync_committee_size)
            .filter(|p| p % n == validator)
            .collect()
    }

    fn subcommittee_size(&self) -> u64 {
        (self.spec.sync_committee_size / self.spec.sync_committee_subnet_count).max(1)
    }

    /// The consensus specs' `is_sync_committee_aggregator`.
    pub fn is_sync_aggregator(&self, selection_proof: &SignatureBytes) -> bool {
        let modulo =
            (self.subcommittee_size() / self.spec.target_aggregators_per_sync_subcommittee).max(1);
        let hash = Sha256::digest(selection_proof.0);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        u64::from_le_bytes(first) % modulo == 0
    }

    /// `POST /eth/v1/beacon/pool/sync_committees`.
    pub fn submit_sync_messages(
        &mut self,
        items: &[SyncCommitteeMessage],
        now_ms: u64,
    ) -> Result<(), ApiError> {
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
        let positions = self.sync_positions(m.validator_index);
        if positions.is_empty() {
            return Err(format!("not in the sync committee: {}", m.validator_index));
        }
        let epoch = self.spec.epoch_of_slot(m.slot);
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
        let pool = self
            .sync_pool
            .entry((m.slot, m.beacon_block_root))
            .or_default();
        for p in positions {
            pool.entry(p).or_insert(m.signature);
        }
        self.landed_sync_messages
            .insert((m.slot, m.validator_index));
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
            if let Ok(sig) = Signature::from_bytes(&sig.0) {
                signatures.push(sig);
            }
        }
        let signature = Signature::aggregate(&signatures).ok_or_else(|| ApiError {
            code: 404,
            message: format!("no sync committee messages for subcommittee {subcommittee} at slot {slot} on {root}"),
            failures: Vec::new(),
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
        let size = self.subcommittee_size();
        if !self
            .sync_positions(aggregator)
            .iter()
            .any(|p| p / size == c.subcommittee_index)
        {
            return Err(format!("aggregator not in subcommittee: {aggregator}"));
        }
        let epoch = self.spec.epoch_of_slot(c.slot);
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
        let n = self.keys.len() as u64;
        let participants: Vec<PublicKey> = (0..c.aggregation_bits.len() as u64)
            .filter(|b| c.aggregation_bits.get(*b as usize).unwrap_or(false))
            .filter_map(|b| {
                self.keys
                    .get(((c.subcommittee_index * size + b) % n) as usize)
                    .copied()
            })
            .collect();
        let domain = self.spec.domain(DomainKind::SyncCommittee, epoch, gvr);
        let root = compute_signing_root(&c.beacon_block_root, domain);
        if !self.verify_aggregate(&participants, root, &c.signature) {
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
        Ok(())
    }

    /// `POST /eth/v1/validator/register_validator`: each registration must
    /// be its validator key's signature under `DOMAIN_APPLICATION_BUILDER`.
    pub fn register_validators(
        &mut self,
        items: &[SignedValidatorRegistration],
    ) -> Result<(), ApiError> {
        self.judge_each(items, Batch::Registrations, Self::check_registration)
    }

    fn check_registration(&mut self, r: &SignedValidatorRegistration) -> Result<(), String> {
        let index = self
            .key_bytes
            .iter()
            .position(|k| *k == r.message.pubkey)
            .ok_or_else(|| format!("unknown validator: {}", r.message.pubkey))?
            as u64;
        let domain = self
            .spec
            .domain(DomainKind::ApplicationBuilder, 0, Root::ZERO);
        self.verify(
            index,
            compute_signing_root(&r.message, domain),
            &r.signature,
        )?;
        self.registered.insert(index, r.message.fee_recipient);
        Ok(())
    }

    /// The report as the testnet script reads it: what the chain received,
    /// and every duty of slots 1 to the last complete one, landed or missed.
    pub fn report_json(&self, now_ms: u64) -> serde_json::Value {
        let last = self.current_slot(now_ms).saturating_sub(1);
        let (messages, contributions) = self.sync_summary(1, last);
        serde_json::json!({
            "report": self.report,
            "duties_until_last_slot": self.duty_summary(1, last),
            "aggregates_until_last_slot": self.aggregation_summary(1, last),
            "sync_messages_until_last_slot": messages,
            "contributions_until_last_slot": contributions,
            "validators_registered": self.registered.len(),
        })
    }

    /// Sync committee duties of slots `first..=last`: messages (landed,
    /// missed) and contributions (landed, missed); aggregators are whoever
    /// the selection proof (made here with interop keys) selects.
    pub fn sync_summary(&self, first: Slot, last: Slot) -> ((u64, u64), (u64, u64)) {
        let n = self.keys.len() as u64;
        let size = self.subcommittee_size();
        let (mut messages, mut contributions) = ((0, 0), (0, 0));
        for slot in first..=last {
            for v in 0..n.min(self.spec.sync_committee_size) {
                if self.landed_sync_messages.contains(&(slot, v)) {
                    messages.0 += 1;
                } else {
                    messages.1 += 1;
                }
            }
            let epoch = self.spec.epoch_of_slot(slot);
            let domain = self.spec.domain(
                DomainKind::SyncCommitteeSelectionProof,
                epoch,
                self.genesis_validators_root,
            );
            for sub in 0..self.spec.sync_committee_subnet_count {
                let mut members: Vec<u64> = (0..size).map(|b| (sub * size + b) % n).collect();
                members.sort();
                members.dedup();
                let data = SyncAggregatorSelectionData {
                    slot,
                    subcommittee_index: sub,
                };
                let root = compute_signing_root(&data, domain);
                for v in members {
                    let proof =
                        SignatureBytes(interop_secret_key(v).sign(root.as_slice()).to_bytes());
                    if !self.is_sync_aggregator(&proof) {
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

    /// Duties of slots `first..=last` that landed and that were missed.
    pub fn duty_summary(&self, first: Slot, last: Slot) -> DutySummary {
        let mut summary = DutySummary::default();
        for slot in first..=last {
            for v in self.committee_at(slot) {
                if self
                    .landed_attestations
                    .contains(&(v, self.spec.epoch_of_slot(slot)))
                {
                    summary.attestations_ok += 1;
                } else {
                    summary.attestations_missed += 1;
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
}

/// Lodestar's answer (HTTP 500) to a block it already has.
pub const BLOCK_ALREADY_KNOWN: &str = "BLOCK_ERROR_ALREADY_KNOWN";

/// A signed aggregate of either fork, as the chain checks it.
struct AggregateView {
    aggregator: u64,
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
struct BodyFields {
    randao_reveal: SignatureBytes,
    graffiti: Graffiti,
    voluntary_exits: ssz_types::VariableList<SignedVoluntaryExit, <P as Preset>::MaxVoluntaryExits>,
    sync_aggregate: SyncAggregate<P>,
    execution_payload: ExecutionPayload<P>,
    blob_kzg_commitments:
        ssz_types::VariableList<KzgCommitment, <P as Preset>::MaxBlobCommitmentsPerBlock>,
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

impl IntoBody<BeaconBlockBodyDeneb<P>> for BodyFields {
    fn into_body(self) -> BeaconBlockBodyDeneb<P> {
        BeaconBlockBodyDeneb {
            randao_reveal: self.randao_reveal,
            eth1_data: Eth1Data::default(),
            graffiti: self.graffiti,
            proposer_slashings: Default::default(),
            attester_slashings: Default::default(),
            attestations: Default::default(),
            deposits: Default::default(),
            voluntary_exits: self.voluntary_exits,
            sync_aggregate: self.sync_aggregate,
            execution_payload: self.execution_payload,
            bls_to_execution_changes: Default::default(),
            blob_kzg_commitments: self.blob_kzg_commitments,
        }
    }
}

impl IntoBody<BeaconBlockBodyElectra<P>> for BodyFields {
    fn into_body(self) -> BeaconBlockBodyElectra<P> {
        BeaconBlockBodyElectra {
            randao_reveal: self.randao_reveal,
            eth1_data: Eth1Data::default(),
            graffiti: self.graffiti,
            proposer_slashings: Default::default(),
            attester_slashings: Default::default(),
            attestations: Default::default(),
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
