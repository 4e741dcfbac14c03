//! Fork-independent containers: the ones every fork from Deneb on shares
//! unchanged.

use crate::primitives::*;
use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use tree_hash_derive::TreeHash;

/// `Fork` as in the beacon state (and `/eth/v1/beacon/states/{id}/fork`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct Fork {
    pub previous_version: Version,
    pub current_version: Version,
    #[serde(with = "serde_utils::quoted_u64")]
    pub epoch: Epoch,
}

/// Hashed with the genesis validators root to derive a domain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct ForkData {
    pub current_version: Version,
    pub genesis_validators_root: Root,
}

/// What a BLS signature actually signs: an object root mixed with its domain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct SigningData {
    pub object_root: Root,
    pub domain: Domain,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    Encode,
    Decode,
    TreeHash,
)]
pub struct Checkpoint {
    #[serde(with = "serde_utils::quoted_u64")]
    pub epoch: Epoch,
    pub root: Root,
}

/// The data an attester votes for. Since Electra `index` is always 0.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    Encode,
    Decode,
    TreeHash,
)]
pub struct AttestationData {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    pub index: CommitteeIndex,
    pub beacon_block_root: Root,
    pub source: Checkpoint,
    pub target: Checkpoint,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct BeaconBlockHeader {
    #[serde(with = "serde_utils::quoted_u64")]
    pub slot: Slot,
    #[serde(with = "serde_utils::quoted_u64")]
    pub proposer_index: ValidatorIndex,
    pub parent_root: Root,
    pub state_root: Root,
    pub body_root: Root,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct SignedBeaconBlockHeader {
    pub message: BeaconBlockHeader,
    pub signature: SignatureBytes,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct ProposerSlashing {
    pub signed_header_1: SignedBeaconBlockHeader,
    pub signed_header_2: SignedBeaconBlockHeader,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct Eth1Data {
    pub deposit_root: Root,
    #[serde(with = "serde_utils::quoted_u64")]
    pub deposit_count: u64,
    pub block_hash: Hash256,
}

/// The part of a deposit the validator key signs (domain `DOMAIN_DEPOSIT`).
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct DepositMessage {
    pub pubkey: PublicKeyBytes,
    pub withdrawal_credentials: Hash256,
    #[serde(with = "serde_utils::quoted_u64")]
    pub amount: Gwei,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct DepositData {
    pub pubkey: PublicKeyBytes,
    pub withdrawal_credentials: Hash256,
    #[serde(with = "serde_utils::quoted_u64")]
    pub amount: Gwei,
    pub signature: SignatureBytes,
}

impl DepositData {
    /// The message part, whose root the deposit signature covers.
    pub fn message(&self) -> DepositMessage {
        DepositMessage {
            pubkey: self.pubkey,
            withdrawal_credentials: self.withdrawal_credentials,
            amount: self.amount,
        }
    }
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct Deposit {
    pub proof: ssz_types::FixedVector<Hash256, crate::preset::DepositProofLength>,
    pub data: DepositData,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct VoluntaryExit {
    #[serde(with = "serde_utils::quoted_u64")]
    pub epoch: Epoch,
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: ValidatorIndex,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct SignedVoluntaryExit {
    pub message: VoluntaryExit,
    pub signature: SignatureBytes,
}

/// A builder (MEV-boost) registration, signed with `DOMAIN_APPLICATION_BUILDER`.
#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct ValidatorRegistration {
    #[serde(with = "serde_utils::address_hex")]
    pub fee_recipient: ExecutionAddress,
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_limit: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub timestamp: u64,
    pub pubkey: PublicKeyBytes,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct SignedValidatorRegistration {
    pub message: ValidatorRegistration,
    pub signature: SignatureBytes,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct BlsToExecutionChange {
    #[serde(with = "serde_utils::quoted_u64")]
    pub validator_index: ValidatorIndex,
    pub from_bls_pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::address_hex")]
    pub to_execution_address: ExecutionAddress,
}

#[derive(
    Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, Encode, Decode, TreeHash,
)]
pub struct SignedBlsToExecutionChange {
    pub message: BlsToExecutionChange,
    pub signature: SignatureBytes,
}
