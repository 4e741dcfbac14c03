//! Presets: the compile-time list and vector limits of the consensus spec.
//!
//! Mainnet and minimal differ in a handful of limits, and since SSZ list limits
//! enter the hash tree root, a container hashed under the wrong preset has a
//! different root. Every container that depends on a limit is generic over
//! [`Preset`], the way Lighthouse's types are generic over `EthSpec`.

use ssz_types::typenum::{
    Prod, Unsigned, U1, U1048576, U1073741824, U128, U16, U2, U2048, U256, U32, U4, U4096, U512,
    U64, U8, U8192,
};
use std::fmt::Debug;

/// Limits that differ between presets, as type-level numbers.
pub trait Preset:
    'static + Clone + Copy + Debug + Default + PartialEq + Eq + Send + Sync + std::hash::Hash
{
    /// Preset name as the beacon node reports it in `PRESET_BASE`.
    const NAME: &'static str;

    type MaxValidatorsPerCommittee: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxCommitteesPerSlot: Unsigned + Clone + Debug + Send + Sync + Eq;
    /// `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT`, the Electra aggregation bit limit.
    type MaxValidatorsPerSlot: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxProposerSlashings: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxAttesterSlashings: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxAttesterSlashingsElectra: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxAttestations: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxAttestationsElectra: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxDeposits: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxVoluntaryExits: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxBlsToExecutionChanges: Unsigned + Clone + Debug + Send + Sync + Eq;
    type SyncCommitteeSize: Unsigned + Clone + Debug + Send + Sync + Eq;
    /// `SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT`.
    type SyncSubcommitteeSize: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxBytesPerTransaction: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxTransactionsPerPayload: Unsigned + Clone + Debug + Send + Sync + Eq;
    type BytesPerLogsBloom: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxExtraDataBytes: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxWithdrawalsPerPayload: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxBlobCommitmentsPerBlock: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxDepositRequestsPerPayload: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxWithdrawalRequestsPerPayload: Unsigned + Clone + Debug + Send + Sync + Eq;
    type MaxConsolidationRequestsPerPayload: Unsigned + Clone + Debug + Send + Sync + Eq;

    /// Default `SLOTS_PER_EPOCH` of the preset (the chain spec from the beacon node wins).
    const SLOTS_PER_EPOCH: u64;
}

/// `DEPOSIT_CONTRACT_TREE_DEPTH + 1`, the length of a deposit proof.
pub type DepositProofLength = ssz_types::typenum::U33;

/// The mainnet preset (also used by Holesky, Sepolia, Hoodi).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mainnet;

impl Preset for Mainnet {
    const NAME: &'static str = "mainnet";
    type MaxValidatorsPerCommittee = U2048;
    type MaxCommitteesPerSlot = U64;
    type MaxValidatorsPerSlot = Prod<U2048, U64>;
    type MaxProposerSlashings = U16;
    type MaxAttesterSlashings = U2;
    type MaxAttesterSlashingsElectra = U1;
    type MaxAttestations = U128;
    type MaxAttestationsElectra = U8;
    type MaxDeposits = U16;
    type MaxVoluntaryExits = U16;
    type MaxBlsToExecutionChanges = U16;
    type SyncCommitteeSize = U512;
    type SyncSubcommitteeSize = U128;
    type MaxBytesPerTransaction = U1073741824;
    type MaxTransactionsPerPayload = U1048576;
    type BytesPerLogsBloom = U256;
    type MaxExtraDataBytes = U32;
    type MaxWithdrawalsPerPayload = U16;
    type MaxBlobCommitmentsPerBlock = U4096;
    type MaxDepositRequestsPerPayload = U8192;
    type MaxWithdrawalRequestsPerPayload = U16;
    type MaxConsolidationRequestsPerPayload = U2;
    const SLOTS_PER_EPOCH: u64 = 32;
}

/// The minimal preset local dev chains run (`PRESET_BASE: minimal`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Minimal;

impl Preset for Minimal {
    const NAME: &'static str = "minimal";
    type MaxValidatorsPerCommittee = U2048;
    type MaxCommitteesPerSlot = U4;
    type MaxValidatorsPerSlot = Prod<U2048, U4>;
    type MaxProposerSlashings = U16;
    type MaxAttesterSlashings = U2;
    type MaxAttesterSlashingsElectra = U1;
    type MaxAttestations = U128;
    type MaxAttestationsElectra = U8;
    type MaxDeposits = U16;
    type MaxVoluntaryExits = U16;
    type MaxBlsToExecutionChanges = U16;
    type SyncCommitteeSize = U32;
    type SyncSubcommitteeSize = U8;
    type MaxBytesPerTransaction = U1073741824;
    type MaxTransactionsPerPayload = U1048576;
    type BytesPerLogsBloom = U256;
    type MaxExtraDataBytes = U32;
    type MaxWithdrawalsPerPayload = U4;
    type MaxBlobCommitmentsPerBlock = U16;
    type MaxDepositRequestsPerPayload = U4;
    type MaxWithdrawalRequestsPerPayload = U2;
    type MaxConsolidationRequestsPerPayload = U2;
    const SLOTS_PER_EPOCH: u64 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn electra_aggregation_limit_is_product() {
        assert_eq!(
            <Mainnet as Preset>::MaxValidatorsPerSlot::to_usize(),
            131072
        );
        assert_eq!(<Minimal as Preset>::MaxValidatorsPerSlot::to_usize(), 8192);
    }
}
