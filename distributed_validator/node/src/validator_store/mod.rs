//! The signing seam: what a validator client calls to sign, with the
//! operations of Lighthouse's `ValidatorStore` trait ([`ValidatorStore`]).
//! The built-in validator's duty services are generic over it.
//!
//! Two stores implement it: [`DvValidatorStore`] (consensus on the data,
//! slashing check and durable record, this node's partial, the exchange,
//! the combined and verified signature) and [`PlainValidatorStore`] (one
//! whole key per validator, the same slashing database and checks, no
//! consensus: a normal validator, the baseline a distributed one is
//! measured against).
//!
//! The calls are batched where a slot's duties share a message (one
//! consensus and one exchange per slot, not per validator), and the
//! "decide" calls are where a distributed validator agrees on what a
//! normal one takes from its own beacon node.

mod dv;
mod plain;

pub use dv::*;
pub use plain::PlainValidatorStore;

use crate::aggregation::CommitteeAggregate;
use crate::decided::ToSign;
use crate::duty::Duty;
use crate::scheduler::SlotClock;
use crate::workflow::WorkflowError;
use beacon_client::ProducedBlock;
use dv_types::ssz::{Decode, Encode};
use dv_types::*;
use qbft::RoundTiming;
use slashing_protection::{NotSafe, SlashingDatabase};
use std::collections::HashMap;
use std::future::Future;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignError {
    #[error("no consensus before the duty's deadline")]
    NoConsensus,
    #[error("insufficient partial signatures: {combined} of {wanted} signatures combined")]
    InsufficientPartials { combined: usize, wanted: usize },
    #[error("slashing protection refused: {0}")]
    SlashingRefused(NotSafe),
    #[error("slashing database: {0}")]
    Database(NotSafe),
    #[error("validator {0} is not in this cluster")]
    UnknownValidator(PublicKeyBytes),
    #[error("the decided value is malformed: {0}")]
    BadDecidedValue(String),
    #[error("{0} is not supported yet")]
    NotSupportedYet(&'static str),
    #[error("no {0} from this node's beacon node")]
    NoOwnValue(&'static str),
    #[error("{0}")]
    Workflow(WorkflowError),
}

impl From<WorkflowError> for SignError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::NoConsensus => SignError::NoConsensus,
            other => SignError::Workflow(other),
        }
    }
}

/// When a duty's signing must be done by, and how long consensus rounds last.
#[derive(Debug, Clone, Copy)]
pub struct DutyTiming {
    pub start: Instant,
    pub deadline: Instant,
    pub rounds: RoundTiming,
}

/// One of a slot's attesters: which validator, in which committee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attester {
    pub validator: PublicKeyBytes,
    pub committee_index: u64,
}

impl From<&beacon_client::AttesterDuty> for Attester {
    fn from(duty: &beacon_client::AttesterDuty) -> Self {
        Self {
            validator: duty.pubkey,
            committee_index: duty.committee_index,
        }
    }
}

/// One validator's combined attestation signature and the data it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedAttestation {
    pub validator: PublicKeyBytes,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

/// The outcome of signing one slot's attestations.
#[derive(Debug)]
pub struct SignedAttestations {
    /// The data the cluster decided (committee index 0).
    pub decided: AttestationData,
    pub signatures: Vec<SignedAttestation>,
    /// Validators the slashing database refused, with the reason.
    pub refused: Vec<(PublicKeyBytes, NotSafe)>,
    /// Validators whose signature could not be combined in time.
    pub missing: Vec<PublicKeyBytes>,
}

/// A block the cluster decided and its combined signature.
#[derive(Debug)]
pub struct SignedProposal<P: Preset> {
    pub block: ProducedBlock<P>,
    pub signature: SignatureBytes,
}

/// The chain a store signs for: its spec (domains, fork schedule), its
/// genesis validators root and its slot clock (duty deadlines).
pub struct ChainContext {
    pub spec: ChainSpec,
    pub genesis_validators_root: Root,
    pub clock: SlotClock,
}

