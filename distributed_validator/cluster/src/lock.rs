//! `cluster-lock.json`: what every node of a cluster agrees on before it runs.
//!
//! The lock lists each validator's public key with all of its public shares,
//! each operator's libp2p identity and address, the threshold and the fork
//! version. `lock_hash` is SHA-256 over the canonical JSON of everything
//! else, so two nodes can compare locks by hash and a hand-edited lock is
//! caught on load.

use dv_crypto::{combine_public_shares, PublicKey, PublicShare, ThresholdParams};
use dv_types::{
    compute_domain, compute_signing_root, Domain, DomainType, ExecutionAddress, PublicKeyBytes,
    Root, SignatureBytes, SignedValidatorRegistration, ValidatorRegistration, Version,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const LOCK_VERSION: &str = "dv-lock/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// The node's position, 0-based; it holds share index `index + 1`.
    pub index: usize,
    /// libp2p peer id (base58), derived from the node's p2p key.
    pub peer_id: String,
    /// Multiaddress other nodes dial.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributedValidator {
    pub public_key: PublicKeyBytes,
    /// Public key of share index `i + 1` at position `i`.
    pub public_shares: Vec<PublicKeyBytes>,
    /// The validator's builder registration, signed when the cluster was
    /// created by whoever held the whole key. Operators' validator clients
    /// sign registrations naming their own share keys, which cannot combine,
    /// so the cluster submits this one. Absent when the cluster was created
    /// without a fee recipient (and then absent from the hashed JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_registration: Option<BuilderRegistration>,
}

/// A `ValidatorRegistration` of the validator key without its `pubkey`
/// (the validator's), and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderRegistration {
    #[serde(with = "serde_utils::address_hex")]
    pub fee_recipient: ExecutionAddress,
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_limit: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    pub timestamp: u64,
    pub signature: SignatureBytes,
}

impl BuilderRegistration {
    /// The signed registration a beacon node takes, for `validator`.
    pub fn signed(&self, validator: PublicKeyBytes) -> SignedValidatorRegistration {
        SignedValidatorRegistration {
            message: ValidatorRegistration {
                fee_recipient: self.fee_recipient,
                gas_limit: self.gas_limit,
                timestamp: self.timestamp,
                pubkey: validator,
            },
            signature: self.signature,
        }
    }
}

/// `DOMAIN_APPLICATION_BUILDER` over the genesis fork version and a zero
/// genesis validators root, as builder registrations are signed.
pub fn builder_domain(genesis_fork_version: Version) -> Domain {
    compute_domain(DomainType([0, 0, 0, 1]), genesis_fork_version, Root::ZERO)
}

/// The lock's content; `lock_hash` is computed over exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBody {
    pub version: String,
    pub name: String,
    /// Network name (`mainnet`, `hoodi`, ..., or `custom`).
    pub network: String,
    /// The chain's genesis fork version, to refuse a beacon node of another chain.
    pub fork_version: Version,
    pub threshold: usize,
    pub operators: Vec<Operator>,
    pub validators: Vec<DistributedValidator>,
    /// The hash of the cluster definition a key-generation ceremony made
    /// this lock from (absent for a trusted dealer's lock, and then absent
    /// from the hashed JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterLock {
    #[serde(flatten)]
    pub body: LockBody,
    pub lock_hash: String,
    /// What a key-generation ceremony adds after the hash: the operators'
    /// signatures and the validator keys' aggregate signature over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signatures: Option<LockSignatures>,
}

/// Signatures a key-generation ceremony puts on its lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSignatures {
    /// Per operator, in lock order: its p2p key's signature (hex) of the
    /// definition hash, by which it accepted the definition.
    pub operator_acceptances: Vec<String>,
    /// Per operator, in lock order: its p2p key's signature (hex) of the lock hash.
    pub operator_signatures: Vec<String>,
    /// The aggregate of every validator key's signature over the lock hash
    /// (each made by the cluster's threshold of shares in the ceremony).
    pub signature_aggregate: SignatureBytes,
}

