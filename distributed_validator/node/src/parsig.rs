//! The partial-signature store and combiner stages.
//!
//! Partials arrive from this node's signer and from peers. Each is verified
//! against the sender's public share before it is stored (a batch of partials
//! over one signing root costs one two-pairing check; when the batch fails,
//! bisection names the bad ones and only those are dropped). Partials are kept
//! per duty, validator and signing root, so a peer that signed something else
//! cannot mix into a combination. At `t` valid partials over one root the
//! signature is combined, verified against the validator key (signatures
//! completed together are checked in one batch), and handed out exactly once.

use crate::duty::Duty;
use dv_crypto::{
    batch_verify, batch_verify_messages, combine, find_invalid, par_map, HashedMessage,
    PartialSignature, PublicKey, Signature, ThresholdError, ThresholdParams,
};
use dv_types::{PublicKeyBytes, Root};
use std::collections::{BTreeMap, HashMap};

/// A validator's public key and the public keys of all its shares (index i at position i-1).
#[derive(Debug, Clone)]
pub struct ValidatorKeys {
    pub key: PublicKey,
    pub shares: Vec<PublicKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParSigError {
    #[error("validator {0} is not in this cluster")]
    UnknownValidator(PublicKeyBytes),
    #[error("share index {index} is outside 1..={total}")]
    BadShareIndex { index: u64, total: usize },
    #[error("partial signature from share {index} for validator {validator} does not verify")]
    InvalidPartial {
        validator: PublicKeyBytes,
        index: u64,
    },
    #[error("share {index} already signed {MAX_ROOTS_PER_SHARE} other roots for validator {validator} in this duty")]
    TooManyRoots {
        validator: PublicKeyBytes,
        index: u64,
    },
    #[error("share {index} has {limit} partials waiting here already")]
    ShareOverLimit { index: u64, limit: usize },
    #[error("combining for validator {validator}: {reason}")]
    Combine {
        validator: PublicKeyBytes,
        reason: String,
    },
}

/// This node's public shares of the cluster's validators: what checks a
/// partial that claims to be this node's (from its validator client, or an
/// operator's exit file) before it is used or sent to peers.
#[derive(Debug, Clone)]
pub struct OwnShares {
    /// Validator public key and public shares, by validator public key.
    pub keys: HashMap<PublicKeyBytes, ValidatorKeys>,
    /// This node's share index (1-based).
    pub share_index: u64,
}

impl OwnShares {
    /// This node's public share of `validator`.
    pub fn share_of(&self, validator: &PublicKeyBytes) -> Result<PublicKey, String> {
        let keys = self
            .keys
            .get(validator)
            .ok_or_else(|| format!("validator {validator} is not in this cluster"))?;
        self.share_index
            .checked_sub(1)
            .and_then(|position| keys.shares.get(position as usize))
            .copied()
            .ok_or_else(|| "the cluster lock has no share for this node".to_string())
    }

    /// `signature` as this node's partial for `validator`, not verified yet.
    pub fn parse(
        &self,
        validator: &PublicKeyBytes,
        signature: &dv_types::SignatureBytes,
    ) -> Result<Partial, String> {
        self.share_of(validator)?;
        let partial = PartialSignature::from_bytes(self.share_index, &signature.0)
            .map_err(|e| format!("signature: {e}"))?;
        Ok(Partial {
            validator: *validator,
            signature: partial,
        })
    }

    /// `signature` as this node's partial over `root`, verified against its
    /// share (rule 4: nothing unverified is used).
    pub fn verify(
        &self,
        validator: &PublicKeyBytes,
        root: Root,
        signature: &dv_types::SignatureBytes,
    ) -> Result<Partial, String> {
        let partial = self.parse(validator, signature)?;
        if !self
            .share_of(validator)?
            .verify(root.as_slice(), &partial.signature.signature)
        {
            return Err(not_our_partial(validator));
        }
        Ok(partial)
    }

