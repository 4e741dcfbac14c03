//! The sync committee service, per slot: the members' combined sync
//! selection proofs from the slot's start; at the sync message due time the
//! head root agreed on by the cluster, signed by every member and
//! submitted; at the contribution due time each subcommittee with a
//! selected aggregator of the cluster gets its contribution agreed on,
//! signed by each such aggregator and submitted.

use super::DutyContext;
use crate::aggregation::{contribution_is_valid, selects, subcommittees_of, sync_modulo};
use crate::duty::{Duty, DutyType};
use crate::metrics::Stage;
use crate::scheduler::SlotClock;
use crate::tracker::Reason;
use crate::validator_store::{FetchBuilt, ValidatorStore};
use beacon_client::SyncDuty;
use dv_types::*;
use futures::future::join_all;
use futures::FutureExt;
use std::collections::BTreeMap;

const MESSAGE: &str = "sync_message";
/// Sync committee messages are signed by half the slot at the latest, even
/// if the slot's attestations are not done (basis points of the slot).
const SIGN_SYNC_MESSAGES_BY_BPS: u64 = 5_000;
const CONTRIBUTION: &str = "sync_contribution";

impl<S: ValidatorStore> DutyContext<S> {
    /// `slot`'s sync committee duties of the cluster's `members`; call it at the slot's start.
    pub async fn sync_committee<P: Preset>(&self, slot: Slot, members: Vec<SyncDuty>) {
        if members.is_empty() {
            return;
        }
        let at = |bps: u64| {
            SlotClock::instant_at(
                self.clock.slot_start_ms(slot) + self.clock.slot_ms * bps / 10_000,
            )
        };
        let contribution_due = at(self.spec.contribution_due_bps);
        let (selected, root) = tokio::join!(
            self.select_sync_aggregators(slot, &members, contribution_due),
            async {
                tokio::time::sleep_until(at(self.spec.sync_message_due_bps)).await;
                self.sync_messages(slot, &members, at(SIGN_SYNC_MESSAGES_BY_BPS))
                    .await
            }
        );
        let (Some(root), false) = (root, selected.is_empty()) else {
            return;
        };
        tokio::time::sleep_until(contribution_due).await;
        self.contributions::<P>(slot, root, selected).await;
    }

