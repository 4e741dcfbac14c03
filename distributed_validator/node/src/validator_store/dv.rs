//! The distributed validator's store: behind each call the cluster agrees
//! on the data (QBFT), the slashing database checks and records it, this
//! node signs with its share, the partials are exchanged and the combined
//! signature is verified against the validator key before it is returned.
//! Operations whose duties are not implemented return
//! [`SignError::NotSupportedYet`], never a signature.

use super::*;
use crate::aggregation::CommitteeAggregate;
use crate::decided::{approve_attestations, attestations_allowed, ToSign};
use crate::duty::{Duty, DutyType};
use crate::metrics::{Metrics, Stage};
use crate::parsig::Partial;
use crate::scheduler::SlotClock;
use crate::signer::Signer;
use crate::workflow::{ConsensusRequest, Workflow};
use beacon_client::block_contents::{contents_ssz, split_contents};
use beacon_client::{BlobsBundle, ProducedBlock};
use dv_types::ssz::{Decode, Encode};
use dv_types::*;
use futures::future::join_all;
use slashing_protection::SlashingDatabase;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

struct Inner {
    workflow: Workflow,
    signer: Signer,
    /// Every validator of the cluster (the signer may hold none of them:
    /// in middleware mode the shares live in the validator client).
    validators: HashSet<PublicKeyBytes>,
    db: Arc<SlashingDatabase>,
    spec: ChainSpec,
    genesis_validators_root: Root,
    clock: SlotClock,
    metrics: Arc<Metrics>,
}

/// The distributed validator's signing seam; cheap to clone.
#[derive(Clone)]
pub struct DvValidatorStore {
    inner: Arc<Inner>,
}

/// Block values in consensus: `[kind][fork name length][fork name][SSZ]`.
/// Kind 0: a full block without blobs (SSZ of the block); 1: a blinded
/// block; 2: a full block with its blobs (SSZ of `BlockContents`). The
/// blobs travel with the block so that every node can publish the decided
/// block, whichever beacon node built it.
const FULL_BLOCK: u8 = 0;
const BLINDED_BLOCK: u8 = 1;
const FULL_BLOCK_WITH_BLOBS: u8 = 2;

fn encode_block<P: Preset>(block: &ProducedBlock<P>) -> Vec<u8> {
    let (kind, fork, ssz) = match block {
        ProducedBlock::Full(b, blobs) if !blobs.blobs.is_empty() => {
            match contents_ssz(&b.as_ssz_bytes(), blobs) {
                Ok(contents) => (FULL_BLOCK_WITH_BLOBS, b.fork_name(), contents),
                // Blobs that are not blob-sized hex: the block alone (no beacon node would take them).
                Err(_) => (FULL_BLOCK, b.fork_name(), b.as_ssz_bytes()),
            }
        }
        ProducedBlock::Full(b, _) => (FULL_BLOCK, b.fork_name(), b.as_ssz_bytes()),
        ProducedBlock::Blinded(b) => (BLINDED_BLOCK, b.fork_name(), b.as_ssz_bytes()),
    };
    let name = fork.as_str().as_bytes();
    let mut out = Vec::with_capacity(2 + name.len() + ssz.len());
    out.push(kind);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&ssz);
    out
}

/// A decided block value. Blobs that come with a full block must fit its
/// commitments (count and sizes; their KZG proofs are the beacon node's to check).
pub fn decode_block<P: Preset>(bytes: &[u8]) -> Result<ProducedBlock<P>, String> {
    let [kind, len, rest @ ..] = bytes else {
        return Err("block value shorter than its header".into());
    };
    let len = *len as usize;
    if rest.len() < len {
        return Err("block value shorter than its fork name".into());
    }
    let name = std::str::from_utf8(&rest[..len]).map_err(|e| format!("fork name: {e}"))?;
    let fork: ForkName = name.parse()?;
    let ssz = &rest[len..];
    match *kind {
        FULL_BLOCK => VersionedBlock::from_ssz_bytes(fork, ssz)
            .map(|b| ProducedBlock::Full(b, BlobsBundle::default()))
            .map_err(|e| e.to_string()),
        FULL_BLOCK_WITH_BLOBS => {
            let (block, blobs) = split_contents(ssz)?;
            let block = VersionedBlock::from_ssz_bytes(fork, block).map_err(|e| e.to_string())?;
            blobs
                .check(fork, block.blob_commitment_count())
                .map_err(|e| format!("blobs of the block: {e}"))?;
            Ok(ProducedBlock::Full(block, blobs))
        }
        BLINDED_BLOCK => VersionedBlindedBlock::from_ssz_bytes(fork, ssz)
            .map(ProducedBlock::Blinded)
            .map_err(|e| e.to_string()),
        other => Err(format!("block value kind {other}")),
    }
}