/// Lighthouse's `ValidatorStore` operations, as the duty services call
/// them: batched per slot, with the duty's deadline, and with the two
/// decisions a distributed validator makes that a normal one does not
/// (which built value and which head root to sign).
pub trait ValidatorStore: Clone + Send + Sync + 'static {
    /// The chain's spec (domains, fork schedule, duty offsets).
    fn spec(&self) -> &ChainSpec;

    /// `randao_reveal`: the validator's reveal for `slot`'s epoch.
    fn randao_reveal(
        &self,
        validator: PublicKeyBytes,
        slot: Slot,
        deadline: Instant,
    ) -> impl Future<Output = Result<SignatureBytes, SignError>> + Send;

    /// `sign_attestations`: the slot's attestations of `attesters`; `own` is
    /// this node's beacon node's data (committee index 0).
    fn sign_attestations(
        &self,
        slot: Slot,
        own: Option<AttestationData>,
        attesters: &[Attester],
        timing: DutyTiming,
    ) -> impl Future<Output = Result<SignedAttestations, SignError>> + Send;

    /// The attestation data signed at `slot`, once it is known (what the
    /// slot's aggregators aggregate).
    fn decided_attestation_data(
        &self,
        slot: Slot,
    ) -> impl Future<Output = Option<AttestationData>> + Send;

    /// `sign_block`: the block for `slot` (built with `randao_reveal`),
    /// recorded and signed; `own` is this node's beacon node's block.
    fn sign_block<P: Preset>(
        &self,
        validator: PublicKeyBytes,
        validator_index: u64,
        slot: Slot,
        randao_reveal: SignatureBytes,
        own: Option<ProducedBlock<P>>,
        timing: DutyTiming,
    ) -> impl Future<Output = Result<SignedProposal<P>, SignError>> + Send;

    /// `produce_selection_proof` for every validator given.
    fn produce_selection_proofs(
        &self,
        slot: Slot,
        validators: &[PublicKeyBytes],
        deadline: Instant,
    ) -> impl Future<Output = Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError>> + Send;

    /// `produce_sync_selection_proof` for every (validator, subcommittee) given.
    fn produce_sync_selection_proofs(
        &self,
        slot: Slot,
        members: &[(PublicKeyBytes, u64)],
        deadline: Instant,
    ) -> impl Future<Output = Result<HashMap<(PublicKeyBytes, u64), SignatureBytes>, SignError>> + Send;

    /// The value of an aggregation-like `duty` to sign (an aggregate, a sync
    /// contribution): built by a beacon node (`fetch`), judged by `is_valid`.
    fn decide_built<'a, T>(
        &'a self,
        duty: Duty,
        fetch: FetchBuilt<'a, T>,
        is_valid: impl Fn(&T) -> bool + Send + 'static,
    ) -> impl Future<Output = Result<T, SignError>> + Send + 'a
    where
        T: Encode + Decode + Send + 'static;

    /// `sign_aggregate_and_proof` for every aggregator of `aggregate`'s
    /// committee: `(validator, index, selection proof)`.
    fn sign_aggregates<A: CommitteeAggregate>(
        &self,
        aggregate: &A,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<A::Signed>, SignError>> + Send;

    /// The head block root sync committee messages sign at `slot`; `own` is
    /// this node's beacon node's head.
    fn decide_sync_head_root(
        &self,
        slot: Slot,
        own: Option<Root>,
    ) -> impl Future<Output = Result<Root, SignError>> + Send;

    /// `produce_sync_committee_signature` for every member `(validator, index)`.
    fn sign_sync_messages(
        &self,
        slot: Slot,
        block_root: Root,
        members: &[(PublicKeyBytes, u64)],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<SyncCommitteeMessage>, SignError>> + Send;

    /// `sign_sync_committee_contribution` for every aggregator of the contribution's subcommittee.
    fn sign_contributions<P: Preset>(
        &self,
        contribution: &SyncCommitteeContribution<P>,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<SignedContributionAndProof<P>>, SignError>> + Send;

    /// `sign_voluntary_exit` (EIP-7044's domain from Deneb on).
    fn sign_voluntary_exit(
        &self,
        validator: PublicKeyBytes,
        exit: VoluntaryExit,
        deadline: Instant,
    ) -> impl Future<Output = Result<SignatureBytes, SignError>> + Send;
}

/// How a store asks this node's beacon node for a built value (it may ask
/// more than once: the value is built from messages still arriving).
pub type FetchBuilt<'a, T> = Box<
    dyn Fn() -> futures::future::BoxFuture<'a, Result<T, beacon_client::Error>> + Send + Sync + 'a,
>;

/// What each signature of a chain signs: the signing roots of every duty,
/// defined once for both stores.
#[derive(Debug, Clone, Copy)]
pub struct SigningRoots<'a> {
    pub spec: &'a ChainSpec,
    pub genesis_validators_root: Root,
}

impl SigningRoots<'_> {
    /// The signing root of `object` under the domain for `kind` at `epoch`.
    pub fn of<T: dv_types::tree_hash::TreeHash>(
        &self,
        kind: DomainKind,
        epoch: Epoch,
        object: &T,
    ) -> Root {
        let domain = self.spec.domain(kind, epoch, self.genesis_validators_root);
        compute_signing_root(object, domain)
    }

    /// A randao reveal for `slot`'s epoch.
    pub fn randao(&self, slot: Slot) -> Root {
        let epoch = self.spec.epoch_of_slot(slot);
        self.of(DomainKind::Randao, epoch, &epoch)
    }

    /// A beacon committee selection proof for `slot`.
    pub fn selection(&self, slot: Slot) -> Root {
        let epoch = self.spec.epoch_of_slot(slot);
        self.of(DomainKind::SelectionProof, epoch, &slot)
    }

    /// A sync committee selection proof for `slot` and `subcommittee`.
    pub fn sync_selection(&self, slot: Slot, subcommittee: u64) -> Root {
        let data = SyncAggregatorSelectionData {
            slot,
            subcommittee_index: subcommittee,
        };
        let epoch = self.spec.epoch_of_slot(slot);
        self.of(DomainKind::SyncCommitteeSelectionProof, epoch, &data)
    }

    /// A block.
    pub fn block<P: Preset>(&self, block: &ProducedBlock<P>) -> Root {
        let (_, slot, _, _, block_root) = block_summary(block);
        let epoch = self.spec.epoch_of_slot(slot);
        self.of(DomainKind::BeaconProposer, epoch, &block_root)
    }

    /// A sync committee message over `block_root` at `slot`.
    pub fn sync_message(&self, slot: Slot, block_root: &Root) -> Root {
        let epoch = self.spec.epoch_of_slot(slot);
        self.of(DomainKind::SyncCommittee, epoch, block_root)
    }

    /// What each attester signs if `data` (committee index 0) is decided:
    /// from Electra the data itself, before it the data with the attester's
    /// committee index.
    pub fn attestations(&self, data: &AttestationData, attesters: &[Attester]) -> Vec<ToSign> {
        let electra = self.spec.fork_at_slot(data.slot).electra_enabled();
        let mut roots: HashMap<u64, (AttestationData, Root)> = HashMap::new();
        attesters
            .iter()
            .map(|a| {
                let index = if electra { 0 } else { a.committee_index };
                let (data, signing_root) = *roots.entry(index).or_insert_with(|| {
                    let d = AttestationData { index, ..*data };
                    (d, self.of(DomainKind::BeaconAttester, d.target.epoch, &d))
                });
                ToSign {
                    validator: a.validator,
                    data,
                    signing_root,
                }
            })
            .collect()
    }
}

