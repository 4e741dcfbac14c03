//! The decided store: the consensus decision passes through the slashing
//! database before anything is signed. The decided attestation is checked and
//! recorded for every validator of the slot in one durable transaction; only
//! the validators it accepts go on to the signer (rules 1, 2 and 5 of
//! ARCHITECTURE.md).

use dv_types::{AttestationData, PublicKeyBytes, Root};
use slashing_protection::{AttestationRequest, NotSafe, SlashingDatabase};

/// The outcome for each validator: sign, or the refusal to log.
#[derive(Debug, PartialEq, Eq)]
pub struct Approval {
    pub approved: Vec<PublicKeyBytes>,
    pub refused: Vec<(PublicKeyBytes, NotSafe)>,
}

/// Records `data` (signed as `signing_root`) for `validators`; returns who may sign.
pub fn approve_attestation(
    db: &SlashingDatabase,
    data: &AttestationData,
    signing_root: Root,
    validators: &[PublicKeyBytes],
) -> Result<Approval, NotSafe> {
    let requests: Vec<AttestationRequest> = validators
        .iter()
        .map(|v| AttestationRequest {
            pubkey: *v,
            source_epoch: data.source.epoch,
            target_epoch: data.target.epoch,
            signing_root,
        })
        .collect();
    let outcomes = db.check_and_insert_attestations(&requests)?;
    let mut approval = Approval {
        approved: Vec::new(),
        refused: Vec::new(),
    };
    for (validator, outcome) in validators.iter().zip(outcomes) {
        match outcome {
            Ok(_) => approval.approved.push(*validator),
            Err(reason) => approval.refused.push((*validator, reason)),
        }
    }
    Ok(approval)
}

/// The validity predicate's half of the slashing check: would `data` be
/// accepted for every validator? Records nothing.
pub fn attestation_allowed(
    db: &SlashingDatabase,
    data: &AttestationData,
    signing_root: Root,
    validators: &[PublicKeyBytes],
) -> Result<(), NotSafe> {
    for v in validators {
        db.check_attestation(v, data.source.epoch, data.target.epoch, signing_root)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dv_types::Checkpoint;

    fn data(source: u64, target: u64, root: u8) -> AttestationData {
        AttestationData {
            slot: target * 8,
            index: 0,
            beacon_block_root: Root::repeat_byte(root),
            source: Checkpoint {
                epoch: source,
                root: Root::ZERO,
            },
            target: Checkpoint {
                epoch: target,
                root: Root::ZERO,
            },
        }
    }

    #[test]
    fn records_before_signing_and_refuses_per_validator() {
        let dir = tempfile::tempdir().unwrap();
        let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
        let (a, b) = (PublicKeyBytes([1; 48]), PublicKeyBytes([2; 48]));
        db.register_validators(&[a, b]).unwrap();
        // Validator b already signed something else for target 3 (e.g. before joining the cluster).
        db.check_and_insert_attestation(&b, 2, 3, Root::repeat_byte(9))
            .unwrap();
        let decided = data(2, 3, 1);
        assert!(attestation_allowed(&db, &decided, Root::repeat_byte(7), &[a]).is_ok());
        assert!(attestation_allowed(&db, &decided, Root::repeat_byte(7), &[a, b]).is_err());
        let approval = approve_attestation(&db, &decided, Root::repeat_byte(7), &[a, b]).unwrap();
        assert_eq!(approval.approved, vec![a]);
        assert!(matches!(approval.refused[..], [(v, NotSafe::InvalidAttestation(_))] if v == b));
        // Recorded: a different decision for the same target is now refused for a too.
        let other = approve_attestation(&db, &data(2, 3, 5), Root::repeat_byte(8), &[a]).unwrap();
        assert!(other.approved.is_empty());
    }
}