    /// Which of `partials` (each this node's, over its root) verify against
    /// this node's shares: one batch check over all of them, and each on its
    /// own only when the batch fails, to name the bad ones. A partial of a
    /// validator not in the cluster does not verify.
    pub fn verify_all(&self, partials: &[(Root, Partial)]) -> Vec<bool> {
        let shares: Vec<Option<PublicKey>> = partials
            .iter()
            .map(|(_, p)| self.share_of(&p.validator).ok())
            .collect();
        let batch: Vec<(PublicKey, &[u8], Signature)> = partials
            .iter()
            .zip(&shares)
            .filter_map(|((root, p), share)| {
                Some(((*share)?, root.as_slice(), p.signature.signature))
            })
            .collect();
        let all_known = batch.len() == partials.len();
        if all_known && batch_verify_messages(&batch) {
            return vec![true; partials.len()];
        }
        partials
            .iter()
            .zip(&shares)
            .map(|((root, p), share)| {
                share.is_some_and(|s| s.verify(root.as_slice(), &p.signature.signature))
            })
            .collect()
    }
}

/// Why a partial that should be this node's was refused.
pub fn not_our_partial(validator: &PublicKeyBytes) -> String {
    format!("the signature does not verify against this node's share of validator {validator}")
}

/// One partial to store: for which validator, over which root, by which share.
#[derive(Debug, Clone, Copy)]
pub struct Partial {
    pub validator: PublicKeyBytes,
    pub signature: PartialSignature,
}

/// A combined, verified signature ready for the broadcaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combined {
    pub duty: Duty,
    pub validator: PublicKeyBytes,
    pub root: Root,
    pub signature: Signature,
}

impl ParSigError {
    /// A short name for the peer misbehaviour metric.
    pub fn label(&self) -> &'static str {
        match self {
            ParSigError::UnknownValidator(_) => "unknown_validator",
            ParSigError::BadShareIndex { .. } => "wrong_share",
            ParSigError::InvalidPartial { .. } => "invalid_partial",
            ParSigError::TooManyRoots { .. } => "too_many_roots",
            ParSigError::ShareOverLimit { .. } => "over_partials_limit",
            ParSigError::Combine { .. } => "combine_failed",
        }
    }
}

/// Roots one share may sign for one validator in one duty. An honest share
/// signs one, except sync selection proofs: one per subcommittee the
/// validator is in (up to 4).
pub const MAX_ROOTS_PER_SHARE: usize = 4;
/// Partials kept per share (waiting for a threshold), per cluster validator,
/// plus a margin: far more than an honest peer has waiting (a few duties'
/// worth and next epoch's selection proofs), and what bounds a peer that
/// signs whatever it likes with its share.
const MAX_WAITING_PER_SHARE_AND_VALIDATOR: usize = 16;
const WAITING_MARGIN: usize = 1024;

#[derive(Default)]
struct Entry {
    by_root: HashMap<Root, BTreeMap<u64, PartialSignature>>,
    /// Roots already combined (each at most once).
    combined: std::collections::HashSet<Root>,
    /// The roots each share signed here (at most [`MAX_ROOTS_PER_SHARE`]).
    roots_of_share: HashMap<u64, Vec<Root>>,
}

pub struct ParSigStore {
    params: ThresholdParams,
    validators: HashMap<PublicKeyBytes, ValidatorKeys>,
    entries: HashMap<(Duty, PublicKeyBytes), Entry>,
    /// Sets at the threshold, not combined yet.
    ready: std::collections::HashSet<(Duty, PublicKeyBytes, Root)>,
    /// Partials kept per share index, not combined yet.
    waiting: HashMap<u64, usize>,
}

impl ParSigStore {
    pub fn new(
        params: ThresholdParams,
        validators: HashMap<PublicKeyBytes, ValidatorKeys>,
    ) -> Self {
        Self {
            params,
            validators,
            entries: HashMap::new(),
            ready: Default::default(),
            waiting: HashMap::new(),
        }
    }

