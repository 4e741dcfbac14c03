//! Once per epoch, what a validator client tells its beacon node about its
//! validators: fee recipients (`prepare_beacon_proposer`), builder
//! registrations (the ones signed into the cluster lock) and the sync
//! committee subnets its members must join.

use super::DutyContext;
use crate::validator_store::ValidatorStore;
use beacon_client::{
    ProposerPreparation, SyncCommitteeSubscription, SyncDuty, REGISTRATION_BATCH_SIZE,
};
use dv_types::*;

impl<S: ValidatorStore> DutyContext<S> {
    /// `epoch`'s preparations; `next_sync` are the sync committee members of the next epoch.
    pub async fn prepare_epoch(&self, epoch: Epoch, next_sync: Vec<SyncDuty>) {
        let preparations: Vec<ProposerPreparation> = self
            .scheduler
            .indices()
            .into_iter()
            .filter_map(|(v, validator_index)| {
                Some(ProposerPreparation {
                    validator_index,
                    fee_recipient: self.registrations.get(&v)?.message.fee_recipient,
                })
            })
            .collect();
        if !preparations.is_empty() {
            match self
                .beacon
                .first_success(|n| n.prepare_beacon_proposer(&preparations))
                .await
            {
                Ok(()) => {
                    tracing::debug!(epoch, count = preparations.len(), "fee recipients prepared")
                }
                Err(e) => tracing::warn!(epoch, "prepare_beacon_proposer: {e}"),
            }
        }
        let registrations: Vec<SignedValidatorRegistration> =
            self.registrations.values().cloned().collect();
        // In requests of at most REGISTRATION_BATCH_SIZE, as Lighthouse's client sends them.
        for batch in registrations.chunks(REGISTRATION_BATCH_SIZE) {
            let submitted = self
                .beacon
                .first_success(|n| n.register_validators(batch))
                .await;
            self.submission_outcome(
                self.spec.start_slot_of_epoch(epoch),
                "registration",
                "builder registrations submitted",
                batch.len(),
                submitted,
            );
        }
        let period = self.spec.epochs_per_sync_committee_period.max(1);
        let until_epoch = ((epoch + 1) / period + 1) * period;
        let subscriptions: Vec<SyncCommitteeSubscription> = next_sync
            .into_iter()
            .map(|m| SyncCommitteeSubscription {
                validator_index: m.validator_index,
                sync_committee_indices: m.validator_sync_committee_indices,
                until_epoch,
            })
            .collect();
        if !subscriptions.is_empty() {
            if let Err(e) = self
                .beacon
                .first_success(|n| n.subscribe_sync_committees(&subscriptions))
                .await
            {
                tracing::warn!(epoch, "sync committee subscriptions: {e}");
            }
        }
    }
}
