//! Outcomes of a slashing check: safe (new, or the same data signed again) or
//! a typed refusal. The rules are Lighthouse's validator client's.

use dv_types::{Epoch, PublicKeyBytes, Root, Slot};

/// A check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safe {
    /// Nothing conflicting was signed before.
    Valid,
    /// Exactly this message (same signing root) was signed before; signing it again is harmless.
    SameData,
}

/// A signed attestation as the database keeps it. A zero signing root means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedAttestation {
    pub source_epoch: Epoch,
    pub target_epoch: Epoch,
    pub signing_root: Root,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBlock {
    #[error("double block proposal at slot {slot} (a block with signing root {existing_root} was signed)")]
    DoubleBlockProposal { slot: Slot, existing_root: Root },
    #[error("slot {slot} is below the lowest slot on record, {lower_bound}")]
    SlotViolatesLowerBound { slot: Slot, lower_bound: Slot },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAttestation {
    #[error("source epoch {source_epoch} exceeds target epoch {target_epoch}")]
    SourceExceedsTarget {
        source_epoch: Epoch,
        target_epoch: Epoch,
    },
    #[error("double vote for target epoch {}: {previous:?} was signed", previous.target_epoch)]
    DoubleVote { previous: SignedAttestation },
    #[error("the new vote surrounds the signed vote {previous:?}")]
    NewSurroundsPrev { previous: SignedAttestation },
    #[error("the new vote is surrounded by the signed vote {previous:?}")]
    PrevSurroundsNew { previous: SignedAttestation },
    #[error("source epoch {source_epoch} is below the lowest source on record, {lower_bound}")]
    SourceLessThanLowerBound {
        source_epoch: Epoch,
        lower_bound: Epoch,
    },
    #[error(
        "target epoch {target_epoch} is at or below the lowest target on record, {lower_bound}"
    )]
    TargetLessThanOrEqLowerBound {
        target_epoch: Epoch,
        lower_bound: Epoch,
    },
}

/// Why a message must not be signed (or the check could not be made).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSafe {
    #[error("validator {0} is not registered in the slashing protection database")]
    UnregisteredValidator(PublicKeyBytes),
    #[error("validator {0} is disabled in the slashing protection database")]
    DisabledValidator(PublicKeyBytes),
    #[error("block refused: {0}")]
    InvalidBlock(#[from] InvalidBlock),
    #[error("attestation refused: {0}")]
    InvalidAttestation(#[from] InvalidAttestation),
    #[error("value {0} does not fit the database's signed 64-bit integers")]
    ValueTooLarge(u64),
    #[error("slashing protection database error: {0}")]
    Database(String),
}

impl From<rusqlite::Error> for NotSafe {
    fn from(e: rusqlite::Error) -> Self {
        NotSafe::Database(e.to_string())
    }
}
