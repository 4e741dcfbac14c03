//! Who does what when, as the consensus specs compute it: the swap-or-not
//! shuffle (`compute_shuffled_index`), beacon committees
//! (`get_committee_count_per_slot`, `compute_committee`), the proposer of a
//! slot (`compute_proposer_index`) and the sync committee
//! (`get_next_sync_committee_indices`), for a chain whose validators are all
//! active from genesis with the same effective balance (32 ETH).
//!
//! The one stand-in is the RANDAO mix the seeds are drawn from: a fixed mix
//! (the simulated chain does not accumulate reveals into a state), so
//! `get_seed(epoch, domain)` is `sha256(domain_type ++ epoch ++ mix)` with that
//! mix. Everything downstream of the seed is the spec's.

use dv_types::{Epoch, ForkName, Slot};
use sha2::{Digest, Sha256};

/// The preset values the shuffling depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShufflingParams {
    pub shuffle_round_count: u8,
    pub target_committee_size: u64,
    pub max_committees_per_slot: u64,
    pub slots_per_epoch: u64,
    pub sync_committee_size: u64,
    pub epochs_per_sync_committee_period: u64,
}

impl ShufflingParams {
    /// The minimal preset's values.
    pub const MINIMAL: Self = Self {
        shuffle_round_count: 10,
        target_committee_size: 4,
        max_committees_per_slot: 4,
        slots_per_epoch: 8,
        sync_committee_size: 32,
        epochs_per_sync_committee_period: 8,
    };

    /// The mainnet preset's values.
    pub const MAINNET: Self = Self {
        shuffle_round_count: 90,
        target_committee_size: 128,
        max_committees_per_slot: 64,
        slots_per_epoch: 32,
        sync_committee_size: 512,
        epochs_per_sync_committee_period: 256,
    };
}

/// `DOMAIN_BEACON_PROPOSER`, `DOMAIN_BEACON_ATTESTER`, `DOMAIN_SYNC_COMMITTEE`.
const DOMAIN_BEACON_PROPOSER: [u8; 4] = [0, 0, 0, 0];
const DOMAIN_BEACON_ATTESTER: [u8; 4] = [1, 0, 0, 0];
const DOMAIN_SYNC_COMMITTEE: [u8; 4] = [7, 0, 0, 0];

