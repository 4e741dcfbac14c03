//! The attestation aggregation service. A slot ahead: the combined
//! selection proofs of the slot's attesters and the committee subscriptions
//! (a beacon node keeps unaggregated attestations only for committees some
//! validator subscribed to as aggregator). At the aggregation due time:
//! each committee with a selected aggregator of the cluster gets its
//! aggregate agreed on, signed by each such aggregator and submitted.

use super::DutyContext;
use crate::aggregation::{aggregate_is_valid, committee_modulo, selects, CommitteeAggregate};
use crate::duty::{Duty, DutyType};
use crate::metrics::Stage;
use crate::scheduler::SlotClock;
use crate::tracker::Reason;
use crate::validator_store::{FetchBuilt, ValidatorStore};
use beacon_client::{AttesterDuty, BeaconCommitteeSubscription};
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use futures::future::join_all;
use futures::FutureExt;
use std::collections::BTreeMap;

const DUTY: &str = "aggregator";

/// One selected aggregator: validator, index, combined selection proof.
type Aggregator = (PublicKeyBytes, u64, SignatureBytes);

impl<S: ValidatorStore> DutyContext<S> {
    /// Aggregation for `slot`'s attesters; call it a slot ahead.
    pub async fn aggregate<P: Preset>(&self, slot: Slot, duties: Vec<AttesterDuty>) {
        if duties.is_empty() {
            return;
        }
        if self.spec.fork_at_slot(slot).electra_enabled() {
            self.aggregate_with::<AttestationElectra<P>>(slot, duties)
                .await
        } else {
            self.aggregate_with::<AttestationDeneb<P>>(slot, duties)
                .await
        }
    }

    async fn aggregate_with<A: CommitteeAggregate>(&self, slot: Slot, duties: Vec<AttesterDuty>) {
        let due = SlotClock::instant_at(
            self.clock.slot_start_ms(slot)
                + self.clock.slot_ms * self.spec.aggregate_due_bps / 10_000,
        );
        let Some(by_committee) = self.select_aggregators(slot, &duties, due).await else {
            return;
        };
        if by_committee.is_empty() {
            return; // no aggregator of the cluster at this slot: no duty
        }
        let count: usize = by_committee.values().map(Vec::len).sum();
        tracing::info!(slot, duty = DUTY, count, "duty started");
        tokio::time::sleep_until(due).await;
        let deadline = self.clock.slot_start(slot + 1);
        let Some(decided) = self.decided_attestation(slot, deadline).await else {
            return self.metrics.duty_failed(
                slot,
                DUTY,
                Reason::MissingPrerequisite,
                count,
                "no attestation data was decided for the slot, nothing to aggregate",
            );
        };
        let committees = by_committee
            .iter()
            .map(|(committee, aggregators)| async move {
                let data_root = A::data_for(&decided, *committee).tree_hash_root();
                let (committee, beacon) = (*committee, &self.beacon);
                let fetch: FetchBuilt<'_, A> = Box::new(move || {
                    beacon
                        .first_success(move |n| A::fetch(n, data_root, slot, committee))
                        .boxed()
                });
                let duty = Duty::new(slot, DutyType::Aggregator { committee });
                let signed = async {
                    let aggregate = self
                        .store
                        .decide_built(
                            duty,
                            fetch,
                            aggregate_is_valid::<A>(slot, committee, data_root),
                        )
                        .await?;
                    self.store
                        .sign_aggregates(&aggregate, aggregators, deadline)
                        .await
                };
                (aggregators.len(), signed.await)
            });
        let mut signed = Vec::new();
        let mut failed = 0;
        for (aggregators, result) in join_all(committees).await {
            match result {
                Ok(items) => signed.extend(items),
                Err(e) => {
                    failed += aggregators;
                    self.failed(slot, DUTY, aggregators, &e)
                }
            }
        }
        if signed.len() + failed < count {
            let short = count - failed - signed.len();
            self.metrics.duty_failed(
                slot,
                DUTY,
                Reason::InsufficientPartials,
                short,
                format!("{short} of {count} aggregates not signed in time"),
            );
        }
        if signed.is_empty() {
            return;
        }
        let fork = self.spec.fork_at_slot(slot);
        let submit = self
            .beacon
            .first_success(|n| n.submit_aggregates(fork, &signed));
        let submitted = self.timed(slot, DUTY, Stage::Submit, submit).await;
        self.submission_outcome(slot, DUTY, "aggregates submitted", signed.len(), submitted);
    }

    /// The slot's decided attestation data, waited for until `deadline`: with
    /// a leader down the decision comes a round later, after the
    /// aggregation due time.
    async fn decided_attestation(
        &self,
        slot: Slot,
        deadline: tokio::time::Instant,
    ) -> Option<AttestationData> {
        loop {
            if let Some(data) = self.store.decided_attestation_data(slot).await {
                return Some(data);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The slot's combined selection proofs, the subscriptions they imply
    /// (sent to the beacon node), and the selected aggregators by committee.
    /// `None` if the proofs could not be combined (logged).
    async fn select_aggregators(
        &self,
        slot: Slot,
        duties: &[AttesterDuty],
        deadline: tokio::time::Instant,
    ) -> Option<BTreeMap<u64, Vec<Aggregator>>> {
        let validators: Vec<PublicKeyBytes> = duties.iter().map(|d| d.pubkey).collect();
        let proofs = match self
            .store
            .produce_selection_proofs(slot, &validators, deadline)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                self.failed(slot, "selection", validators.len(), &e);
                return None;
            }
        };
        if proofs.len() < validators.len() {
            self.metrics.duty_failed(
                slot,
                "selection",
                Reason::InsufficientPartials,
                validators.len() - proofs.len(),
                format!(
                    "{} of {} selection proofs combined",
                    proofs.len(),
                    validators.len()
                ),
            );
        }
        let mut subscriptions = Vec::with_capacity(duties.len());
        let mut by_committee: BTreeMap<u64, Vec<Aggregator>> = BTreeMap::new();
        for d in duties {
            let proof = proofs.get(&d.pubkey);
            let modulo = committee_modulo(&self.spec, d.committee_length);
            let is_aggregator = proof.is_some_and(|p| selects(p, modulo));
            if let (true, Some(p)) = (is_aggregator, proof) {
                by_committee.entry(d.committee_index).or_default().push((
                    d.pubkey,
                    d.validator_index,
                    *p,
                ));
            }
            subscriptions.push(BeaconCommitteeSubscription {
                validator_index: d.validator_index,
                committee_index: d.committee_index,
                committees_at_slot: d.committees_at_slot,
                slot,
                is_aggregator,
            });
        }
        if let Err(e) = self
            .beacon
            .first_success(|n| n.subscribe_beacon_committees(&subscriptions))
            .await
        {
            tracing::warn!(slot, duty = DUTY, "beacon committee subscriptions: {e}");
        }
        Some(by_committee)
    }
}
