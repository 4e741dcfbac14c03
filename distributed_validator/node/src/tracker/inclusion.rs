//! Inclusion on chain: the attestations, blocks and sync committee messages
//! the cluster's beacon node accepted, looked for in the blocks that follow.
//!
//! A duty counts as done when a block carries it, not when a beacon node
//! accepted it. The state machine here ([`Inclusion`]) is pure: the checker
//! ([`InclusionChecker`]) feeds it one block per slot (plus, from Electra,
//! the committee sizes of the slots whose attestations it must locate in an
//! aggregate's bits) and reports what it found.

use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::tracker::Reason;
use beacon_client::BeaconNodes;
use dv_types::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One of the cluster's validators' attestations, as the chain must show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingAttestation {
    validator: u64,
    committee: u64,
    /// Its position in the committee.
    position: u64,
}

/// One sync committee message, and where its bits are in the aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingSyncMessage {
    validator: u64,
    positions: Vec<u64>,
}

/// An attestation as a block carries it: its data, the committees it
/// covers (one before Electra: `data.index`) and its bits over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedAttestation {
    pub data: AttestationData,
    pub committees: Vec<u64>,
    pub bits: Vec<bool>,
    /// Electra and later: bits run over the committees in order.
    pub concatenated: bool,
}

/// What a block shows the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockView {
    pub slot: Slot,
    pub root: Root,
    pub attestations: Vec<CarriedAttestation>,
    /// The sync aggregate's bits (the previous slot's messages).
    pub sync_bits: Vec<bool>,
}

impl BlockView {
    pub fn of<P: Preset>(block: &VersionedBlock<P>) -> BlockView {
        fn bits<N: dv_types::ssz_types::typenum::Unsigned + Clone>(
            list: &dv_types::ssz_types::BitList<N>,
        ) -> Vec<bool> {
            list.iter().collect()
        }
        let (attestations, sync_bits) = match block {
            VersionedBlock::Deneb(b) => (
                b.body
                    .attestations
                    .iter()
                    .map(|a| CarriedAttestation {
                        data: a.data,
                        committees: vec![a.data.index],
                        bits: bits(&a.aggregation_bits),
                        concatenated: false,
                    })
                    .collect(),
                b.body.sync_aggregate.sync_committee_bits.iter().collect(),
            ),
            VersionedBlock::Electra(b) | VersionedBlock::Fulu(b) => (
                b.body
                    .attestations
                    .iter()
                    .map(|a| CarriedAttestation {
                        data: a.data,
                        committees: (0..a.committee_bits.len())
                            .filter(|i| a.committee_bits.get(*i).unwrap_or(false))
                            .map(|i| i as u64)
                            .collect(),
                        bits: bits(&a.aggregation_bits),
                        concatenated: true,
                    })
                    .collect(),
                b.body.sync_aggregate.sync_committee_bits.iter().collect(),
            ),
        };
        BlockView {
            slot: block.slot(),
            root: block.root(),
            attestations,
            sync_bits,
        }
    }
}

/// What the tracker found out about some of the cluster's duties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `validators`' `duty` of `slot` is in the block of `slot + delay`.
    Included {
        duty: &'static str,
        slot: Slot,
        delay: u64,
        validators: Vec<u64>,
    },
    /// No block carried it (and none can any more).
    Missed {
        duty: &'static str,
        slot: Slot,
        validators: Vec<u64>,
        why: String,
    },
}

/// The duties submitted and not yet found on chain.
#[derive(Debug, Default)]
pub struct Inclusion {
    /// By slot: the data signed and who signed it.
    attestations: BTreeMap<Slot, Vec<(AttestationData, PendingAttestation)>>,
    /// By slot: the block root published, and its proposer.
    blocks: BTreeMap<Slot, (Root, u64)>,
    /// By slot: the messages.
    sync_messages: BTreeMap<Slot, Vec<PendingSyncMessage>>,
}

