//! The built-in validator's duty services: for each duty, the fetcher (this
//! node's beacon node's proposal), the signing seam, and the broadcaster
//! (submission with fallback). They play the role of Lighthouse's
//! attestation and block services, generic over the signing seam
//! ([`ValidatorStore`]): `dvnode run` drives them with the distributed
//! store, a normal validator with the plain one.
//!
//! Every duty ends in one outcome line (`duty ok ...` with its latency, or
//! `duty failed: <reason>`) and one count in the outcome metric.
//!
//! Attester and proposer duties are here; [`aggregation`], [`sync_committee`]
//! and the once-an-epoch preparations ([`epoch`]) have modules of their own.

pub mod aggregation;
pub mod epoch;
pub mod sync_committee;

use crate::metrics::{Metrics, Stage};
use crate::scheduler::{Scheduler, SlotClock};
use crate::tracker::Reason;
use crate::validator_store::{
    Attester, DutyTiming, DvValidatorStore, SignError, SignedAttestation, ValidatorStore,
};
use beacon_client::{AttesterDuty, BeaconNodes, ProducedBlock, ProposerDuty};
use dv_types::ssz_types;
use dv_types::*;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

/// What every duty service needs; `S` is the signing seam.
pub struct DutyContext<S: ValidatorStore = DvValidatorStore> {
    pub store: S,
    pub beacon: BeaconNodes,
    pub spec: ChainSpec,
    pub clock: SlotClock,
    pub metrics: Arc<Metrics>,
    pub graffiti: Graffiti,
    pub scheduler: Scheduler,
    /// Looks for what the beacon node accepted in the next blocks.
    pub inclusion: Arc<crate::tracker::InclusionChecker>,
    /// Builder registrations signed into the cluster lock (and their fee
    /// recipients), by validator.
    pub registrations: HashMap<PublicKeyBytes, SignedValidatorRegistration>,
    /// The last slot whose attester duty ended (submitted or failed): the
    /// slot's sync committee messages are signed after it (see
    /// [`Self::sync_committee`]).
    pub attested: tokio::sync::watch::Sender<Option<Slot>>,
}

/// Marks the slot's attester duty ended when dropped, whichever way it ends.
struct AttestedOnDrop<'a> {
    attested: &'a tokio::sync::watch::Sender<Option<Slot>>,
    slot: Slot,
}

impl Drop for AttestedOnDrop<'_> {
    fn drop(&mut self) {
        let slot = self.slot;
        self.attested.send_if_modified(|last| {
            let later = last.is_none_or(|l| l < slot);
            if later {
                *last = Some(slot);
            }
            later
        });
    }
}

impl<S: ValidatorStore> DutyContext<S> {
    /// `count` items of `slot`'s `duty` failed in the signing seam.
    fn failed(&self, slot: Slot, duty: &'static str, count: usize, e: &SignError) {
        self.metrics
            .duty_failed(slot, duty, Reason::of(e), count, e);
    }

    /// The outcome line of a submission of `count` signed items for `slot`'s
    /// `duty`: ok (latency from the slot's start), or the beacon node's error.
    fn submission_outcome(
        &self,
        slot: Slot,
        duty: &'static str,
        what: &str,
        count: usize,
        submitted: Result<(), beacon_client::Error>,
    ) {
        match submitted {
            Ok(()) => self
                .metrics
                .duty_ok(slot, duty, self.clock.slot_start_ms(slot), what, count),
            Err(e) => self.metrics.duty_failed(
                slot,
                duty,
                Reason::BroadcastFailed,
                count,
                format!("beacon node error: {e}"),
            ),
        }
    }

    /// A stage timed into the stage metric.
    async fn timed<T>(
        &self,
        slot: Slot,
        duty: &'static str,
        stage: Stage,
        f: impl Future<Output = T>,
    ) -> T {
        let t0 = Instant::now();
        if let Stage::Submit = stage {
            dv_fault::reached(dv_fault::DURING_SUBMIT);
        }
        let out = f.await;
        self.metrics.stage(slot, duty, stage, t0.elapsed());
        out
    }