/// The decided block, with the blobs of `own` attached if it came without
/// any and is the same block.
fn with_own_blobs<P: Preset>(
    decided: ProducedBlock<P>,
    own: Option<&ProducedBlock<P>>,
) -> ProducedBlock<P> {
    match (decided, own) {
        (ProducedBlock::Full(block, carried), Some(ProducedBlock::Full(mine, blobs)))
            if carried.blobs.is_empty() && mine.root() == block.root() =>
        {
            ProducedBlock::Full(block, blobs.clone())
        }
        (decided, _) => decided,
    }
}

/// The fields of a produced block the validity predicate looks at.
pub fn block_summary<P: Preset>(
    block: &ProducedBlock<P>,
) -> (ForkName, Slot, u64, SignatureBytes, Root) {
    match block {
        ProducedBlock::Full(b, _) => (
            b.fork_name(),
            b.slot(),
            b.proposer_index(),
            b.randao_reveal(),
            b.root(),
        ),
        ProducedBlock::Blinded(b) => (
            b.fork_name(),
            b.slot(),
            b.proposer_index(),
            b.randao_reveal(),
            b.root(),
        ),
    }
}

impl DvValidatorStore {
    pub fn new(
        workflow: Workflow,
        signer: Signer,
        validators: impl IntoIterator<Item = PublicKeyBytes>,
        db: Arc<SlashingDatabase>,
        chain: ChainContext,
        metrics: Arc<Metrics>,
    ) -> Self {
        let ChainContext {
            spec,
            genesis_validators_root,
            clock,
        } = chain;
        Self {
            inner: Arc::new(Inner {
                workflow,
                signer,
                validators: validators.into_iter().collect(),
                db,
                spec,
                genesis_validators_root,
                clock,
                metrics,
            }),
        }
    }

    pub fn spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    pub fn slashing_db(&self) -> &SlashingDatabase {
        &self.inner.db
    }

    pub fn workflow(&self) -> &Workflow {
        &self.inner.workflow
    }

    /// The signing root of `object` under this chain's domain for `kind` at `epoch`.
    pub fn signing_root<T: dv_types::tree_hash::TreeHash>(
        &self,
        kind: DomainKind,
        epoch: Epoch,
        object: &T,
    ) -> Root {
        self.roots().of(kind, epoch, object)
    }