    /// The agreed head root signed by every member and submitted; the root,
    /// if agreed. The signing waits for the slot's attestations (at most
    /// until `sign_by`): both are due at the same time, the attestations'
    /// rewards depend on arriving early, a sync message only has to be there
    /// when contributions are aggregated, and at mainnet scale each is
    /// hundreds of signatures that would otherwise delay the other.
    async fn sync_messages(
        &self,
        slot: Slot,
        members: &[SyncDuty],
        sign_by: tokio::time::Instant,
    ) -> Option<Root> {
        tracing::info!(slot, duty = MESSAGE, count = members.len(), "duty started");
        let own = match self.beacon.first_success(|n| n.head_root()).await {
            Ok(root) => Some(root),
            Err(e) => {
                tracing::warn!(slot, duty = MESSAGE, "own head root unavailable: {e}");
                None
            }
        };
        let root = match self.store.decide_sync_head_root(slot, own).await {
            Ok(root) => root,
            Err(e) => {
                self.failed(slot, MESSAGE, members.len(), &e);
                return None;
            }
        };
        if !self.scheduler.attesters_at(slot).is_empty() {
            let mut attested = self.attested.subscribe();
            let done = attested.wait_for(|last| last.is_some_and(|l| l >= slot));
            let _ = tokio::time::timeout_at(sign_by, done).await;
        }
        let pairs: Vec<(PublicKeyBytes, u64)> = members
            .iter()
            .map(|m| (m.pubkey, m.validator_index))
            .collect();
        let deadline = self.clock.slot_start(slot + 1);
        let messages = match self
            .store
            .sign_sync_messages(slot, root, &pairs, deadline)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.failed(slot, MESSAGE, pairs.len(), &e);
                return Some(root);
            }
        };
        if messages.len() < pairs.len() {
            self.metrics.duty_failed(
                slot,
                MESSAGE,
                Reason::InsufficientPartials,
                pairs.len() - messages.len(),
                format!(
                    "{} of {} sync committee messages combined",
                    messages.len(),
                    pairs.len()
                ),
            );
        }
        if !messages.is_empty() {
            let submit = self
                .beacon
                .first_success(|n| n.submit_sync_messages(&messages));
            let submitted = self.timed(slot, MESSAGE, Stage::Submit, submit).await;
            if submitted.is_ok() {
                let indices: Vec<u64> = messages.iter().map(|m| m.validator_index).collect();
                self.inclusion.sync_messages_submitted(slot, &indices);
            }
            let what = "sync committee messages submitted";
            self.submission_outcome(slot, MESSAGE, what, messages.len(), submitted);
        }
        Some(root)
    }

    /// The members' combined sync selection proofs for every subcommittee
    /// they sit in; the selected aggregators by subcommittee.
    async fn select_sync_aggregators(
        &self,
        slot: Slot,
        members: &[SyncDuty],
        deadline: tokio::time::Instant,
    ) -> BTreeMap<u64, Vec<(PublicKeyBytes, u64, SignatureBytes)>> {
        let pairs: Vec<(PublicKeyBytes, u64)> = members
            .iter()
            .flat_map(|m| {
                subcommittees_of(&self.spec, &m.validator_sync_committee_indices)
                    .into_iter()
                    .map(|sub| (m.pubkey, sub))
            })
            .collect();
        let proofs = match self
            .store
            .produce_sync_selection_proofs(slot, &pairs, deadline)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                self.failed(slot, "sync_selection", pairs.len(), &e);
                return BTreeMap::new();
            }
        };
        let modulo = sync_modulo(&self.spec);
        let mut selected: BTreeMap<u64, Vec<(PublicKeyBytes, u64, SignatureBytes)>> =
            BTreeMap::new();
        for m in members {
            for sub in subcommittees_of(&self.spec, &m.validator_sync_committee_indices) {
                if let Some(proof) = proofs.get(&(m.pubkey, sub)) {
                    if selects(proof, modulo) {
                        selected.entry(sub).or_default().push((
                            m.pubkey,
                            m.validator_index,
                            *proof,
                        ));
                    }
                }
            }
        }
        if proofs.len() < pairs.len() {
            self.metrics.duty_failed(
                slot,
                "sync_selection",
                Reason::InsufficientPartials,
                pairs.len() - proofs.len(),
                format!(
                    "{} of {} sync selection proofs combined",
                    proofs.len(),
                    pairs.len()
                ),
            );
        }
        selected
    }

    async fn contributions<P: Preset>(
        &self,
        slot: Slot,
        root: Root,
        selected: BTreeMap<u64, Vec<(PublicKeyBytes, u64, SignatureBytes)>>,
    ) {
        let count: usize = selected.values().map(Vec::len).sum();
        tracing::info!(slot, duty = CONTRIBUTION, count, "duty started");
        let deadline = self.clock.slot_start(slot + 1);
        let subcommittees = selected.iter().map(|(sub, aggregators)| async move {
            let duty = Duty::new(slot, DutyType::SyncContribution { subcommittee: *sub });
            let sub = *sub;
            let beacon = &self.beacon;
            let fetch: FetchBuilt<'_, SyncCommitteeContribution<P>> = Box::new(move || {
                beacon
                    .first_success(move |n| n.sync_committee_contribution::<P>(slot, sub, root))
                    .boxed()
            });
            let signed = async {
                let contribution = self
                    .store
                    .decide_built(duty, fetch, contribution_is_valid::<P>(slot, sub, root))
                    .await?;
                self.store
                    .sign_contributions(&contribution, aggregators, deadline)
                    .await
            };
            (aggregators.len(), signed.await)
        });
        let mut signed = Vec::new();
        let mut failed = 0;
        for (aggregators, result) in join_all(subcommittees).await {
            match result {
                Ok(items) => signed.extend(items),
                Err(e) => {
                    failed += aggregators;
                    self.failed(slot, CONTRIBUTION, aggregators, &e)
                }
            }
        }
        if signed.len() + failed < count {
            let short = count - failed - signed.len();
            self.metrics.duty_failed(
                slot,
                CONTRIBUTION,
                Reason::InsufficientPartials,
                short,
                format!("{short} of {count} contributions not signed in time"),
            );
        }
        if signed.is_empty() {
            return;
        }
        let submit = self
            .beacon
            .first_success(|n| n.submit_contributions(&signed));
        let submitted = self.timed(slot, CONTRIBUTION, Stage::Submit, submit).await;
        let what = "sync contributions submitted";
        self.submission_outcome(slot, CONTRIBUTION, what, signed.len(), submitted);
    }
}
