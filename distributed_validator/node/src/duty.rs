//! What a duty is: a type of work for the cluster's validators at one slot.

use dv_types::Slot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DutyType {
    Attester,
    Proposer,
    Randao,
}

impl DutyType {
    /// The number consensus instances and network messages carry.
    pub fn code(self) -> u32 {
        match self {
            DutyType::Attester => 0,
            DutyType::Proposer => 1,
            DutyType::Randao => 2,
        }
    }
}

/// One duty of the cluster: every validator's work of one type at one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Duty {
    pub slot: Slot,
    pub kind: DutyType,
}
