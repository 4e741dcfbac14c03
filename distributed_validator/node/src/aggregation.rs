//! Aggregation duties, defined once for both attachments: which validators
//! a selection proof selects, the shape of an attestation aggregate in each
//! fork (what is agreed on, what the aggregator signs, how it is submitted),
//! and the validity predicates of the aggregate and sync contribution
//! decisions.
//!
//! Aggregates and contributions are built by each operator's beacon node
//! from what it received, so operators can hold different ones; the cluster
//! agrees on one per committee (one consensus instance per slot and
//! committee or subcommittee) before anyone signs.

use beacon_client::{BeaconNode, Error as BeaconError};
use dv_types::ssz::{Decode, Encode};
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;

/// The consensus specs' aggregator test: the first 8 bytes of the proof's
/// SHA-256, little endian, divisible by `modulo`.
pub fn selects(proof: &SignatureBytes, modulo: u64) -> bool {
    let hash = <sha2::Sha256 as sha2::Digest>::digest(proof.0);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first) % modulo.max(1) == 0
}

/// `is_aggregator`'s modulo for a committee of `committee_len`.
pub fn committee_modulo(spec: &ChainSpec, committee_len: u64) -> u64 {
    (committee_len / spec.target_aggregators_per_committee.max(1)).max(1)
}

/// `is_sync_committee_aggregator`'s modulo.
pub fn sync_modulo(spec: &ChainSpec) -> u64 {
    (sync_subcommittee_size(spec) / spec.target_aggregators_per_sync_subcommittee.max(1)).max(1)
}

/// Members per sync subcommittee.
pub fn sync_subcommittee_size(spec: &ChainSpec) -> u64 {
    (spec.sync_committee_size / spec.sync_committee_subnet_count.max(1)).max(1)
}

/// The subcommittees a sync committee member's positions fall in, sorted.
pub fn subcommittees_of(spec: &ChainSpec, positions: &[u64]) -> Vec<u64> {
    let size = sync_subcommittee_size(spec);
    let mut subs: Vec<u64> = positions.iter().map(|p| p / size).collect();
    subs.sort_unstable();
    subs.dedup();
    subs
}

/// An aggregate of one committee's attestations in a fork's shape: Deneb's
/// `Attestation` (the committee in `data.index`) or Electra's (the
/// committee as its one committee bit, `data.index` 0).
pub trait CommitteeAggregate:
    Encode + Decode + TreeHash + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// `AggregateAndProof` in this fork's shape: what the aggregator signs.
    type Message: TreeHash + Serialize + DeserializeOwned + Clone + Send + Sync + 'static;
    /// `SignedAggregateAndProof`: what is submitted (JSON, or SSZ on `/eth/v2`).
    type Signed: Serialize + DeserializeOwned + Decode + Send + Sync + 'static;

    fn data(&self) -> &AttestationData;
    /// The committee the aggregate is for.
    fn committee(&self) -> Result<u64, String>;
    fn participants(&self) -> usize;
    /// The committee's size (its aggregation bits: one committee per aggregate).
    fn committee_len(&self) -> usize;
    /// The attestation data an aggregator of `committee` aggregates, given
    /// the slot's decided data (committee index 0).
    fn data_for(decided: &AttestationData, committee: u64) -> AttestationData;
    fn message(
        aggregator_index: u64,
        aggregate: Self,
        selection_proof: SignatureBytes,
    ) -> Self::Message;
    fn signed(message: Self::Message, signature: SignatureBytes) -> Self::Signed;
    /// The parts of a signed aggregate the checks need.
    fn unsign(signed: &Self::Signed) -> (&Self::Message, SignatureBytes);
    fn message_parts(message: &Self::Message) -> (u64, &Self, SignatureBytes);
    /// The beacon node's aggregate for `data_root` and `committee`.
    fn fetch<'a>(
        node: &'a BeaconNode,
        data_root: Root,
        slot: Slot,
        committee: u64,
    ) -> impl Future<Output = Result<Self, BeaconError>> + Send + 'a;
}

impl<P: Preset> CommitteeAggregate for AttestationDeneb<P> {
    type Message = AggregateAndProofDeneb<P>;
    type Signed = SignedAggregateAndProofDeneb<P>;

    fn data(&self) -> &AttestationData {
        &self.data
    }
    fn committee(&self) -> Result<u64, String> {
        Ok(self.data.index)
    }
    fn participants(&self) -> usize {
        self.aggregation_bits.num_set_bits()
    }
    fn committee_len(&self) -> usize {
        self.aggregation_bits.len()
    }
    fn data_for(decided: &AttestationData, committee: u64) -> AttestationData {
        AttestationData {
            index: committee,
            ..*decided
        }
    }
    fn message(
        aggregator_index: u64,
        aggregate: Self,
        selection_proof: SignatureBytes,
    ) -> Self::Message {
        AggregateAndProofDeneb {
            aggregator_index,
            aggregate,
            selection_proof,
        }
    }
    fn signed(message: Self::Message, signature: SignatureBytes) -> Self::Signed {
        SignedAggregateAndProofDeneb { message, signature }
    }
    fn unsign(signed: &Self::Signed) -> (&Self::Message, SignatureBytes) {
        (&signed.message, signed.signature)
    }
    fn message_parts(m: &Self::Message) -> (u64, &Self, SignatureBytes) {
        (m.aggregator_index, &m.aggregate, m.selection_proof)
    }
    fn fetch<'a>(
        node: &'a BeaconNode,
        data_root: Root,
        slot: Slot,
        _committee: u64,
    ) -> impl Future<Output = Result<Self, BeaconError>> + Send + 'a {
        node.aggregate_attestation_deneb::<P>(data_root, slot)
    }
}

