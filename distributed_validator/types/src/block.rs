//! Beacon blocks, full and blinded, for Deneb, Electra and Fulu.
//!
//! A block is one generic [`BeaconBlock`] over its body type, so the header
//! fields and the signing logic exist once. Fulu keeps Electra's body
//! unchanged; [`VersionedBlock`] carries the fork name a beacon node reports
//! in `Eth-Consensus-Version`.

use crate::attestation::*;
use crate::containers::*;
use crate::execution::*;
use crate::fork::ForkName;
use crate::preset::Preset;
use crate::primitives::*;
use crate::sync_committee::SyncAggregate;
use serde::{Deserialize, Serialize};
use ssz::Decode;
use ssz_derive::{Decode, Encode};
use ssz_types::VariableList;
use tree_hash::TreeHash;
use tree_hash_derive::TreeHash;

/// Defines a block body: the fields every post-Deneb body has, with the
/// fork's attestation types and the payload as a full payload or a header.
macro_rules! block_body {
    (
        $(#[$doc:meta])*
        $name:ident,
        attester_slashings: $slashing:ident<$slashing_max:ident>,
        attestations: $attestation:ident<$attestation_max:ident>,
        $payload_field:ident: $payload:ident
        $(, $extra_field:ident: $extra_ty:ty)?
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
        #[serde(bound = "P: Preset")]
        pub struct $name<P: Preset> {
            pub randao_reveal: SignatureBytes,
            pub eth1_data: Eth1Data,
            pub graffiti: Graffiti,
            pub proposer_slashings: VariableList<ProposerSlashing, P::MaxProposerSlashings>,
            pub attester_slashings: VariableList<$slashing<P>, P::$slashing_max>,
            pub attestations: VariableList<$attestation<P>, P::$attestation_max>,
            pub deposits: VariableList<Deposit, P::MaxDeposits>,
            pub voluntary_exits: VariableList<SignedVoluntaryExit, P::MaxVoluntaryExits>,
            pub sync_aggregate: SyncAggregate<P>,
            pub $payload_field: $payload<P>,
            pub bls_to_execution_changes:
                VariableList<SignedBlsToExecutionChange, P::MaxBlsToExecutionChanges>,
            pub blob_kzg_commitments: VariableList<KzgCommitment, P::MaxBlobCommitmentsPerBlock>,
            $(pub $extra_field: $extra_ty,)?
        }
    };
}

block_body!(
    /// Deneb body.
    BeaconBlockBodyDeneb,
    attester_slashings: AttesterSlashingDeneb<MaxAttesterSlashings>,
    attestations: AttestationDeneb<MaxAttestations>,
    execution_payload: ExecutionPayload
);
block_body!(
    /// Deneb blinded body (payload header instead of payload).
    BlindedBeaconBlockBodyDeneb,
    attester_slashings: AttesterSlashingDeneb<MaxAttesterSlashings>,
    attestations: AttestationDeneb<MaxAttestations>,
    execution_payload_header: ExecutionPayloadHeader
);
block_body!(
    /// Electra body (also Fulu's).
    BeaconBlockBodyElectra,
    attester_slashings: AttesterSlashingElectra<MaxAttesterSlashingsElectra>,
    attestations: AttestationElectra<MaxAttestationsElectra>,
    execution_payload: ExecutionPayload,
    execution_requests: ExecutionRequests<P>
);
block_body!(
    /// Electra blinded body (also Fulu's).
    BlindedBeaconBlockBodyElectra,
    attester_slashings: AttesterSlashingElectra<MaxAttesterSlashingsElectra>,
    attestations: AttestationElectra<MaxAttestationsElectra>,
    execution_payload_header: ExecutionPayloadHeader,
    execution_requests: ExecutionRequests<P>
);

/// What a block body must offer: SSZ both ways and a tree hash root.
pub trait BlockBody: ssz::Encode + ssz::Decode + TreeHash {}
impl<T: ssz::Encode + ssz::Decode + TreeHash> BlockBody for T {}

/// A beacon block over its fork's body type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct BeaconBlock<Body: BlockBody> {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    pub proposer_index: ValidatorIndex,
    pub parent_root: Root,
    pub state_root: Root,
    pub body: Body,
}