    /// Attester duty for `slot`: one decided `AttestationData` for the slot;
    /// submitted as `SingleAttestation`s from Electra, as single-bit
    /// `Attestation`s before.
    pub async fn attest<P: Preset>(&self, slot: Slot, duties: Vec<AttesterDuty>) {
        const DUTY: &str = "attester";
        let _ended = AttestedOnDrop {
            attested: &self.attested,
            slot,
        };
        tracing::info!(slot, duty = DUTY, count = duties.len(), "duty started");
        self.metrics.step(slot, DUTY, "started", true, duties.len());
        let fork = self.spec.fork_at_slot(slot);
        let due_ms = self.clock.attestation_due_ms(slot);
        let own = self
            .timed(
                slot,
                DUTY,
                Stage::Fetch,
                own_attestation_data(&self.beacon, slot),
            )
            .await;
        let attesters: Vec<Attester> = duties.iter().map(Attester::from).collect();
        let timing = DutyTiming {
            start: SlotClock::instant_at(due_ms),
            deadline: self.clock.slot_start(slot + 2),
            rounds: self.clock.round_timing(),
        };
        let signed = match self
            .store
            .sign_attestations(slot, own, &attesters, timing)
            .await
        {
            Ok(s) => s,
            Err(SignError::NoConsensus) if own.is_none() => {
                return self.metrics.duty_failed(
                    slot,
                    DUTY,
                    Reason::ChainSplitGuard,
                    attesters.len(),
                    "no consensus; this node's beacon node gave no attestation data, so it voted for none of the others' (chain-split guard)",
                );
            }
            Err(e) => return self.failed(slot, DUTY, attesters.len(), &e),
        };
        for (v, reason) in &signed.refused {
            self.metrics.duty_failed(
                slot,
                DUTY,
                Reason::SlashingRefused,
                1,
                format_args!("validator {v}: slashing protection refused: {reason}"),
            );
        }
        if !signed.missing.is_empty() {
            let e = SignError::InsufficientPartials {
                combined: signed.signatures.len(),
                wanted: signed.signatures.len() + signed.missing.len(),
            };
            self.failed(slot, DUTY, signed.missing.len(), &e);
        }
        if signed.signatures.is_empty() {
            return;
        }
        let duty_of = |v: &PublicKeyBytes| duties.iter().find(|d| d.pubkey == *v);
        let submitted = if fork.electra_enabled() {
            let items: Vec<SingleAttestation> = signed
                .signatures
                .iter()
                .filter_map(|s| {
                    let duty = duty_of(&s.validator)?;
                    Some(SingleAttestation {
                        committee_index: duty.committee_index,
                        attester_index: duty.validator_index,
                        data: s.data,
                        signature: s.signature,
                    })
                })
                .collect();
            let submit = self
                .beacon
                .first_success(|n| n.submit_attestations(fork, &items));
            self.timed(slot, DUTY, Stage::Submit, submit)
                .await
                .map(|()| items.len())
        } else {
            let items: Vec<AttestationDeneb<P>> = signed
                .signatures
                .iter()
                .filter_map(|s| single_bit_attestation(duty_of(&s.validator)?, s))
                .collect();
            let submit = self
                .beacon
                .first_success(|n| n.submit_attestations(fork, &items));
            self.timed(slot, DUTY, Stage::Submit, submit)
                .await
                .map(|()| items.len())
        };
        if submitted.is_ok() {
            let items: Vec<(u64, AttestationData)> = signed
                .signatures
                .iter()
                .filter_map(|s| Some((duty_of(&s.validator)?.validator_index, s.data)))
                .collect();
            self.inclusion.attestations_submitted(&items);
        }
        let count = *submitted.as_ref().unwrap_or(&signed.signatures.len());
        self.submission_outcome(
            slot,
            DUTY,
            "attestations submitted",
            count,
            submitted.map(|_| ()),
        );
    }

