//! `cluster-definition.json`: what the operators agree to before a key
//! generation ceremony. The creator fills it in and signs its hash; each
//! operator accepts it by signing the same hash with its own key when the
//! ceremony starts. Any edit changes the hash, so a tampered copy is refused.

use dv_cluster::{
    check_content_hash, hash_bytes, network, operator_public_key, verify_operator_signature,
};
use dv_types::{ExecutionAddress, Gwei, Version};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const DEFINITION_VERSION: &str = "dv-definition/v1";
/// 1 ETH, the smallest deposit the deposit contract takes.
pub const MIN_DEPOSIT_GWEI: Gwei = 1_000_000_000;
/// 32 ETH: the activation balance, and the most a 0x01 validator holds.
pub const ACTIVATION_GWEI: Gwei = 32_000_000_000;
/// 2048 ETH: the most a compounding (0x02) validator holds.
pub const MAX_COMPOUNDING_GWEI: Gwei = 2_048_000_000_000;

/// An operator of the definition: its identity, made on its own machine
/// (`dvnode create operator-key`), and where the others dial it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionOperator {
    pub peer_id: String,
    pub address: String,
}

impl DefinitionOperator {
    /// Parses `PEER_ID@MULTIADDR`, as `dvnode create operator-key` prints it.
    pub fn parse(record: &str) -> Result<Self, String> {
        let (peer_id, address) = record
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("operator {record:?} is not PEER_ID@MULTIADDRESS"))?;
        operator_public_key(peer_id).map_err(|e| format!("operator {record:?}: {e}"))?;
        address
            .parse::<p2p::Multiaddr>()
            .map_err(|e| format!("operator {record:?}: address {address:?}: {e}"))?;
        Ok(Self {
            peer_id: peer_id.to_string(),
            address: address.to_string(),
        })
    }

    pub fn record(&self) -> String {
        format!("{}@{}", self.peer_id, self.address)
    }
}

/// The definition's content; `definition_hash` is SHA-256 over its canonical JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionBody {
    pub version: String,
    pub name: String,
    pub uuid: String,
    /// Creation time, unix seconds; also the builder registrations' timestamp.
    #[serde(with = "serde_utils::quoted_u64")]
    pub timestamp: u64,
    pub network: String,
    pub fork_version: Version,
    pub threshold: usize,
    pub num_validators: usize,
    pub operators: Vec<DefinitionOperator>,
    #[serde(with = "serde_utils::address_hex")]
    pub withdrawal_address: ExecutionAddress,
    #[serde(with = "serde_utils::address_hex")]
    pub fee_recipient: ExecutionAddress,
    #[serde(with = "serde_utils::quoted_u64")]
    pub gas_limit: u64,
    /// 0x02 withdrawal credentials (EIP-7251) instead of 0x01.
    pub compounding: bool,
    /// Each validator's deposits, in Gwei: one deposit-data file per amount.
    pub deposit_amounts: Vec<Gwei>,
    /// The creator's peer id (its p2p key signed the hash).
    pub creator: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    #[serde(flatten)]
    pub body: DefinitionBody,
    pub definition_hash: String,
    /// The creator's signature (hex) of the definition hash.
    pub creator_signature: String,
}

/// What `dvnode create dkg` asks for.
#[derive(Debug, Clone)]
pub struct DefinitionOptions {
    pub name: String,
    pub operators: Vec<DefinitionOperator>,
    pub num_validators: usize,
    pub threshold: Option<usize>,
    pub network: String,
    pub fork_version: Version,
    pub withdrawal_address: ExecutionAddress,
    pub fee_recipient: ExecutionAddress,
    pub gas_limit: u64,
    pub compounding: bool,
    /// `None`: one deposit of 32 ETH.
    pub deposit_amounts: Option<Vec<Gwei>>,
}

impl DefinitionBody {
    pub fn hash(&self) -> String {
        dv_cluster::content_hash(self)
    }

