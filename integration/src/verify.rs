//! The simulated chain's signature checks, usable without the chain's lock.
//!
//! A beacon node verifies gossip signatures on worker threads in batches
//! and does not stall block production meanwhile. The chain does the same:
//! the server takes a [`Verifier`] (the validator keys and the memo of what
//! verified, both shared) under the lock, releases it, verifies a
//! submission's single-signer signatures in one batch on a blocking thread,
//! and only then judges the submission under the lock, where every
//! signature that verified is a memo hit and costs no pairing. Judging
//! stays strict: an item not in the memo is verified again under the lock.

use dv_crypto::{batch_verify_messages, PublicKey, Signature};
use dv_types::{Root, SignatureBytes};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Past this many remembered verifications the memo starts over.
const MAX_VERIFIED_MEMO: usize = 400_000;

/// One single-signer signature to check: (validator index, signing root, signature).
pub type SignedItem = (u64, Root, SignatureBytes);

/// Validator keys and the memo of verified signatures; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<Vec<PublicKey>>,
    /// Digests of (signers, signing root, signature) that verified: every
    /// node of a cluster submits the same combined signature, and a beacon
    /// node does not check a message it already accepted again.
    memo: Arc<Mutex<HashSet<[u8; 32]>>>,
    /// Held while a batch is verified: every node of a cluster submits the
    /// same combined signatures at about the same moment, and verified one
    /// after the other all but the first are memo hits, where verified side
    /// by side each would cost the full pairings.
    batch: Arc<Mutex<()>>,
}

impl Verifier {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self {
            keys: Arc::new(keys),
            memo: Arc::default(),
            batch: Arc::default(),
        }
    }

    /// The validators' keys, by index.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    fn memo_key(signers: &[PublicKey], root: Root, signature: &SignatureBytes) -> [u8; 32] {
        let mut digest = Sha256::new();
        for key in signers {
            digest.update(key.to_bytes());
        }
        digest.update(root.as_slice());
        digest.update(signature.0);
        digest.finalize().into()
    }

    fn known(&self, memo: &[u8; 32]) -> bool {
        self.memo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(memo)
    }

    fn remember(&self, memos: impl IntoIterator<Item = [u8; 32]>) {
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for m in memos {
            if memo.len() >= MAX_VERIFIED_MEMO {
                memo.clear();
            }
            memo.insert(m);
        }
    }

    /// Whether `signature` is the aggregate of `signers` over `root`
    /// (false for no signers); a verification that succeeded is remembered.
    pub fn verify_aggregate(
        &self,
        signers: &[PublicKey],
        root: Root,
        signature: &SignatureBytes,
    ) -> bool {
        if signers.is_empty() {
            return false;
        }
        let memo = Self::memo_key(signers, root, signature);
        if self.known(&memo) {
            return true;
        }
        let ok = Signature::from_bytes(&signature.0).is_ok_and(|sig| match signers {
            [key] => key.verify(root.as_slice(), &sig),
            _ => sig.fast_aggregate_verify(root.as_slice(), signers),
        });
        if ok {
            self.remember([memo]);
        }
        ok
    }

    /// Verifies the single-signer signatures of a batch at once, as a
    /// beacon node batches gossip verification: when the whole batch holds,
    /// each is remembered as verified, so the per-item checks that follow
    /// cost no pairing; when it does not, nothing is remembered and each
    /// item is verified on its own when judged (which names the bad ones).
    /// Unknown validators and unparsable signatures are left to that judging.
    pub fn verify_batch(&self, items: &[SignedItem]) {
        // Each item's key and memo digest, once; only the ones not yet verified.
        let fresh: Vec<(PublicKey, &SignedItem, [u8; 32])> = items
            .iter()
            .filter_map(|item @ (validator, root, signature)| {
                let key = *self.keys.get(*validator as usize)?;
                let memo = Self::memo_key(&[key], *root, signature);
                (!self.known(&memo)).then_some((key, item, memo))
            })
            .collect();
        if fresh.len() < 2 {
            return;
        }
        let _one_at_a_time = self
            .batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // What another submission verified while this one waited is done.
        let mut batch = Vec::with_capacity(fresh.len());
        let mut memos = Vec::with_capacity(fresh.len());
        for (key, (_, root, signature), memo) in fresh {
            if self.known(&memo) {
                continue;
            }
            let Ok(sig) = Signature::from_bytes(&signature.0) else {
                continue;
            };
            batch.push((key, root.as_slice(), sig));
            memos.push(memo);
        }
        if batch.len() >= 2 && batch_verify_messages(&batch) {
            self.remember(memos);
        }
    }
}
