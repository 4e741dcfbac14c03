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
