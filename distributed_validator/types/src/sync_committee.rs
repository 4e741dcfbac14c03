//! Altair sync-committee containers (unchanged through Fulu).

use crate::preset::Preset;
use crate::primitives::*;
use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::BitVector;
use tree_hash_derive::TreeHash;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SyncCommitteeMessage {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    pub beacon_block_root: Root,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: ValidatorIndex,
    pub signature: SignatureBytes,
}

/// Signed (domain `DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF`) to prove sync aggregator selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SyncAggregatorSelectionData {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    pub subcommittee_index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct SyncCommitteeContribution<P: Preset> {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    pub beacon_block_root: Root,
    #[serde(with = "serde_utils::quoted_u64")]
    pub subcommittee_index: u64,
    pub aggregation_bits: BitVector<P::SyncSubcommitteeSize>,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct ContributionAndProof<P: Preset> {
    #[serde(with = "serde_utils::quoted_u64")]
    pub aggregator_index: ValidatorIndex,
    pub contribution: SyncCommitteeContribution<P>,
    pub selection_proof: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct SignedContributionAndProof<P: Preset> {
    pub message: ContributionAndProof<P>,
    pub signature: SignatureBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "P: Preset")]
pub struct SyncAggregate<P: Preset> {
    pub sync_committee_bits: BitVector<P::SyncCommitteeSize>,
    pub sync_committee_signature: SignatureBytes,
}
