//! Share pubkey ↔ validator pubkey, both ways.
//!
//! The validator client holds this node's key shares, so it knows the
//! cluster's validators by their share public keys; the beacon node knows
//! them by the validator public keys. Requests going to the beacon node get
//! share keys replaced by validator keys, responses going back to the client
//! the reverse, wherever a key appears (JSON strings, path segments, query
//! values, SSZ bodies). Keys of validators outside the cluster pass unchanged.
//!
//! SSZ: a BLS public key is a fixed 48-byte field, so mapping one key to
//! another keeps every offset and length of the encoding; replacing each
//! occurrence of a known key's bytes is decode-map-re-encode for every SSZ
//! type at once. (48 bytes equal to a cluster key by chance elsewhere in a
//! body has probability 2^-384 per position.)

use dv_types::PublicKeyBytes;
use serde_json::Value;
use std::collections::HashMap;

pub struct Identity {
    to_validator: HashMap<String, String>,
    to_share: HashMap<String, String>,
    validator_of: HashMap<PublicKeyBytes, PublicKeyBytes>,
    ssz_to_validator: SszKeyMap,
    ssz_to_share: SszKeyMap,
}

/// Key bytes to key bytes, found by their first 8 bytes (one hash lookup
/// per position of the body scanned).
#[derive(Default)]
struct SszKeyMap {
    by_prefix: HashMap<u64, Vec<KeyPair>>,
}

/// A key's bytes and the bytes of the key it maps to.
type KeyPair = ([u8; 48], [u8; 48]);

impl SszKeyMap {
    fn insert(&mut self, from: &PublicKeyBytes, to: &PublicKeyBytes) {
        self.by_prefix
            .entry(prefix(&from.0))
            .or_default()
            .push((from.0, to.0));
    }

    /// Replaces every known key in `bytes`, in place; returns how many.
    fn rewrite(&self, bytes: &mut [u8]) -> usize {
        let mut replaced = 0;
        let mut at = 0;
        while at + 48 <= bytes.len() {
            let window = &bytes[at..at + 48];
            let found = self
                .by_prefix
                .get(&prefix(window))
                .and_then(|keys| keys.iter().find(|(from, _)| from[..] == *window));
            match found {
                Some((_, to)) => {
                    bytes[at..at + 48].copy_from_slice(to);
                    replaced += 1;
                    at += 48;
                }
                None => at += 1,
            }
        }
        replaced
    }
}

fn prefix(bytes: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}

fn hex(key: &PublicKeyBytes) -> String {
    format!("0x{}", ::hex::encode(key.0))
}

fn rewrite(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::String(s) => {
            if let Some(other) = map.get(&s.to_ascii_lowercase()) {
                *s = other.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, map)),
        Value::Object(fields) => fields.values_mut().for_each(|v| rewrite(v, map)),
        _ => {}
    }
}