    /// The signing roots of this store's chain.
    pub fn roots(&self) -> SigningRoots<'_> {
        SigningRoots {
            spec: &self.inner.spec,
            genesis_validators_root: self.inner.genesis_validators_root,
        }
    }

    /// Signs `root` with this node's shares of `validators`, exchanges the
    /// partials and returns the combined signatures that arrived in time.
    async fn threshold_sign(
        &self,
        duty: Duty,
        root: Root,
        validators: &[PublicKeyBytes],
        deadline: Instant,
    ) -> Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError> {
        let own: Vec<Partial> =
            crate::cpu::cpu_bound(|| self.inner.signer.sign_root(root, validators))
                .into_iter()
                .map(|(validator, signature)| Partial {
                    validator,
                    signature,
                })
                .collect();
        // Made here with shares whose public keys were matched against the
        // lock when loaded: valid by construction, so not checked again
        // (rule 4 is about partials received; peers' are all checked, and
        // so is every combined signature).
        self.exchange(duty, root, own, true, validators, deadline)
            .await
    }

    /// Sends partials over `root` that a validator client made with this
    /// node's share and the caller verified against it, to the peers; returns
    /// the combined signatures of `validators` that were complete by `deadline`.
    pub async fn exchange_partials(
        &self,
        duty: Duty,
        root: Root,
        verified: Vec<Partial>,
        validators: &[PublicKeyBytes],
        deadline: Instant,
    ) -> Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError> {
        self.exchange(duty, root, verified, true, validators, deadline)
            .await
    }

    async fn exchange(
        &self,
        duty: Duty,
        root: Root,
        own: Vec<Partial>,
        own_verified: bool,
        validators: &[PublicKeyBytes],
        deadline: Instant,
    ) -> Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError> {
        let t0 = Instant::now();
        let exchanged = self
            .inner
            .workflow
            .exchange(
                duty,
                root,
                own,
                own_verified,
                validators.iter().copied(),
                deadline,
            )
            .await?;
        self.inner
            .metrics
            .stage(duty.slot, duty.kind.name(), Stage::Exchange, t0.elapsed());
        Ok(exchanged
            .signatures
            .into_iter()
            .map(|(v, s)| (v, SignatureBytes(s.to_bytes())))
            .collect())
    }

    /// Runs consensus, timed into the consensus stage metric.
    async fn decide(&self, request: ConsensusRequest) -> Result<qbft::Value, SignError> {
        let duty = request.duty;
        let t0 = Instant::now();
        let value = self.inner.workflow.decide(request).await;
        self.inner
            .metrics
            .stage(duty.slot, duty.kind.name(), Stage::Consensus, t0.elapsed());
        Ok(value?)
    }

    pub fn check_member(&self, validator: &PublicKeyBytes) -> Result<(), SignError> {
        if self.inner.validators.contains(validator) {
            Ok(())
        } else {
            Err(SignError::UnknownValidator(*validator))
        }
    }

    /// What a randao reveal for `slot` signs.
    pub fn randao_signing_root(&self, slot: Slot) -> Root {
        self.roots().randao(slot)
    }

    /// What each attester signs if `data` (committee index 0) is decided:
    /// from Electra the data itself, before it the data with the attester's
    /// committee index.
    pub fn attestations_to_sign(
        &self,
        data: &AttestationData,
        attesters: &[Attester],
    ) -> Vec<ToSign> {
        self.roots().attestations(data, attesters)
    }

    /// The consensus half of [`Self::sign_attestations`]: the slot's decided
    /// `AttestationData` (committee index 0). Joins the slot's instance if it
    /// already runs.
    pub async fn decide_attestation(
        &self,
        slot: Slot,
        own: Option<AttestationData>,
        attesters: &[Attester],
        timing: DutyTiming,
    ) -> Result<AttestationData, SignError> {
        for a in attesters {
            self.check_member(&a.validator)?;
        }
        let store = self.clone();
        let checked: Vec<Attester> = attesters.to_vec();
        let is_valid = Box::new(move |value: &[u8]| {
            let Ok(data) = AttestationData::from_ssz_bytes(value) else {
                return false;
            };
            // Without our own beacon node's view a chain split cannot be ruled out: refuse.
            let same_chain =
                own.is_some_and(|o| o.source == data.source && o.target == data.target);
            data.slot == slot
                && data.index == 0
                && same_chain
                && attestations_allowed(
                    &store.inner.db,
                    &store.attestations_to_sign(&data, &checked),
                )
                .is_ok()
        });
        let value = self
            .decide(ConsensusRequest {
                duty: Duty::new(slot, DutyType::Attester),
                proposal: own.map(|d| d.as_ssz_bytes()),
                is_valid,
                start: timing.start,
                timing: timing.rounds,
                deadline: timing.deadline,
            })
            .await?;
        AttestationData::from_ssz_bytes(&value)
            .map_err(|e| SignError::BadDecidedValue(format!("{e:?}")))
    }

    /// The signing half of [`Self::sign_attestations`]: record in the slashing
    /// database, sign, exchange, combine.
    async fn sign_decided_attestation(
        &self,
        decided: AttestationData,
        attesters: &[Attester],
        deadline: Instant,
    ) -> Result<SignedAttestations, SignError> {
        let slot = decided.slot;
        let items = self.attestations_to_sign(&decided, attesters);
        // Rule 2: recorded durably for every validator before any partial exists.
        let t0 = std::time::Instant::now();
        let approval = approve_attestations(&self.inner.db, &items).map_err(SignError::Database)?;
        self.inner
            .metrics
            .slashing_db(slot, "attester", t0.elapsed());
        let mut by_root: HashMap<Root, (AttestationData, Vec<PublicKeyBytes>)> = HashMap::new();
        for item in items
            .iter()
            .filter(|x| approval.approved.contains(&x.validator))
        {
            by_root
                .entry(item.signing_root)
                .or_insert_with(|| (item.data, Vec::new()))
                .1
                .push(item.validator);
        }
        let duty = Duty::new(slot, DutyType::Attester);
        let exchanges = by_root
            .iter()
            .map(|(root, (_, validators))| self.threshold_sign(duty, *root, validators, deadline));
        let mut signatures = Vec::new();
        let mut missing = Vec::new();
        for ((_, (data, validators)), result) in by_root.iter().zip(join_all(exchanges).await) {
            let mut combined = result?;
            for v in validators {
                match combined.remove(v) {
                    Some(signature) => signatures.push(SignedAttestation {
                        validator: *v,
                        data: *data,
                        signature,
                    }),
                    None => missing.push(*v),
                }
            }
        }
        Ok(SignedAttestations {
            decided,
            signatures,
            refused: approval.refused,
            missing,
        })
    }

    /// The consensus half of [`Self::sign_block`]: the block the cluster decided.
    pub async fn decide_block<P: Preset>(
        &self,
        validator: PublicKeyBytes,
        validator_index: u64,
        slot: Slot,
        randao_reveal: SignatureBytes,
        own: Option<ProducedBlock<P>>,
        timing: DutyTiming,
    ) -> Result<ProducedBlock<P>, SignError> {
        self.check_member(&validator)?;
        let store = self.clone();
        let expected_fork = self.inner.spec.fork_at_slot(slot);
        let is_valid = Box::new(move |value: &[u8]| {
            let Ok(block) = decode_block::<P>(value) else {
                return false;
            };
            let (fork, block_slot, proposer, reveal, _) = block_summary(&block);
            let root = store.roots().block(&block);
            fork == expected_fork
                && block_slot == slot
                && proposer == validator_index
                && reveal == randao_reveal
                && store.inner.db.check_block(&validator, slot, root).is_ok()
        });
        let value = self
            .decide(ConsensusRequest {
                duty: Duty::new(slot, DutyType::Proposer),
                proposal: own.as_ref().map(encode_block),
                is_valid,
                start: timing.start,
                timing: timing.rounds,
                deadline: timing.deadline,
            })
            .await?;
        let decided = decode_block::<P>(&value).map_err(SignError::BadDecidedValue)?;
        Ok(with_own_blobs(decided, own.as_ref()))
    }

    /// What signing `block` signs.
    pub fn block_signing_root<P: Preset>(&self, block: &ProducedBlock<P>) -> Root {
        self.roots().block(block)
    }

    /// Checks and records `block` for `validator` in the slashing database
    /// (rule 2: durably, before any partial over it exists); returns its signing root.
    pub fn record_block<P: Preset>(
        &self,
        validator: &PublicKeyBytes,
        block: &ProducedBlock<P>,
    ) -> Result<Root, SignError> {
        let t0 = std::time::Instant::now();
        let recorded = record_block(&self.inner.db, self.roots(), validator, block);
        let (_, slot, _, _, _) = block_summary(block);
        self.inner
            .metrics
            .slashing_db(slot, "proposer", t0.elapsed());
        recorded
    }

    /// What a beacon committee selection proof for `slot` signs.
    pub fn selection_signing_root(&self, slot: Slot) -> Root {
        self.roots().selection(slot)
    }

    /// What a sync committee selection proof for `slot` and `subcommittee` signs.
    pub fn sync_selection_signing_root(&self, slot: Slot, subcommittee: u64) -> Root {
        self.roots().sync_selection(slot, subcommittee)
    }

    /// Lighthouse's `produce_selection_proof`: the validator's combined
    /// selection proof for `slot`.
    pub async fn produce_selection_proof(
        &self,
        validator: PublicKeyBytes,
        slot: Slot,
        deadline: Instant,
    ) -> Result<SignatureBytes, SignError> {
        self.produce_selection_proofs(slot, &[validator], deadline)
            .await?
            .remove(&validator)
            .ok_or(SignError::InsufficientPartials {
                combined: 0,
                wanted: 1,
            })
    }

    async fn decide_with_own<T, F, Fut>(
        &self,
        duty: Duty,
        fetch: F,
        is_valid: impl Fn(&T) -> bool + Send + 'static,
    ) -> Result<qbft::Value, SignError>
    where
        T: Encode + Decode + 'static,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, beacon_client::Error>>,
    {
        let clock = self.inner.clock;
        let slot = duty.slot;
        let own = fetch_own_built(&clock, duty, fetch)
            .await
            .map(|value| value.as_ssz_bytes());
        let due_ms =
            clock.slot_start_ms(slot) + clock.slot_ms * self.inner.spec.aggregate_due_bps / 10_000;
        self.decide(ConsensusRequest {
            duty,
            proposal: own,
            is_valid: Box::new(move |value: &[u8]| {
                T::from_ssz_bytes(value).is_ok_and(|v| is_valid(&v))
            }),
            start: SlotClock::instant_at(due_ms),
            timing: clock.short_round_timing(),
            deadline: clock.slot_start(slot.saturating_add(2)),
        })
        .await
    }

    /// Lighthouse's `sign_validator_registration_data` has no threshold
    /// counterpart here: a registration carries a timestamp each operator
    /// would pick differently, so the dealer signs each validator's
    /// registration into the cluster lock and the nodes submit that one.
    pub async fn sign_validator_registration_data(
        &self,
        _validator: PublicKeyBytes,
    ) -> Result<SignatureBytes, SignError> {
        Err(SignError::NotSupportedYet(
            "signing builder registrations (they are pre-signed into the cluster lock)",
        ))
    }
}