/// The public key inside an operator's peer id (ed25519 peer ids embed it).
pub fn operator_public_key(peer_id: &str) -> Result<libp2p_identity::PublicKey, String> {
    let id: libp2p_identity::PeerId = peer_id
        .parse()
        .map_err(|e| format!("peer id {peer_id:?}: {e}"))?;
    // An identity multihash: code 0, then the length (one varint byte for a
    // key this short), then the protobuf-encoded public key.
    let bytes = id.to_bytes();
    match bytes.as_slice() {
        [0, len, key @ ..] if usize::from(*len) == key.len() && *len < 0x80 => {
            libp2p_identity::PublicKey::try_decode_protobuf(key)
        }
        _ => {
            return Err(format!(
                "peer id {peer_id} does not embed its public key (not an ed25519 identity)"
            ))
        }
    }
    .map_err(|e| format!("peer id {peer_id}: {e}"))
}

/// Whether `signature` (hex) is `peer_id`'s signature of `message`.
pub fn verify_operator_signature(peer_id: &str, message: &[u8], signature: &str) -> bool {
    let Ok(key) = operator_public_key(peer_id) else {
        return false;
    };
    hex::decode(signature.trim_start_matches("0x")).is_ok_and(|sig| key.verify(message, &sig))
}

/// The 32 bytes of a `0x…` hash as written in a lock or definition.
pub fn hash_bytes(hash: &str) -> Result<[u8; 32], String> {
    hex::decode(hash.trim_start_matches("0x"))
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| format!("{hash:?} is not a 32-byte hex hash"))
}

impl LockSignatures {
    /// Checks every operator's signatures and the validators' aggregate.
    fn verify(&self, lock: &ClusterLock) -> Result<(), String> {
        let body = &lock.body;
        let definition_hash = body
            .definition_hash
            .as_deref()
            .ok_or("signatures without the definition hash they accepted")?;
        let definition = hash_bytes(definition_hash)?;
        let lock_hash = hash_bytes(&lock.lock_hash)?;
        let n = body.operators.len();
        if self.operator_acceptances.len() != n || self.operator_signatures.len() != n {
            return Err(format!(
                "{} acceptances and {} operator signatures for {n} operators",
                self.operator_acceptances.len(),
                self.operator_signatures.len()
            ));
        }
        for (i, op) in body.operators.iter().enumerate() {
            if !verify_operator_signature(&op.peer_id, &definition, &self.operator_acceptances[i]) {
                return Err(format!(
                    "operator {i}'s acceptance is not its signature of the definition hash"
                ));
            }
            if !verify_operator_signature(&op.peer_id, &lock_hash, &self.operator_signatures[i]) {
                return Err(format!(
                    "operator {i}'s signature is not its signature of the lock hash"
                ));
            }
        }
        let keys = body
            .validators
            .iter()
            .map(|v| PublicKey::from_bytes(&v.public_key.0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("validator key: {e}"))?;
        let valid = dv_crypto::Signature::from_bytes(&self.signature_aggregate.0)
            .is_ok_and(|sig| sig.fast_aggregate_verify(&lock_hash, &keys));
        if valid {
            Ok(())
        } else {
            Err("signature_aggregate is not the validator keys' signature of the lock hash".into())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cluster lock {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cluster lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// `0x` + SHA-256 of `body`'s JSON. Struct fields serialise in declaration
/// order, so the encoding is canonical: the hash of a lock or a definition.
pub fn content_hash(body: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    format!("0x{}", hex::encode(Sha256::digest(&canonical)))
}

/// A document's stated hash (`field`) against the one computed from its content.
pub fn check_content_hash(field: &str, stated: &str, computed: &str) -> Result<(), String> {
    if stated == computed {
        Ok(())
    } else {
        Err(format!(
            "{field} {stated} does not match the content (computed {computed}); the file was modified"
        ))
    }
}

impl LockBody {
    pub fn hash(&self) -> String {
        content_hash(self)
    }

    pub fn node_count(&self) -> usize {
        self.operators.len()
    }

    pub fn threshold_params(&self) -> Result<ThresholdParams, String> {
        ThresholdParams::new(self.threshold, self.operators.len()).map_err(|e| e.to_string())
    }

    /// Checks internal consistency: threshold, operator numbering, and that
    /// every validator's public shares lie on one polynomial of degree t-1
    /// whose value at 0 is the validator key.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != LOCK_VERSION {
            return Err(format!(
                "unsupported lock version {:?} (expected {LOCK_VERSION})",
                self.version
            ));
        }
        let n = self.operators.len();
        let params = self.threshold_params()?;
        if n != 1 && self.threshold * 2 <= n {
            return Err(format!(
                "threshold {} of {n} is not a majority",
                self.threshold
            ));
        }
        for (i, op) in self.operators.iter().enumerate() {
            if op.index != i {
                return Err(format!("operator at position {i} has index {}", op.index));
            }
            op.peer_id
                .parse::<libp2p_identity::PeerId>()
                .map_err(|e| format!("operator {i} peer id {:?}: {e}", op.peer_id))?;
        }
        if self.validators.is_empty() {
            return Err("no validators".into());
        }
        for (k, dv) in self.validators.iter().enumerate() {
            check_validator(k, dv, params)?;
            check_registration(k, dv, self.fork_version)?;
        }
        Ok(())
    }
}

/// A builder registration in the lock must be the validator key's signature.
fn check_registration(
    k: usize,
    dv: &DistributedValidator,
    fork_version: Version,
) -> Result<(), String> {
    let Some(registration) = &dv.builder_registration else {
        return Ok(());
    };
    let signed = registration.signed(dv.public_key);
    let root = compute_signing_root(&signed.message, builder_domain(fork_version));
    let key = PublicKey::from_bytes(&dv.public_key.0)
        .map_err(|e| format!("validator {k} public key: {e}"))?;
    let valid = dv_crypto::Signature::from_bytes(&registration.signature.0)
        .is_ok_and(|sig| key.verify(root.as_slice(), &sig));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "validator {k}: the builder registration is not signed by the validator key"
        ))
    }
}

