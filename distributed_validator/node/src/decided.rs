//! The decided store: the consensus decision passes through the slashing
//! database before anything is signed. The decided attestation is checked and
//! recorded for every validator of the slot in one durable transaction; only
//! the validators it accepts go on to the signer (rules 1, 2 and 5 of
//! ARCHITECTURE.md).
//!
//! Each validator comes with its own signing root: from Electra all of a
//! slot's attesters sign one message, before it each committee signs the data
//! with its own committee index.

use dv_types::{AttestationData, PublicKeyBytes, Root};
use slashing_protection::{AttestationRequest, NotSafe, SlashingDatabase};

/// What one validator would sign: `data` under `signing_root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToSign {
    pub validator: PublicKeyBytes,
    pub data: AttestationData,
    pub signing_root: Root,
}

/// The outcome for each validator: sign, or the refusal to log.
#[derive(Debug, PartialEq, Eq)]
pub struct Approval {
    pub approved: Vec<PublicKeyBytes>,
    pub refused: Vec<(PublicKeyBytes, NotSafe)>,
}

/// Records each validator's attestation in one transaction; returns who may sign.
pub fn approve_attestations(db: &SlashingDatabase, items: &[ToSign]) -> Result<Approval, NotSafe> {
    let requests: Vec<AttestationRequest> = items
        .iter()
        .map(|x| AttestationRequest {
            pubkey: x.validator,
            source_epoch: x.data.source.epoch,
            target_epoch: x.data.target.epoch,
            signing_root: x.signing_root,
        })
        .collect();
    let outcomes = db.check_and_insert_attestations(&requests)?;
    dv_fault::reached(dv_fault::AFTER_SLASHING_COMMIT);
    let mut approval = Approval {
        approved: Vec::new(),
        refused: Vec::new(),
    };
    for (item, outcome) in items.iter().zip(outcomes) {
        match outcome {
            Ok(_) => approval.approved.push(item.validator),
            Err(reason) => approval.refused.push((item.validator, reason)),
        }
    }
    Ok(approval)
}

/// The validity predicate's half of the slashing check: would every
/// validator's attestation be accepted? Records nothing.
pub fn attestations_allowed(db: &SlashingDatabase, items: &[ToSign]) -> Result<(), NotSafe> {
    for x in items {
        db.check_attestation(
            &x.validator,
            x.data.source.epoch,
            x.data.target.epoch,
            x.signing_root,
        )?;
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
        let item = |validator, data, root: u8| ToSign {
            validator,
            data,
            signing_root: Root::repeat_byte(root),
        };
        let decided = data(2, 3, 1);
        let (for_a, for_b) = (item(a, decided, 7), item(b, decided, 7));
        assert!(attestations_allowed(&db, &[for_a]).is_ok());
        assert!(attestations_allowed(&db, &[for_a, for_b]).is_err());
        let approval = approve_attestations(&db, &[for_a, for_b]).unwrap();
        assert_eq!(approval.approved, vec![a]);
        assert!(matches!(approval.refused[..], [(v, NotSafe::InvalidAttestation(_))] if v == b));
        // Recorded: a different decision for the same target is now refused for a too.
        let other = approve_attestations(&db, &[item(a, data(2, 3, 5), 8)]).unwrap();
        assert!(other.approved.is_empty());
    }
}