    /// The most partials one share may have waiting here.
    pub fn waiting_limit(&self) -> usize {
        self.validators.len() * MAX_WAITING_PER_SHARE_AND_VALIDATOR + WAITING_MARGIN
    }

    /// Partials of share `index` waiting for a threshold.
    pub fn waiting(&self, index: u64) -> usize {
        self.waiting.get(&index).copied().unwrap_or(0)
    }

    /// Splits `partials` (over `root` for `duty`) into those worth checking
    /// and storing, and errors for those over a bound. A partial this store
    /// already has (same share, root and duty) is dropped silently: a
    /// retransmission costs no second verification.
    pub fn admit(
        &self,
        duty: Duty,
        root: Root,
        partials: &[Partial],
        errors: &mut Vec<ParSigError>,
    ) -> Vec<Partial> {
        let limit = self.waiting_limit();
        let mut added: HashMap<u64, usize> = HashMap::new();
        let mut admitted = Vec::with_capacity(partials.len());
        for p in partials {
            let index = p.signature.index;
            let roots = self
                .entries
                .get(&(duty, p.validator))
                .and_then(|e| e.roots_of_share.get(&index));
            if roots.is_some_and(|r| r.contains(&root)) {
                continue;
            }
            if roots.is_some_and(|r| r.len() >= MAX_ROOTS_PER_SHARE) {
                errors.push(ParSigError::TooManyRoots {
                    validator: p.validator,
                    index,
                });
                continue;
            }
            let more = added.entry(index).or_default();
            if self.waiting(index) + *more >= limit {
                errors.push(ParSigError::ShareOverLimit { index, limit });
                continue;
            }
            *more += 1;
            admitted.push(*p);
        }
        admitted
    }

    fn share_key(&self, validator: &PublicKeyBytes, index: u64) -> Result<PublicKey, ParSigError> {
        let keys = self
            .validators
            .get(validator)
            .ok_or(ParSigError::UnknownValidator(*validator))?;
        let total = keys.shares.len();
        index
            .checked_sub(1)
            .and_then(|i| keys.shares.get(i as usize))
            .copied()
            .ok_or(ParSigError::BadShareIndex { index, total })
    }

    /// Whether every partial verifies against its share key over its root,
    /// checked in one batch (false also when a partial names an unknown
    /// validator or share: [`Self::add`] then says which).
    pub fn verify_all(&self, groups: &[(Root, &[Partial])]) -> bool {
        let mut items = Vec::new();
        for (root, partials) in groups {
            for p in partials.iter() {
                let Ok(key) = self.share_key(&p.validator, p.signature.index) else {
                    return false;
                };
                items.push((key, root.as_slice(), p.signature.signature));
            }
        }
        batch_verify_messages(&items)
    }

    /// Stores partials that all sign `root` for `duty` (verifying them
    /// unless `verified`: the middleware checks each partial of its client
    /// before it answers), without combining yet: [`Self::combine_ready`]
    /// then combines every set this completed, with one batch check of the
    /// combined signatures. Returns the refused partials with reasons.
    pub fn add(
        &mut self,
        duty: Duty,
        root: Root,
        partials: &[Partial],
        verified: bool,
    ) -> Vec<ParSigError> {
        let mut errors = Vec::new();
        let admitted = self.admit(duty, root, partials, &mut errors);
        let checked = self.with_share_keys(&admitted, &mut errors);
        let bad: Vec<usize> = if verified {
            Vec::new()
        } else {
            let hashed = HashedMessage::new(root.as_slice());
            let items: Vec<(PublicKey, Signature)> = checked
                .iter()
                .map(|(p, k)| (*k, p.signature.signature))
                .collect();
            if batch_verify(&hashed, &items) {
                Vec::new()
            } else {
                find_invalid(&hashed, &items)
            }
        };
        for (i, (partial, _)) in checked.into_iter().enumerate() {
            if bad.contains(&i) {
                errors.push(ParSigError::InvalidPartial {
                    validator: partial.validator,
                    index: partial.signature.index,
                });
            } else {
                self.store(duty, root, partial);
            }
        }
        errors
    }