fn check_validator(
    k: usize,
    dv: &DistributedValidator,
    params: ThresholdParams,
) -> Result<(), String> {
    let n = params.total();
    let t = params.threshold();
    if dv.public_shares.len() != n {
        return Err(format!(
            "validator {k}: {} public shares for {n} nodes",
            dv.public_shares.len()
        ));
    }
    let key = PublicKey::from_bytes(&dv.public_key.0)
        .map_err(|e| format!("validator {k} public key: {e}"))?;
    let shares: Vec<PublicShare> = dv
        .public_shares
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            PublicKey::from_bytes(&bytes.0)
                .map(|key| PublicShare {
                    index: i as u64 + 1,
                    key,
                })
                .map_err(|e| format!("validator {k} public share {}: {e}", i + 1))
        })
        .collect::<Result<_, _>>()?;
    // Shares 1..t-1 plus each remaining share j must all interpolate to the key.
    for j in t - 1..n {
        let mut subset: Vec<PublicShare> = shares[..t - 1].to_vec();
        subset.push(shares[j]);
        let combined =
            combine_public_shares(&subset, params).map_err(|e| format!("validator {k}: {e}"))?;
        if combined != key {
            return Err(format!(
                "validator {k}: public share {} is inconsistent with the validator key",
                j + 1
            ));
        }
    }
    Ok(())
}

