//! Threshold BLS: Shamir sharing of a validator key over the scalar field and
//! Lagrange combination of partial signatures.
//!
//! Share `i` (1-based) is `f(i)` for a random polynomial `f` of degree `t - 1`
//! with `f(0) = sk`. Any `t` partial signatures `sk_i · H(m)` interpolate at 0
//! to `sk · H(m)`, the signature the whole key would have made; `t - 1` reveal
//! nothing about it.

use crate::bls::{BlsError, HashedMessage, PublicKey, SecretKey, Signature};
use crate::scalar::Scalar;
use blst::{min_pk, MultiPoint};
use std::collections::BTreeSet;
use std::fmt;

/// Largest cluster we accept; far above any real operator set.
pub const MAX_SHARES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("threshold {threshold} of {total} is invalid (need 1 <= threshold <= total <= {MAX_SHARES})")]
    InvalidParams { threshold: usize, total: usize },
    #[error("share index 0 is not allowed (indices start at 1)")]
    ZeroIndex,
    #[error("share index {index} is outside 1..={total}")]
    IndexOutOfRange { index: u64, total: usize },
    #[error("share index {0} appears more than once")]
    DuplicateIndex(u64),
    #[error("{got} shares given, {need} needed")]
    NotEnoughShares { got: usize, need: usize },
    #[error("share {index}: {source}")]
    InvalidPoint { index: u64, source: BlsError },
    #[error("the combined signature does not verify under the validator public key")]
    CombinedSignatureInvalid,
    #[error("the combined key does not match the expected public key")]
    CombinedKeyMismatch,
}

/// `t` of `n`: how many shares there are and how many sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThresholdParams {
    threshold: usize,
    total: usize,
}

impl ThresholdParams {
    pub fn new(threshold: usize, total: usize) -> Result<Self, ThresholdError> {
        if threshold == 0 || threshold > total || total > MAX_SHARES {
            return Err(ThresholdError::InvalidParams { threshold, total });
        }
        Ok(Self { threshold, total })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn total(&self) -> usize {
        self.total
    }

    fn check_index(&self, index: u64) -> Result<(), ThresholdError> {
        if index == 0 {
            Err(ThresholdError::ZeroIndex)
        } else if index > self.total as u64 {
            Err(ThresholdError::IndexOutOfRange {
                index,
                total: self.total,
            })
        } else {
            Ok(())
        }
    }

    /// Checks indices (non-zero, in range, distinct, at least `t`) and returns
    /// the positions of the `t` smallest, the ones used to interpolate.
    fn select(&self, indices: impl Iterator<Item = u64>) -> Result<Vec<usize>, ThresholdError> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        for (position, index) in indices.enumerate() {
            self.check_index(index)?;
            if !seen.insert(index) {
                return Err(ThresholdError::DuplicateIndex(index));
            }
            order.push((index, position));
        }
        if order.len() < self.threshold {
            return Err(ThresholdError::NotEnoughShares {
                got: order.len(),
                need: self.threshold,
            });
        }
        order.sort_unstable();
        Ok(order
            .into_iter()
            .take(self.threshold)
            .map(|(_, p)| p)
            .collect())
    }

    /// Chooses `t` items by share index and returns their positions with their
    /// Lagrange weights at 0: what every combination (signatures, public
    /// keys, secrets) multiplies and sums.
    fn interpolate<T>(
        &self,
        items: &[T],
        index: impl Fn(&T) -> u64,
    ) -> Result<(Vec<usize>, Vec<Scalar>), ThresholdError> {
        let chosen = self.select(items.iter().map(&index))?;
        let indices: Vec<u64> = chosen.iter().map(|&p| index(&items[p])).collect();
        Ok((chosen, lagrange_at_zero(&indices)))
    }
}

/// One node's share of a validator secret key.
#[derive(Clone)]
pub struct SecretShare {
    pub index: u64,
    pub secret: SecretKey,
}

impl fmt::Debug for SecretShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretShare {{ index: {}, secret: {:?} }}",
            self.index, self.secret
        )
    }
}

impl SecretShare {
    pub fn public_share(&self) -> PublicShare {
        PublicShare {
            index: self.index,
            key: self.secret.public_key(),
        }
    }

    pub fn sign(&self, message: &[u8]) -> PartialSignature {
        PartialSignature {
            index: self.index,
            signature: self.secret.sign(message),
        }
    }

    /// Signs a message hashed once for many shares (all validators of a slot sign one root).
    pub fn sign_hashed(&self, message: &HashedMessage) -> PartialSignature {
        PartialSignature {
            index: self.index,
            signature: self.secret.sign_hashed(message),
        }
    }
}

/// The public key of share `index`, known to every node of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicShare {
    pub index: u64,
    pub key: PublicKey,
}

