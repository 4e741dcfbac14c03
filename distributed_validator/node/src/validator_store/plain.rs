//! A normal validator's store: one whole key per validator, Lighthouse's
//! slashing database and rules, no consensus and no peers. What this node's
//! own beacon node gives is what gets signed. It is the baseline the
//! distributed store is measured against, and the same duty services drive it.

use super::*;
use crate::decided::approve_attestations;
use dv_crypto::SecretKey;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Attestation data signed is remembered this many slots (the aggregation
/// duty of a slot asks for it within the slot).
const REMEMBERED_SLOTS: u64 = 64;

struct Inner {
    keys: HashMap<PublicKeyBytes, SecretKey>,
    db: Arc<SlashingDatabase>,
    spec: ChainSpec,
    genesis_validators_root: Root,
    clock: SlotClock,
    /// The attestation data signed, by slot.
    attested: Mutex<BTreeMap<Slot, AttestationData>>,
}

/// A normal validator's signing seam; cheap to clone.
#[derive(Clone)]
pub struct PlainValidatorStore {
    inner: Arc<Inner>,
}

impl PlainValidatorStore {
    pub fn new(
        keys: HashMap<PublicKeyBytes, SecretKey>,
        db: Arc<SlashingDatabase>,
        chain: ChainContext,
    ) -> Self {
        let ChainContext {
            spec,
            genesis_validators_root,
            clock,
        } = chain;
        Self {
            inner: Arc::new(Inner {
                keys,
                db,
                spec,
                genesis_validators_root,
                clock,
                attested: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn roots(&self) -> SigningRoots<'_> {
        SigningRoots {
            spec: &self.inner.spec,
            genesis_validators_root: self.inner.genesis_validators_root,
        }
    }

    fn sign(&self, validator: &PublicKeyBytes, root: Root) -> Result<SignatureBytes, SignError> {
        let key = self
            .inner
            .keys
            .get(validator)
            .ok_or(SignError::UnknownValidator(*validator))?;
        Ok(SignatureBytes(key.sign(root.as_slice()).to_bytes()))
    }

    fn remember_attested(&self, data: AttestationData) {
        let mut attested = self
            .inner
            .attested
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        attested.insert(data.slot, data);
        let keep_from = data.slot.saturating_sub(REMEMBERED_SLOTS);
        attested.retain(|slot, _| *slot >= keep_from);
    }
}

impl ValidatorStore for PlainValidatorStore {
    fn spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    async fn randao_reveal(
        &self,
        validator: PublicKeyBytes,
        slot: Slot,
        _deadline: Instant,
    ) -> Result<SignatureBytes, SignError> {
        self.sign(&validator, self.roots().randao(slot))
    }

    async fn sign_attestations(
        &self,
        slot: Slot,
        own: Option<AttestationData>,
        attesters: &[Attester],
        _timing: DutyTiming,
    ) -> Result<SignedAttestations, SignError> {
        let own = own.ok_or(SignError::NoOwnValue("attestation data"))?;
        if own.slot != slot {
            return Err(SignError::BadDecidedValue(format!(
                "attestation data for slot {} at slot {slot}",
                own.slot
            )));
        }
        let decided = AttestationData { index: 0, ..own };
        let items = self.roots().attestations(&decided, attesters);
        // Rule 2: recorded durably for every validator before it is signed.
        let approval = approve_attestations(&self.inner.db, &items).map_err(SignError::Database)?;
        self.remember_attested(decided);
        let mut signatures = Vec::with_capacity(items.len());
        for item in items
            .iter()
            .filter(|x| approval.approved.contains(&x.validator))
        {
            signatures.push(SignedAttestation {
                validator: item.validator,
                data: item.data,
                signature: self.sign(&item.validator, item.signing_root)?,
            });
        }
        Ok(SignedAttestations {
            decided,
            signatures,
            refused: approval.refused,
            missing: Vec::new(),
        })
    }

    async fn decided_attestation_data(&self, slot: Slot) -> Option<AttestationData> {
        self.inner
            .attested
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&slot)
            .copied()
    }

    async fn sign_block<P: Preset>(
        &self,
        validator: PublicKeyBytes,
        validator_index: u64,
        slot: Slot,
        randao_reveal: SignatureBytes,
        own: Option<ProducedBlock<P>>,
        _timing: DutyTiming,
    ) -> Result<SignedProposal<P>, SignError> {
        let block = own.ok_or(SignError::NoOwnValue("block"))?;
        let (fork, block_slot, proposer, reveal, _) = block_summary(&block);
        if fork != self.inner.spec.fork_at_slot(slot)
            || block_slot != slot
            || proposer != validator_index
            || reveal != randao_reveal
        {
            return Err(SignError::BadDecidedValue(format!(
                "the beacon node's block is not validator {validator_index}'s {} block for slot {slot} with its randao reveal",
                self.inner.spec.fork_at_slot(slot)
            )));
        }
        let root = record_block(&self.inner.db, self.roots(), &validator, &block)?;
        let signature = self.sign(&validator, root)?;
        Ok(SignedProposal { block, signature })
    }

    async fn produce_selection_proofs(
        &self,
        slot: Slot,
        validators: &[PublicKeyBytes],
        _deadline: Instant,
    ) -> Result<HashMap<PublicKeyBytes, SignatureBytes>, SignError> {
        let root = self.roots().selection(slot);
        validators
            .iter()
            .map(|v| Ok((*v, self.sign(v, root)?)))
            .collect()
    }

    async fn produce_sync_selection_proofs(
        &self,
        slot: Slot,
        members: &[(PublicKeyBytes, u64)],
        _deadline: Instant,
    ) -> Result<HashMap<(PublicKeyBytes, u64), SignatureBytes>, SignError> {
        members
            .iter()
            .map(|(v, sub)| {
                let root = self.roots().sync_selection(slot, *sub);
                Ok(((*v, *sub), self.sign(v, root)?))
            })
            .collect()
    }

    async fn decide_built<'a, T>(
        &'a self,
        duty: Duty,
        fetch: FetchBuilt<'a, T>,
        is_valid: impl Fn(&T) -> bool + Send + 'static,
    ) -> Result<T, SignError>
    where
        T: Encode + Decode + Send + 'static,
    {
        let value = fetch_own_built(&self.inner.clock, duty, fetch)
            .await
            .ok_or(SignError::NoOwnValue(duty.kind.name()))?;
        if is_valid(&value) {
            Ok(value)
        } else {
            Err(SignError::BadDecidedValue(format!(
                "this node's beacon node's {} is not valid for slot {}",
                duty.kind.name(),
                duty.slot
            )))
        }
    }

    async fn sign_aggregates<A: CommitteeAggregate>(
        &self,
        aggregate: &A,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        _deadline: Instant,
    ) -> Result<Vec<A::Signed>, SignError> {
        let epoch = self.inner.spec.epoch_of_slot(aggregate.data().slot);
        aggregators
            .iter()
            .map(|(v, index, proof)| {
                let message = A::message(*index, aggregate.clone(), *proof);
                let root = self
                    .roots()
                    .of(DomainKind::AggregateAndProof, epoch, &message);
                Ok(A::signed(message, self.sign(v, root)?))
            })
            .collect()
    }

    async fn decide_sync_head_root(
        &self,
        _slot: Slot,
        own: Option<Root>,
    ) -> Result<Root, SignError> {
        own.ok_or(SignError::NoOwnValue("head block root"))
    }

    async fn sign_sync_messages(
        &self,
        slot: Slot,
        block_root: Root,
        members: &[(PublicKeyBytes, u64)],
        _deadline: Instant,
    ) -> Result<Vec<SyncCommitteeMessage>, SignError> {
        let root = self.roots().sync_message(slot, &block_root);
        members
            .iter()
            .map(|(v, index)| {
                Ok(SyncCommitteeMessage {
                    slot,
                    beacon_block_root: block_root,
                    validator_index: *index,
                    signature: self.sign(v, root)?,
                })
            })
            .collect()
    }

    async fn sign_contributions<P: Preset>(
        &self,
        contribution: &SyncCommitteeContribution<P>,
        aggregators: &[(PublicKeyBytes, u64, SignatureBytes)],
        _deadline: Instant,
    ) -> Result<Vec<SignedContributionAndProof<P>>, SignError> {
        let epoch = self.inner.spec.epoch_of_slot(contribution.slot);
        aggregators
            .iter()
            .map(|(v, index, proof)| {
                let message = ContributionAndProof {
                    aggregator_index: *index,
                    contribution: contribution.clone(),
                    selection_proof: *proof,
                };
                let root = self
                    .roots()
                    .of(DomainKind::ContributionAndProof, epoch, &message);
                Ok(SignedContributionAndProof {
                    message,
                    signature: self.sign(v, root)?,
                })
            })
            .collect()
    }

    async fn sign_voluntary_exit(
        &self,
        validator: PublicKeyBytes,
        exit: VoluntaryExit,
        _deadline: Instant,
    ) -> Result<SignatureBytes, SignError> {
        let root = self
            .roots()
            .of(DomainKind::VoluntaryExit, exit.epoch, &exit);
        self.sign(&validator, root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_crypto::{interop_secret_key, Signature};

    struct Fixture {
        store: PlainValidatorStore,
        validator: PublicKeyBytes,
        _dir: tempfile::TempDir,
    }

    /// A store holding interop key `index` on a Deneb chain (the fork of
    /// the captured Lodestar block), with its own slashing database.
    fn fixture(index: u64) -> Fixture {
        let mut spec = ChainSpec::minimal();
        for entry in spec.fork_schedule.forks.iter_mut() {
            if entry.0 > ForkName::Deneb {
                entry.2 = FAR_FUTURE_EPOCH;
            }
        }
        let key = interop_secret_key(index);
        let validator = PublicKeyBytes(key.public_key().to_bytes());
        let dir = tempfile::tempdir().unwrap();
        let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
        db.register_validators(&[validator]).unwrap();
        let clock = SlotClock::new(0, &spec);
        let store = PlainValidatorStore::new(
            HashMap::from([(validator, key)]),
            Arc::new(db),
            ChainContext {
                spec,
                genesis_validators_root: Root::repeat_byte(5),
                clock,
            },
        );
        Fixture {
            store,
            validator,
            _dir: dir,
        }
    }

    fn verifies(validator: &PublicKeyBytes, root: Root, signature: &SignatureBytes) -> bool {
        let key = dv_crypto::PublicKey::from_bytes(&validator.0).unwrap();
        Signature::from_bytes(&signature.0).is_ok_and(|s| key.verify(root.as_slice(), &s))
    }

    fn timing() -> DutyTiming {
        let now = Instant::now();
        DutyTiming {
            start: now,
            deadline: now,
            rounds: RoundTiming::default(),
        }
    }

    fn data(slot: Slot, head: u8, target: Epoch) -> AttestationData {
        AttestationData {
            slot,
            index: 3,
            beacon_block_root: Root::repeat_byte(head),
            source: Checkpoint {
                epoch: target.saturating_sub(1),
                root: Root::repeat_byte(1),
            },
            target: Checkpoint {
                epoch: target,
                root: Root::repeat_byte(2),
            },
        }
    }

    #[tokio::test]
    async fn signs_its_beacon_nodes_attestation_once_and_refuses_a_double_vote() {
        let f = fixture(3);
        let attester = Attester {
            validator: f.validator,
            committee_index: 2,
        };
        let signed = f
            .store
            .sign_attestations(17, Some(data(17, 7, 2)), &[attester], timing())
            .await
            .unwrap();
        assert_eq!(signed.signatures.len(), 1);
        let one = signed.signatures[0];
        // Deneb: the attester's committee index is in the signed data.
        assert_eq!(one.data.index, 2);
        let root = f.store.roots().attestations(&one.data, &[attester])[0].signing_root;
        assert!(verifies(&f.validator, root, &one.signature));
        assert_eq!(
            f.store.decided_attestation_data(17).await,
            Some(AttestationData {
                index: 0,
                ..data(17, 7, 2)
            })
        );
        // Another head for the same target: a double vote, refused, unsigned.
        let again = f
            .store
            .sign_attestations(17, Some(data(17, 8, 2)), &[attester], timing())
            .await
            .unwrap();
        assert!(again.signatures.is_empty());
        assert_eq!(again.refused.len(), 1);
        // Nothing from the beacon node: nothing signed.
        let none = f
            .store
            .sign_attestations(18, None, &[attester], timing())
            .await;
        assert!(matches!(none, Err(SignError::NoOwnValue(_))));
    }

    #[tokio::test]
    async fn signs_the_proposers_block_once_and_nothing_for_another_validator() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/beacon-api-samples/lodestar-deneb/block_head.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let block = VersionedBlock::<Minimal>::from_json_value(
            ForkName::Deneb,
            json["data"]["message"].clone(),
        )
        .unwrap();
        let (slot, proposer, reveal) =
            (block.slot(), block.proposer_index(), block.randao_reveal());
        let f = fixture(proposer);
        let produced = ProducedBlock::Full(block.clone(), Default::default());
        let wrong = f
            .store
            .sign_block(
                f.validator,
                proposer + 1,
                slot,
                reveal,
                Some(produced.clone()),
                timing(),
            )
            .await;
        assert!(
            matches!(wrong, Err(SignError::BadDecidedValue(_))),
            "{wrong:?}"
        );
        let signed = f
            .store
            .sign_block(
                f.validator,
                proposer,
                slot,
                reveal,
                Some(produced.clone()),
                timing(),
            )
            .await
            .unwrap();
        assert!(verifies(
            &f.validator,
            f.store.roots().block(&produced),
            &signed.signature
        ));
        // Another block at the same slot: slashable, refused.
        let mut other = block;
        if let VersionedBlock::Deneb(b) = &mut other {
            b.state_root = Root::repeat_byte(9);
        }
        let double = f
            .store
            .sign_block(
                f.validator,
                proposer,
                slot,
                reveal,
                Some(ProducedBlock::Full(other, Default::default())),
                timing(),
            )
            .await;
        assert!(
            matches!(double, Err(SignError::SlashingRefused(_))),
            "{double:?}"
        );
        // A key it does not hold signs nothing.
        let stranger = PublicKeyBytes(interop_secret_key(99).public_key().to_bytes());
        let randao = f.store.randao_reveal(stranger, slot, Instant::now()).await;
        assert_eq!(randao, Err(SignError::UnknownValidator(stranger)));
        let own = f
            .store
            .randao_reveal(f.validator, slot, Instant::now())
            .await
            .unwrap();
        assert!(verifies(&f.validator, f.store.roots().randao(slot), &own));
    }
}
