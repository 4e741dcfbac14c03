//! The arithmetic of a Pedersen (joint-Feldman) distributed key generation on
//! BLS12-381: each dealer's secret polynomial and its public commitments,
//! the check of a received share against them, the sum of the qualified
//! dealers' contributions, and the pairwise encryption of shares with a
//! proof that lets everyone check a complaint.
//!
//! Shares are encrypted to each recipient under a key derived from a
//! Diffie-Hellman point on G1 between the dealer's and the recipient's
//! ceremony keys. A recipient whose share fails its check reveals that point
//! with a Chaum-Pedersen proof that it is the right one, so every operator
//! can decrypt the disputed share and judge the dealer the same way.

use crate::bls::{BlsError, PublicKey, SecretKey, Signature};
use crate::scalar::Scalar;
use blst::{blst_p1, blst_p1_affine};
use sha2::{Digest, Sha256};

/// A dealer's secret polynomial for one validator: `t` coefficients, the
/// first being the dealer's contribution to the validator key. Zeroized on drop.
pub struct Polynomial {
    coefficients: Vec<Scalar>,
}

impl Polynomial {
    /// A random polynomial of degree `threshold - 1` whose values at
    /// `1..=total` and at 0 are all non-zero (a zero value cannot be a key;
    /// the chance of one is ~ total / 2^255, and then it draws again).
    pub fn random(threshold: usize, total: usize) -> Self {
        loop {
            let polynomial = Self {
                coefficients: (0..threshold.max(1)).map(|_| Scalar::random()).collect(),
            };
            let usable = !polynomial.coefficients[0].is_zero()
                && (1..=total as u64).all(|index| !polynomial.value_at(index).is_zero());
            if usable {
                return polynomial;
            }
        }
    }

    fn value_at(&self, index: u64) -> Scalar {
        let x = Scalar::from_u64(index);
        self.coefficients
            .iter()
            .rev()
            .fold(Scalar::zero(), |acc, c| acc.mul(&x).add(c))
    }

    /// The share of operator `index` (1-based).
    pub fn share(&self, index: u64) -> Result<SecretKey, BlsError> {
        self.value_at(index).to_secret_key()
    }

    /// The constant term as a key: this dealer's part of the validator key.
    pub fn constant(&self) -> Result<SecretKey, BlsError> {
        self.coefficients[0].to_secret_key()
    }

    /// `a_l · G1` for every coefficient: what everyone checks shares against.
    pub fn commitments(&self) -> Result<Commitments, BlsError> {
        self.coefficients
            .iter()
            .map(|c| c.to_secret_key().map(|sk| sk.public_key()))
            .collect::<Result<_, _>>()
            .map(Commitments)
    }
}

/// Feldman commitments to a polynomial: `C_l = a_l · G1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commitments(pub Vec<PublicKey>);

impl Commitments {
    /// `Σ C_l · index^l`: the public key of the share at `index`.
    pub fn evaluate(&self, index: u64) -> Result<PublicKey, BlsError> {
        let mut sum = blst_p1::default();
        let x = Scalar::from_u64(index);
        let mut power = Scalar::from_u64(1);
        for (l, commitment) in self.0.iter().enumerate() {
            let point = projective(commitment);
            let term = if l == 0 {
                point
            } else {
                power = power.mul(&x);
                let le = power.to_le_bytes();
                // index^l is small: multiply by its significant bits only.
                let bits = le
                    .iter()
                    .rposition(|b| *b != 0)
                    .map_or(0, |top| 8 * (top + 1));
                multiply(&point, le.as_ref(), bits)
            };
            // SAFETY: valid projective points in and out.
            unsafe { blst::blst_p1_add_or_double(&mut sum, &sum, &term) };
        }
        to_public_key(&sum)
    }

    /// Whether `share` is the value at `index` of the committed polynomial.
    pub fn verify_share(&self, index: u64, share: &SecretKey) -> bool {
        self.evaluate(index)
            .is_ok_and(|expected| expected == share.public_key())
    }