/// Lighthouse's operations through the cluster (the middleware calls them
/// too, for its clients' duties).
impl ValidatorStore for DvValidatorStore {
    fn spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    /// The validator's randao reveal for `slot`'s epoch. Threshold signatures
    /// are unique, so every node gets the same reveal without consensus.
    async fn randao_reveal(
        &self,
        validator: PublicKeyBytes,
        slot: Slot,
        deadline: Instant,
    ) -> Result<SignatureBytes, SignError> {
        self.check_member(&validator)?;
        let root = self.randao_signing_root(slot);
        let mut signatures = self
            .threshold_sign(
                Duty::new(slot, DutyType::Randao),
                root,
                &[validator],
                deadline,
            )
            .await?;
        signatures
            .remove(&validator)
            .ok_or(SignError::InsufficientPartials {
                combined: 0,
                wanted: 1,
            })
    }

    /// Signs one slot's attestations. The cluster decides one
    /// `AttestationData` for the slot (committee index 0, as from Electra);
    /// `own` is this node's beacon node's data: its proposal, and the
    /// chain-split guard for the others'.
    async fn sign_attestations(
        &self,
        slot: Slot,
        own: Option<AttestationData>,
        attesters: &[Attester],
        timing: DutyTiming,
    ) -> Result<SignedAttestations, SignError> {
        let decided = self
            .decide_attestation(slot, own, attesters, timing)
            .await?;
        self.sign_decided_attestation(decided, attesters, timing.deadline)
            .await
    }