impl ClusterLock {
    pub fn new(body: LockBody) -> Self {
        let lock_hash = body.hash();
        Self {
            body,
            lock_hash,
            signatures: None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses, checks the hash and validates the content.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let lock: ClusterLock =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        check_content_hash("lock_hash", &lock.lock_hash, &lock.body.hash())?;
        lock.body.validate()?;
        if let Some(signatures) = &lock.signatures {
            signatures.verify(&lock)?;
        }
        Ok(lock)
    }

    pub fn load(path: &Path) -> Result<Self, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text).map_err(|reason| LockError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_crypto::{split, SecretKey};

    fn body(n: usize, t: usize) -> LockBody {
        let params = ThresholdParams::new(t, n).unwrap();
        let sk = SecretKey::random();
        let shares = split(&sk, params);
        LockBody {
            version: LOCK_VERSION.into(),
            name: "test".into(),
            network: "minimal".into(),
            fork_version: Version([0, 0, 0, 1]),
            threshold: t,
            operators: (0..n)
                .map(|index| Operator {
                    index,
                    peer_id: libp2p_identity::Keypair::generate_ed25519()
                        .public()
                        .to_peer_id()
                        .to_base58(),
                    address: format!("/ip4/127.0.0.1/tcp/{}", 13000 + index),
                })
                .collect(),
            validators: vec![DistributedValidator {
                public_key: PublicKeyBytes(sk.public_key().to_bytes()),
                public_shares: shares
                    .iter()
                    .map(|s| PublicKeyBytes(s.secret.public_key().to_bytes()))
                    .collect(),
                builder_registration: None,
            }],
            definition_hash: None,
        }
    }

    #[test]
    fn a_builder_registration_must_be_the_validator_keys_signature() {
        let sk = SecretKey::random();
        let mut body = body(4, 3);
        let shares = split(&sk, ThresholdParams::new(3, 4).unwrap());
        body.validators[0].public_key = PublicKeyBytes(sk.public_key().to_bytes());
        body.validators[0].public_shares = shares
            .iter()
            .map(|s| PublicKeyBytes(s.secret.public_key().to_bytes()))
            .collect();
        let mut registration = BuilderRegistration {
            fee_recipient: ExecutionAddress::repeat_byte(7),
            gas_limit: 36_000_000,
            timestamp: 1_700_000_000,
            signature: SignatureBytes::infinity(),
        };
        let message = registration.signed(body.validators[0].public_key).message;
        let root = compute_signing_root(&message, builder_domain(body.fork_version));
        registration.signature = SignatureBytes(sk.sign(root.as_slice()).to_bytes());
        body.validators[0].builder_registration = Some(registration.clone());
        body.validate().unwrap();
        // It round-trips, and a lock without one keeps its old JSON (and hash).
        let lock = ClusterLock::new(body.clone());
        let text = serde_json::to_string(&lock).unwrap();
        assert_eq!(serde_json::from_str::<ClusterLock>(&text).unwrap(), lock);
        let mut without = body.clone();
        without.validators[0].builder_registration = None;
        assert!(!serde_json::to_string(&without)
            .unwrap()
            .contains("builder_registration"));
        // Another gas limit under the same signature is refused.
        registration.gas_limit += 1;
        body.validators[0].builder_registration = Some(registration);
        let refused = body.validate().unwrap_err();
        assert!(refused.contains("builder registration"), "{refused}");
    }

    #[test]
    fn valid_lock_round_trips() {
        let lock = ClusterLock::new(body(4, 3));
        assert_eq!(ClusterLock::from_json(&lock.to_json()).unwrap(), lock);
    }

    #[test]
    fn inconsistent_share_is_named() {
        let mut b = body(7, 5);
        b.validators[0].public_shares[6] =
            PublicKeyBytes(SecretKey::random().public_key().to_bytes());
        let err = b.validate().unwrap_err();
        assert!(err.contains("public share 7"), "{err}");
    }

    #[test]
    fn structural_errors() {
        let mut b = body(4, 3);
        b.threshold = 2;
        assert!(b.validate().unwrap_err().contains("majority"));
        let mut b = body(4, 3);
        b.operators[1].peer_id = "not-a-peer".into();
        assert!(b.validate().unwrap_err().contains("peer id"));
        let mut b = body(4, 3);
        b.validators[0].public_shares.pop();
        assert!(b
            .validate()
            .unwrap_err()
            .contains("3 public shares for 4 nodes"));
        assert!(ClusterLock::from_json("{")
            .unwrap_err()
            .contains("malformed"));
    }
}
