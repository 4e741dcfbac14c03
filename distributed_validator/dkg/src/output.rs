//! The operator's files: its identity before the ceremony, and what the
//! ceremony leaves in its data directory (the same layout `dvnode create
//! cluster` gives each node, so `dvnode run` takes it unchanged).

use crate::definition::{Definition, DefinitionOperator};
use crate::deposit::{file_name, LaunchpadDeposit};
use crate::Outcome;
use dv_cluster::layout::write_private;
use dv_cluster::NodeDir;
use dv_crypto::KdfChoice;
use std::path::{Path, PathBuf};

/// Where an unfinished ceremony's files are assembled before they are
/// moved into place; removed when a ceremony starts.
const STAGING: &str = ".dkg-output.partial";

/// Makes the operator's p2p key in `data_dir` (owner-readable) and returns
/// its public record. Refuses to replace an existing key: it is the
/// operator's identity in every definition that names it.
pub fn create_operator_key(data_dir: &Path, address: &str) -> Result<DefinitionOperator, String> {
    let node = NodeDir::new(data_dir);
    let path = node.p2p_key_path();
    if path.exists() {
        return Err(format!(
            "{} already exists: an operator key is never replaced (it is this operator's identity)",
            path.display()
        ));
    }
    let keypair = libp2p_identity::Keypair::generate_ed25519();
    let record = DefinitionOperator::parse(&format!(
        "{}@{address}",
        keypair.public().to_peer_id().to_base58()
    ))?;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let encoded = keypair
        .to_protobuf_encoding()
        .map_err(|e| format!("encoding the p2p key: {e}"))?;
    write_private(&path, hex::encode(encoded).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(record)
}

/// Checks that `data_dir` holds an operator key and no cluster yet.
pub fn check_data_dir(data_dir: &Path) -> Result<NodeDir, String> {
    let node = NodeDir::new(data_dir);
    if !node.p2p_key_path().is_file() {
        return Err(format!(
            "{} has no p2p-key: run `dvnode create operator-key --data-dir {}` first",
            data_dir.display(),
            data_dir.display()
        ));
    }
    for taken in [node.lock_path(), node.keys_dir()] {
        if taken.exists() {
            return Err(format!(
                "{} already exists: this data directory holds a cluster",
                taken.display()
            ));
        }
    }
    Ok(node)
}

/// Writes the outcome: key shares, deposit data, then the lock, each moved
/// into place from a staging directory, the lock last (a directory with a
/// lock is complete). Returns the files and directories written.
pub fn write_outcome(
    node: &NodeDir,
    definition: &Definition,
    outcome: &Outcome,
    kdf: KdfChoice,
) -> Result<Vec<PathBuf>, String> {
    let staging = NodeDir::new(node.root().join(STAGING));
    if staging.root().exists() {
        std::fs::remove_dir_all(staging.root())
            .map_err(|e| format!("{}: {e}", staging.root().display()))?;
    }
    std::fs::create_dir_all(staging.root())
        .map_err(|e| format!("{}: {e}", staging.root().display()))?;
    let shares: Vec<&dv_crypto::SecretShare> = outcome.shares.iter().collect();
    dv_cluster::write_keystores(&staging, &outcome.lock, &shares, kdf)
        .map_err(|e| e.to_string())?;
    let body = &definition.body;
    let mut deposit_files = Vec::new();
    for (amount, deposits) in body.deposit_amounts.iter().zip(&outcome.deposits) {
        let entries: Vec<LaunchpadDeposit> = deposits
            .iter()
            .map(|d| LaunchpadDeposit::new(d, body.fork_version, &body.network))
            .collect();
        let name = file_name(*amount);
        let json = serde_json::to_string_pretty(&entries).unwrap_or_default();
        write_private(&staging.root().join(&name), json.as_bytes())
            .map_err(|e| format!("{name}: {e}"))?;
        deposit_files.push(name);
    }
    write_private(&staging.lock_path(), outcome.lock.to_json().as_bytes())
        .map_err(|e| format!("{}: {e}", staging.lock_path().display()))?;

    let mut moves: Vec<(PathBuf, PathBuf)> = vec![(staging.keys_dir(), node.keys_dir())];
    moves.extend(
        deposit_files
            .iter()
            .map(|name| (staging.root().join(name), node.root().join(name))),
    );
    moves.push((staging.lock_path(), node.lock_path()));
    let mut written = Vec::new();
    for (from, to) in moves {
        std::fs::rename(&from, &to).map_err(|e| format!("{}: {e}", to.display()))?;
        written.push(to);
    }
    let _ = std::fs::remove_dir_all(staging.root());
    Ok(written)
}

/// Removes a staging directory a killed ceremony left.
pub fn remove_staging(node: &NodeDir) {
    let _ = std::fs::remove_dir_all(node.root().join(STAGING));
}
