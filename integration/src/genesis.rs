//! The simulated chain's genesis validators from files: a cluster lock
//! (its validator keys, the lock checked as a node checks it) or launchpad
//! deposit data (every deposit's roots and signature checked under the
//! deposit domain of the chain's genesis fork version, and each key's
//! deposits together reaching the activation balance), so that keys made
//! by a key-generation ceremony can run on it.

use dv_crypto::{PublicKey, Signature};
use dv_dkg::definition::ACTIVATION_GWEI;
use dv_dkg::deposit::{deposit_signing_root, LaunchpadDeposit};
use dv_types::Version;
use std::path::Path;

/// The validator keys of `files`, in order (a key deposited in parts once).
pub fn load_genesis_keys(files: &[&Path], fork_version: Version) -> Result<Vec<PublicKey>, String> {
    let mut keys: Vec<PublicKey> = Vec::new();
    let mut deposited: Vec<u128> = Vec::new();
    let mut from_deposits = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: malformed JSON: {e}", path.display()))?;
        let named = |e: String| format!("{}: {e}", path.display());
        if value.get("lock_hash").is_some() {
            let lock = dv_cluster::ClusterLock::from_json(&text).map_err(named)?;
            if lock.body.fork_version != fork_version {
                return Err(named(format!(
                    "the lock is for fork version {}, the chain's genesis fork version is {fork_version}",
                    lock.body.fork_version
                )));
            }
            for v in &lock.body.validators {
                let key =
                    PublicKey::from_bytes(&v.public_key.0).map_err(|e| named(e.to_string()))?;
                if !keys.contains(&key) {
                    keys.push(key);
                    deposited.push(u128::from(ACTIVATION_GWEI));
                }
            }
            continue;
        }
        let entries: Vec<LaunchpadDeposit> = serde_json::from_value(value).map_err(|e| {
            named(format!(
                "neither a cluster lock nor launchpad deposit data: {e}"
            ))
        })?;
        for (i, entry) in entries.iter().enumerate() {
            let at = |e: String| named(format!("deposit {i}: {e}"));
            if entry.fork_version != hex::encode(fork_version.0) {
                return Err(at(format!(
                    "fork version {} is not the chain's genesis fork version {fork_version}",
                    entry.fork_version
                )));
            }
            let data = entry.to_deposit_data().map_err(at)?;
            let key = PublicKey::from_bytes(&data.pubkey.0).map_err(|e| at(e.to_string()))?;
            let root = deposit_signing_root(&data.message(), fork_version);
            let valid = Signature::from_bytes(&data.signature.0)
                .is_ok_and(|sig| key.verify(root.as_slice(), &sig));
            if !valid {
                return Err(at(
                    "the signature is not the validator key's over the deposit".into(),
                ));
            }
            match keys.iter().position(|k| *k == key) {
                Some(p) => deposited[p] += u128::from(data.amount),
                None => {
                    keys.push(key);
                    deposited.push(u128::from(data.amount));
                    from_deposits.push(keys.len() - 1);
                }
            }
        }
    }
    for p in from_deposits {
        if deposited[p] < u128::from(ACTIVATION_GWEI) {
            return Err(format!(
                "validator {} has deposits of {} Gwei in all, below the {ACTIVATION_GWEI} Gwei activation balance",
                keys[p].to_hex(),
                deposited[p]
            ));
        }
    }
    if keys.is_empty() {
        return Err("the genesis files hold no validator".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_cluster::lock::LOCK_VERSION;
    use dv_cluster::{ClusterLock, DistributedValidator, LockBody, Operator};
    use dv_crypto::{interop_secret_key, split, SecretKey, ThresholdParams};
    use dv_dkg::deposit::withdrawal_credentials;
    use dv_types::{DepositData, ExecutionAddress, PublicKeyBytes, SignatureBytes};

    const MINIMAL: Version = Version([0, 0, 0, 1]);

    fn deposit(key: &SecretKey, amount: u64, fork: Version) -> LaunchpadDeposit {
        let mut data = DepositData {
            pubkey: PublicKeyBytes(key.public_key().to_bytes()),
            withdrawal_credentials: withdrawal_credentials(ExecutionAddress::repeat_byte(1), false),
            amount,
            signature: SignatureBytes::infinity(),
        };
        let root = deposit_signing_root(&data.message(), fork);
        data.signature = SignatureBytes(key.sign(root.as_slice()).to_bytes());
        LaunchpadDeposit::new(&data, fork, "minimal")
    }

    fn write(dir: &Path, name: &str, value: &impl serde::Serialize) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_string(value).unwrap()).unwrap();
        path
    }

    #[test]
    fn partial_deposits_sum_per_key_and_must_reach_the_activation_balance() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (interop_secret_key(0), interop_secret_key(1));
        let first = write(
            dir.path(),
            "1eth.json",
            &vec![
                deposit(&a, 1_000_000_000, MINIMAL),
                deposit(&b, 1_000_000_000, MINIMAL),
            ],
        );
        let rest = write(
            dir.path(),
            "31eth.json",
            &vec![
                deposit(&a, 31_000_000_000, MINIMAL),
                deposit(&b, 31_000_000_000, MINIMAL),
            ],
        );
        let keys = load_genesis_keys(&[&first, &rest], MINIMAL).unwrap();
        assert_eq!(keys, vec![a.public_key(), b.public_key()]);
        let short = load_genesis_keys(&[&first], MINIMAL).unwrap_err();
        assert!(
            short.contains("below the 32000000000 Gwei activation balance"),
            "{short}"
        );
        let other_chain = write(
            dir.path(),
            "mainnet.json",
            &vec![deposit(&a, 32_000_000_000, Version([0; 4]))],
        );
        let refused = load_genesis_keys(&[&other_chain], MINIMAL).unwrap_err();
        assert!(
            refused.contains("mainnet.json: deposit 0: fork version 00000000"),
            "{refused}"
        );
    }

    #[test]
    fn a_cluster_lock_gives_its_validator_keys() {
        let dir = tempfile::tempdir().unwrap();
        let params = ThresholdParams::new(3, 4).unwrap();
        let secrets: Vec<SecretKey> = (5..8).map(interop_secret_key).collect();
        let lock = ClusterLock::new(LockBody {
            version: LOCK_VERSION.into(),
            name: "genesis".into(),
            network: "minimal".into(),
            fork_version: MINIMAL,
            threshold: 3,
            operators: (0..4)
                .map(|index| Operator {
                    index,
                    peer_id: libp2p_identity::Keypair::generate_ed25519()
                        .public()
                        .to_peer_id()
                        .to_base58(),
                    address: format!("/ip4/127.0.0.1/tcp/{}", 13000 + index),
                })
                .collect(),
            validators: secrets
                .iter()
                .map(|sk| DistributedValidator {
                    public_key: PublicKeyBytes(sk.public_key().to_bytes()),
                    public_shares: split(sk, params)
                        .iter()
                        .map(|s| PublicKeyBytes(s.secret.public_key().to_bytes()))
                        .collect(),
                    builder_registration: None,
                })
                .collect(),
            definition_hash: None,
        });
        let path = dir.path().join("cluster-lock.json");
        std::fs::write(&path, lock.to_json()).unwrap();
        let keys = load_genesis_keys(&[&path], MINIMAL).unwrap();
        assert_eq!(
            keys,
            secrets.iter().map(|s| s.public_key()).collect::<Vec<_>>()
        );
        let refused = load_genesis_keys(&[&path], Version([0; 4])).unwrap_err();
        assert!(refused.contains("fork version"), "{refused}");
        std::fs::write(&path, lock.to_json().replace("\"genesis\"", "\"edited\"")).unwrap();
        let refused = load_genesis_keys(&[&path], MINIMAL).unwrap_err();
        assert!(refused.contains("does not match the content"), "{refused}");
    }
}