    /// The partials whose validator and share this store knows, with the
    /// share's public key; the others go to `errors`.
    fn with_share_keys(
        &self,
        partials: &[Partial],
        errors: &mut Vec<ParSigError>,
    ) -> Vec<(Partial, PublicKey)> {
        let mut known = Vec::with_capacity(partials.len());
        for p in partials {
            match self.share_key(&p.validator, p.signature.index) {
                Ok(key) => known.push((*p, key)),
                Err(e) => errors.push(e),
            }
        }
        known
    }

    /// Keeps `partial`; a set that reaches the threshold waits in `ready`.
    fn store(&mut self, duty: Duty, root: Root, partial: Partial) {
        let entry = self.entries.entry((duty, partial.validator)).or_default();
        let index = partial.signature.index;
        let roots = entry.roots_of_share.entry(index).or_default();
        if !roots.contains(&root) {
            roots.push(root);
        }
        if entry.combined.contains(&root) {
            return;
        }
        let set = entry.by_root.entry(root).or_default();
        if set.insert(index, partial.signature).is_none() {
            *self.waiting.entry(index).or_default() += 1;
        }
        let key = (duty, partial.validator, root);
        if set.len() >= self.params.threshold() {
            self.ready.insert(key);
        }
    }

    /// Combines every set that reached the threshold and verifies the
    /// combined signatures against the validator keys: one batch check (one
    /// Miller loop per signature, one final exponentiation), each on its own
    /// only if the batch fails. A set whose combination fails stays open (a
    /// later partial makes another try).
    pub fn combine_ready(&mut self) -> (Vec<Combined>, Vec<ParSigError>) {
        let mut errors = Vec::new();
        let sets: Vec<(Duty, PublicKeyBytes, Root, Vec<PartialSignature>)> =
            std::mem::take(&mut self.ready)
                .into_iter()
                .filter_map(|(duty, validator, root)| {
                    let set = self.entries.get(&(duty, validator))?.by_root.get(&root)?;
                    Some((duty, validator, root, set.values().copied().collect()))
                })
                .collect();
        if !sets.is_empty() {
            dv_fault::reached(dv_fault::DURING_COMBINE);
        }
        // The combinations (a few G2 multiplications each) on all cores.
        let params = self.params;
        let results = par_map(&sets, |(_, _, _, chosen)| combine(chosen, params));
        let mut candidates: Vec<(Combined, PublicKey)> = Vec::with_capacity(sets.len());
        for ((duty, validator, root, _), result) in sets.into_iter().zip(results) {
            match result {
                Ok(signature) => candidates.push((
                    Combined {
                        duty,
                        validator,
                        root,
                        signature,
                    },
                    self.validators[&validator].key,
                )),
                Err(e) => errors.push(ParSigError::Combine {
                    validator,
                    reason: e.to_string(),
                }),
            }
        }
        let items: Vec<(PublicKey, &[u8], Signature)> = candidates
            .iter()
            .map(|(c, key)| (*key, c.root.as_slice(), c.signature))
            .collect();
        let all_valid = batch_verify_messages(&items);
        let mut completed = Vec::with_capacity(candidates.len());
        for (c, key) in candidates {
            if all_valid || key.verify(c.root.as_slice(), &c.signature) {
                if let Some(entry) = self.entries.get_mut(&(c.duty, c.validator)) {
                    entry.combined.insert(c.root);
                    // Its partials are not needed any more (later ones for
                    // this root are ignored): about 1 KB a signature, which
                    // at thousands of signatures a slot kept for 64 slots
                    // was most of a node's memory.
                    for index in entry
                        .by_root
                        .remove(&c.root)
                        .into_iter()
                        .flat_map(|set| set.into_keys())
                    {
                        if let Some(n) = self.waiting.get_mut(&index) {
                            *n = n.saturating_sub(1);
                        }
                    }
                }
                completed.push(c);
            } else {
                errors.push(ParSigError::Combine {
                    validator: c.validator,
                    reason: ThresholdError::CombinedSignatureInvalid.to_string(),
                });
            }
        }
        (completed, errors)
    }