/// Committee sizes of a slot, by committee index.
pub type CommitteeSizes = Vec<u64>;

impl Inclusion {
    pub fn attestation_submitted(
        &mut self,
        data: AttestationData,
        validator: u64,
        committee: u64,
        position: u64,
    ) {
        self.attestations.entry(data.slot).or_default().push((
            data,
            PendingAttestation {
                validator,
                committee,
                position,
            },
        ));
    }

    pub fn block_submitted(&mut self, slot: Slot, root: Root, proposer: u64) {
        self.blocks.insert(slot, (root, proposer));
    }

    pub fn sync_message_submitted(&mut self, slot: Slot, validator: u64, positions: Vec<u64>) {
        self.sync_messages
            .entry(slot)
            .or_default()
            .push(PendingSyncMessage {
                validator,
                positions,
            });
    }

    /// The slots whose committee sizes reading `block` needs: those of its
    /// Electra attestations over data some pending attestation signed.
    pub fn committee_slots_needed(&self, block: &BlockView) -> Vec<Slot> {
        let mut slots: Vec<Slot> = block
            .attestations
            .iter()
            .filter(|a| a.concatenated)
            .filter(|a| {
                self.attestations
                    .get(&a.data.slot)
                    .is_some_and(|p| p.iter().any(|(d, _)| *d == a.data))
            })
            .map(|a| a.data.slot)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The block of `slot` (`None`: no block there), with the committee sizes
    /// [`Self::committee_slots_needed`] asked for.
    pub fn on_block(
        &mut self,
        slot: Slot,
        block: Option<&BlockView>,
        sizes: &HashMap<Slot, CommitteeSizes>,
    ) -> Vec<Found> {
        let mut found = Vec::new();
        if let Some((root, proposer)) = self.blocks.remove(&slot) {
            found.push(match block {
                Some(b) if b.root == root => Found::Included {
                    duty: "proposer",
                    slot,
                    delay: 0,
                    validators: vec![proposer],
                },
                Some(b) => Found::Missed {
                    duty: "proposer",
                    slot,
                    validators: vec![proposer],
                    why: format!("the chain's block at slot {slot} is another ({})", b.root),
                },
                None => Found::Missed {
                    duty: "proposer",
                    slot,
                    validators: vec![proposer],
                    why: format!("no block at slot {slot}"),
                },
            });
        }
        // The sync committee messages of the slot before could only go in this block.
        let previous = slot.checked_sub(1);
        let messages = previous.and_then(|p| self.sync_messages.remove(&p));
        let Some(block) = block else {
            if let (Some(previous), Some(messages)) = (previous, messages) {
                found.push(Found::Missed {
                    duty: "sync_message",
                    slot: previous,
                    validators: messages.iter().map(|m| m.validator).collect(),
                    why: format!("no block at slot {slot} to carry them"),
                });
            }
            return found;
        };
        if let (Some(previous), Some(messages)) = (previous, messages) {
            let (carried, not): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| {
                m.positions
                    .iter()
                    .any(|p| block.sync_bits.get(*p as usize) == Some(&true))
            });
            if !carried.is_empty() {
                found.push(Found::Included {
                    duty: "sync_message",
                    slot: previous,
                    delay: 1,
                    validators: carried.iter().map(|m| m.validator).collect(),
                });
            }
            if !not.is_empty() {
                found.push(Found::Missed {
                    duty: "sync_message",
                    slot: previous,
                    validators: not.iter().map(|m| m.validator).collect(),
                    why: format!("the sync aggregate of slot {slot} does not carry them"),
                });
            }
        }
        let mut included: BTreeMap<Slot, Vec<u64>> = BTreeMap::new();
        for carried in &block.attestations {
            let Some(pending) = self.attestations.get_mut(&carried.data.slot) else {
                continue;
            };
            pending.retain(|(data, p)| {
                let hit = *data == carried.data
                    && bit_of(carried, p, sizes.get(&carried.data.slot)) == Some(true);
                if hit {
                    included
                        .entry(carried.data.slot)
                        .or_default()
                        .push(p.validator);
                }
                !hit
            });
        }
        self.attestations.retain(|_, p| !p.is_empty());
        for (attested, validators) in included {
            found.push(Found::Included {
                duty: "attester",
                slot: attested,
                delay: slot - attested,
                validators,
            });
        }
        found
    }