    async fn decided_attestation_data(&self, slot: Slot) -> Option<AttestationData> {
        let value = self
            .inner
            .workflow
            .decided(Duty::new(slot, DutyType::Attester))
            .await?;
        AttestationData::from_ssz_bytes(&value).ok()
    }

    /// Agrees on the block for `slot` (built with the combined `randao_reveal`),
    /// records it in the slashing database and signs it. `own` is the block
    /// this node's beacon node produced, if any.
    async fn sign_block<P: Preset>(
        &self,
        validator: PublicKeyBytes,
        validator_index: u64,
        slot: Slot,
        randao_reveal: SignatureBytes,
        own: Option<ProducedBlock<P>>,
        timing: DutyTiming,
    ) -> Result<SignedProposal<P>, SignError> {
        let block = self
            .decide_block(validator, validator_index, slot, randao_reveal, own, timing)
            .await?;
        let root = self.record_block(&validator, &block)?;
        let mut signatures = self
            .threshold_sign(
                Duty::new(slot, DutyType::Proposer),
                root,
                &[validator],
                timing.deadline,
            )
            .await?;
        let signature = signatures
            .remove(&validator)
            .ok_or(SignError::InsufficientPartials {
                combined: 0,
                wanted: 1,
            })?;
        Ok(SignedProposal { block, signature })
    }

