//! Voluntary exits, for both attachments.
//!
//! An exit is an operator's decision, not a duty the chain schedules: each
//! operator signs the exit with their share when they choose (`dvnode exit
//! sign`, or their validator client's exit in middleware mode), possibly
//! hours apart and for an exit epoch long past. So an exit is not keyed by
//! its epoch but offered again every epoch: this node's partial waits, as a
//! file in `DATA_DIR/exits/` (durable across restarts), and once an epoch
//! the exit service sends it to the peers under that epoch's exit duty
//! ([`exit_duty`]). Within an epoch the partials of every operator who has
//! signed meet; at `t` they combine (verified against the validator key),
//! the exit is submitted, and the file moves to `exits/submitted/`. An exit
//! the chain already shows (another operator's node submitted it) is done
//! as well.

use crate::duty::{Duty, DutyType};
use crate::parsig::OwnShares;
use crate::scheduler::{Scheduler, SlotClock};
use crate::validator_store::DvValidatorStore;
use beacon_client::BeaconNodes;
use dv_types::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The subdirectory of a node's data directory that holds its pending exits.
pub const EXITS_DIR: &str = "exits";
/// Where an exit's file moves once the exit is submitted (or on chain).
const SUBMITTED_DIR: &str = "submitted";
/// A pending-exit file is a few hundred bytes; anything much larger is not one.
const MAX_FILE_BYTES: u64 = 4096;
/// Pending exits handled at most (each costs an exchange an epoch).
const MAX_PENDING: usize = 1024;

/// The exit duty of the epoch `slot` is in: every pending exit is offered
/// under it for that epoch (the partial-signature exchange keeps only
/// recent duties, and operators sign at different times).
pub fn exit_duty(spec: &ChainSpec, slot: Slot) -> Duty {
    Duty::new(
        spec.start_slot_of_epoch(spec.epoch_of_slot(slot)),
        DutyType::Exit,
    )
}

/// One pending exit as its file holds it: the validator, and the exit
/// signed with this node's share (a partial, not the validator's signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExit {
    pub validator: PublicKeyBytes,
    pub exit: SignedVoluntaryExit,
}

/// The pending exits of one node's data directory.
#[derive(Debug, Clone)]
pub struct PendingExits {
    dir: PathBuf,
}