    /// Gives up on what can no longer be included once the chain is at
    /// `current`: attestations an epoch after their slot (a block may still
    /// take them to the end of the next epoch; an epoch is what is judged).
    pub fn expire(&mut self, current: Slot, slots_per_epoch: u64) -> Vec<Found> {
        let window = slots_per_epoch;
        let mut found = Vec::new();
        let old: Vec<Slot> = self
            .attestations
            .range(..current.saturating_sub(window))
            .map(|(s, _)| *s)
            .collect();
        for slot in old {
            if let Some(pending) = self.attestations.remove(&slot) {
                found.push(Found::Missed {
                    duty: "attester",
                    slot,
                    validators: pending.iter().map(|(_, p)| p.validator).collect(),
                    why: format!("in no block of slots {} to {}", slot + 1, slot + window),
                });
            }
        }
        // Blocks and sync messages are settled by the next blocks; anything
        // left this old was never looked for (the checker was behind).
        let stale = current.saturating_sub(window);
        self.blocks.retain(|s, _| *s >= stale);
        self.sync_messages.retain(|s, _| *s >= stale);
        found
    }
}

/// The bit of `p` in `carried`, if `carried` covers its committee (and, for
/// concatenated bits, the sizes of the committees before it are known).
fn bit_of(
    carried: &CarriedAttestation,
    p: &PendingAttestation,
    sizes: Option<&CommitteeSizes>,
) -> Option<bool> {
    if !carried.committees.contains(&p.committee) {
        return None;
    }
    let offset = match carried.concatenated {
        false => 0,
        true => {
            let sizes = sizes?;
            let mut offset = 0;
            for c in carried.committees.iter().take_while(|c| **c != p.committee) {
                offset += *sizes.get(*c as usize)?;
            }
            offset
        }
    };
    carried.bits.get((offset + p.position) as usize).copied()
}

/// Looks for the cluster's submitted duties on chain, one block a slot,
/// and counts what it finds in the metrics and the log.
pub struct InclusionChecker {
    state: Mutex<Inclusion>,
    beacon: BeaconNodes,
    metrics: Arc<Metrics>,
    scheduler: Scheduler,
    spec: ChainSpec,
}

impl InclusionChecker {
    pub fn new(
        beacon: BeaconNodes,
        metrics: Arc<Metrics>,
        scheduler: Scheduler,
        spec: ChainSpec,
    ) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(Inclusion::default()),
            beacon,
            metrics,
            scheduler,
            spec,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Inclusion> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The beacon node accepted these attestations (validator index, data).
    pub fn attestations_submitted(&self, items: &[(u64, AttestationData)]) {
        let Some(slot) = items.first().map(|(_, d)| d.slot) else {
            return;
        };
        let duties = self.scheduler.attesters_at(slot);
        let mut state = self.state();
        for (validator, data) in items {
            if let Some(d) = duties.iter().find(|d| d.validator_index == *validator) {
                state.attestation_submitted(
                    *data,
                    d.validator_index,
                    d.committee_index,
                    d.validator_committee_index,
                );
            }
        }
    }

    /// The beacon node accepted the block `root` of `slot` by `proposer`.
    pub fn block_submitted(&self, slot: Slot, root: Root, proposer: u64) {
        self.state().block_submitted(slot, root, proposer);
    }

