//! The deterministic "interop" validator keys dev chains use:
//! `sk = int_le(sha256(index as 32-byte little-endian)) mod r`.

use crate::bls::SecretKey;
use crate::scalar::Scalar;
use sha2::{Digest, Sha256};

pub fn interop_secret_key(validator_index: u64) -> SecretKey {
    let mut preimage = [0u8; 32];
    preimage[..8].copy_from_slice(&validator_index.to_le_bytes());
    let digest: [u8; 32] = Sha256::digest(preimage).into();
    // A zero key would need sha256 to hit a multiple of r: not a real possibility.
    Scalar::from_le_bytes_reduced(&digest)
        .to_secret_key()
        .expect("interop keys are non-zero")
}