impl PendingExits {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(EXITS_DIR),
        }
    }

    /// Writes `exit` durably (temporary file, fsync, rename, fsync of the
    /// directory); an exit of the same validator and epoch is replaced.
    pub fn add(&self, exit: &PendingExit) -> Result<PathBuf, String> {
        let name = format!(
            "exit-{}-{}.json",
            exit.exit.message.validator_index, exit.exit.message.epoch
        );
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let text = serde_json::to_string_pretty(exit).map_err(|e| e.to_string())?;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }

    /// Every pending exit file, oldest name first (at most [`MAX_PENDING`]).
    pub fn list(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths.truncate(MAX_PENDING);
        paths
    }

    /// What a pending exit file holds, or why it cannot be read.
    pub fn read(path: &Path) -> Result<PendingExit, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size > MAX_FILE_BYTES {
            return Err(format!("{size} bytes is too large for a pending exit"));
        }
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| format!("not a pending exit: {e}"))
    }

    /// Moves a handled exit's file to `exits/submitted/`.
    pub fn mark_submitted(&self, path: &Path) -> Result<(), String> {
        let done = self.dir.join(SUBMITTED_DIR);
        let name = path.file_name().ok_or("not a file")?;
        std::fs::create_dir_all(&done)
            .and_then(|()| std::fs::rename(path, done.join(name)))
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A pending exit whose partial verified, with what it signs.
struct CheckedExit {
    validator: PublicKeyBytes,
    message: VoluntaryExit,
    root: Root,
    partial: crate::parsig::Partial,
}

/// Offers every pending exit to the peers once an epoch, combines, submits.
pub struct ExitService {
    pub store: DvValidatorStore,
    pub beacon: BeaconNodes,
    pub scheduler: Scheduler,
    pub own: OwnShares,
    pub pending: PendingExits,
    pub clock: SlotClock,
}

impl ExitService {
    /// Runs until the task is dropped; looks for new exit files every slot.
    pub async fn run(self) {
        let service = std::sync::Arc::new(self);
        // The epoch each file was last offered in; files refused once are not logged again.
        let mut offered: HashMap<PathBuf, Epoch> = HashMap::new();
        let mut refused: HashSet<PathBuf> = HashSet::new();
        loop {
            let slot = service.clock.current_slot();
            let epoch = service.store.spec().epoch_of_slot(slot);
            let files = service.pending.list();
            let present: HashSet<&PathBuf> = files.iter().collect();
            offered.retain(|p, _| present.contains(p));
            refused.retain(|p| present.contains(p));
            for path in &files {
                if offered.get(path) == Some(&epoch) || refused.contains(path) {
                    continue;
                }
                // Read and checked once an epoch: the file may have been replaced.
                match PendingExits::read(path).and_then(|exit| service.check(exit)) {
                    Ok(checked) => {
                        offered.insert(path.clone(), epoch);
                        let service = service.clone();
                        let path = path.clone();
                        tokio::spawn(async move { service.offer(path, checked, slot).await });
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), "pending exit refused: {e}");
                        refused.insert(path.clone());
                    }
                }
            }
            tokio::time::sleep_until(service.clock.slot_start(slot + 1)).await;
        }
    }

    /// The file's exit, checked: the index is the validator's, the
    /// signature this node's share over the exit.
    fn check(&self, pending: PendingExit) -> Result<CheckedExit, String> {
        let index = pending.exit.message.validator_index;
        if let Some(known) = self.scheduler.validator_by_index(index) {
            if known != pending.validator {
                return Err(format!(
                    "validator index {index} belongs to {known}, not {}",
                    pending.validator
                ));
            }
        }
        let message = pending.exit.message;
        let root = self
            .store
            .signing_root(DomainKind::VoluntaryExit, message.epoch, &message);
        let partial = self
            .own
            .verify(&pending.validator, root, &pending.exit.signature)?;
        Ok(CheckedExit {
            validator: pending.validator,
            message,
            root,
            partial,
        })
    }

    /// One epoch's offer of one exit: done if the chain shows the exit
    /// already, else the exchange until the epoch ends, then the submission.
    async fn offer(&self, path: PathBuf, exit: CheckedExit, slot: Slot) {
        let CheckedExit {
            validator,
            message,
            root,
            partial,
        } = exit;
        let index = message.validator_index;
        if self.on_chain(&validator).await {
            tracing::info!(
                validator_index = index,
                duty = "exit",
                "duty ok: the chain already shows the validator's exit"
            );
            self.done(&path);
            return;
        }
        let spec = self.store.spec();
        let duty = exit_duty(spec, slot);
        let next_epoch = spec.epoch_of_slot(slot) + 1;
        let deadline = self.clock.slot_start(spec.start_slot_of_epoch(next_epoch));
        let combined = self
            .store
            .exchange_partials(duty, root, vec![partial], &[validator], deadline)
            .await;
        let signature = match combined.map(|mut s| s.remove(&validator)) {
            Ok(Some(signature)) => signature,
            Ok(None) => {
                tracing::info!(
                    validator_index = index,
                    exit_epoch = message.epoch,
                    "voluntary exit: fewer than the threshold of operators' partials this epoch; offered again next epoch"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(
                    validator_index = index,
                    duty = "exit",
                    "voluntary exit exchange: {e}"
                );
                return;
            }
        };
        let signed = SignedVoluntaryExit { message, signature };
        match self
            .beacon
            .first_success(|n| n.submit_voluntary_exit(&signed))
            .await
        {
            Ok(()) => {
                tracing::info!(
                    validator_index = index,
                    exit_epoch = message.epoch,
                    duty = "exit",
                    "duty ok: voluntary exit submitted"
                );
                self.done(&path);
            }
            Err(e) => tracing::error!(
                validator_index = index,
                duty = "exit",
                "duty failed: beacon node error: {e} (offered again next epoch)"
            ),
        }
    }

    /// Whether the beacon node shows the validator exiting or exited.
    async fn on_chain(&self, validator: &PublicKeyBytes) -> bool {
        let ids = [validator.to_string()];
        match self.beacon.first_success(|n| n.validators(&ids)).await {
            Ok(found) => found.iter().any(|v| {
                v.validator.pubkey == *validator && v.validator.exit_epoch != FAR_FUTURE_EPOCH
            }),
            Err(_) => false,
        }
    }

    fn done(&self, path: &Path) {
        if let Err(e) = self.pending.mark_submitted(path) {
            tracing::warn!("pending exit: {e}");
        }
    }
}

