//! BLS12-381 signatures on blst, in the Ethereum ciphersuite (public keys in
//! G1, signatures in G2, proof-of-possession DST).
//!
//! Keys and signatures that come from bytes are validated when they are built
//! (on the curve, in the subgroup, not the point at infinity), so a value of
//! these types is always usable. Secret keys zeroize on drop and never print.

use blst::min_pk;
use blst::BLST_ERROR;
use std::fmt;

/// Domain separation tag of the Ethereum proof-of-possession ciphersuite.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
pub const PUBLIC_KEY_LEN: usize = 48;
pub const SIGNATURE_LEN: usize = 96;
pub const SECRET_KEY_LEN: usize = 32;

/// Why bytes are not a usable key or signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlsError {
    #[error("wrong length: expected {expected} bytes, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("not a valid point encoding")]
    BadEncoding,
    #[error("point is not on the curve")]
    NotOnCurve,
    #[error("point is not in the prime-order subgroup")]
    NotInSubgroup,
    #[error("point at infinity is not accepted")]
    Infinity,
    #[error("secret key is zero or not below the group order")]
    InvalidSecretKey,
}

impl From<BLST_ERROR> for BlsError {
    fn from(e: BLST_ERROR) -> Self {
        match e {
            BLST_ERROR::BLST_POINT_NOT_ON_CURVE => BlsError::NotOnCurve,
            BLST_ERROR::BLST_POINT_NOT_IN_GROUP => BlsError::NotInSubgroup,
            BLST_ERROR::BLST_PK_IS_INFINITY => BlsError::Infinity,
            _ => BlsError::BadEncoding,
        }
    }
}

fn check_len(bytes: &[u8], expected: usize) -> Result<(), BlsError> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(BlsError::WrongLength {
            expected,
            got: bytes.len(),
        })
    }
}

/// A BLS secret key. Zeroized on drop (blst does it); Debug never shows it.
#[derive(Clone)]
pub struct SecretKey(pub(crate) min_pk::SecretKey);

impl SecretKey {
    /// From the 32-byte big-endian encoding; rejects zero and values ≥ r.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        check_len(bytes, SECRET_KEY_LEN)?;
        min_pk::SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| BlsError::InvalidSecretKey)
    }

    /// A fresh key from the operating system's randomness (EIP-2333 KeyGen over 32 random bytes).
    pub fn random() -> Self {
        let mut ikm = zeroize::Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, ikm.as_mut());
        // key_gen only fails for IKM shorter than 32 bytes.
        Self(min_pk::SecretKey::key_gen(ikm.as_ref(), &[]).expect("32-byte IKM is accepted"))
    }

    /// The big-endian bytes, in a buffer that zeroizes itself.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.0.to_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message, DST, &[]))
    }

    /// Signs a message hashed once with [`HashedMessage::new`]: one G2
    /// multiplication instead of hash-then-multiply per key.
    pub fn sign_hashed(&self, message: &HashedMessage) -> Signature {
        let mut out = blst::blst_p2::default();
        let mut affine = blst::blst_p2_affine::default();
        let scalar: &blst::blst_scalar = (&self.0).into();
        // SAFETY: all pointers reference live, initialised values of the expected types.
        unsafe {
            blst::blst_sign_pk_in_g1(&mut out, &message.point, scalar);
            blst::blst_p2_to_affine(&mut affine, &out);
        }
        Signature(min_pk::Signature::from(affine))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, pubkey {})", self.public_key())
    }
}

/// A validated public key (in G1's subgroup, not infinity).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub(crate) min_pk::PublicKey);

impl PublicKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        check_len(bytes, PUBLIC_KEY_LEN)?;
        Ok(Self(min_pk::PublicKey::key_validate(bytes)?))
    }

    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.to_bytes()))
    }

    /// Verifies a signature over `message` (hashes the message).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        signature.0.verify(true, message, DST, &[], &self.0, false) == BLST_ERROR::BLST_SUCCESS
    }

    /// Verifies against a message hashed once, with one two-pairing check.
    pub fn verify_hashed(&self, message: &HashedMessage, signature: &Signature) -> bool {
        let pk: &blst::blst_p1_affine = (&self.0).into();
        let sig: &blst::blst_p2_affine = (&signature.0).into();
        pairing_check(pk, &message.affine(), sig)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state)
    }
}

/// A signature in G2's subgroup. Bytes that decode to the point at infinity
/// are refused by [`Signature::from_bytes`]: no honest signer produces one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(crate) min_pk::Signature);

impl Signature {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlsError> {
        check_len(bytes, SIGNATURE_LEN)?;
        Ok(Self(min_pk::Signature::sig_validate(bytes, true)?))
    }

