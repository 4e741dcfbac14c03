//! Attestations, slashings and aggregates in their pre-Electra (Deneb) and
//! Electra shapes, and the Electra `SingleAttestation`.

use crate::containers::AttestationData;
use crate::preset::Preset;
use crate::primitives::*;
use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitList, BitVector, VariableList};
use tree_hash_derive::TreeHash;

/// Deneb `Attestation`: one committee, its index in `data.index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AttestationDeneb<P: Preset> {
    pub aggregation_bits: BitList<P::MaxValidatorsPerCommittee>,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

/// Electra `Attestation`: bits over all committees of the slot, committees in `committee_bits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AttestationElectra<P: Preset> {
    pub aggregation_bits: BitList<P::MaxValidatorsPerSlot>,
    pub data: AttestationData,
    pub signature: SignatureBytes,
    pub committee_bits: BitVector<P::MaxCommitteesPerSlot>,
}

/// The unaggregated attestation a validator publishes from Electra on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SingleAttestation {
    #[serde(with = "serde_utils::quoted_u64")]
    pub committee_index: CommitteeIndex,
    #[serde(with = "serde_utils::quoted_u64")]
    pub attester_index: ValidatorIndex,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct IndexedAttestationDeneb<P: Preset> {
    #[serde(with = "ssz_types::serde_utils::quoted_u64_var_list")]
    pub attesting_indices: VariableList<u64, P::MaxValidatorsPerCommittee>,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct IndexedAttestationElectra<P: Preset> {
    #[serde(with = "ssz_types::serde_utils::quoted_u64_var_list")]
    pub attesting_indices: VariableList<u64, P::MaxValidatorsPerSlot>,
    pub data: AttestationData,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AttesterSlashingDeneb<P: Preset> {
    pub attestation_1: IndexedAttestationDeneb<P>,
    pub attestation_2: IndexedAttestationDeneb<P>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AttesterSlashingElectra<P: Preset> {
    pub attestation_1: IndexedAttestationElectra<P>,
    pub attestation_2: IndexedAttestationElectra<P>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AggregateAndProofDeneb<P: Preset> {
    #[serde(with = "serde_utils::quoted_u64")]
    pub aggregator_index: ValidatorIndex,
    pub aggregate: AttestationDeneb<P>,
    pub selection_proof: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct AggregateAndProofElectra<P: Preset> {
    #[serde(with = "serde_utils::quoted_u64")]
    pub aggregator_index: ValidatorIndex,
    pub aggregate: AttestationElectra<P>,
    pub selection_proof: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct SignedAggregateAndProofDeneb<P: Preset> {
    pub message: AggregateAndProofDeneb<P>,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct SignedAggregateAndProofElectra<P: Preset> {
    pub message: AggregateAndProofElectra<P>,
    pub signature: SignatureBytes,
}
