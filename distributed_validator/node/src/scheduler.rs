//! The scheduler stage: the slot clock, and the cluster's duties from the
//! beacon node. Duties are polled every slot for the current and next epoch
//! (what Lighthouse's validator client does); a set is replaced only when its
//! dependent root changed, which is how a reorg that moves duties shows up.

use beacon_client::{AttesterDuty, BeaconNodes, Duties, ProposerDuty, SyncDuty};
use dv_types::{ChainSpec, Epoch, PublicKeyBytes, Slot};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Wall-clock time of the chain: slots from genesis, intervals from the spec.
#[derive(Debug, Clone, Copy)]
pub struct SlotClock {
    pub genesis_ms: u64,
    pub slot_ms: u64,
    /// When attestations are due, in basis points of the slot (a third on mainnet).
    pub attestation_due_bps: u64,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SlotClock {
    pub fn new(genesis_time: u64, spec: &ChainSpec) -> Self {
        Self {
            genesis_ms: genesis_time.saturating_mul(1000),
            slot_ms: spec.slot_duration_ms.max(1),
            attestation_due_bps: spec.attestation_due_bps,
        }
    }

    pub fn slot_start_ms(&self, slot: Slot) -> u64 {
        // Saturating: a slot can come from a peer or a client.
        self.genesis_ms
            .saturating_add(slot.saturating_mul(self.slot_ms))
    }

    pub fn attestation_due_ms(&self, slot: Slot) -> u64 {
        self.slot_start_ms(slot)
            .saturating_add(self.slot_ms * self.attestation_due_bps / 10_000)
    }

    pub fn current_slot(&self) -> Slot {
        now_ms().saturating_sub(self.genesis_ms) / self.slot_ms
    }

    /// The first slot a node starting now performs: the genesis slot when it
    /// is up before genesis (so its first-slot work, duty polling and the
    /// epoch's preparations, is done at genesis and not on top of slot 1's
    /// duties), otherwise the slot after the current one.
    pub fn first_slot_to_run(&self) -> Slot {
        if now_ms() < self.genesis_ms {
            0
        } else {
            self.current_slot() + 1
        }
    }

    /// A wall-clock instant (unix ms) as a tokio deadline.
    pub fn instant_at(unix_ms: u64) -> Instant {
        let now = now_ms();
        if unix_ms >= now {
            // A time centuries away (a slot from outside) is "far away", not an overflow.
            let far = Duration::from_secs(1 << 32);
            Instant::now()
                .checked_add(Duration::from_millis(unix_ms - now).min(far))
                .unwrap_or_else(Instant::now)
        } else {
            Instant::now()
                .checked_sub(Duration::from_millis(now - unix_ms))
                .unwrap_or_else(Instant::now)
        }
    }

    pub fn slot_start(&self, slot: Slot) -> Instant {
        Self::instant_at(self.slot_start_ms(slot))
    }

    /// QBFT round timing for attestations and blocks: a first round of a
    /// twelfth of a slot (1 s on mainnet), each later round one such step
    /// longer than the one before (ends at 1, 3, 6, 10 s after the duty's
    /// start), so that a dead leader costs one short round. The step is at
    /// least half a second (or a third of a slot when that is less): on
    /// short test slots a round must still fit a busy node's message turnaround.
    pub fn round_timing(&self) -> qbft::RoundTiming {
        let step = Duration::from_millis((self.slot_ms / 12).max((self.slot_ms / 3).min(500)));
        qbft::RoundTiming {
            first_round: step,
            round: step,
            growth: step,
        }
    }

    /// Round timing for decisions that must fit in a third of a slot
    /// (aggregates and sync contributions after two thirds, the sync
    /// committee head root before them): a twelfth of a slot per round, so
    /// that a crashed leader costs one short round and four rounds fit.
    pub fn short_round_timing(&self) -> qbft::RoundTiming {
        let twelfth = Duration::from_millis(self.slot_ms / 12);
        qbft::RoundTiming {
            first_round: twelfth,
            round: twelfth,
            growth: Duration::ZERO,
        }
    }
}

impl crate::workflow::CurrentSlot for SlotClock {
    fn current_slot(&self) -> Slot {
        SlotClock::current_slot(self)
    }
}

/// What the scheduler knows; behind a lock so that the middleware's
/// handlers read the same duties the slot loop polls.
struct Known {
    /// Validator index by public key, for the cluster's validators the chain knows.
    indices: HashMap<PublicKeyBytes, u64>,
    /// The same, by index (a client names its validators by index).
    by_index: HashMap<u64, PublicKeyBytes>,
    /// The epoch validators were last resolved to indices in.
    resolved_in: Option<Epoch>,
    attesters: BTreeMap<Epoch, Duties<AttesterDuty>>,
    proposers: BTreeMap<Epoch, Duties<ProposerDuty>>,
    /// Sync committee members by epoch (fixed for a whole sync period, so
    /// fetched once per epoch).
    sync: BTreeMap<Epoch, Vec<SyncDuty>>,
}

/// The cluster's duties by epoch; cheap to clone (clones share what is known).
#[derive(Clone)]
pub struct Scheduler {
    spec: ChainSpec,
    /// The cluster's validators.
    validators: Arc<Vec<PublicKeyBytes>>,
    known: Arc<Mutex<Known>>,
}

impl Scheduler {
    pub fn new(spec: ChainSpec, validators: Vec<PublicKeyBytes>) -> Self {
        Self {
            spec,
            validators: Arc::new(validators),
            known: Arc::new(Mutex::new(Known {
                indices: HashMap::new(),
                by_index: HashMap::new(),
                resolved_in: None,
                attesters: BTreeMap::new(),
                proposers: BTreeMap::new(),
                sync: BTreeMap::new(),
            })),
        }
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        // A panic while holding this lock cannot leave the maps half-written
        // in a way that matters (each write is one insert); keep going.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the duties of `epoch` and `epoch + 1` (proposers: `epoch`), and
    /// drops those of epochs before `epoch - 1`.
    pub async fn poll(&self, beacon: &BeaconNodes, epoch: Epoch) {
        self.resolve_indices(beacon, epoch).await;
        let indices: Vec<u64> = self.known().indices.values().copied().collect();
        if indices.is_empty() {
            return;
        }
        for e in [epoch, epoch + 1] {
            match beacon
                .first_success(|n| n.attester_duties(e, &indices))
                .await
            {
                Ok(duties) => {
                    replace_if_changed(&mut self.known().attesters, e, duties, "attester")
                }
                Err(err) => tracing::warn!(epoch = e, "attester duties: {err}"),
            }
        }
        match beacon.first_success(|n| n.proposer_duties(epoch)).await {
            Ok(mut duties) => {
                let mut known = self.known();
                duties
                    .duties
                    .retain(|d| known.indices.get(&d.pubkey) == Some(&d.validator_index));
                replace_if_changed(&mut known.proposers, epoch, duties, "proposer")
            }
            Err(err) => tracing::warn!(epoch, "proposer duties: {err}"),
        }
        for e in [epoch, epoch + 1] {
            if self.known().sync.contains_key(&e) {
                continue;
            }
            match beacon.first_success(|n| n.sync_duties(e, &indices)).await {
                Ok(mut duties) => {
                    let mut known = self.known();
                    duties.retain(|d| known.indices.get(&d.pubkey) == Some(&d.validator_index));
                    known.sync.insert(e, duties);
                }
                Err(err) => tracing::warn!(epoch = e, "sync committee duties: {err}"),
            }
        }
        let keep_from = epoch.saturating_sub(1);
        let mut known = self.known();
        known.attesters.retain(|e, _| *e >= keep_from);
        known.proposers.retain(|e, _| *e >= keep_from);
        known.sync.retain(|e, _| *e >= keep_from);
    }

    /// Looks up the indices of validators the chain did not know yet (once
    /// per epoch: a deposit becomes a validator at an epoch boundary).
    async fn resolve_indices(&self, beacon: &BeaconNodes, epoch: Epoch) {
        let ids: Vec<String> = {
            let known = self.known();
            if known.resolved_in == Some(epoch) || known.indices.len() == self.validators.len() {
                return;
            }
            self.validators
                .iter()
                .filter(|v| !known.indices.contains_key(v))
                .map(|v| v.to_string())
                .collect()
        };
        match beacon.first_success(|n| n.validators(&ids)).await {
            Ok(found) => {
                let mut known = self.known();
                known.resolved_in = Some(epoch);
                let ours: std::collections::HashSet<&PublicKeyBytes> =
                    self.validators.iter().collect();
                for info in found {
                    if ours.contains(&info.validator.pubkey) {
                        known.indices.insert(info.validator.pubkey, info.index);
                        known.by_index.insert(info.index, info.validator.pubkey);
                    }
                }
                let unknown = self.validators.len() - known.indices.len();
                if unknown > 0 {
                    tracing::warn!(
                        epoch,
                        unknown,
                        "validators of the cluster the beacon node does not know (yet)"
                    );
                }
            }
            Err(e) => tracing::warn!(epoch, "validator indices: {e}"),
        }
    }

    /// The cluster's attesters at `slot`.
    pub fn attesters_at(&self, slot: Slot) -> Vec<AttesterDuty> {
        let epoch = self.spec.epoch_of_slot(slot);
        let known = self.known();
        known
            .attesters
            .get(&epoch)
            .map(|d| {
                d.duties
                    .iter()
                    .filter(|x| {
                        x.slot == slot && known.indices.get(&x.pubkey) == Some(&x.validator_index)
                    })
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The cluster's sync committee members in `epoch` (empty if unknown).
    pub fn sync_members(&self, epoch: Epoch) -> Vec<SyncDuty> {
        self.known().sync.get(&epoch).cloned().unwrap_or_default()
    }

    /// The cluster's validators the chain gave an index, with that index.
    pub fn indices(&self) -> Vec<(PublicKeyBytes, u64)> {
        self.known().indices.iter().map(|(v, i)| (*v, *i)).collect()
    }

    /// The cluster's validators the chain has no index for (yet).
    pub fn unknown_validators(&self) -> Vec<PublicKeyBytes> {
        let known = self.known();
        self.validators
            .iter()
            .filter(|v| !known.indices.contains_key(*v))
            .copied()
            .collect()
    }

    /// The cluster's validator that proposes at `slot`, if any.
    pub fn proposer_at(&self, slot: Slot) -> Option<ProposerDuty> {
        let epoch = self.spec.epoch_of_slot(slot);
        self.known()
            .proposers
            .get(&epoch)
            .and_then(|d| d.duties.iter().find(|x| x.slot == slot).copied())
    }

    /// Whether the proposer duties of `epoch` were fetched.
    pub fn knows_proposers(&self, epoch: Epoch) -> bool {
        self.known().proposers.contains_key(&epoch)
    }

    /// The cluster validator with this index, if the chain gave it this index.
    pub fn validator_by_index(&self, index: u64) -> Option<PublicKeyBytes> {
        self.known().by_index.get(&index).copied()
    }
}

fn replace_if_changed<T>(
    by_epoch: &mut BTreeMap<Epoch, Duties<T>>,
    epoch: Epoch,
    fresh: Duties<T>,
    what: &str,
) {
    match by_epoch.get(&epoch) {
        Some(known) if known.dependent_root == fresh.dependent_root => {}
        Some(known) => {
            tracing::info!(
                epoch,
                old = %known.dependent_root,
                new = %fresh.dependent_root,
                "{what} duties changed: dependent root moved (reorg)"
            );
            by_epoch.insert(epoch, fresh);
        }
        None => {
            by_epoch.insert(epoch, fresh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_types::Root;

    fn duties(root: u8, slot: Slot) -> Duties<ProposerDuty> {
        Duties {
            dependent_root: Root::repeat_byte(root),
            duties: vec![ProposerDuty {
                pubkey: PublicKeyBytes([1; 48]),
                validator_index: 1,
                slot,
            }],
        }
    }

    #[test]
    fn duties_are_replaced_only_when_the_dependent_root_moves() {
        let mut by_epoch = BTreeMap::new();
        replace_if_changed(&mut by_epoch, 3, duties(1, 24), "proposer");
        replace_if_changed(&mut by_epoch, 3, duties(1, 25), "proposer");
        assert_eq!(by_epoch[&3].duties[0].slot, 24, "same root: kept");
        replace_if_changed(&mut by_epoch, 3, duties(2, 26), "proposer");
        assert_eq!(by_epoch[&3].duties[0].slot, 26, "moved root: replaced");
    }

    #[test]
    fn the_clock_counts_slots_from_genesis() {
        let clock = SlotClock {
            genesis_ms: 1_000,
            slot_ms: 2_000,
            attestation_due_bps: 3_333,
        };
        assert_eq!(clock.slot_start_ms(3), 7_000);
        assert_eq!(clock.attestation_due_ms(3), 7_666);
    }
}
