//! Arithmetic in the BLS12-381 scalar field (mod r) for Shamir sharing and
//! Lagrange interpolation. Values zeroize on drop: shares are secrets.

use crate::bls::{BlsError, SecretKey};
use blst::{blst_fr, blst_scalar};
use zeroize::Zeroize;

/// An element of the scalar field, in blst's Montgomery form.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Scalar(blst_fr);

impl Scalar {
    pub fn zero() -> Self {
        Self(blst_fr::default())
    }

    pub fn from_u64(value: u64) -> Self {
        let mut out = blst_fr::default();
        let limbs = [value, 0, 0, 0];
        // SAFETY: blst reads four u64 limbs from `limbs`.
        unsafe { blst::blst_fr_from_uint64(&mut out, limbs.as_ptr()) };
        Self(out)
    }

    /// Uniform in the field: 64 random bytes reduced mod r (bias < 2^-256).
    pub fn random() -> Self {
        let mut wide = zeroize::Zeroizing::new([0u8; 64]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, wide.as_mut());
        Self::from_le_bytes_reduced(wide.as_ref())
    }

    /// Interprets little-endian bytes as an integer and reduces it mod r.
    pub fn from_le_bytes_reduced(bytes: &[u8]) -> Self {
        let mut scalar = blst_scalar::default();
        let mut out = blst_fr::default();
        // SAFETY: pointer/length from a live slice; outputs are valid.
        unsafe {
            blst::blst_scalar_from_le_bytes(&mut scalar, bytes.as_ptr(), bytes.len());
            blst::blst_fr_from_scalar(&mut out, &scalar);
        }
        scalar.b.zeroize();
        Self(out)
    }

    pub fn from_secret_key(sk: &SecretKey) -> Self {
        let scalar: &blst_scalar = (&sk.0).into();
        let mut out = blst_fr::default();
        // SAFETY: `scalar` is a valid reduced scalar held by the key.
        unsafe { blst::blst_fr_from_scalar(&mut out, scalar) };
        Self(out)
    }

    /// Canonical little-endian bytes (what blst's multi-scalar multiplication takes).
    pub fn to_le_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        let mut scalar = blst_scalar::default();
        // SAFETY: valid input and output.
        unsafe { blst::blst_scalar_from_fr(&mut scalar, &self.0) };
        let out = zeroize::Zeroizing::new(scalar.b);
        scalar.b.zeroize();
        out
    }

    pub fn is_zero(&self) -> bool {
        *self == Self::zero()
    }

    pub fn to_secret_key(&self) -> Result<SecretKey, BlsError> {
        let mut le = self.to_le_bytes();
        le.reverse();
        SecretKey::from_bytes(le.as_ref())
    }

    pub fn add(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: valid inputs and output.
        unsafe { blst::blst_fr_add(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub fn sub(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: valid inputs and output.
        unsafe { blst::blst_fr_sub(&mut out, &self.0, &other.0) };
        Self(out)
    }

    pub fn mul(&self, other: &Self) -> Self {
        let mut out = blst_fr::default();
        // SAFETY: valid inputs and output.
        unsafe { blst::blst_fr_mul(&mut out, &self.0, &other.0) };
        Self(out)
    }

    /// Multiplicative inverse; `None` for zero.
    pub fn inverse(&self) -> Option<Self> {
        if self.is_zero() {
            return None;
        }
        let mut out = blst_fr::default();
        // SAFETY: valid input and output; input is non-zero.
        unsafe { blst::blst_fr_eucl_inverse(&mut out, &self.0) };
        Some(Self(out))
    }
}

impl std::fmt::Debug for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scalar(<redacted>)")
    }
}

impl Drop for Scalar {
    fn drop(&mut self) {
        self.0.l.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_laws() {
        let a = Scalar::random();
        let b = Scalar::random();
        assert_eq!(a.add(&b).sub(&b), a);
        assert_eq!(a.mul(&a.inverse().unwrap()), Scalar::from_u64(1));
        assert!(Scalar::zero().inverse().is_none());
        assert_eq!(
            Scalar::from_u64(2).mul(&Scalar::from_u64(3)),
            Scalar::from_u64(6)
        );
    }

    #[test]
    fn secret_key_round_trip() {
        let sk = SecretKey::random();
        let back = Scalar::from_secret_key(&sk).to_secret_key().unwrap();
        assert_eq!(sk.public_key(), back.public_key());
        assert!(Scalar::zero().to_secret_key().is_err());
    }
}