    /// Proposer duty: randao reveal first (combined from partials), then the
    /// block built with it is agreed on, signed and published.
    pub async fn propose<P: Preset>(&self, duty: ProposerDuty) {
        const DUTY: &str = "proposer";
        let slot = duty.slot;
        tracing::info!(slot, duty = DUTY, count = 1, "duty started");
        self.metrics.step(
            slot,
            DUTY,
            "started",
            true,
            format_args!("validator {}", duty.validator_index),
        );
        let start_ms = self.clock.slot_start_ms(slot);
        let deadline = self.clock.slot_start(slot + 1);
        let reveal = match self.store.randao_reveal(duty.pubkey, slot, deadline).await {
            Ok(r) => r,
            Err(e) => {
                return self.metrics.duty_failed(
                    slot,
                    DUTY,
                    Reason::MissingPrerequisite,
                    1,
                    format_args!("randao reveal: {e}"),
                );
            }
        };
        let own = match self
            .timed(
                slot,
                DUTY,
                Stage::Fetch,
                self.beacon
                    .first_success(|n| n.produce_block::<P>(slot, &reveal, &self.graffiti)),
            )
            .await
        {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(
                    slot,
                    duty = DUTY,
                    "own block unavailable (voting on peers' proposals only): {e}"
                );
                None
            }
        };
        let timing = DutyTiming {
            start: SlotClock::instant_at(start_ms),
            deadline,
            rounds: self.clock.round_timing(),
        };
        let signed = match self
            .store
            .sign_block::<P>(duty.pubkey, duty.validator_index, slot, reveal, own, timing)
            .await
        {
            Ok(s) => s,
            Err(e) => return self.failed(slot, DUTY, 1, &e),
        };
        let published = self
            .timed(slot, DUTY, Stage::Submit, async {
                match &signed.block {
                    ProducedBlock::Full(b, blobs) => {
                        self.beacon
                            .first_success(|n| n.publish_block(b, blobs, &signed.signature))
                            .await
                    }
                    ProducedBlock::Blinded(b) => {
                        self.beacon
                            .first_success(|n| n.publish_blinded_block(b, &signed.signature))
                            .await
                    }
                }
            })
            .await;
        match published {
            Ok(publication) => {
                let (_, _, _, _, root) = crate::validator_store::block_summary(&signed.block);
                self.inclusion
                    .block_submitted(slot, root, duty.validator_index);
                self.metrics
                    .duty_ok(slot, DUTY, start_ms, publication.outcome(), 1)
            }
            Err(e) => self.metrics.duty_failed(
                slot,
                DUTY,
                Reason::BroadcastFailed,
                1,
                format!("beacon node error: {e}"),
            ),
        }
    }
}

/// A pre-Electra attestation: the committee's bitfield with this validator's bit set.
fn single_bit_attestation<P: Preset>(
    duty: &AttesterDuty,
    signed: &SignedAttestation,
) -> Option<AttestationDeneb<P>> {
    let mut bits = ssz_types::BitList::with_capacity(duty.committee_length as usize).ok()?;
    bits.set(duty.validator_committee_index as usize, true)
        .ok()?;
    Some(AttestationDeneb {
        aggregation_bits: bits,
        data: signed.data,
        signature: signed.signature,
    })
}

/// This node's beacon node's attestation data for `slot` (committee index 0):
/// its consensus proposal and its chain-split guard. `None` (logged) if the
/// beacon node does not answer; the node then refuses to vote for others' data.
pub async fn own_attestation_data(beacon: &BeaconNodes, slot: Slot) -> Option<AttestationData> {
    match beacon.first_success(|n| n.attestation_data(slot, 0)).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(
                slot,
                duty = "attester",
                "own attestation data unavailable (voting on peers' proposals is refused): {e}"
            );
            None
        }
    }
}