impl PublicShare {
    /// Checks a partial signature: same index and a valid signature under this share.
    pub fn verify(&self, message: &[u8], partial: &PartialSignature) -> bool {
        partial.index == self.index && self.key.verify(message, &partial.signature)
    }

    pub fn verify_hashed(&self, message: &HashedMessage, partial: &PartialSignature) -> bool {
        partial.index == self.index && self.key.verify_hashed(message, &partial.signature)
    }
}

/// A signature by one share, tagged with the share index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialSignature {
    pub index: u64,
    pub signature: Signature,
}

impl PartialSignature {
    /// Parses a partial that arrived from outside; rejects invalid points with the index named.
    pub fn from_bytes(index: u64, bytes: &[u8]) -> Result<Self, ThresholdError> {
        if index == 0 {
            return Err(ThresholdError::ZeroIndex);
        }
        let signature = Signature::from_bytes(bytes)
            .map_err(|source| ThresholdError::InvalidPoint { index, source })?;
        Ok(Self { index, signature })
    }
}

/// Splits `secret` into `total` shares, any `threshold` of which recombine it.
pub fn split(secret: &SecretKey, params: ThresholdParams) -> Vec<SecretShare> {
    loop {
        let mut coefficients = vec![Scalar::from_secret_key(secret)];
        coefficients.extend((1..params.threshold).map(|_| Scalar::random()));
        let shares: Option<Vec<SecretShare>> = (1..=params.total as u64)
            .map(|index| {
                let x = Scalar::from_u64(index);
                // Horner's rule from the highest coefficient down.
                let value = coefficients
                    .iter()
                    .rev()
                    .fold(Scalar::zero(), |acc, c| acc.mul(&x).add(c));
                // A zero share (probability ~ n / 2^255) cannot be a key; draw again.
                value
                    .to_secret_key()
                    .ok()
                    .map(|secret| SecretShare { index, secret })
            })
            .collect();
        if let Some(shares) = shares {
            return shares;
        }
    }
}

/// Lagrange coefficients at x = 0 for the given distinct non-zero indices.
fn lagrange_at_zero(indices: &[u64]) -> Vec<Scalar> {
    indices
        .iter()
        .map(|&i| {
            let xi = Scalar::from_u64(i);
            let mut numerator = Scalar::from_u64(1);
            let mut denominator = Scalar::from_u64(1);
            for &j in indices.iter().filter(|&&j| j != i) {
                let xj = Scalar::from_u64(j);
                numerator = numerator.mul(&xj);
                denominator = denominator.mul(&xj.sub(&xi));
            }
            // Indices are distinct, so the denominator is non-zero.
            let inverse = denominator.inverse().unwrap_or_else(Scalar::zero);
            numerator.mul(&inverse)
        })
        .collect()
}

fn concat_le_bytes(scalars: &[Scalar]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(32 * scalars.len()));
    for s in scalars {
        bytes.extend_from_slice(s.to_le_bytes().as_ref());
    }
    bytes
}

/// Combines at least `t` partial signatures into the validator's signature.
///
/// Any `t` valid partials give the same result; this does not verify them, so
/// callers verify each partial first (or use [`combine_verified`]).
pub fn combine(
    partials: &[PartialSignature],
    params: ThresholdParams,
) -> Result<Signature, ThresholdError> {
    let (chosen, weights) = params.interpolate(partials, |p| p.index)?;
    // On this thread, in one pass over the partials (see `multi_mult`).
    // blst's multi-point `mult` hands fewer than 32 points to its thread
    // pool, one point per worker, behind a barrier: for the 3 to 7 points
    // of a combination that hand-off cost more than it saved (a node
    // combines hundreds of signatures a slot, spread over its cores by the
    // caller).
    let points: Vec<blst::blst_p2> = chosen
        .iter()
        .map(|&p| {
            let affine: &blst::blst_p2_affine = (&partials[p].signature.0).into();
            let mut point = blst::blst_p2::default();
            // SAFETY: a valid affine point in, its projective form out.
            unsafe { blst::blst_p2_from_affine(&mut point, affine) };
            point
        })
        .collect();
    let scalars: Vec<[u8; 32]> = weights.iter().map(|w| *w.to_le_bytes()).collect();
    let sum = crate::multi_mult::multi_mult_vartime(&points, &scalars);
    Ok(Signature(min_pk::Signature::from(sum_to_affine(&sum))))
}

fn sum_to_affine(point: &blst::blst_p2) -> blst::blst_p2_affine {
    let mut affine = blst::blst_p2_affine::default();
    // SAFETY: valid projective point in, affine out.
    unsafe { blst::blst_p2_to_affine(&mut affine, point) };
    affine
}