    /// The combined selection proofs for `slot` of every validator given
    /// (one exchange: they all sign the same root). Threshold signatures
    /// are unique, so no consensus is needed.
    async fn produce_selection_proofs(
        &self,
        slot: Slot,
        validators: &[PublicKeyBytes],
        deadline: Instant,
    ) -> Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError> {
        for v in validators {
            self.check_member(v)?;
        }
        let root = self.selection_signing_root(slot);
        self.threshold_sign(
            Duty::new(slot, DutyType::Selection),
            root,
            validators,
            deadline,
        )
        .await
    }

    /// Lighthouse's `produce_sync_selection_proof`, for every (validator,
    /// subcommittee) given: one exchange per subcommittee.
    async fn produce_sync_selection_proofs(
        &self,
        slot: Slot,
        members: &[(PublicKeyBytes, u64)],
        deadline: Instant,
    ) -> Result<HashMap<(PublicKeyBytes, u64), SignatureBytes>, SignError> {
        let mut by_subcommittee: HashMap<u64, Vec<PublicKeyBytes>> = HashMap::new();
        for (v, sub) in members {
            self.check_member(v)?;
            by_subcommittee.entry(*sub).or_default().push(*v);
        }
        let duty = Duty::new(slot, DutyType::SyncSelection);
        let exchanges = by_subcommittee.iter().map(|(sub, validators)| {
            let root = self.sync_selection_signing_root(slot, *sub);
            self.threshold_sign(duty, root, validators, deadline)
        });
        let mut out = HashMap::new();
        for (sub, result) in by_subcommittee.keys().zip(join_all(exchanges).await) {
            for (v, proof) in result? {
                out.insert((v, *sub), proof);
            }
        }
        Ok(out)
    }