    /// Keeps the duties `keep` says to keep, forgets the others.
    pub fn retain(&mut self, keep: impl Fn(&Duty) -> bool) {
        self.entries.retain(|(duty, _), _| keep(duty));
        self.ready.retain(|(duty, _, _)| keep(duty));
        self.waiting.clear();
        for set in self.entries.values().flat_map(|e| e.by_root.values()) {
            for index in set.keys() {
                *self.waiting.entry(*index).or_default() += 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duty::DutyType;
    use dv_crypto::{split, SecretKey, SecretShare};

    struct Fixture {
        store: ParSigStore,
        shares: Vec<Vec<SecretShare>>,
        keys: Vec<PublicKeyBytes>,
        secrets: Vec<SecretKey>,
    }

    fn fixture(validators: usize) -> Fixture {
        let params = ThresholdParams::new(3, 4).unwrap();
        let secrets: Vec<SecretKey> = (0..validators).map(|_| SecretKey::random()).collect();
        let shares: Vec<Vec<SecretShare>> = secrets.iter().map(|s| split(s, params)).collect();
        let keys: Vec<PublicKeyBytes> = secrets
            .iter()
            .map(|s| PublicKeyBytes(s.public_key().to_bytes()))
            .collect();
        let map = secrets
            .iter()
            .zip(&shares)
            .zip(&keys)
            .map(|((s, sh), k)| {
                (
                    *k,
                    ValidatorKeys {
                        key: s.public_key(),
                        shares: sh.iter().map(|x| x.secret.public_key()).collect(),
                    },
                )
            })
            .collect();
        Fixture {
            store: ParSigStore::new(params, map),
            shares,
            keys,
            secrets,
        }
    }

    impl Fixture {
        /// Stores partials (verifying them unless `verified`) and combines what completed.
        fn store_and_combine(
            &mut self,
            root: Root,
            partials: &[Partial],
            verified: bool,
        ) -> (Vec<Combined>, Vec<ParSigError>) {
            let mut errors = self.store.add(DUTY, root, partials, verified);
            let (completed, more) = self.store.combine_ready();
            errors.extend(more);
            (completed, errors)
        }
    }

    const DUTY: Duty = Duty {
        slot: 5,
        kind: DutyType::Attester,
    };

    fn partials(f: &Fixture, node: usize, root: Root) -> Vec<Partial> {
        (0..f.keys.len())
            .map(|v| Partial {
                validator: f.keys[v],
                signature: f.shares[v][node].sign(root.as_slice()),
            })
            .collect()
    }

    /// A share that signs whatever it likes gets a bounded footprint: at
    /// most MAX_ROOTS_PER_SHARE roots per validator and duty, and at most
    /// `waiting_limit` partials waiting over all duties; what it sent
    /// before is not verified again.
    #[test]
    fn a_hostile_share_is_bounded() {
        let mut f = fixture(1);
        let hostile = |f: &Fixture, root: Root| partials(f, 1, root);
        for i in 0..MAX_ROOTS_PER_SHARE as u8 {
            let root = Root::repeat_byte(i);
            assert!(f
                .store
                .add(DUTY, root, &hostile(&f, root), false)
                .is_empty());
        }
        let extra = Root::repeat_byte(0xee);
        assert!(matches!(
            f.store
                .add(DUTY, extra, &hostile(&f, extra), false)
                .as_slice(),
            [ParSigError::TooManyRoots { index: 2, .. }]
        ));
        assert_eq!(f.store.waiting(2), MAX_ROOTS_PER_SHARE);
        // A retransmission is dropped before any check: even a forged copy of a stored one.
        let root = Root::repeat_byte(0);
        let mut forged = hostile(&f, root);
        forged[0].signature = f.shares[0][1].sign(b"something else");
        assert!(f
            .store
            .admit(DUTY, root, &forged, &mut Vec::new())
            .is_empty());

        // Over many duties the share hits its waiting limit, and only then.
        let limit = f.store.waiting_limit();
        let mut refused = 0;
        for slot in 0..(limit as u64) {
            let duty = Duty::new(slot + 100, DutyType::Attester);
            let root = Root::repeat_byte(1);
            let errors = f.store.add(duty, root, &hostile(&f, root), true);
            refused += errors
                .iter()
                .filter(|e| matches!(e, ParSigError::ShareOverLimit { index: 2, .. }))
                .count();
        }
        assert_eq!(f.store.waiting(2), limit);
        assert_eq!(refused, MAX_ROOTS_PER_SHARE);
        // Combining releases what the set held.
        let root = Root::repeat_byte(1);
        let last = Duty::new(100, DutyType::Attester);
        for node in [0, 2] {
            f.store.add(last, root, &partials(&f, node, root), false);
        }
        assert_eq!(f.store.combine_ready().0.len(), 1);
        assert_eq!(f.store.waiting(2), limit - 1);
    }

    #[test]
    fn combines_once_at_threshold_and_verifies() {
        let mut f = fixture(5);
        let root = Root::repeat_byte(1);
        for node in 0..2 {
            let (done, errors) = f.store_and_combine(root, &partials(&f, node, root), false);
            assert!(done.is_empty() && errors.is_empty());
        }
        let (done, errors) = f.store_and_combine(root, &partials(&f, 3, root), false);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(done.len(), 5);
        for c in &done {
            let v = f.keys.iter().position(|k| *k == c.validator).unwrap();
            assert_eq!(c.signature, f.secrets[v].sign(root.as_slice()));
        }
        // The fourth node's partials complete nothing new.
        let (done, _) = f.store_and_combine(root, &partials(&f, 2, root), false);
        assert!(done.is_empty());
    }

    #[test]
    fn one_batch_over_many_roots_passes_only_when_every_partial_verifies() {
        let f = fixture(3);
        let (a, b) = (Root::repeat_byte(1), Root::repeat_byte(2));
        let (pa, pb) = (partials(&f, 0, a), partials(&f, 1, b));
        assert!(f.store.verify_all(&[(a, &pa), (b, &pb)]));
        // A partial over the other root, a partial by another share, an unknown validator.
        let mut swapped = pb.clone();
        swapped[2] = partials(&f, 1, a)[2];
        assert!(!f.store.verify_all(&[(a, &pa), (b, &swapped)]));
        let mut other_share = pa.clone();
        other_share[0].signature.index = 2;
        assert!(!f.store.verify_all(&[(a, &other_share)]));
        let mut stranger = pa.clone();
        stranger[1].validator = PublicKeyBytes([7; 48]);
        assert!(!f.store.verify_all(&[(a, &stranger)]));
    }

    #[test]
    fn verified_partials_are_stored_without_a_second_check() {
        let mut f = fixture(2);
        let root = Root::repeat_byte(3);
        for node in 0..2 {
            let (done, errors) = f.store_and_combine(root, &partials(&f, node, root), true);
            assert!(done.is_empty() && errors.is_empty());
        }
        let (done, errors) = f.store_and_combine(root, &partials(&f, 2, root), true);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(done.len(), 2);
        // The combined signature is still verified against the validator key.
        let mut g = fixture(1);
        let mut forged = partials(&g, 0, root);
        forged[0].signature.signature = g.shares[0][0].sign(b"something else").signature;
        g.store_and_combine(root, &forged, true);
        g.store_and_combine(root, &partials(&g, 1, root), true);
        let (done, errors) = g.store_and_combine(root, &partials(&g, 2, root), true);
        assert!(done.is_empty());
        assert!(
            matches!(errors[..], [ParSigError::Combine { .. }]),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_partials_are_named_and_dropped_the_rest_kept() {
        let mut f = fixture(3);
        let root = Root::repeat_byte(2);
        let mut batch = partials(&f, 0, root);
        // Share 1 signing another root for validator 1: invalid for `root`.
        batch[1].signature = f.shares[1][0].sign(b"something else");
        let (_, errors) = f.store_and_combine(root, &batch, false);
        assert_eq!(
            errors,
            vec![ParSigError::InvalidPartial {
                validator: f.keys[1],
                index: 1
            }]
        );
        let mut wrong_index = partials(&f, 1, root);
        wrong_index[0].signature.index = 9;
        let (_, errors) = f.store_and_combine(root, &wrong_index[..1], false);
        assert_eq!(
            errors,
            vec![ParSigError::BadShareIndex { index: 9, total: 4 }]
        );
        let (_, errors) = f.store_and_combine(
            root,
            &[Partial {
                validator: PublicKeyBytes([3; 48]),
                signature: batch[0].signature,
            }],
            false,
        );
        assert!(matches!(errors[0], ParSigError::UnknownValidator(_)));
        // Validators 0 and 2 combine with two more nodes; validator 1 still lacks share 1.
        f.store_and_combine(root, &partials(&f, 1, root), false);
        let (done, _) = f.store_and_combine(root, &partials(&f, 2, root), false);
        let mut combined: Vec<PublicKeyBytes> = done.iter().map(|c| c.validator).collect();
        combined.sort();
        let mut expected = vec![f.keys[0], f.keys[2]];
        expected.sort();
        assert_eq!(combined, expected);
    }

    #[test]
    fn partials_over_different_roots_never_mix() {
        let mut f = fixture(1);
        let (a, b) = (Root::repeat_byte(3), Root::repeat_byte(4));
        f.store_and_combine(a, &partials(&f, 0, a), false);
        f.store_and_combine(a, &partials(&f, 1, a), false);
        let (done, _) = f.store_and_combine(b, &partials(&f, 2, b), false);
        assert!(
            done.is_empty(),
            "two partials over a and one over b must not combine"
        );
        f.store.retain(|duty| duty.slot >= 6);
        assert!(f.store.is_empty());
    }

    /// A client's batch of this node's partials: all good in one check; a
    /// forged one, one over another root and one of an unknown validator
    /// named among good ones.
    #[test]
    fn own_partials_are_verified_in_one_batch_and_the_bad_ones_named() {
        let f = fixture(4);
        let node = 1;
        let own = OwnShares {
            keys: f.store.validators.clone(),
            share_index: node as u64 + 1,
        };
        let (root, other) = (Root::repeat_byte(3), Root::repeat_byte(4));
        let mut items: Vec<(Root, Partial)> = partials(&f, node, root)
            .into_iter()
            .map(|p| (root, p))
            .collect();
        assert_eq!(own.verify_all(&items), vec![true; 4]);
        // Another node's share, over the right root: not this node's partial.
        items[1].1.signature.signature = f.shares[1][0].sign(root.as_slice()).signature;
        // This node's share, over another root than the one it claims.
        items[2].0 = other;
        let stranger = PublicKeyBytes(SecretKey::random().public_key().to_bytes());
        items.push((
            root,
            Partial {
                validator: stranger,
                signature: f.shares[0][node].sign(root.as_slice()),
            },
        ));
        assert_eq!(
            own.verify_all(&items),
            vec![true, false, false, true, false]
        );
        assert!(own.verify_all(&[]).is_empty());
    }
}