    /// The beacon node accepted these validators' sync committee messages of `slot`.
    pub fn sync_messages_submitted(&self, slot: Slot, validators: &[u64]) {
        let members = self
            .scheduler
            .sync_members(self.spec.epoch_of_slot(slot + 1));
        let mut state = self.state();
        for m in members
            .iter()
            .filter(|m| validators.contains(&m.validator_index))
        {
            state.sync_message_submitted(
                slot,
                m.validator_index,
                m.validator_sync_committee_indices.clone(),
            );
        }
    }

    /// Reads the block of `slot` and settles what it shows.
    pub async fn check_slot<P: Preset>(&self, slot: Slot) {
        let block = match self.beacon.first_success(|n| n.block::<P>(slot)).await {
            Ok(block) => block.map(|b| BlockView::of(&b)),
            Err(e) => {
                tracing::warn!(
                    slot,
                    "inclusion check: the block of the slot is unavailable: {e}"
                );
                return;
            }
        };
        let needed = match &block {
            Some(b) => self.state().committee_slots_needed(b),
            None => Vec::new(),
        };
        let mut sizes = HashMap::new();
        for at in needed {
            match self.beacon.first_success(|n| n.committee_sizes(at)).await {
                Ok(s) => {
                    sizes.insert(at, s);
                }
                Err(e) => tracing::warn!(slot, "inclusion check: committees of slot {at}: {e}"),
            }
        }
        let mut found = self.state().on_block(slot, block.as_ref(), &sizes);
        found.extend(self.state().expire(slot, self.spec.slots_per_epoch));
        for f in found {
            self.report(f);
        }
    }

