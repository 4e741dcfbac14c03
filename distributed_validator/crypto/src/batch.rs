//! Batch verification of many signatures over one message.
//!
//! With random 64-bit weights `r_i`, all `(pk_i, sig_i)` are valid together
//! iff `e(Σ r_i·pk_i, H(m)) == e(g1, Σ r_i·sig_i)` (except with probability
//! about 2^-64 per batch): one two-pairing check and two multi-scalar
//! multiplications instead of one pairing check per signature. When a batch
//! fails, bisection finds the bad entries.

use crate::bls::{pairing_check, HashedMessage, PublicKey, Signature};
use blst::{min_pk, MultiPoint};
use rand::RngCore;

const WEIGHT_BITS: usize = 64;

/// True iff every signature verifies under its key over `message`.
/// An empty batch is vacuously valid.
pub fn batch_verify(message: &HashedMessage, items: &[(PublicKey, Signature)]) -> bool {
    match items {
        [] => true,
        [(pk, sig)] => pk.verify_hashed(message, sig),
        _ => {
            let mut weights = vec![0u8; items.len() * WEIGHT_BITS / 8];
            rand::rngs::OsRng.fill_bytes(&mut weights);
            // A zero weight would drop its signature from the check.
            for w in weights.chunks_mut(8) {
                if w.iter().all(|b| *b == 0) {
                    w[0] = 1;
                }
            }
            let keys: Vec<min_pk::PublicKey> = items.iter().map(|(pk, _)| pk.0).collect();
            let sigs: Vec<min_pk::Signature> = items.iter().map(|(_, sig)| sig.0).collect();
            let weighted_key = keys.as_slice().mult(&weights, WEIGHT_BITS).to_public_key();
            let weighted_sig = sigs.as_slice().mult(&weights, WEIGHT_BITS).to_signature();
            pairing_check(
                (&weighted_key).into(),
                &message.affine(),
                (&weighted_sig).into(),
            )
        }
    }
}

/// Batch-verifies signatures over different messages (one Miller loop per
/// entry, one final exponentiation), with random 64-bit weights.
pub fn batch_verify_messages(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut weights = vec![0u8; items.len() * WEIGHT_BITS / 8];
    rand::rngs::OsRng.fill_bytes(&mut weights);
    let scalars: Vec<blst::blst_scalar> = weights
        .chunks(8)
        .map(|w| {
            let mut s = blst::blst_scalar::default();
            s.b[..8].copy_from_slice(w);
            if w.iter().all(|b| *b == 0) {
                s.b[0] = 1;
            }
            s
        })
        .collect();
    let messages: Vec<&[u8]> = items.iter().map(|(_, m, _)| *m).collect();
    let keys: Vec<&min_pk::PublicKey> = items.iter().map(|(pk, _, _)| &pk.0).collect();
    let sigs: Vec<&min_pk::Signature> = items.iter().map(|(_, _, sig)| &sig.0).collect();
    min_pk::Signature::verify_multiple_aggregate_signatures(
        &messages,
        crate::bls::DST,
        &keys,
        false,
        &sigs,
        false,
        &scalars,
        WEIGHT_BITS,
    ) == blst::BLST_ERROR::BLST_SUCCESS
}

/// Positions of the entries that do not verify (empty when all do).
pub fn find_invalid(message: &HashedMessage, items: &[(PublicKey, Signature)]) -> Vec<usize> {
    let mut invalid = Vec::new();
    bisect(message, items, 0, &mut invalid);
    invalid
}

fn bisect(
    message: &HashedMessage,
    items: &[(PublicKey, Signature)],
    offset: usize,
    out: &mut Vec<usize>,
) {
    if batch_verify(message, items) {
        return;
    }
    if items.len() == 1 {
        out.push(offset);
        return;
    }
    let mid = items.len() / 2;
    bisect(message, &items[..mid], offset, out);
    bisect(message, &items[mid..], offset + mid, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::SecretKey;

    fn batch(n: usize, msg: &HashedMessage) -> Vec<(PublicKey, Signature)> {
        (0..n)
            .map(|_| {
                let sk = SecretKey::random();
                (sk.public_key(), sk.sign_hashed(msg))
            })
            .collect()
    }

    #[test]
    fn valid_batch_passes_and_bad_entries_are_found() {
        let msg = HashedMessage::new(b"slot 42 attestation");
        let mut items = batch(9, &msg);
        assert!(batch_verify(&msg, &items));
        assert!(find_invalid(&msg, &items).is_empty());
        let other = HashedMessage::new(b"other");
        items[2].1 = SecretKey::random().sign_hashed(&msg);
        items[7].1 = SecretKey::random().sign_hashed(&other);
        assert!(!batch_verify(&msg, &items));
        assert_eq!(find_invalid(&msg, &items), vec![2, 7]);
    }

    /// Two wrong signatures whose errors cancel in a plain sum must still fail.
    #[test]
    fn cancelling_errors_are_caught() {
        let msg = HashedMessage::new(b"m");
        let sk_a = SecretKey::random();
        let sk_b = SecretKey::random();
        let sig_a = sk_a.sign_hashed(&msg);
        let sig_b = sk_b.sign_hashed(&msg);
        // Swap the signatures: the unweighted sum still matches the sum of keys.
        let swapped = vec![(sk_a.public_key(), sig_b), (sk_b.public_key(), sig_a)];
        assert!(!batch_verify(&msg, &swapped));
        assert_eq!(find_invalid(&msg, &swapped), vec![0, 1]);
    }
}