/// `dvnode exit sign`: this node's partial over `validator`'s exit at
/// `epoch` (default: the current epoch), written to the node's pending
/// exits for its running node to offer the peers. The beacon node gives the
/// validator's index and the chain's domain.
pub async fn sign_exit(
    data_dir: &Path,
    beacon_urls: &[String],
    validator: PublicKeyBytes,
    epoch: Option<Epoch>,
) -> Result<(PathBuf, VoluntaryExit), String> {
    let dir = dv_cluster::NodeDir::new(data_dir);
    let lock = dv_cluster::ClusterLock::load(&dir.lock_path()).map_err(|e| e.to_string())?;
    let k = lock
        .body
        .validators
        .iter()
        .position(|v| v.public_key == validator)
        .ok_or_else(|| format!("validator {validator} is not in this cluster's lock"))?;
    let share = crate::keys::load_share(&dir, &lock, k)?;
    let beacon = BeaconNodes::new(beacon_urls, std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let genesis = beacon
        .first_success(|n| n.genesis())
        .await
        .map_err(|e| format!("beacon node: {e}"))?;
    crate::keys::check_same_chain(&lock, &genesis)?;
    let spec = beacon
        .first_success(|n| n.spec())
        .await
        .map_err(|e| format!("beacon node: {e}"))?;
    let ids = [validator.to_string()];
    let index = beacon
        .first_success(|n| n.validators(&ids))
        .await
        .map_err(|e| format!("beacon node: {e}"))?
        .into_iter()
        .find(|v| v.validator.pubkey == validator)
        .map(|v| v.index)
        .ok_or_else(|| format!("the beacon node does not know validator {validator}"))?;
    let epoch = epoch.unwrap_or_else(|| {
        let clock = SlotClock::new(genesis.genesis_time, &spec);
        spec.epoch_of_slot(clock.current_slot())
    });
    let message = VoluntaryExit {
        epoch,
        validator_index: index,
    };
    let root = crate::validator_store::SigningRoots {
        spec: &spec,
        genesis_validators_root: genesis.genesis_validators_root,
    }
    .of(DomainKind::VoluntaryExit, epoch, &message);
    let partial = share.sign(root.as_slice());
    let path = PendingExits::new(data_dir).add(&PendingExit {
        validator,
        exit: SignedVoluntaryExit {
            message,
            signature: SignatureBytes(partial.signature.to_bytes()),
        },
    })?;
    Ok((path, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(index: u64, epoch: Epoch) -> PendingExit {
        PendingExit {
            validator: PublicKeyBytes([7; 48]),
            exit: SignedVoluntaryExit {
                message: VoluntaryExit {
                    epoch,
                    validator_index: index,
                },
                signature: SignatureBytes::infinity(),
            },
        }
    }

    #[test]
    fn exits_are_written_listed_and_moved_once_submitted() {
        let dir = std::env::temp_dir().join(format!("dv-exits-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let exits = PendingExits::new(&dir);
        assert!(exits.list().is_empty());
        let path = exits.add(&pending(3, 10)).unwrap();
        exits.add(&pending(4, 0)).unwrap();
        std::fs::write(dir.join(EXITS_DIR).join("junk.json"), "{").unwrap();
        let listed = exits.list();
        assert_eq!(listed.len(), 3);
        assert_eq!(PendingExits::read(&listed[0]).unwrap(), pending(3, 10));
        assert!(PendingExits::read(&listed[2])
            .unwrap_err()
            .contains("not a pending exit"));
        exits.mark_submitted(&path).unwrap();
        assert_eq!(exits.list().len(), 2);
        assert!(dir
            .join(EXITS_DIR)
            .join(SUBMITTED_DIR)
            .join(path.file_name().unwrap())
            .exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_exit_duty_per_epoch_whatever_the_exit_epoch() {
        let spec = ChainSpec::minimal();
        assert_eq!(exit_duty(&spec, 17), Duty::new(16, DutyType::Exit));
        assert_eq!(exit_duty(&spec, 23), exit_duty(&spec, 16));
        assert_ne!(exit_duty(&spec, 24), exit_duty(&spec, 23));
    }
}
