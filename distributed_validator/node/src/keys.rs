//! The node's keys on disk: the cluster lock's validator keys and public
//! shares, this node's key shares from its keystores (each checked against
//! the lock), and the chain the lock belongs to. Used at start-up and by
//! `dvnode exit sign`; the operators' peer ids and addresses.

use crate::parsig::ValidatorKeys;
use dv_cluster::{ClusterLock, NodeDir};
use dv_crypto::keystore::read_password_file;
use dv_crypto::{Keystore, PublicKey, SecretShare};
use dv_types::PublicKeyBytes;
use std::collections::HashMap;

/// Every validator's public key and public shares, by validator public key.
pub fn load_public_keys(
    lock: &ClusterLock,
) -> Result<HashMap<PublicKeyBytes, ValidatorKeys>, String> {
    lock.body
        .validators
        .iter()
        .map(|v| {
            let shares = v
                .public_shares
                .iter()
                .map(|s| PublicKey::from_bytes(&s.0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cluster lock: validator {}: {e}", v.public_key))?;
            let key = PublicKey::from_bytes(&v.public_key.0)
                .map_err(|e| format!("cluster lock: validator {}: {e}", v.public_key))?;
            Ok((v.public_key, ValidatorKeys { key, shares }))
        })
        .collect()
}

/// The operators' libp2p peer ids, in lock order.
pub fn operator_peer_ids(lock: &ClusterLock) -> Result<Vec<libp2p_identity::PeerId>, String> {
    lock.body
        .operators
        .iter()
        .map(|o| {
            o.peer_id
                .parse::<libp2p_identity::PeerId>()
                .map_err(|e| format!("cluster lock: peer id {}: {e}", o.peer_id))
        })
        .collect()
}

/// The operators as cluster network members (`peers` from
/// [`operator_peer_ids`], with the lock's addresses), in lock order.
pub fn cluster_members(
    lock: &ClusterLock,
    peers: &[libp2p_identity::PeerId],
) -> Result<Vec<p2p::Member>, String> {
    lock.body
        .operators
        .iter()
        .zip(peers)
        .map(|(o, p)| {
            o.address
                .parse()
                .map(|address| p2p::Member {
                    peer_id: *p,
                    address,
                })
                .map_err(|e| format!("cluster lock: address {}: {e}", o.address))
        })
        .collect()
}

/// This node's key shares from its keystores, checked against the lock.
pub fn load_shares(
    dir: &NodeDir,
    lock: &ClusterLock,
    me: usize,
) -> Result<HashMap<PublicKeyBytes, SecretShare>, String> {
    let mut shares = HashMap::new();
    for (k, v) in lock.body.validators.iter().enumerate() {
        let share = load_share(dir, lock, k)?;
        if share.index != me as u64 + 1 {
            return Err(format!(
                "{}: not this node's share of validator {}",
                dir.keystore_path(k).display(),
                v.public_key
            ));
        }
        shares.insert(v.public_key, share);
    }
    Ok(shares)
}

/// Refuses a beacon node of another chain than the cluster lock's.
pub fn check_same_chain(
    lock: &ClusterLock,
    genesis: &beacon_client::Genesis,
) -> Result<(), String> {
    if genesis.genesis_fork_version != lock.body.fork_version {
        return Err(format!(
            "the beacon node's chain has genesis fork version {}, the cluster lock {}",
            genesis.genesis_fork_version, lock.body.fork_version
        ));
    }
    Ok(())
}

/// The key share in the node directory's keystore of the lock's `k`-th
/// validator, with its share index (its position among the lock's public shares).
pub fn load_share(dir: &NodeDir, lock: &ClusterLock, k: usize) -> Result<SecretShare, String> {
    let v = lock
        .body
        .validators
        .get(k)
        .ok_or_else(|| format!("the cluster lock has no validator {k}"))?;
    let password = read_password_file(&dir.password_path(k)).map_err(|e| e.to_string())?;
    let secret = Keystore::load(&dir.keystore_path(k), &password).map_err(|e| e.to_string())?;
    let public = secret.public_key().to_bytes();
    let position = v
        .public_shares
        .iter()
        .position(|s| s.0 == public)
        .ok_or_else(|| {
            format!(
                "{}: not a share of validator {} in the cluster lock",
                dir.keystore_path(k).display(),
                v.public_key
            )
        })?;
    Ok(SecretShare {
        index: position as u64 + 1,
        secret,
    })
}

/// The whole validator keys of a plain validator: a 1-node cluster's
/// shares are the keys themselves (a polynomial of degree 0).
pub fn whole_keys(
    lock: &ClusterLock,
    shares: HashMap<PublicKeyBytes, SecretShare>,
) -> Result<HashMap<PublicKeyBytes, dv_crypto::SecretKey>, String> {
    if lock.body.node_count() != 1 {
        return Err(format!(
            "--plain runs a normal validator with whole keys: a 1-node cluster, not one of {} nodes",
            lock.body.node_count()
        ));
    }
    shares
        .into_iter()
        .map(|(validator, share)| {
            if share.secret.public_key().to_bytes() != validator.0 {
                return Err(format!("the key of validator {validator} is not whole"));
            }
            Ok((validator, share.secret))
        })
        .collect()
}