    fn report(&self, found: Found) {
        match found {
            Found::Included {
                duty,
                slot,
                delay,
                validators,
            } => {
                self.metrics
                    .duty_included(slot, duty, delay, validators.len());
                for v in &validators {
                    self.metrics.validator_outcome(v, duty, "included");
                }
                tracing::info!(
                    slot,
                    duty,
                    count = validators.len(),
                    delay,
                    "duty included: in the block of slot {}",
                    slot + delay
                );
            }
            Found::Missed {
                duty,
                slot,
                validators,
                why,
            } => {
                for v in &validators {
                    self.metrics
                        .validator_outcome(v, duty, Reason::NotIncluded.as_str());
                }
                let shown: Vec<String> = validators.iter().take(8).map(u64::to_string).collect();
                self.metrics.duty_failed(
                    slot,
                    duty,
                    Reason::NotIncluded,
                    validators.len(),
                    format_args!(
                        "not included on chain: {why} (validators {}{})",
                        shown.join(", "),
                        if validators.len() > 8 { ", ..." } else { "" }
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(slot: Slot, root: u8) -> AttestationData {
        AttestationData {
            slot,
            index: 0,
            beacon_block_root: Root::repeat_byte(root),
            source: Checkpoint {
                epoch: 0,
                root: Root::ZERO,
            },
            target: Checkpoint {
                epoch: 0,
                root: Root::repeat_byte(9),
            },
        }
    }

    fn view(slot: Slot, attestations: Vec<CarriedAttestation>, sync_bits: Vec<bool>) -> BlockView {
        BlockView {
            slot,
            root: Root::repeat_byte(slot as u8),
            attestations,
            sync_bits,
        }
    }

    #[test]
    fn electra_bits_are_found_after_the_committees_before_theirs() {
        let mut state = Inclusion::default();
        // Validator 7: committee 2, position 1; validator 8: committee 0, position 0.
        state.attestation_submitted(data(4, 1), 7, 2, 1);
        state.attestation_submitted(data(4, 1), 8, 0, 0);
        // Committees 0 (3 members) and 2 (2 members): bits 3 + 1 = 4 is validator 7.
        let mut bits = vec![false; 5];
        bits[4] = true;
        let block = view(
            5,
            vec![CarriedAttestation {
                data: data(4, 1),
                committees: vec![0, 2],
                bits,
                concatenated: true,
            }],
            vec![],
        );
        assert_eq!(state.committee_slots_needed(&block), vec![4]);
        // Without the sizes nothing can be located.
        assert!(state.on_block(5, Some(&block), &HashMap::new()).is_empty());
        let sizes = HashMap::from([(4, vec![3, 4, 2])]);
        assert_eq!(
            state.on_block(5, Some(&block), &sizes),
            vec![Found::Included {
                duty: "attester",
                slot: 4,
                delay: 1,
                validators: vec![7]
            }]
        );
        // Other data (another head) does not count; after the window validator 8 is missed.
        let other = view(
            6,
            vec![CarriedAttestation {
                data: data(4, 2),
                committees: vec![0],
                bits: vec![true, true, true],
                concatenated: true,
            }],
            vec![],
        );
        assert!(state.on_block(6, Some(&other), &sizes).is_empty());
        assert!(state.expire(12, 8).is_empty());
        assert_eq!(
            state.expire(13, 8),
            vec![Found::Missed {
                duty: "attester",
                slot: 4,
                validators: vec![8],
                why: "in no block of slots 5 to 12".into()
            }]
        );
    }

    #[test]
    fn blocks_and_sync_messages_are_settled_by_the_next_block() {
        let mut state = Inclusion::default();
        let none = HashMap::new();
        state.block_submitted(3, Root::repeat_byte(3), 11);
        state.block_submitted(4, Root::repeat_byte(99), 12);
        state.sync_message_submitted(3, 20, vec![1]);
        state.sync_message_submitted(3, 21, vec![5, 6]);
        // Deneb: bits indexed by position in the one committee.
        state.attestation_submitted(data(3, 1), 30, 1, 2);
        let found = state.on_block(3, Some(&view(3, vec![], vec![])), &none);
        assert!(
            matches!(&found[..], [Found::Included { duty: "proposer", validators, .. }] if validators == &[11])
        );
        let block4 = view(
            4,
            vec![CarriedAttestation {
                data: {
                    let mut d = data(3, 1);
                    d.index = 1;
                    d
                },
                committees: vec![1],
                bits: vec![false, false, true],
                concatenated: false,
            }],
            vec![false, true, false, false, false, false, false, false],
        );
        // The submitted data had index 1 too (Deneb).
        state.attestations.clear();
        let mut deneb = data(3, 1);
        deneb.index = 1;
        state.attestation_submitted(deneb, 30, 1, 2);
        let found = state.on_block(4, Some(&block4), &none);
        assert_eq!(
            found,
            vec![
                Found::Missed {
                    duty: "proposer",
                    slot: 4,
                    validators: vec![12],
                    why: format!(
                        "the chain's block at slot 4 is another ({})",
                        Root::repeat_byte(4)
                    )
                },
                Found::Included {
                    duty: "sync_message",
                    slot: 3,
                    delay: 1,
                    validators: vec![20]
                },
                Found::Missed {
                    duty: "sync_message",
                    slot: 3,
                    validators: vec![21],
                    why: "the sync aggregate of slot 4 does not carry them".into()
                },
                Found::Included {
                    duty: "attester",
                    slot: 3,
                    delay: 1,
                    validators: vec![30]
                },
            ]
        );
        // Slot 0 has no slot before it: its messages wait for the block of slot 1.
        state.sync_message_submitted(0, 23, vec![0]);
        assert!(state.on_block(0, None, &none).is_empty());
        assert!(matches!(
            &state.on_block(1, Some(&view(1, vec![], vec![true])), &none)[..],
            [Found::Included {
                duty: "sync_message",
                slot: 0,
                ..
            }]
        ));
        // A slot without a block: its proposal and the previous slot's messages are missed.
        state.block_submitted(6, Root::repeat_byte(6), 13);
        state.sync_message_submitted(5, 22, vec![0]);
        let found = state.on_block(6, None, &none);
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