/// Combines and checks the result against the validator key before it may leave the node.
pub fn combine_verified(
    partials: &[PartialSignature],
    params: ThresholdParams,
    validator_key: &PublicKey,
    message: &HashedMessage,
) -> Result<Signature, ThresholdError> {
    let signature = combine(partials, params)?;
    if validator_key.verify_hashed(message, &signature) {
        Ok(signature)
    } else {
        Err(ThresholdError::CombinedSignatureInvalid)
    }
}

/// Interpolates the validator public key from `t` public shares.
pub fn combine_public_shares(
    shares: &[PublicShare],
    params: ThresholdParams,
) -> Result<PublicKey, ThresholdError> {
    let (chosen, weights) = params.interpolate(shares, |s| s.index)?;
    let points: Vec<min_pk::PublicKey> = chosen.iter().map(|&p| shares[p].key.0).collect();
    let combined = points.as_slice().mult(&concat_le_bytes(&weights), 255);
    Ok(PublicKey(combined.to_public_key()))
}

/// Rebuilds the full secret key from `t` shares and checks it against the
/// validator public key (used to leave a cluster for a single validator).
pub fn combine_secret_shares(
    shares: &[SecretShare],
    params: ThresholdParams,
    expected: &PublicKey,
) -> Result<SecretKey, ThresholdError> {
    let (chosen, coefficients) = params.interpolate(shares, |s| s.index)?;
    let secret = chosen
        .iter()
        .zip(&coefficients)
        .fold(Scalar::zero(), |acc, (&p, lambda)| {
            acc.add(&Scalar::from_secret_key(&shares[p].secret).mul(lambda))
        });
    let key = secret
        .to_secret_key()
        .map_err(|_| ThresholdError::CombinedKeyMismatch)?;
    if key.public_key() == *expected {
        Ok(key)
    } else {
        Err(ThresholdError::CombinedKeyMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(t: usize, n: usize) -> (SecretKey, Vec<SecretShare>, ThresholdParams) {
        let params = ThresholdParams::new(t, n).unwrap();
        let sk = SecretKey::random();
        let shares = split(&sk, params);
        (sk, shares, params)
    }

    #[test]
    fn rejects_bad_index_sets() {
        let (_, shares, params) = setup(3, 4);
        let msg = b"m";
        let mut partials: Vec<_> = shares.iter().map(|s| s.sign(msg)).collect();
        assert_eq!(
            combine(&partials[..2], params),
            Err(ThresholdError::NotEnoughShares { got: 2, need: 3 })
        );
        let dup = vec![partials[0], partials[0], partials[1]];
        assert_eq!(
            combine(&dup, params),
            Err(ThresholdError::DuplicateIndex(1))
        );
        partials[3].index = 0;
        assert_eq!(combine(&partials, params), Err(ThresholdError::ZeroIndex));
        partials[3].index = 5;
        assert_eq!(
            combine(&partials, params),
            Err(ThresholdError::IndexOutOfRange { index: 5, total: 4 })
        );
        assert!(ThresholdParams::new(0, 4).is_err());
        assert!(ThresholdParams::new(5, 4).is_err());
    }

    #[test]
    fn wrong_partial_gives_invalid_combination() {
        let (sk, shares, params) = setup(3, 4);
        let msg = b"block root";
        let hashed = HashedMessage::new(msg);
        let mut partials: Vec<_> = shares.iter().take(3).map(|s| s.sign(msg)).collect();
        partials[1].signature = shares[1].secret.sign(b"other");
        assert_eq!(
            combine_verified(&partials, params, &sk.public_key(), &hashed),
            Err(ThresholdError::CombinedSignatureInvalid)
        );
    }

    #[test]
    fn public_and_secret_recombination() {
        let (sk, shares, params) = setup(5, 7);
        let publics: Vec<_> = shares.iter().map(|s| s.public_share()).collect();
        assert_eq!(
            combine_public_shares(&publics[2..], params).unwrap(),
            sk.public_key()
        );
        let rebuilt = combine_secret_shares(&shares[1..6], params, &sk.public_key()).unwrap();
        assert_eq!(rebuilt.to_bytes(), sk.to_bytes());
        let other = SecretKey::random().public_key();
        assert_eq!(
            combine_secret_shares(&shares[1..6], params, &other).unwrap_err(),
            ThresholdError::CombinedKeyMismatch
        );
    }

    #[test]
    fn partial_from_bytes_names_the_index() {
        let mut inf = [0u8; 96];
        inf[0] = 0xc0;
        assert_eq!(
            PartialSignature::from_bytes(3, &inf),
            Err(ThresholdError::InvalidPoint {
                index: 3,
                source: BlsError::Infinity
            })
        );
        assert_eq!(
            PartialSignature::from_bytes(0, &inf),
            Err(ThresholdError::ZeroIndex)
        );
    }
}
