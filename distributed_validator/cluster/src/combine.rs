//! Leaving distributed validation: rebuild the full validator keystores from
//! the key shares of any `t` nodes.

use crate::create::{io_error, random_password, CreateError};
use crate::layout::{write_private, NodeDir};
use crate::lock::ClusterLock;
use dv_crypto::keystore::read_password_file;
use dv_crypto::{combine_secret_shares, KdfChoice, Keystore, PublicKey, SecretShare};
use dv_types::PublicKeyBytes;
use std::path::{Path, PathBuf};

/// Node directories (`node*` holding a `cluster-lock.json`) under `cluster_dir`.
fn node_dirs(cluster_dir: &Path) -> Result<Vec<NodeDir>, CreateError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cluster_dir)
        .map_err(io_error(cluster_dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("node"))
                && NodeDir::new(p.clone()).lock_path().is_file()
        })
        .collect();
    dirs.sort();
    Ok(dirs.into_iter().map(NodeDir::new).collect())
}

/// Combines the shares found under `cluster_dir` and writes
/// `out/keystore-{k}.json` + `.txt` for every validator. Returns the validator keys written.
pub fn combine_cluster(
    cluster_dir: &Path,
    out: &Path,
    kdf: KdfChoice,
    force: bool,
) -> Result<Vec<PublicKeyBytes>, CreateError> {
    let nodes = node_dirs(cluster_dir)?;
    let first = nodes.first().ok_or_else(|| {
        CreateError::InvalidArgument(format!(
            "no node directory with a cluster lock under {}",
            cluster_dir.display()
        ))
    })?;
    let lock = ClusterLock::load(&first.lock_path())
        .map_err(|e| CreateError::InvalidArgument(e.to_string()))?;
    for node in &nodes[1..] {
        let other = ClusterLock::load(&node.lock_path())
            .map_err(|e| CreateError::InvalidArgument(e.to_string()))?;
        if other.lock_hash != lock.lock_hash {
            return Err(CreateError::InvalidArgument(format!(
                "{} belongs to another cluster (lock hash {} vs {})",
                node.root().display(),
                other.lock_hash,
                lock.lock_hash
            )));
        }
    }
    let params = lock
        .body
        .threshold_params()
        .map_err(CreateError::InvalidArgument)?;
    if nodes.len() < params.threshold() {
        return Err(CreateError::InvalidArgument(format!(
            "{} node directories found under {}, {} needed",
            nodes.len(),
            cluster_dir.display(),
            params.threshold()
        )));
    }
    if out.join("keystore-0.json").exists() && !force {
        return Err(CreateError::AlreadyExists(out.to_path_buf()));
    }
    std::fs::create_dir_all(out).map_err(io_error(out))?;

    let mut written = Vec::new();
    for (k, validator) in lock.body.validators.iter().enumerate() {
        let mut shares: Vec<SecretShare> = Vec::new();
        for node in &nodes {
            let password = read_password_file(&node.password_path(k))?;
            let secret = Keystore::load(&node.keystore_path(k), &password)?;
            // The share index is the position of this share's public key in the lock.
            let public = PublicKeyBytes(secret.public_key().to_bytes());
            let position = validator
                .public_shares
                .iter()
                .position(|p| *p == public)
                .ok_or_else(|| {
                    CreateError::InvalidArgument(format!(
                        "{}: share is not one of validator {k}'s public shares",
                        node.keystore_path(k).display()
                    ))
                })?;
            if shares.iter().all(|s| s.index != position as u64 + 1) {
                shares.push(SecretShare {
                    index: position as u64 + 1,
                    secret,
                });
            }
        }
        let expected = PublicKey::from_bytes(&validator.public_key.0).map_err(|e| {
            CreateError::InvalidArgument(format!("validator {k} public key in lock: {e}"))
        })?;
        let full = combine_secret_shares(&shares, params, &expected).map_err(|e| {
            CreateError::InvalidArgument(format!("validator {k} ({}): {e}", validator.public_key))
        })?;
        let password = zeroize::Zeroizing::new(random_password());
        let keystore = Keystore::encrypt(
            &full,
            &password,
            kdf,
            "",
            &format!("validator {}", validator.public_key),
        );
        let keystore_path = out.join(format!("keystore-{k}.json"));
        let password_path = out.join(format!("keystore-{k}.txt"));
        write_private(&keystore_path, keystore.to_json().as_bytes())
            .map_err(io_error(&keystore_path))?;
        write_private(&password_path, password.as_bytes()).map_err(io_error(&password_path))?;
        written.push(validator.public_key);
    }
    Ok(written)
}