    /// The decided value of an aggregation-like `duty` (aggregates, sync
    /// contributions: built by each beacon node from what it received, so
    /// nodes can hold different ones): the decision if there is one, else
    /// consensus with this node's beacon node's value as its proposal. That
    /// value is built from the slot's messages, which may still be on their
    /// way (a round change delays them), so `fetch` is retried until 5/6 of
    /// the slot. Rounds are short and count from the aggregation due time.
    /// Values travel as SSZ; `is_valid` judges a proposal.
    async fn decide_built<'a, T>(
        &'a self,
        duty: Duty,
        fetch: FetchBuilt<'a, T>,
        is_valid: impl Fn(&T) -> bool + Send + 'static,
    ) -> Result<T, SignError>
    where
        T: Encode + Decode + Send + 'static,
    {
        let value = match self.inner.workflow.decided(duty).await {
            Some(value) => value,
            None => self.decide_with_own(duty, fetch, is_valid).await?,
        };
        T::from_ssz_bytes(&value)
            .map_err(|e| SignError::BadDecidedValue(format!("{}: {e:?}", duty.kind.name())))
    }

    /// Lighthouse's `sign_aggregate_and_proof`, for every aggregator of the
    /// committee the decided `aggregate` is for: `(validator, index,
    /// combined selection proof)`. Each signs its own message (its index
    /// and proof are in it).
    async fn sign_aggregates<A: CommitteeAggregate>(
        &self,
        aggregate: &A,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        deadline: Instant,
    ) -> Result<Vec<A::Signed>, SignError> {
        let slot = aggregate.data().slot;
        let committee = aggregate.committee().map_err(SignError::BadDecidedValue)?;
        let duty = Duty::new(slot, DutyType::Aggregator { committee });
        let epoch = self.inner.spec.epoch_of_slot(slot);
        let messages: Vec<(PublicKeyBytes, A::Message)> = aggregators
            .iter()
            .map(|(v, index, proof)| (*v, A::message(*index, aggregate.clone(), *proof)))
            .collect();
        let signed = messages.iter().map(|(v, message)| {
            let root = self.signing_root(DomainKind::AggregateAndProof, epoch, message);
            self.threshold_sign(duty, root, std::slice::from_ref(v), deadline)
        });
        let mut out = Vec::new();
        for ((v, message), result) in messages.iter().zip(join_all(signed).await) {
            if let Some(signature) = result?.remove(v) {
                out.push(A::signed(message.clone(), signature));
            }
        }
        Ok(out)
    }

    /// The head block root the cluster's sync committee messages sign at
    /// `slot`: operators' beacon nodes can see the head differently around
    /// a block's arrival, and partials over different roots never combine,
    /// so the root is agreed on (one instance per slot, each node proposing
    /// `own`, its beacon node's head). Past two thirds of the slot a message
    /// is too late to matter: that is the deadline.
    async fn decide_sync_head_root(
        &self,
        slot: Slot,
        own: Option<Root>,
    ) -> Result<Root, SignError> {
        let duty = Duty::new(slot, DutyType::SyncMessage);
        let value = match self.inner.workflow.decided(duty).await {
            Some(value) => value,
            None => {
                let clock = self.inner.clock;
                let slot_start = clock.slot_start_ms(slot);
                self.decide(ConsensusRequest {
                    duty,
                    proposal: own.map(|r| r.as_slice().to_vec()),
                    is_valid: Box::new(|value: &[u8]| value.len() == 32),
                    start: Instant::now(),
                    timing: clock.short_round_timing(),
                    deadline: SlotClock::instant_at(slot_start + clock.slot_ms * 2 / 3),
                })
                .await?
            }
        };
        <[u8; 32]>::try_from(&value[..])
            .map(Root::from)
            .map_err(|_| SignError::BadDecidedValue("a head root is not 32 bytes".into()))
    }

    /// Lighthouse's `produce_sync_committee_signature`, for every member
    /// given as `(validator, index)`: one exchange (all sign `block_root`).
    async fn sign_sync_messages(
        &self,
        slot: Slot,
        block_root: Root,
        members: &[(PublicKeyBytes, u64)],
        deadline: Instant,
    ) -> Result<Vec<SyncCommitteeMessage>, SignError> {
        let validators: Vec<PublicKeyBytes> = members.iter().map(|(v, _)| *v).collect();
        for v in &validators {
            self.check_member(v)?;
        }
        let root = self.roots().sync_message(slot, &block_root);
        let mut combined = self
            .threshold_sign(
                Duty::new(slot, DutyType::SyncMessage),
                root,
                &validators,
                deadline,
            )
            .await?;
        Ok(members
            .iter()
            .filter_map(|(v, index)| {
                Some(SyncCommitteeMessage {
                    slot,
                    beacon_block_root: block_root,
                    validator_index: *index,
                    signature: combined.remove(v)?,
                })
            })
            .collect())
    }

    /// Lighthouse's `sign_sync_committee_contribution`, for every
    /// aggregator of the decided `contribution`'s subcommittee.
    async fn sign_contributions<P: Preset>(
        &self,
        contribution: &SyncCommitteeContribution<P>,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        deadline: Instant,
    ) -> Result<Vec<SignedContributionAndProof<P>>, SignError> {
        let slot = contribution.slot;
        let duty = Duty::new(
            slot,
            DutyType::SyncContribution {
                subcommittee: contribution.subcommittee_index,
            },
        );
        let epoch = self.inner.spec.epoch_of_slot(slot);
        let messages: Vec<(PublicKeyBytes, ContributionAndProof<P>)> = aggregators
            .iter()
            .map(|(v, index, proof)| {
                (
                    *v,
                    ContributionAndProof {
                        aggregator_index: *index,
                        contribution: contribution.clone(),
                        selection_proof: *proof,
                    },
                )
            })
            .collect();
        let signed = messages.iter().map(|(v, message)| {
            let root = self.signing_root(DomainKind::ContributionAndProof, epoch, message);
            self.threshold_sign(duty, root, std::slice::from_ref(v), deadline)
        });
        let mut out = Vec::new();
        for ((v, message), result) in messages.iter().zip(join_all(signed).await) {
            if let Some(signature) = result?.remove(v) {
                out.push(SignedContributionAndProof {
                    message: message.clone(),
                    signature,
                });
            }
        }
        Ok(out)
    }

    /// Lighthouse's `sign_voluntary_exit`: this node's partial over the
    /// exit (domain pinned to Capella from Deneb on, EIP-7044), combined
    /// with the peers' once `t` operators signed it, before `deadline`
    /// (under the current epoch's exit duty, as the exit service offers
    /// pending exits: see `exits.rs`).
    async fn sign_voluntary_exit(
        &self,
        validator: PublicKeyBytes,
        exit: VoluntaryExit,
        deadline: Instant,
    ) -> Result<SignatureBytes, SignError> {
        self.check_member(&validator)?;
        let root = self.signing_root(DomainKind::VoluntaryExit, exit.epoch, &exit);
        let duty = crate::exits::exit_duty(&self.inner.spec, self.inner.clock.current_slot());
        self.threshold_sign(duty, root, &[validator], deadline)
            .await?
            .remove(&validator)
            .ok_or(SignError::InsufficientPartials {
                combined: 0,
                wanted: 1,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_values_carry_their_blobs_and_garbage_is_refused() {
        // A real block: Lodestar's Deneb head block from the captured Beacon
        // API traffic, made to commit to two blobs.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/beacon-api-samples/lodestar-deneb/block_head.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut block = VersionedBlock::<Minimal>::from_json_value(
            ForkName::Deneb,
            json["data"]["message"].clone(),
        )
        .unwrap();
        if let VersionedBlock::Deneb(b) = &mut block {
            b.body.blob_kzg_commitments =
                dv_types::ssz_types::VariableList::new(vec![KzgCommitment([1; 48]); 2]).unwrap();
        }
        let bundle = |n: usize| BlobsBundle {
            kzg_proofs: vec![format!("0x{}", "00".repeat(48)); n],
            blobs: vec![format!("0x{}", "ab".repeat(131_072)); n],
        };
        let produced = ProducedBlock::Full(block.clone(), bundle(2));
        let bytes = encode_block(&produced);
        // Another node decodes the block with its blobs: it can publish it.
        assert_eq!(decode_block::<Minimal>(&bytes).unwrap(), produced);
        // Blobs that do not fit the commitments make the value invalid.
        let wrong = encode_block(&ProducedBlock::Full(block.clone(), bundle(3)));
        assert!(decode_block::<Minimal>(&wrong)
            .unwrap_err()
            .contains("blobs of the block"));
        // A block decided without blobs gets this node's own only if it is the same block.
        let bare = ProducedBlock::Full(block.clone(), BlobsBundle::default());
        let bare_bytes = encode_block(&bare);
        assert_eq!(decode_block::<Minimal>(&bare_bytes).unwrap(), bare);
        assert_eq!(with_own_blobs(bare.clone(), Some(&produced)), produced);
        let mut other = block.clone();
        if let VersionedBlock::Deneb(b) = &mut other {
            b.state_root = Root::repeat_byte(1);
        }
        let others = ProducedBlock::Full(other, bundle(2));
        assert_eq!(with_own_blobs(bare.clone(), Some(&others)), bare);
        let blinded = ProducedBlock::<Minimal>::Blinded(block.to_blinded());
        assert_eq!(
            decode_block::<Minimal>(&encode_block(&blinded)).unwrap(),
            blinded
        );
        assert!(decode_block::<Minimal>(&[]).is_err());
        assert!(decode_block::<Minimal>(&[0, 200, b'f']).is_err());
        assert!(decode_block::<Minimal>(&[7, 4, b'f', b'u', b'l', b'u']).is_err());
        for cut in [1, 100, bytes.len() / 2] {
            assert!(decode_block::<Minimal>(&bytes[..bytes.len() - cut]).is_err());
        }
    }
}