/// Replaces every `0x`-prefixed 48-byte hex token in `text` that `map` knows.
fn rewrite_text(text: &str, map: &HashMap<String, String>) -> String {
    const KEY_HEX_LEN: usize = 2 + 96;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("0x") {
        out.push_str(&rest[..at]);
        let candidate = rest.get(at..at + KEY_HEX_LEN);
        match candidate.and_then(|c| map.get(&c.to_ascii_lowercase())) {
            Some(other) => {
                out.push_str(other);
                rest = &rest[at + KEY_HEX_LEN..];
            }
            None => {
                out.push_str("0x");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

impl Identity {
    /// `pairs`: (validator public key, this node's share public key).
    pub fn new(pairs: impl IntoIterator<Item = (PublicKeyBytes, PublicKeyBytes)>) -> Self {
        let mut identity = Self {
            to_validator: HashMap::new(),
            to_share: HashMap::new(),
            validator_of: HashMap::new(),
            ssz_to_validator: SszKeyMap::default(),
            ssz_to_share: SszKeyMap::default(),
        };
        for (validator, share) in pairs {
            identity.to_validator.insert(hex(&share), hex(&validator));
            identity.to_share.insert(hex(&validator), hex(&share));
            identity.validator_of.insert(share, validator);
            identity.ssz_to_validator.insert(&share, &validator);
            identity.ssz_to_share.insert(&validator, &share);
        }
        identity
    }

    /// The cluster validator a share key belongs to.
    pub fn validator_of_share(&self, share: &PublicKeyBytes) -> Option<PublicKeyBytes> {
        self.validator_of.get(share).copied()
    }

    /// A client request's JSON body, made ready for the beacon node.
    pub fn to_beacon_json(&self, value: &mut Value) {
        rewrite(value, &self.to_validator);
    }

    /// A beacon node's JSON answer, made ready for the client.
    pub fn to_client_json(&self, value: &mut Value) {
        rewrite(value, &self.to_share);
    }

    /// A client request's SSZ body, made ready for the beacon node.
    pub fn to_beacon_ssz(&self, bytes: &mut [u8]) -> usize {
        self.ssz_to_validator.rewrite(bytes)
    }

    /// A beacon node's SSZ answer, made ready for the client.
    pub fn to_client_ssz(&self, bytes: &mut [u8]) -> usize {
        self.ssz_to_share.rewrite(bytes)
    }

    /// A client's path and query, made ready for the beacon node.
    pub fn to_beacon_text(&self, path_and_query: &str) -> String {
        rewrite_text(path_and_query, &self.to_validator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(b: u8) -> PublicKeyBytes {
        PublicKeyBytes([b; 48])
    }

    #[test]
    fn maps_both_ways_everywhere_a_key_appears_and_leaves_strangers_alone() {
        let identity = Identity::new([(key(1), key(0xa1)), (key(2), key(0xa2))]);
        let (v1, s1, s2, stranger) = (hex(&key(1)), hex(&key(0xa1)), hex(&key(0xa2)), hex(&key(9)));

        let mut request =
            json!({"ids": [s1, "17", stranger, s2.to_uppercase().replace("0X", "0x")]});
        identity.to_beacon_json(&mut request);
        assert_eq!(request["ids"][0], v1);
        assert_eq!(request["ids"][1], "17");
        assert_eq!(request["ids"][2], stranger);
        assert_eq!(request["ids"][3], hex(&key(2)), "hex case does not matter");

        let mut duties =
            json!({"data": [{"pubkey": v1, "validator_index": "3"}, {"pubkey": stranger}]});
        identity.to_client_json(&mut duties);
        assert_eq!(duties["data"][0]["pubkey"], s1);
        assert_eq!(duties["data"][1]["pubkey"], stranger);

        let path = format!("/eth/v1/beacon/states/head/validators?id={s1},{stranger},0x12");
        assert_eq!(
            identity.to_beacon_text(&path),
            format!("/eth/v1/beacon/states/head/validators?id={v1},{stranger},0x12")
        );
        assert_eq!(
            identity.to_beacon_text("/x/0x"),
            "/x/0x",
            "short tokens pass"
        );
        assert_eq!(identity.validator_of_share(&key(0xa2)), Some(key(2)));
        assert_eq!(identity.validator_of_share(&key(2)), None);
    }

    #[test]
    fn ssz_keys_are_mapped_at_any_offset_and_nothing_else_changes() {
        use dv_types::ssz::{self, Decode, Encode};
        // Real SSZ: a list of (pubkey, index) containers, as a duties answer
        // carries them, at offsets that are not multiples of 48.
        #[derive(Debug, PartialEq, ssz_derive::Encode, ssz_derive::Decode)]
        struct Duty {
            index: u8,
            pubkey: PublicKeyBytes,
            slot: u64,
        }
        // Real public keys (random-looking bytes, as every BLS key is).
        let real = || PublicKeyBytes(dv_crypto::SecretKey::random().public_key().to_bytes());
        let (v1, v2, s1, s2, stranger) = (real(), real(), real(), real(), real());
        let mk = |pubkey: PublicKeyBytes, index: u8| Duty {
            index,
            pubkey,
            slot: 7,
        };
        let identity = Identity::new([(v1, s1), (v2, s2)]);
        let answer = vec![mk(v1, 0), mk(stranger, 1), mk(v2, 2)];
        let mut bytes = answer.as_ssz_bytes();
        assert_eq!(identity.to_client_ssz(&mut bytes), 2);
        let mapped = Vec::<Duty>::from_ssz_bytes(&bytes).unwrap();
        assert_eq!(mapped, vec![mk(s1, 0), mk(stranger, 1), mk(s2, 2)]);
        assert_eq!(identity.to_beacon_ssz(&mut bytes), 2);
        assert_eq!(bytes, answer.as_ssz_bytes(), "the way back restores it");
        let mut short = vec![1u8; 47];
        assert_eq!(identity.to_client_ssz(&mut short), 0);
    }
}