impl<P: Preset> CommitteeAggregate for AttestationElectra<P> {
    type Message = AggregateAndProofElectra<P>;
    type Signed = SignedAggregateAndProofElectra<P>;

    fn data(&self) -> &AttestationData {
        &self.data
    }
    fn committee(&self) -> Result<u64, String> {
        let set: Vec<usize> = (0..self.committee_bits.len())
            .filter(|i| self.committee_bits.get(*i).unwrap_or(false))
            .collect();
        match set[..] {
            [one] => Ok(one as u64),
            _ => Err(format!(
                "an aggregate has one committee bit set, this one {}",
                set.len()
            )),
        }
    }
    fn participants(&self) -> usize {
        self.aggregation_bits.num_set_bits()
    }
    fn committee_len(&self) -> usize {
        self.aggregation_bits.len()
    }
    fn data_for(decided: &AttestationData, _committee: u64) -> AttestationData {
        AttestationData {
            index: 0,
            ..*decided
        }
    }
    fn message(
        aggregator_index: u64,
        aggregate: Self,
        selection_proof: SignatureBytes,
    ) -> Self::Message {
        AggregateAndProofElectra {
            aggregator_index,
            aggregate,
            selection_proof,
        }
    }
    fn signed(message: Self::Message, signature: SignatureBytes) -> Self::Signed {
        SignedAggregateAndProofElectra { message, signature }
    }
    fn unsign(signed: &Self::Signed) -> (&Self::Message, SignatureBytes) {
        (&signed.message, signed.signature)
    }
    fn message_parts(m: &Self::Message) -> (u64, &Self, SignatureBytes) {
        (m.aggregator_index, &m.aggregate, m.selection_proof)
    }
    fn fetch<'a>(
        node: &'a BeaconNode,
        data_root: Root,
        slot: Slot,
        committee: u64,
    ) -> impl Future<Output = Result<Self, BeaconError>> + Send + 'a {
        node.aggregate_attestation::<P>(data_root, slot, committee)
    }
}

/// The validity predicate of a committee's aggregate decision: an
/// aggregate of this committee's attestations to the data with `data_root`.
pub fn aggregate_is_valid<A: CommitteeAggregate>(
    slot: Slot,
    committee: u64,
    data_root: Root,
) -> impl Fn(&A) -> bool + Send + 'static {
    move |a: &A| {
        a.data().slot == slot
            && a.data().tree_hash_root() == data_root
            && a.committee() == Ok(committee)
            && a.participants() > 0
    }
}

/// The validity predicate of a subcommittee's contribution decision.
pub fn contribution_is_valid<P: Preset>(
    slot: Slot,
    subcommittee: u64,
    block_root: Root,
) -> impl Fn(&SyncCommitteeContribution<P>) -> bool + Send + 'static {
    move |c: &SyncCommitteeContribution<P>| {
        c.slot == slot
            && c.subcommittee_index == subcommittee
            && c.beacon_block_root == block_root
            && c.aggregation_bits.num_set_bits() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_the_hash_and_a_modulo_of_one_selects_everyone() {
        let proof = SignatureBytes([7; 96]);
        assert!(selects(&proof, 1));
        assert!(selects(&proof, 0), "a zero modulo is read as 1");
        let hash = <sha2::Sha256 as sha2::Digest>::digest(proof.0);
        let first = u64::from_le_bytes(hash[..8].try_into().unwrap());
        assert_eq!(selects(&proof, 3), first % 3 == 0);
        assert_eq!(selects(&proof, 16), first % 16 == 0);
    }

    #[test]
    fn deneb_aggregates_name_their_committee_in_the_data_electra_in_the_bits() {
        let decided = AttestationData {
            slot: 9,
            index: 0,
            beacon_block_root: Root::repeat_byte(1),
            source: Checkpoint {
                epoch: 0,
                root: Root::ZERO,
            },
            target: Checkpoint {
                epoch: 1,
                root: Root::repeat_byte(2),
            },
        };
        assert_eq!(AttestationDeneb::<Minimal>::data_for(&decided, 3).index, 3);
        assert_eq!(
            AttestationElectra::<Minimal>::data_for(&decided, 3).index,
            0
        );
        let mut electra = AttestationElectra::<Minimal> {
            aggregation_bits: ssz_types::BitList::with_capacity(4).unwrap(),
            data: decided,
            signature: SignatureBytes([0; 96]),
            committee_bits: ssz_types::BitVector::new(),
        };
        assert!(electra.committee().is_err(), "no committee bit");
        electra.committee_bits.set(2, true).unwrap();
        assert_eq!(electra.committee(), Ok(2));
        let valid =
            aggregate_is_valid::<AttestationElectra<Minimal>>(9, 2, decided.tree_hash_root());
        assert!(!valid(&electra), "no participant");
        electra.aggregation_bits.set(1, true).unwrap();
        assert!(valid(&electra));
        electra.committee_bits.set(1, true).unwrap();
        assert!(!valid(&electra), "two committees");
    }
}
