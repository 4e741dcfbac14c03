//! Scalar and fixed-size byte types shared by every container.
//!
//! Fixed-size byte strings are newtypes over `[u8; N]` so that a public key can
//! never be passed where a signature is expected, and so that their Debug and
//! JSON forms are the `0x`-hex the Beacon API uses.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ssz::{Decode, DecodeError, Encode};
use tree_hash::{PackedEncoding, TreeHash, TreeHashType};

pub use alloy_primitives::{Address, B256, U256};

pub type Slot = u64;
pub type Epoch = u64;
pub type CommitteeIndex = u64;
pub type ValidatorIndex = u64;
pub type Gwei = u64;
/// A 32-byte SSZ root.
pub type Root = B256;
pub type Hash256 = B256;
pub type Domain = B256;
pub type Graffiti = B256;
pub type ExecutionAddress = Address;

/// Parses `0x`-prefixed hex (the prefix is required, as in the Beacon API).
pub fn decode_prefixed_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("hex string {s:?} lacks the 0x prefix"))?;
    hex::decode(digits).map_err(|e| format!("invalid hex {s:?}: {e}"))
}

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds from a slice that must be exactly `LEN` bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
                <[u8; $len]>::try_from(bytes).map(Self).map_err(|_| {
                    format!("{} must be {} bytes, got {}", stringify!($name), $len, bytes.len())
                })
            }

            pub fn to_hex(&self) -> String {
                format!("0x{}", hex::encode(self.0))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self([0; $len])
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::from_slice(&decode_prefixed_hex(s)?)
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl Encode for $name {
            fn is_ssz_fixed_len() -> bool {
                true
            }
            fn ssz_fixed_len() -> usize {
                $len
            }
            fn ssz_bytes_len(&self) -> usize {
                $len
            }
            fn ssz_append(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.0)
            }
        }

        impl Decode for $name {
            fn is_ssz_fixed_len() -> bool {
                true
            }
            fn ssz_fixed_len() -> usize {
                $len
            }
            fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
                <[u8; $len]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| DecodeError::InvalidByteLength { len: bytes.len(), expected: $len })
            }
        }

        impl TreeHash for $name {
            fn tree_hash_type() -> TreeHashType {
                TreeHashType::Vector
            }
            fn tree_hash_packed_encoding(&self) -> PackedEncoding {
                unreachable!("a byte vector is never packed")
            }
            fn tree_hash_packing_factor() -> usize {
                unreachable!("a byte vector is never packed")
            }
            fn tree_hash_root(&self) -> tree_hash::Hash256 {
                self.0.tree_hash_root()
            }
        }
    };
}

fixed_bytes!(
    /// A compressed BLS12-381 G1 public key as it travels (not validated here).
    PublicKeyBytes, 48
);
fixed_bytes!(
    /// A compressed BLS12-381 G2 signature as it travels (not validated here).
    SignatureBytes, 96
);
fixed_bytes!(
    /// A KZG commitment or proof (a compressed G1 point).
    KzgCommitment, 48
);
fixed_bytes!(
    /// A 4-byte fork version.
    Version, 4
);
fixed_bytes!(
    /// A 4-byte domain type (`DOMAIN_BEACON_ATTESTER`, ...).
    DomainType, 4
);

impl SignatureBytes {
    /// The compressed point at infinity (`0xc0` followed by zeros): the
    /// "empty" signature used in unsigned templates.
    pub fn infinity() -> Self {
        let mut bytes = [0u8; 96];
        bytes[0] = 0xc0;
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let v: Version = "0x05000001".parse().unwrap();
        assert_eq!(v.0, [5, 0, 0, 1]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"0x05000001\"");
        assert!("05000001".parse::<Version>().is_err());
        assert!("0x050000".parse::<Version>().is_err());
        assert!(serde_json::from_str::<PublicKeyBytes>("\"0x00\"").is_err());
    }

    #[test]
    fn ssz_length_checked() {
        assert!(PublicKeyBytes::from_ssz_bytes(&[0u8; 47]).is_err());
        assert_eq!(
            SignatureBytes::from_ssz_bytes(&[7u8; 96])
                .unwrap()
                .as_ssz_bytes(),
            vec![7u8; 96]
        );
    }
}