    /// Coefficient-wise sum: the commitments of the sum of the polynomials.
    pub fn sum(all: &[&Commitments]) -> Result<Commitments, BlsError> {
        let degree = all.first().map_or(0, |c| c.0.len());
        if all.iter().any(|c| c.0.len() != degree) || degree == 0 {
            return Err(BlsError::BadEncoding);
        }
        (0..degree)
            .map(|l| {
                let mut sum = blst_p1::default();
                for c in all {
                    let point = projective(&c.0[l]);
                    // SAFETY: valid projective points in and out.
                    unsafe { blst::blst_p1_add_or_double(&mut sum, &sum, &point) };
                }
                to_public_key(&sum)
            })
            .collect::<Result<_, _>>()
            .map(Commitments)
    }
}

/// The sum of secret shares (mod r): an operator's share of the validator
/// key is the sum of the qualified dealers' shares to it.
pub fn sum_secret_keys(keys: &[&SecretKey]) -> Result<SecretKey, BlsError> {
    keys.iter()
        .fold(Scalar::zero(), |acc, key| {
            acc.add(&Scalar::from_secret_key(key))
        })
        .to_secret_key()
}

fn projective(key: &PublicKey) -> blst_p1 {
    let affine: &blst_p1_affine = (&key.0).into();
    let mut point = blst_p1::default();
    // SAFETY: a valid affine point in, its projective form out.
    unsafe { blst::blst_p1_from_affine(&mut point, affine) };
    point
}

fn multiply(point: &blst_p1, scalar_le: &[u8], bits: usize) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: `scalar_le` holds at least `bits` bits; valid point in and out.
    unsafe { blst::blst_p1_mult(&mut out, point, scalar_le.as_ptr(), bits) };
    out
}

/// A projective point computed here from subgroup points (so in the
/// subgroup itself) as a public key; infinity is refused. Skips the
/// decompression and subgroup check a received key needs.
fn to_public_key(point: &blst_p1) -> Result<PublicKey, BlsError> {
    // SAFETY: a valid projective point.
    if unsafe { blst::blst_p1_is_inf(point) } {
        return Err(BlsError::Infinity);
    }
    let mut affine = blst_p1_affine::default();
    // SAFETY: valid point in, its affine form out.
    unsafe { blst::blst_p1_to_affine(&mut affine, point) };
    Ok(PublicKey(blst::min_pk::PublicKey::from(affine)))
}

/// The Diffie-Hellman point `mine · theirs` between two ceremony keys.
pub fn shared_point(mine: &SecretKey, theirs: &PublicKey) -> Result<PublicKey, BlsError> {
    let scalar = Scalar::from_secret_key(mine).to_le_bytes();
    to_public_key(&multiply(&projective(theirs), scalar.as_ref(), 255))
}

/// The 32-byte pad that hides the share of validator `validator` sent by
/// `dealer` to `recipient` (both 1-based) under their shared point, bound
/// to the ceremony by `context` (the definition hash).
fn share_pad(
    shared: &PublicKey,
    context: &[u8],
    dealer: u64,
    recipient: u64,
    validator: u64,
) -> zeroize::Zeroizing<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(b"dv-dkg/share-pad/v1");
    hasher.update(context);
    hasher.update(shared.to_bytes());
    hasher.update(dealer.to_be_bytes());
    hasher.update(recipient.to_be_bytes());
    hasher.update(validator.to_be_bytes());
    zeroize::Zeroizing::new(hasher.finalize().into())
}

/// Where an encrypted share goes: the ceremony, the two operators and the validator.
#[derive(Debug, Clone, Copy)]
pub struct ShareAddress<'a> {
    pub context: &'a [u8],
    pub dealer: u64,
    pub recipient: u64,
    pub validator: u64,
}

/// Encrypts a share (a one-time pad: the pad is unique to the ceremony,
/// the pair of operators and the validator, and each ceremony key is fresh).
pub fn encrypt_share(share: &SecretKey, shared: &PublicKey, to: ShareAddress<'_>) -> [u8; 32] {
    let pad = share_pad(shared, to.context, to.dealer, to.recipient, to.validator);
    let plain = share.to_bytes();
    std::array::from_fn(|i| plain[i] ^ pad[i])
}