    /// The deposit amounts, checked: each at least 1 ETH, together at least
    /// the activation balance and at most what the credentials allow.
    fn check_deposits(&self) -> Result<(), String> {
        if self.deposit_amounts.is_empty() {
            return Err("no deposit amounts".into());
        }
        if let Some(small) = self.deposit_amounts.iter().find(|a| **a < MIN_DEPOSIT_GWEI) {
            return Err(format!(
                "deposit amount {small} Gwei is below the 1 ETH minimum"
            ));
        }
        let total: u128 = self.deposit_amounts.iter().map(|a| u128::from(*a)).sum();
        let most = if self.compounding {
            MAX_COMPOUNDING_GWEI
        } else {
            ACTIVATION_GWEI
        };
        if total < u128::from(ACTIVATION_GWEI) || total > u128::from(most) {
            return Err(format!(
                "deposit amounts total {total} Gwei; a validator needs {ACTIVATION_GWEI} Gwei and {} holds at most {most}",
                if self.compounding { "a compounding one" } else { "a 0x01 one" }
            ));
        }
        Ok(())
    }

    /// Checks everything a ceremony relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != DEFINITION_VERSION {
            return Err(format!(
                "unsupported definition version {:?} (expected {DEFINITION_VERSION})",
                self.version
            ));
        }
        let n = self.operators.len();
        if n < 3 {
            return Err(format!(
                "{n} operators: a key-generation ceremony needs at least 3 (with fewer, a quorum is the whole cluster)"
            ));
        }
        if self.threshold * 2 <= n || self.threshold > n {
            return Err(format!(
                "threshold {} must be more than half of and at most the {n} operators",
                self.threshold
            ));
        }
        for (i, op) in self.operators.iter().enumerate() {
            DefinitionOperator::parse(&op.record()).map_err(|e| format!("operator {i}: {e}"))?;
            if self.operators[..i].iter().any(|o| o.peer_id == op.peer_id) {
                return Err(format!("operator {i} ({}) is listed twice", op.peer_id));
            }
        }
        if self.num_validators == 0 {
            return Err("no validators".into());
        }
        if network::genesis_fork_version(&self.network).is_some_and(|v| v != self.fork_version) {
            return Err(format!(
                "network {} has another genesis fork version than {}",
                self.network, self.fork_version
            ));
        }
        self.check_deposits()
    }

    /// This operator's position, or an error naming the peer id.
    pub fn operator_index(&self, peer_id: &str) -> Result<usize, String> {
        self.operators
            .iter()
            .position(|o| o.peer_id == peer_id)
            .ok_or_else(|| {
                format!("this node's peer id {peer_id} is not an operator of the definition")
            })
    }
}