    /// Like [`Signature::from_bytes`] but accepts the point at infinity, which
    /// is a legal input to aggregation (an empty aggregate), never a partial.
    pub fn from_bytes_allowing_infinity(bytes: &[u8]) -> Result<Self, BlsError> {
        check_len(bytes, SIGNATURE_LEN)?;
        Ok(Self(min_pk::Signature::sig_validate(bytes, false)?))
    }

    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.to_bytes()))
    }

    /// Aggregates signatures (sum in G2), as for aggregate attestations.
    pub fn aggregate(signatures: &[Signature]) -> Option<Signature> {
        if signatures.is_empty() {
            return None;
        }
        let refs: Vec<&min_pk::Signature> = signatures.iter().map(|s| &s.0).collect();
        min_pk::AggregateSignature::aggregate(&refs, false)
            .ok()
            .map(|a| Signature(a.to_signature()))
    }

    /// `FastAggregateVerify`: many keys, one message.
    pub fn fast_aggregate_verify(&self, message: &[u8], public_keys: &[PublicKey]) -> bool {
        let refs: Vec<&min_pk::PublicKey> = public_keys.iter().map(|p| &p.0).collect();
        !refs.is_empty()
            && self.0.fast_aggregate_verify(true, message, DST, &refs) == BLST_ERROR::BLST_SUCCESS
    }

    /// `AggregateVerify`: one message per key.
    pub fn aggregate_verify(&self, messages: &[&[u8]], public_keys: &[PublicKey]) -> bool {
        let refs: Vec<&min_pk::PublicKey> = public_keys.iter().map(|p| &p.0).collect();
        !refs.is_empty()
            && messages.len() == refs.len()
            && self.0.aggregate_verify(true, messages, DST, &refs, false)
                == BLST_ERROR::BLST_SUCCESS
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A message hashed to G2 once, to sign or verify it under many keys.
#[derive(Clone, Copy)]
pub struct HashedMessage {
    pub(crate) point: blst::blst_p2,
}

impl HashedMessage {
    pub fn new(message: &[u8]) -> Self {
        let mut point = blst::blst_p2::default();
        // SAFETY: pointers and lengths come from live slices; `point` is a valid output.
        unsafe {
            blst::blst_hash_to_g2(
                &mut point,
                message.as_ptr(),
                message.len(),
                DST.as_ptr(),
                DST.len(),
                std::ptr::null(),
                0,
            );
        }
        Self { point }
    }

    pub(crate) fn affine(&self) -> blst::blst_p2_affine {
        let mut affine = blst::blst_p2_affine::default();
        // SAFETY: both point to valid values of the expected types.
        unsafe { blst::blst_p2_to_affine(&mut affine, &self.point) };
        affine
    }
}

/// `e(pk, H(m)) == e(g1, sig)`, as one product of two Miller loops and one final exponentiation.
pub(crate) fn pairing_check(
    public_key: &blst::blst_p1_affine,
    message: &blst::blst_p2_affine,
    signature: &blst::blst_p2_affine,
) -> bool {
    // SAFETY: blst returns a pointer to its static generator.
    let mut neg_g1 = unsafe { *blst::blst_p1_generator() };
    let mut neg_g1_affine = blst::blst_p1_affine::default();
    let mut lhs = blst::blst_fp12::default();
    let mut rhs = blst::blst_fp12::default();
    let mut product = blst::blst_fp12::default();
    let mut result = blst::blst_fp12::default();
    // SAFETY: every pointer references a live, initialised value of the expected type.
    unsafe {
        blst::blst_p1_cneg(&mut neg_g1, true);
        blst::blst_p1_to_affine(&mut neg_g1_affine, &neg_g1);
        blst::blst_miller_loop(&mut lhs, message, public_key);
        blst::blst_miller_loop(&mut rhs, signature, &neg_g1_affine);
        blst::blst_fp12_mul(&mut product, &lhs, &rhs);
        blst::blst_final_exp(&mut result, &product);
        blst::blst_fp12_is_one(&result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_sign_and_verify_match_plain() {
        let sk = SecretKey::random();
        let msg = b"attestation data root";
        let hashed = HashedMessage::new(msg);
        let sig = sk.sign(msg);
        assert_eq!(sig, sk.sign_hashed(&hashed));
        assert!(sk.public_key().verify(msg, &sig));
        assert!(sk.public_key().verify_hashed(&hashed, &sig));
        let other = HashedMessage::new(b"other");
        assert!(!sk.public_key().verify_hashed(&other, &sig));
        assert!(!SecretKey::random()
            .public_key()
            .verify_hashed(&hashed, &sig));
    }

    #[test]
    fn debug_never_shows_secret() {
        let sk = SecretKey::from_bytes(&[0x11; 32]).unwrap();
        let text = format!("{sk:?}");
        assert!(!text.contains("1111"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn rejects_bad_points() {
        let mut inf = [0u8; 96];
        inf[0] = 0xc0;
        assert_eq!(Signature::from_bytes(&inf), Err(BlsError::Infinity));
        let mut pk_inf = [0u8; 48];
        pk_inf[0] = 0xc0;
        assert_eq!(PublicKey::from_bytes(&pk_inf), Err(BlsError::Infinity));
        assert_eq!(
            PublicKey::from_bytes(&[0u8; 47]),
            Err(BlsError::WrongLength {
                expected: 48,
                got: 47
            })
        );
        assert!(PublicKey::from_bytes(&[0xff; 48]).is_err());
        assert_eq!(
            SecretKey::from_bytes(&[0u8; 32]).unwrap_err(),
            BlsError::InvalidSecretKey
        );
    }
}