/// Checks and records `block` for `validator` in the slashing database
/// (rule 2: durably, before any signature over it exists); returns its signing root.
pub fn record_block<P: Preset>(
    db: &SlashingDatabase,
    roots: SigningRoots<'_>,
    validator: &PublicKeyBytes,
    block: &ProducedBlock<P>,
) -> Result<Root, SignError> {
    let (_, slot, _, _, _) = block_summary(block);
    let root = roots.block(block);
    db.check_and_insert_block(validator, slot, root)
        .map_err(|e| match e {
            NotSafe::Database(_) | NotSafe::ValueTooLarge(_) => SignError::Database(e),
            refusal => SignError::SlashingRefused(refusal),
        })?;
    dv_fault::reached(dv_fault::AFTER_SLASHING_COMMIT);
    Ok(root)
}

/// This node's beacon node's value of an aggregation-like `duty`: built from
/// the slot's messages, which may still be on their way, so `fetch` is
/// retried until 5/6 of the slot; `None` (logged) if it never came.
pub async fn fetch_own_built<T, F, Fut>(clock: &SlotClock, duty: Duty, fetch: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, beacon_client::Error>>,
{
    let slot = duty.slot;
    let give_up = SlotClock::instant_at(clock.slot_start_ms(slot) + clock.slot_ms * 5 / 6);
    loop {
        match fetch().await {
            Ok(value) => return Some(value),
            Err(e) if Instant::now() >= give_up => {
                tracing::warn!(
                    slot,
                    duty = duty.kind.name(),
                    "own beacon node's value unavailable: {e}"
                );
                return None;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}
