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

/// Batch-verifies signatures over different messages, with random 64-bit
/// weights: one hash to G2 and one Miller loop per *distinct* message (the
/// entries over one message are first summed, weighted, into one key and one
/// signature), one final exponentiation for all. A slot's partials mostly
/// share a few messages (every attester of a slot signs one root), so this
/// is far cheaper than a Miller loop per entry.
pub fn batch_verify_messages(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    if items.is_empty() {
        return true;
    }
    let mut by_message: Vec<(&[u8], Vec<usize>)> = Vec::new();
    let mut position: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for (i, (_, message, _)) in items.iter().enumerate() {
        let at = *position.entry(message).or_insert_with(|| {
            by_message.push((message, Vec::new()));
            by_message.len() - 1
        });
        by_message[at].1.push(i);
    }
    let mut keys = Vec::with_capacity(by_message.len());
    let mut sigs = Vec::with_capacity(by_message.len());
    for (_, entries) in &by_message {
        match entries[..] {
            [one] => {
                keys.push(items[one].0 .0);
                sigs.push(items[one].2 .0);
            }
            _ => {
                let weights = random_weights(entries.len());
                let group_keys: Vec<min_pk::PublicKey> =
                    entries.iter().map(|i| items[*i].0 .0).collect();
                let group_sigs: Vec<min_pk::Signature> =
                    entries.iter().map(|i| items[*i].2 .0).collect();
                keys.push(
                    group_keys
                        .as_slice()
                        .mult(&weights, WEIGHT_BITS)
                        .to_public_key(),
                );
                sigs.push(
                    group_sigs
                        .as_slice()
                        .mult(&weights, WEIGHT_BITS)
                        .to_signature(),
                );
            }
        }
    }
    let scalars: Vec<blst::blst_scalar> = random_weights(by_message.len())
        .chunks(8)
        .map(|w| {
            let mut s = blst::blst_scalar::default();
            s.b[..8].copy_from_slice(w);
            s
        })
        .collect();
    let messages: Vec<&[u8]> = by_message.iter().map(|(m, _)| *m).collect();
    let keys: Vec<&min_pk::PublicKey> = keys.iter().collect();
    let sigs: Vec<&min_pk::Signature> = sigs.iter().collect();
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

/// [`batch_verify_messages`] over one contiguous part of `items` per core
/// (scoped threads), for large batches: keep the entries over one message
/// next to each other, so that each part shares their Miller loop.
pub fn batch_verify_messages_parallel(items: &[(PublicKey, &[u8], Signature)]) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 || items.len() < 64 {
        return batch_verify_messages(items);
    }
    let part = items.len().div_ceil(cores);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(part)
            .skip(1)
            .map(|chunk| scope.spawn(move || batch_verify_messages(chunk)))
            .collect();
        let first = batch_verify_messages(&items[..part.min(items.len())]);
        // A panicking part counts as a failed verification.
        handles
            .into_iter()
            .fold(first, |all, h| h.join().unwrap_or(false) && all)
    })
}

/// `count` random non-zero 64-bit weights, little endian, 8 bytes each.
fn random_weights(count: usize) -> Vec<u8> {
    let mut weights = vec![0u8; count * WEIGHT_BITS / 8];
    rand::rngs::OsRng.fill_bytes(&mut weights);
    for w in weights.chunks_mut(8) {
        if w.iter().all(|b| *b == 0) {
            w[0] = 1;
        }
    }
    weights
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

    #[test]
    fn entries_over_repeated_messages_are_checked_each() {
        let (a, b) = (b"root a".as_slice(), b"root b".as_slice());
        let keys: Vec<SecretKey> = (0..6).map(|_| SecretKey::random()).collect();
        let signed = |sk: &SecretKey, m: &'static [u8]| (sk.public_key(), m, sk.sign(m));
        let mut items: Vec<(PublicKey, &[u8], Signature)> = keys
            .iter()
            .enumerate()
            .map(|(i, sk)| signed(sk, if i % 2 == 0 { a } else { b }))
            .collect();
        items.push(signed(&keys[0], b"alone"));
        assert!(batch_verify_messages(&items));
        // One entry of a group signed the other group's message.
        let mut wrong = items.clone();
        wrong[2] = (keys[2].public_key(), a, keys[2].sign(b));
        assert!(!batch_verify_messages(&wrong));
        // Two entries of one group with swapped signatures: a plain sum would match.
        let mut swapped = items.clone();
        swapped[0].2 = items[2].2;
        swapped[2].2 = items[0].2;
        assert!(!batch_verify_messages(&swapped));
    }

    /// Two wrong signatures whose errors cancel in a plain sum must still fail.
    #[test]
    fn a_batch_split_over_cores_fails_for_a_bad_entry_in_any_part() {
        let roots: Vec<[u8; 32]> = (0..40u8).map(|i| [i; 32]).collect();
        let keys: Vec<SecretKey> = (0..80).map(|_| SecretKey::random()).collect();
        let mut items: Vec<(PublicKey, &[u8], Signature)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let root = roots[i / 2].as_slice();
                (k.public_key(), root, k.sign(root))
            })
            .collect();
        assert!(batch_verify_messages_parallel(&items));
        for bad in [0, 41, 79] {
            let saved = items[bad].2;
            items[bad].2 = keys[bad].sign(b"another message");
            assert!(!batch_verify_messages_parallel(&items), "entry {bad}");
            items[bad].2 = saved;
        }
        assert!(batch_verify_messages_parallel(&items));
    }

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