impl<Body: BlockBody> BeaconBlock<Body> {
    /// The header whose root equals this block's root (what slashing protection compares).
    pub fn header(&self) -> BeaconBlockHeader {
        BeaconBlockHeader {
            slot: self.slot,
            proposer_index: self.proposer_index,
            parent_root: self.parent_root,
            state_root: self.state_root,
            body_root: self.body.tree_hash_root(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SignedBeaconBlock<Body: BlockBody> {
    pub message: BeaconBlock<Body>,
    pub signature: SignatureBytes,
}

pub type BeaconBlockDeneb<P> = BeaconBlock<BeaconBlockBodyDeneb<P>>;
pub type BeaconBlockElectra<P> = BeaconBlock<BeaconBlockBodyElectra<P>>;
pub type BlindedBeaconBlockDeneb<P> = BeaconBlock<BlindedBeaconBlockBodyDeneb<P>>;
pub type BlindedBeaconBlockElectra<P> = BeaconBlock<BlindedBeaconBlockBodyElectra<P>>;

impl<P: Preset> BeaconBlockBodyDeneb<P> {
    pub fn to_blinded(&self) -> BlindedBeaconBlockBodyDeneb<P> {
        BlindedBeaconBlockBodyDeneb {
            randao_reveal: self.randao_reveal,
            eth1_data: self.eth1_data.clone(),
            graffiti: self.graffiti,
            proposer_slashings: self.proposer_slashings.clone(),
            attester_slashings: self.attester_slashings.clone(),
            attestations: self.attestations.clone(),
            deposits: self.deposits.clone(),
            voluntary_exits: self.voluntary_exits.clone(),
            sync_aggregate: self.sync_aggregate.clone(),
            execution_payload_header: self.execution_payload.to_header(),
            bls_to_execution_changes: self.bls_to_execution_changes.clone(),
            blob_kzg_commitments: self.blob_kzg_commitments.clone(),
        }
    }
}

impl<P: Preset> BeaconBlockBodyElectra<P> {
    pub fn to_blinded(&self) -> BlindedBeaconBlockBodyElectra<P> {
        BlindedBeaconBlockBodyElectra {
            randao_reveal: self.randao_reveal,
            eth1_data: self.eth1_data.clone(),
            graffiti: self.graffiti,
            proposer_slashings: self.proposer_slashings.clone(),
            attester_slashings: self.attester_slashings.clone(),
            attestations: self.attestations.clone(),
            deposits: self.deposits.clone(),
            voluntary_exits: self.voluntary_exits.clone(),
            sync_aggregate: self.sync_aggregate.clone(),
            execution_payload_header: self.execution_payload.to_header(),
            bls_to_execution_changes: self.bls_to_execution_changes.clone(),
            blob_kzg_commitments: self.blob_kzg_commitments.clone(),
            execution_requests: self.execution_requests.clone(),
        }
    }
}

/// Error decoding a block whose fork comes from outside (a header or a field).
#[derive(Debug, thiserror::Error)]
pub enum BlockDecodeError {
    #[error("blocks of fork {0} are not supported (Deneb, Electra and Fulu are)")]
    UnsupportedFork(ForkName),
    #[error("invalid SSZ for a {fork} block: {reason}")]
    Ssz { fork: ForkName, reason: String },
    #[error("invalid JSON for a {fork} block: {source}")]
    Json {
        fork: ForkName,
        source: serde_json::Error,
    },
}

macro_rules! versioned_block {
    ($(#[$doc:meta])* $name:ident, deneb: $deneb:ident, electra: $electra:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name<P: Preset> {
            Deneb(BeaconBlock<$deneb<P>>),
            Electra(BeaconBlock<$electra<P>>),
            Fulu(BeaconBlock<$electra<P>>),
        }

        impl<P: Preset> $name<P> {
            pub fn fork_name(&self) -> ForkName {
                match self {
                    Self::Deneb(_) => ForkName::Deneb,
                    Self::Electra(_) => ForkName::Electra,
                    Self::Fulu(_) => ForkName::Fulu,
                }
            }

            pub fn slot(&self) -> Slot {
                match self {
                    Self::Deneb(b) => b.slot,
                    Self::Electra(b) | Self::Fulu(b) => b.slot,
                }
            }

            pub fn proposer_index(&self) -> ValidatorIndex {
                match self {
                    Self::Deneb(b) => b.proposer_index,
                    Self::Electra(b) | Self::Fulu(b) => b.proposer_index,
                }
            }

            pub fn randao_reveal(&self) -> SignatureBytes {
                match self {
                    Self::Deneb(b) => b.body.randao_reveal,
                    Self::Electra(b) | Self::Fulu(b) => b.body.randao_reveal,
                }
            }

            /// The voluntary exits the block carries.
            pub fn voluntary_exits(&self) -> &[SignedVoluntaryExit] {
                match self {
                    Self::Deneb(b) => &b.body.voluntary_exits,
                    Self::Electra(b) | Self::Fulu(b) => &b.body.voluntary_exits,
                }
            }

            /// How many blobs the block commits to.
            pub fn blob_commitment_count(&self) -> usize {
                match self {
                    Self::Deneb(b) => b.body.blob_kzg_commitments.len(),
                    Self::Electra(b) | Self::Fulu(b) => b.body.blob_kzg_commitments.len(),
                }
            }

            /// The block root, which is what the proposer signs (with its domain).
            pub fn root(&self) -> Root {
                match self {
                    Self::Deneb(b) => b.tree_hash_root(),
                    Self::Electra(b) | Self::Fulu(b) => b.tree_hash_root(),
                }
            }

            pub fn header(&self) -> BeaconBlockHeader {
                match self {
                    Self::Deneb(b) => b.header(),
                    Self::Electra(b) | Self::Fulu(b) => b.header(),
                }
            }

            pub fn as_ssz_bytes(&self) -> Vec<u8> {
                use ssz::Encode;
                match self {
                    Self::Deneb(b) => b.as_ssz_bytes(),
                    Self::Electra(b) | Self::Fulu(b) => b.as_ssz_bytes(),
                }
            }

            /// Decodes SSZ for the fork the beacon node named.
            pub fn from_ssz_bytes(fork: ForkName, bytes: &[u8]) -> Result<Self, BlockDecodeError> {
                let ssz_err = |e: ssz::DecodeError| BlockDecodeError::Ssz { fork, reason: format!("{e:?}") };
                Ok(match fork {
                    ForkName::Deneb => Self::Deneb(BeaconBlock::from_ssz_bytes(bytes).map_err(ssz_err)?),
                    ForkName::Electra => Self::Electra(BeaconBlock::from_ssz_bytes(bytes).map_err(ssz_err)?),
                    ForkName::Fulu => Self::Fulu(BeaconBlock::from_ssz_bytes(bytes).map_err(ssz_err)?),
                    other => return Err(BlockDecodeError::UnsupportedFork(other)),
                })
            }

            /// Decodes Beacon API JSON for the fork the beacon node named.
            pub fn from_json_value(fork: ForkName, value: serde_json::Value) -> Result<Self, BlockDecodeError> {
                let json_err = |source| BlockDecodeError::Json { fork, source };
                Ok(match fork {
                    ForkName::Deneb => Self::Deneb(serde_json::from_value(value).map_err(json_err)?),
                    ForkName::Electra => Self::Electra(serde_json::from_value(value).map_err(json_err)?),
                    ForkName::Fulu => Self::Fulu(serde_json::from_value(value).map_err(json_err)?),
                    other => return Err(BlockDecodeError::UnsupportedFork(other)),
                })
            }

            pub fn to_json_value(&self) -> serde_json::Value {
                let result = match self {
                    Self::Deneb(b) => serde_json::to_value(b),
                    Self::Electra(b) | Self::Fulu(b) => serde_json::to_value(b),
                };
                // Serialising these plain data types cannot fail (no maps with non-string keys).
                result.unwrap_or(serde_json::Value::Null)
            }
        }
    };
}

versioned_block!(
    /// A full block of a supported fork.
    VersionedBlock,
    deneb: BeaconBlockBodyDeneb,
    electra: BeaconBlockBodyElectra
);
versioned_block!(
    /// A blinded block of a supported fork.
    VersionedBlindedBlock,
    deneb: BlindedBeaconBlockBodyDeneb,
    electra: BlindedBeaconBlockBodyElectra
);

impl<P: Preset> VersionedBlock<P> {
    /// The blinded form with the same root.
    pub fn to_blinded(&self) -> VersionedBlindedBlock<P> {
        fn blind<B: BlockBody, F: FnOnce(&B) -> C, C: BlockBody>(
            b: &BeaconBlock<B>,
            f: F,
        ) -> BeaconBlock<C> {
            BeaconBlock {
                slot: b.slot,
                proposer_index: b.proposer_index,
                parent_root: b.parent_root,
                state_root: b.state_root,
                body: f(&b.body),
            }
        }
        match self {
            Self::Deneb(b) => {
                VersionedBlindedBlock::Deneb(blind(b, BeaconBlockBodyDeneb::to_blinded))
            }
            Self::Electra(b) => {
                VersionedBlindedBlock::Electra(blind(b, BeaconBlockBodyElectra::to_blinded))
            }
            Self::Fulu(b) => {
                VersionedBlindedBlock::Fulu(blind(b, BeaconBlockBodyElectra::to_blinded))
            }
        }
    }
}
