//! Cryptography for the distributed validator: BLS on blst, threshold
//! splitting and combination, batch verification, EIP-2335 keystores and the
//! interop keys of dev chains.

pub mod batch;
pub mod bls;
pub mod dkg;
pub mod interop;
pub mod keystore;
mod multi_mult;
pub mod parallel;
mod scalar;
pub mod threshold;

pub use batch::{
    batch_verify, batch_verify_messages, batch_verify_messages_parallel, find_invalid,
};
pub use bls::{BlsError, HashedMessage, PublicKey, SecretKey, Signature};
pub use interop::interop_secret_key;
pub use keystore::{KdfChoice, Keystore, KeystoreError, KeystoreFileError};
pub use parallel::par_map;
pub use threshold::{
    combine, combine_public_shares, combine_secret_shares, combine_verified, split,
    PartialSignature, PublicShare, SecretShare, ThresholdError, ThresholdParams,
};
