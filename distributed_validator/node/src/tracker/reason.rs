//! Why a duty failed: one fixed, documented set of reasons, the same in the
//! log (`reason=` of a `duty failed` line), the metric
//! (`dv_duty_failed_total{duty,reason}`) and the status page.
//!
//! Charon's duty tracker served as the checklist (fetch from the beacon node,
//! missing prerequisites such as randao or aggregator selections, no
//! consensus, no or insufficient peer signatures, broadcast, inclusion on
//! chain); the refusals of this design (slashing protection, the
//! chain-split guard) have reasons of their own. Not here yet: Charon's
//! "no local validator-client signature" (a middleware node does not yet
//! notice a client that never signs a duty).

use crate::validator_store::SignError;

/// A failure reason. Its name (`as_str`) is what the log and the metrics show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The beacon node did not provide the duty's data (a normal
    /// validator's attestation data, block, aggregate or head root).
    FetchFailed,
    /// A prerequisite duty did not complete: no randao reveal for the
    /// proposal, no aggregator selection proofs, no decided attestation data
    /// to aggregate.
    MissingPrerequisite,
    /// No decision, and this node had no attestation data of its own to
    /// compare with the others' (its beacon node did not answer), so it
    /// voted for none of theirs: without a view of its own a chain split
    /// cannot be ruled out.
    ChainSplitGuard,
    /// The cluster did not decide a value before the duty's deadline.
    NoConsensus,
    /// The slashing-protection database refused to sign the decided value.
    SlashingRefused,
    /// The slashing-protection database could not be read or written.
    DatabaseError,
    /// Fewer than the threshold of operators' partial signatures arrived before the
    /// deadline (`dv_peer_partials_total` says whose were missing).
    InsufficientPartials,
    /// The beacon node refused or failed the submission of the signed message.
    BroadcastFailed,
    /// Submitted, but no block within the inclusion window carried it.
    NotIncluded,
    /// The decided value could not be used (a bug or a Byzantine majority).
    InvalidDecidedValue,
    /// This node cannot do the duty (a fork or feature not supported).
    NotSupported,
    /// Anything else: a bug, or the node shutting down.
    Internal,
}

impl Reason {
    /// Every reason, in a stable order (the metric's label values).
    pub const ALL: [Reason; 12] = [
        Reason::FetchFailed,
        Reason::MissingPrerequisite,
        Reason::ChainSplitGuard,
        Reason::NoConsensus,
        Reason::SlashingRefused,
        Reason::DatabaseError,
        Reason::InsufficientPartials,
        Reason::BroadcastFailed,
        Reason::NotIncluded,
        Reason::InvalidDecidedValue,
        Reason::NotSupported,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FetchFailed => "fetch_failed",
            Reason::MissingPrerequisite => "missing_prerequisite",
            Reason::ChainSplitGuard => "chain_split_guard",
            Reason::NoConsensus => "no_consensus",
            Reason::SlashingRefused => "slashing_refused",
            Reason::DatabaseError => "database_error",
            Reason::InsufficientPartials => "insufficient_partials",
            Reason::BroadcastFailed => "broadcast_failed",
            Reason::NotIncluded => "not_included",
            Reason::InvalidDecidedValue => "invalid_decided_value",
            Reason::NotSupported => "not_supported",
            Reason::Internal => "internal_error",
        }
    }

    /// The reason of a failure of the signing seam.
    pub fn of(e: &SignError) -> Reason {
        match e {
            SignError::NoConsensus => Reason::NoConsensus,
            SignError::InsufficientPartials { .. } => Reason::InsufficientPartials,
            SignError::SlashingRefused(_) => Reason::SlashingRefused,
            SignError::Database(_) => Reason::DatabaseError,
            SignError::NotSupportedYet(_) => Reason::NotSupported,
            SignError::NoOwnValue(_) => Reason::FetchFailed,
            SignError::BadDecidedValue(_) => Reason::InvalidDecidedValue,
            SignError::UnknownValidator(_) | SignError::Workflow(_) => Reason::Internal,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_distinct_snake_case_labels() {
        let names: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), Reason::ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