impl Definition {
    /// Fills in and signs a definition with the creator's p2p key.
    pub fn create(
        options: DefinitionOptions,
        creator: &libp2p_identity::Keypair,
    ) -> Result<Self, String> {
        let n = options.operators.len();
        let body = DefinitionBody {
            version: DEFINITION_VERSION.into(),
            name: options.name,
            uuid: uuid::Uuid::new_v4().to_string(),
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            network: options.network,
            fork_version: options.fork_version,
            threshold: options
                .threshold
                .unwrap_or_else(|| dv_cluster::default_threshold(n)),
            num_validators: options.num_validators,
            operators: options.operators,
            withdrawal_address: options.withdrawal_address,
            fee_recipient: options.fee_recipient,
            gas_limit: options.gas_limit,
            compounding: options.compounding,
            deposit_amounts: options
                .deposit_amounts
                .unwrap_or_else(|| vec![ACTIVATION_GWEI]),
            creator: creator.public().to_peer_id().to_base58(),
        };
        body.validate()?;
        let definition_hash = body.hash();
        let signature = creator
            .sign(&hash_bytes(&definition_hash)?)
            .map_err(|e| format!("signing the definition: {e}"))?;
        Ok(Self {
            body,
            definition_hash,
            creator_signature: format!("0x{}", hex::encode(signature)),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses and checks the hash, the creator's signature and the content.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let definition: Definition =
            serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        let expected = definition.body.hash();
        check_content_hash("definition_hash", &definition.definition_hash, &expected)?;
        if !verify_operator_signature(
            &definition.body.creator,
            &hash_bytes(&expected)?,
            &definition.creator_signature,
        ) {
            return Err(format!(
                "creator_signature is not {}'s signature of the definition hash",
                definition.body.creator
            ));
        }
        definition.body.validate()?;
        Ok(definition)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cluster definition {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("cluster definition {}: {e}", path.display()))
    }

    pub fn hash_bytes(&self) -> [u8; 32] {
        hash_bytes(&self.definition_hash).unwrap_or_default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` fresh operator identities.
    pub(crate) fn operator_keys(n: usize) -> Vec<libp2p_identity::Keypair> {
        (0..n)
            .map(|_| libp2p_identity::Keypair::generate_ed25519())
            .collect()
    }

    pub(crate) fn options(
        operators: &[libp2p_identity::Keypair],
        validators: usize,
    ) -> DefinitionOptions {
        DefinitionOptions {
            name: "test".into(),
            operators: operators
                .iter()
                .enumerate()
                .map(|(i, k)| DefinitionOperator {
                    peer_id: k.public().to_peer_id().to_base58(),
                    address: format!("/ip4/127.0.0.1/tcp/{}", 14000 + i),
                })
                .collect(),
            num_validators: validators,
            threshold: None,
            network: "minimal".into(),
            fork_version: Version([0, 0, 0, 1]),
            withdrawal_address: ExecutionAddress::repeat_byte(0x11),
            fee_recipient: ExecutionAddress::repeat_byte(0x22),
            gas_limit: 36_000_000,
            compounding: false,
            deposit_amounts: None,
        }
    }

    #[test]
    fn a_signed_definition_round_trips_and_a_tampered_one_is_refused() {
        let keys = operator_keys(4);
        let definition = Definition::create(options(&keys, 2), &keys[0]).unwrap();
        assert_eq!(definition.body.threshold, 3);
        let text = definition.to_json();
        assert_eq!(Definition::from_json(&text).unwrap(), definition);

        let tampered = text.replace("\"num_validators\": 2", "\"num_validators\": 3");
        assert_ne!(tampered, text);
        let refused = Definition::from_json(&tampered).unwrap_err();
        assert!(refused.contains("does not match the content"), "{refused}");

        // Re-hashed by someone without the creator's key.
        let mut forged = definition.clone();
        forged.body.num_validators = 3;
        forged.definition_hash = forged.body.hash();
        let refused = Definition::from_json(&forged.to_json()).unwrap_err();
        assert!(refused.contains("creator_signature"), "{refused}");
    }

    #[test]
    fn bad_options_are_named() {
        let keys = operator_keys(4);
        let mut o = options(&keys, 1);
        o.deposit_amounts = Some(vec![16_000_000_000]);
        assert!(Definition::create(o, &keys[0])
            .unwrap_err()
            .contains("total"));
        let mut o = options(&keys, 1);
        o.compounding = true;
        o.deposit_amounts = Some(vec![1_000_000_000, 63_000_000_000]);
        Definition::create(o, &keys[0]).unwrap();
        let mut o = options(&keys, 1);
        o.threshold = Some(2);
        let refused = Definition::create(o, &keys[0]).unwrap_err();
        assert!(
            refused.contains("threshold 2 must be more than half of and at most the 4 operators"),
            "{refused}"
        );
        let mut o = options(&keys, 1);
        o.operators.truncate(2);
        assert!(Definition::create(o, &keys[0])
            .unwrap_err()
            .contains("2 operators"));
        let mut o = options(&keys, 1);
        o.operators[2] = o.operators[1].clone();
        assert!(Definition::create(o, &keys[0])
            .unwrap_err()
            .contains("twice"));
        assert!(DefinitionOperator::parse("nonsense").is_err());
        let record = options(&keys, 1).operators[0].record();
        assert_eq!(DefinitionOperator::parse(&record).unwrap().record(), record);
    }
}
