//! What a duty is: a type of work for the cluster's validators at one slot.

use dv_types::Slot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DutyType {
    Attester,
    Proposer,
    Randao,
    /// Beacon committee selection proofs (middleware: partials from the validator client).
    Selection,
    /// Sync committee selection proofs.
    SyncSelection,
    /// Voluntary exits (the slot is the first of the epoch the pending exits
    /// are offered in, whatever their exit epoch: see `exits.rs`).
    Exit,
    /// Attestation aggregation for one committee of the slot (each
    /// committee's aggregate is its own decision).
    Aggregator {
        committee: u64,
    },
    /// Sync committee messages (no consensus: partials combine per block root).
    SyncMessage,
    /// One sync subcommittee's contribution (each its own decision).
    SyncContribution {
        subcommittee: u64,
    },
}

/// Duty types with a committee carry its index above the low 8 bits of the code.
const AGGREGATOR_CODE: u32 = 6;
const SYNC_CONTRIBUTION_CODE: u32 = 8;

/// MAX_COMMITTEES_PER_SLOT of the mainnet preset (the minimal preset's is
/// smaller): no slot has an aggregation duty of a committee at or above it.
pub const MAX_COMMITTEES_PER_SLOT: u64 = 64;
/// SYNC_COMMITTEE_SUBNET_COUNT (both presets): the sync subcommittees.
pub const SYNC_SUBCOMMITTEES: u64 = 4;

/// The duty types without a committee index.
const PLAIN: [DutyType; 7] = [
    DutyType::Attester,
    DutyType::Proposer,
    DutyType::Randao,
    DutyType::Selection,
    DutyType::SyncSelection,
    DutyType::Exit,
    DutyType::SyncMessage,
];

fn with_committee(code: u32, committee: u64) -> u32 {
    // (Never above the caps for duties that exist; `from_code` refuses those.)
    code | ((committee.min(u64::from(u32::MAX >> 8)) as u32) << 8)
}

impl DutyType {
    /// The number consensus instances and network messages carry.
    pub fn code(self) -> u32 {
        match self {
            DutyType::Attester => 0,
            DutyType::Proposer => 1,
            DutyType::Randao => 2,
            DutyType::Selection => 3,
            DutyType::SyncSelection => 4,
            DutyType::Exit => 5,
            DutyType::Aggregator { committee } => with_committee(AGGREGATOR_CODE, committee),
            DutyType::SyncMessage => 7,
            DutyType::SyncContribution { subcommittee } => {
                with_committee(SYNC_CONTRIBUTION_CODE, subcommittee)
            }
        }
    }

    /// The duty type a peer's message names; `None` for a code this version
    /// does not know, or for a committee no slot has (so that a peer can
    /// name at most 75 duties a slot, not 2^25: each costs a buffer here).
    pub fn from_code(code: u32) -> Option<Self> {
        let index = u64::from(code >> 8);
        match code & 0xff {
            AGGREGATOR_CODE if index < MAX_COMMITTEES_PER_SLOT => {
                Some(DutyType::Aggregator { committee: index })
            }
            SYNC_CONTRIBUTION_CODE if index < SYNC_SUBCOMMITTEES => {
                Some(DutyType::SyncContribution {
                    subcommittee: index,
                })
            }
            AGGREGATOR_CODE | SYNC_CONTRIBUTION_CODE => None,
            _ => PLAIN.into_iter().find(|kind| kind.code() == code),
        }
    }

    /// The name in logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            DutyType::Attester => "attester",
            DutyType::Proposer => "proposer",
            DutyType::Randao => "randao",
            DutyType::Selection => "selection",
            DutyType::SyncSelection => "sync_selection",
            DutyType::Exit => "exit",
            DutyType::Aggregator { .. } => "aggregator",
            DutyType::SyncMessage => "sync_message",
            DutyType::SyncContribution { .. } => "sync_contribution",
        }
    }
}

/// One duty of the cluster: every validator's work of one type at one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duty {
    pub slot: Slot,
    pub kind: DutyType,
}

impl Duty {
    pub fn new(slot: Slot, kind: DutyType) -> Self {
        Self { slot, kind }
    }
}

impl std::fmt::Display for Duty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.slot, self.kind.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        let aggregators = [0, 1, 63].map(|committee| DutyType::Aggregator { committee });
        let contributions = [0, 3].map(|subcommittee| DutyType::SyncContribution { subcommittee });
        for kind in PLAIN.into_iter().chain(aggregators).chain(contributions) {
            assert_eq!(DutyType::from_code(kind.code()), Some(kind));
        }
        assert_eq!(DutyType::from_code(9), None);
        // Committees no slot has are refused (a peer could otherwise name 2^24).
        let beyond = DutyType::Aggregator {
            committee: MAX_COMMITTEES_PER_SLOT,
        };
        assert_eq!(DutyType::from_code(beyond.code()), None);
        let beyond = DutyType::SyncContribution {
            subcommittee: SYNC_SUBCOMMITTEES,
        };
        assert_eq!(DutyType::from_code(beyond.code()), None);
        assert_eq!(
            DutyType::from_code(AGGREGATOR_CODE | (0xff_ffff << 8)),
            None
        );
        assert_eq!(DutyType::from_code(7 | (3 << 8)), None);
        assert_eq!(Duty::new(9, DutyType::Randao).to_string(), "9/randao");
    }
}