/// Decrypts a share; an error if the result is not a valid key.
pub fn decrypt_share(
    ciphertext: &[u8; 32],
    shared: &PublicKey,
    from: ShareAddress<'_>,
) -> Result<SecretKey, BlsError> {
    let pad = share_pad(
        shared,
        from.context,
        from.dealer,
        from.recipient,
        from.validator,
    );
    let plain =
        zeroize::Zeroizing::new(std::array::from_fn::<u8, 32, _>(|i| ciphertext[i] ^ pad[i]));
    SecretKey::from_bytes(plain.as_ref())
}

/// A Chaum-Pedersen proof that `shared = x · other` for the `x` with
/// `own = x · G1`: the recipient's proof that the point it reveals in a
/// complaint is the one the dealer should have used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPointProof {
    /// The challenge and the response, 32-byte big-endian scalars.
    pub challenge: [u8; 32],
    pub response: [u8; 32],
}

fn challenge(
    own: &PublicKey,
    other: &PublicKey,
    shared: &PublicKey,
    a: &PublicKey,
    b: &PublicKey,
) -> Scalar {
    let mut hasher = Sha256::new();
    hasher.update(b"dv-dkg/shared-point-proof/v1");
    for point in [own, other, shared, a, b] {
        hasher.update(point.to_bytes());
    }
    Scalar::from_le_bytes_reduced(&hasher.finalize())
}

fn scalar_from_be(bytes: &[u8; 32]) -> Scalar {
    let mut le = zeroize::Zeroizing::new(*bytes);
    le.reverse();
    Scalar::from_le_bytes_reduced(le.as_ref())
}

fn be_bytes(scalar: &Scalar) -> [u8; 32] {
    let mut bytes = *scalar.to_le_bytes();
    bytes.reverse();
    bytes
}

/// Reveals `mine · other` with its proof.
pub fn prove_shared_point(
    mine: &SecretKey,
    other: &PublicKey,
) -> Result<(PublicKey, SharedPointProof), BlsError> {
    let own = mine.public_key();
    let shared = shared_point(mine, other)?;
    let nonce = Scalar::random();
    let nonce_key = nonce.to_secret_key()?;
    let a = nonce_key.public_key();
    let b = shared_point(&nonce_key, other)?;
    let c = challenge(&own, other, &shared, &a, &b);
    let response = nonce.add(&c.mul(&Scalar::from_secret_key(mine)));
    Ok((
        shared,
        SharedPointProof {
            challenge: be_bytes(&c),
            response: be_bytes(&response),
        },
    ))
}

/// Checks that `shared = x · other` where `own = x · G1`.
pub fn verify_shared_point(
    own: &PublicKey,
    other: &PublicKey,
    shared: &PublicKey,
    proof: &SharedPointProof,
) -> bool {
    let c = scalar_from_be(&proof.challenge);
    let z = scalar_from_be(&proof.response);
    let (z_le, c_le) = (z.to_le_bytes(), c.to_le_bytes());
    // a = z·G - c·own, b = z·other - c·shared
    let generator = {
        // SAFETY: blst returns a pointer to its static generator.
        unsafe { *blst::blst_p1_generator() }
    };
    let combine = |base: &blst_p1, point: &PublicKey| {
        let mut left = multiply(base, z_le.as_ref(), 255);
        let mut right = multiply(&projective(point), c_le.as_ref(), 255);
        // SAFETY: valid points; negation and addition in place.
        unsafe {
            blst::blst_p1_cneg(&mut right, true);
            blst::blst_p1_add_or_double(&mut left, &left, &right);
        }
        to_public_key(&left)
    };
    let (Ok(a), Ok(b)) = (
        combine(&generator, own),
        combine(&projective(other), shared),
    ) else {
        return false;
    };
    challenge(own, other, shared, &a, &b) == c
}