/// `MAX_EFFECTIVE_BALANCE` (every validator here has it) and Electra's
/// `MAX_EFFECTIVE_BALANCE_ELECTRA`, in Gwei.
const MAX_EFFECTIVE_BALANCE: u64 = 32_000_000_000;
const MAX_EFFECTIVE_BALANCE_ELECTRA: u64 = 2_048_000_000_000;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn u64_le(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    out[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_le_bytes(out)
}

/// The spec's `compute_shuffled_index`: where position `index` of a list of
/// `count` items draws its item from, under `seed` (`index < count`).
pub fn compute_shuffled_index(index: u64, count: u64, seed: &[u8; 32], rounds: u8) -> u64 {
    assert!(index < count, "compute_shuffled_index: {index} >= {count}");
    let mut index = index;
    for round in 0..rounds {
        let pivot = u64_le(&sha256(&[seed, &[round]])[..8]) % count;
        let flip = (pivot + count - index) % count;
        let position = index.max(flip);
        let source = sha256(&[seed, &[round], &((position / 256) as u32).to_le_bytes()]);
        let byte = source[((position % 256) / 8) as usize];
        if (byte >> (position % 8)) & 1 == 1 {
            index = flip;
        }
    }
    index
}

/// The whole list `[compute_shuffled_index(i, count, seed) for i in 0..count]`
/// at once, the way clients compute it (one pivot hash per round and one
/// source hash per 256 positions instead of per position). Tested equal to
/// the per-index function.
pub fn shuffled_list(count: u64, seed: &[u8; 32], rounds: u8) -> Vec<u64> {
    // Run the rounds backwards over the identity list: each round is an
    // involution that swaps position i with flip(i) when the bit at
    // max(i, flip) is set, so applying rounds last-to-first to the list of
    // indices yields, at position i, the index that compute_shuffled_index(i) names.
    let mut list: Vec<u64> = (0..count).collect();
    if count < 2 {
        return list;
    }
    for round in (0..rounds).rev() {
        let pivot = u64_le(&sha256(&[seed, &[round]])[..8]) % count;
        let mut cached: Option<(u64, [u8; 32])> = None;
        let mut bit_at = |position: u64| {
            let chunk = position / 256;
            let source = match cached {
                Some((c, s)) if c == chunk => s,
                _ => {
                    let s = sha256(&[seed, &[round], &(chunk as u32).to_le_bytes()]);
                    cached = Some((chunk, s));
                    s
                }
            };
            (source[((position % 256) / 8) as usize] >> (position % 8)) & 1 == 1
        };
        for i in 0..count {
            let flip = (pivot + count - i) % count;
            // Each unordered pair {i, flip} once, decided by the bit at its larger end.
            if flip <= i && bit_at(i) && flip != i {
                list.swap(i as usize, flip as usize);
            }
        }
    }
    list
}

/// The committees, proposers and sync committee of a chain of `validators`
/// validators, all active, with the same effective balance.
#[derive(Debug, Clone)]
pub struct Shuffling {
    pub params: ShufflingParams,
    pub validators: u64,
    mix: [u8; 32],
}

/// One epoch's beacon committees: `slots[slot % SLOTS_PER_EPOCH][committee]`
/// lists the members in committee order.
#[derive(Debug, Clone)]
pub struct EpochCommittees {
    pub epoch: Epoch,
    pub slots: Vec<Vec<Vec<u64>>>,
}

impl EpochCommittees {
    pub fn committees_at(&self, slot: Slot) -> &[Vec<u64>] {
        let spe = self.slots.len().max(1) as u64;
        self.slots
            .get((slot % spe) as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

impl Shuffling {
    pub fn new(params: ShufflingParams, validators: u64) -> Self {
        Self {
            params,
            validators,
            mix: sha256(&[b"dv simulated beacon chain randao mix"]),
        }
    }

    /// `get_seed` with the fixed mix.
    pub fn seed(&self, epoch: Epoch, domain_type: [u8; 4]) -> [u8; 32] {
        sha256(&[&domain_type, &epoch.to_le_bytes(), &self.mix])
    }

    /// `get_committee_count_per_slot`.
    pub fn committees_per_slot(&self) -> u64 {
        let p = self.params;
        (self.validators / p.slots_per_epoch / p.target_committee_size)
            .clamp(1, p.max_committees_per_slot)
    }

    /// Every beacon committee of `epoch` (`compute_committee` over the epoch's shuffling).
    pub fn epoch_committees(&self, epoch: Epoch) -> EpochCommittees {
        let p = self.params;
        let seed = self.seed(epoch, DOMAIN_BEACON_ATTESTER);
        let shuffled = shuffled_list(self.validators, &seed, p.shuffle_round_count);
        let per_slot = self.committees_per_slot();
        let count = per_slot * p.slots_per_epoch;
        let n = self.validators;
        let slots = (0..p.slots_per_epoch)
            .map(|slot| {
                (0..per_slot)
                    .map(|c| {
                        let k = slot * per_slot + c;
                        let (start, end) = (n * k / count, n * (k + 1) / count);
                        shuffled[start as usize..end as usize].to_vec()
                    })
                    .collect()
            })
            .collect();
        EpochCommittees { epoch, slots }
    }

    /// Candidate `i`'s acceptance in the spec's balance-weighted draws
    /// (`compute_proposer_index`, `get_next_sync_committee_indices`) for a
    /// validator of 32 ETH: before Electra a random byte against 255 (always
    /// accepted at the maximum balance), from Electra 16 random bits against
    /// `MAX_EFFECTIVE_BALANCE_ELECTRA` (accepted about 1 time in 64).
    fn accepted(seed: &[u8; 32], i: u64, fork: ForkName) -> bool {
        if fork.electra_enabled() {
            let random = sha256(&[seed, &(i / 16).to_le_bytes()]);
            let offset = (i % 16 * 2) as usize;
            let value = u64_le(&random[offset..offset + 2]);
            MAX_EFFECTIVE_BALANCE * 0xffff >= MAX_EFFECTIVE_BALANCE_ELECTRA * value
        } else {
            let random = sha256(&[seed, &(i / 32).to_le_bytes()]);
            let byte = u64::from(random[(i % 32) as usize]);
            MAX_EFFECTIVE_BALANCE * 255 >= MAX_EFFECTIVE_BALANCE * byte
        }
    }

    /// `compute_proposer_index` for `slot` (seed `hash(get_seed(epoch,
    /// DOMAIN_BEACON_PROPOSER) ++ slot)`; from Fulu the proposer lookahead
    /// holds the same values).
    pub fn proposer(&self, slot: Slot, fork: ForkName) -> u64 {
        let epoch = slot / self.params.slots_per_epoch;
        let seed = sha256(&[
            &self.seed(epoch, DOMAIN_BEACON_PROPOSER),
            &slot.to_le_bytes(),
        ]);
        let n = self.validators;
        (0u64..)
            .map(|i| {
                (
                    i,
                    compute_shuffled_index(i % n, n, &seed, self.params.shuffle_round_count),
                )
            })
            .find(|(i, _)| Self::accepted(&seed, *i, fork))
            .map(|(_, candidate)| candidate)
            .unwrap_or(0)
    }

    /// The sync committee of `period`, by position
    /// (`get_next_sync_committee_indices`; at genesis the current and next
    /// committees are both drawn with epoch 1's seed, and the committee of
    /// period `q >= 2` was drawn at the end of period `q - 2`, with the seed
    /// of the first epoch of period `q - 1`).
    pub fn sync_committee(&self, period: u64, fork: ForkName) -> Vec<u64> {
        let p = self.params;
        let epoch = if period < 2 {
            1
        } else {
            (period - 1) * p.epochs_per_sync_committee_period
        };
        let seed = self.seed(epoch, DOMAIN_SYNC_COMMITTEE);
        let n = self.validators;
        let mut members = Vec::with_capacity(p.sync_committee_size as usize);
        let mut i = 0u64;
        while (members.len() as u64) < p.sync_committee_size {
            let candidate = compute_shuffled_index(i % n, n, &seed, p.shuffle_round_count);
            if Self::accepted(&seed, i, fork) {
                members.push(candidate);
            }
            i += 1;
        }
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(byte: u8) -> [u8; 32] {
        sha256(&[&[byte]])
    }

    /// Values from an independent transcription of the spec's
    /// `compute_shuffled_index` (Python, hashlib), for the seed
    /// `sha256(b"\x01")`, 10 and 90 rounds.
    #[test]
    fn shuffled_index_matches_known_values() {
        let s = seed(1);
        let got: Vec<u64> = (0..10)
            .map(|i| compute_shuffled_index(i, 10, &s, 10))
            .collect();
        assert_eq!(got, KNOWN_10_ROUNDS_COUNT_10);
        let got: Vec<u64> = [0, 1, 99, 500, 999]
            .iter()
            .map(|i| compute_shuffled_index(*i, 1000, &s, 90))
            .collect();
        assert_eq!(got, KNOWN_90_ROUNDS_COUNT_1000);
    }

    const KNOWN_10_ROUNDS_COUNT_10: [u64; 10] = [5, 6, 9, 7, 1, 3, 0, 8, 2, 4];
    const KNOWN_90_ROUNDS_COUNT_1000: [u64; 5] = [288, 849, 372, 633, 206];

    #[test]
    fn the_list_shuffle_is_the_per_index_shuffle_and_a_permutation() {
        for (count, rounds, byte) in [
            (1, 10, 0),
            (2, 10, 1),
            (7, 10, 2),
            (300, 10, 3),
            (513, 90, 4),
        ] {
            let s = seed(byte);
            let list = shuffled_list(count, &s, rounds);
            let per_index: Vec<u64> = (0..count)
                .map(|i| compute_shuffled_index(i, count, &s, rounds))
                .collect();
            assert_eq!(list, per_index, "count {count}, rounds {rounds}");
            let mut sorted = list.clone();
            sorted.sort();
            assert_eq!(sorted, (0..count).collect::<Vec<_>>());
        }
    }

    #[test]
    fn committees_cover_every_validator_once_per_epoch() {
        for (params, validators, per_slot) in [
            (ShufflingParams::MINIMAL, 16, 1),
            (ShufflingParams::MINIMAL, 64, 2),
            (ShufflingParams::MINIMAL, 1000, 4),
            (ShufflingParams::MAINNET, 2048, 1),
            (ShufflingParams::MAINNET, 20_000, 4),
        ] {
            let shuffling = Shuffling::new(params, validators);
            assert_eq!(shuffling.committees_per_slot(), per_slot);
            let epoch = shuffling.epoch_committees(3);
            let mut all: Vec<u64> = epoch.slots.iter().flatten().flatten().copied().collect();
            assert_eq!(all.len() as u64, validators);
            all.sort();
            assert_eq!(all, (0..validators).collect::<Vec<_>>());
            // Epochs shuffle differently.
            assert_ne!(shuffling.epoch_committees(4).slots, epoch.slots);
        }
    }

    #[test]
    fn proposers_and_sync_committees_are_drawn_from_the_validators() {
        let shuffling = Shuffling::new(ShufflingParams::MINIMAL, 16);
        for fork in [ForkName::Deneb, ForkName::Electra] {
            let proposers: Vec<u64> = (0..64).map(|s| shuffling.proposer(s, fork)).collect();
            assert!(proposers.iter().all(|p| *p < 16));
            // Not a fixed rotation.
            assert_ne!(proposers, (0..64).map(|s| s % 16).collect::<Vec<_>>());
            let sync = shuffling.sync_committee(0, fork);
            assert_eq!(sync.len(), 32);
            assert!(sync.iter().all(|v| *v < 16));
            assert_eq!(sync, shuffling.sync_committee(1, fork));
            assert_ne!(sync, shuffling.sync_committee(2, fork));
        }
        // Before Electra every candidate of 32 ETH is accepted: the first one.
        let s = sha256(&[
            &shuffling.seed(0, DOMAIN_BEACON_PROPOSER),
            &5u64.to_le_bytes(),
        ]);
        assert_eq!(
            shuffling.proposer(5, ForkName::Deneb),
            compute_shuffled_index(0, 16, &s, 10)
        );
    }
}