/// A dealer's proof that it knows its constant term: the constant term's
/// signature over the ceremony context, verified under `C_0`. Keeps a
/// dealer from choosing its commitment after seeing the others'.
pub fn sign_possession(polynomial: &Polynomial, context: &[u8]) -> Result<Signature, BlsError> {
    Ok(polynomial.constant()?.sign(context))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        combine_public_shares, combine_secret_shares, PublicShare, SecretShare, ThresholdParams,
    };

    #[test]
    fn joint_shares_combine_to_the_sum_of_constants() {
        let (t, n) = (3usize, 4usize);
        let dealers: Vec<Polynomial> = (0..n).map(|_| Polynomial::random(t, n)).collect();
        let commitments: Vec<Commitments> =
            dealers.iter().map(|p| p.commitments().unwrap()).collect();
        for (p, c) in dealers.iter().zip(&commitments) {
            for index in 1..=n as u64 {
                assert!(c.verify_share(index, &p.share(index).unwrap()));
            }
            // A share for another index fails.
            assert!(!c.verify_share(1, &p.share(2).unwrap()));
        }
        let joint = Commitments::sum(&commitments.iter().collect::<Vec<_>>()).unwrap();
        let shares: Vec<SecretShare> = (1..=n as u64)
            .map(|index| {
                let parts: Vec<SecretKey> =
                    dealers.iter().map(|p| p.share(index).unwrap()).collect();
                SecretShare {
                    index,
                    secret: sum_secret_keys(&parts.iter().collect::<Vec<_>>()).unwrap(),
                }
            })
            .collect();
        let validator_key = joint.0[0];
        let params = ThresholdParams::new(t, n).unwrap();
        for share in &shares {
            assert_eq!(
                joint.evaluate(share.index).unwrap(),
                share.secret.public_key()
            );
        }
        let public: Vec<PublicShare> = shares.iter().map(|s| s.public_share()).collect();
        assert_eq!(
            combine_public_shares(&public[1..], params).unwrap(),
            validator_key
        );
        combine_secret_shares(&shares[..t], params, &validator_key).unwrap();
    }

    #[test]
    fn shares_round_trip_through_encryption_and_complaints_are_checkable() {
        let dealer = SecretKey::random();
        let recipient = SecretKey::random();
        let shared = shared_point(&dealer, &recipient.public_key()).unwrap();
        assert_eq!(
            shared,
            shared_point(&recipient, &dealer.public_key()).unwrap()
        );
        let share = SecretKey::random();
        let to = ShareAddress {
            context: b"ceremony",
            dealer: 1,
            recipient: 2,
            validator: 7,
        };
        let ciphertext = encrypt_share(&share, &shared, to);
        let back = decrypt_share(&ciphertext, &shared, to).unwrap();
        assert_eq!(back.public_key(), share.public_key());
        let other_validator = ShareAddress { validator: 8, ..to };
        assert!(decrypt_share(&ciphertext, &shared, other_validator)
            .map_or(true, |k| k.public_key() != share.public_key()));

        let (revealed, proof) = prove_shared_point(&recipient, &dealer.public_key()).unwrap();
        assert_eq!(revealed, shared);
        assert!(verify_shared_point(
            &recipient.public_key(),
            &dealer.public_key(),
            &revealed,
            &proof
        ));
        // Another point, or the proof against another key, fails.
        let wrong = SecretKey::random().public_key();
        assert!(!verify_shared_point(
            &recipient.public_key(),
            &dealer.public_key(),
            &wrong,
            &proof
        ));
        assert!(!verify_shared_point(
            &wrong,
            &dealer.public_key(),
            &revealed,
            &proof
        ));
        let mut bent = proof.clone();
        bent.response[31] ^= 1;
        assert!(!verify_shared_point(
            &recipient.public_key(),
            &dealer.public_key(),
            &revealed,
            &bent
        ));
    }

    #[test]
    fn possession_is_verified_under_the_first_commitment() {
        let polynomial = Polynomial::random(3, 4);
        let commitments = polynomial.commitments().unwrap();
        let proof = sign_possession(&polynomial, b"ctx").unwrap();
        assert!(commitments.0[0].verify(b"ctx", &proof));
        assert!(!commitments.0[1].verify(b"ctx", &proof));
    }
}
