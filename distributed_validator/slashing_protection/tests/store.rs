//! The store: Lighthouse's file format, the signing rules, bad input, pruning,
//! interchange round trips, single-process locking and crash durability.

use dv_types::{PublicKeyBytes, Root};
use proptest::prelude::*;
use rusqlite::Connection;
use slashing_protection::*;

fn pk(n: u8) -> PublicKeyBytes {
    PublicKeyBytes([n; 48])
}

fn root(n: u8) -> Root {
    Root::repeat_byte(n)
}

fn fresh() -> (tempfile::TempDir, SlashingDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
    db.register_validators(&[pk(1), pk(2)]).unwrap();
    (dir, db)
}

#[test]
fn opens_a_file_written_by_lighthouse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILENAME);
    {
        // The schema and rows as Lighthouse's validator client writes them.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE validators (id INTEGER PRIMARY KEY, public_key BLOB NOT NULL UNIQUE, enabled BOOL NOT NULL DEFAULT TRUE);
             CREATE TABLE signed_blocks (validator_id INTEGER NOT NULL, slot INTEGER NOT NULL, signing_root BLOB NOT NULL,
                 FOREIGN KEY(validator_id) REFERENCES validators(id) UNIQUE (validator_id, slot));
             CREATE TABLE signed_attestations (validator_id INTEGER, source_epoch INTEGER NOT NULL, target_epoch INTEGER NOT NULL,
                 signing_root BLOB NOT NULL, FOREIGN KEY(validator_id) REFERENCES validators(id) UNIQUE (validator_id, target_epoch));",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO validators (public_key) VALUES (?1)",
            [pk(7).0.as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO validators (public_key, enabled) VALUES (?1, FALSE)",
            [pk(8).0.as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO signed_blocks VALUES (1, 100, ?1)",
            [root(1).as_slice()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO signed_attestations VALUES (1, 10, 11, ?1)",
            [root(2).as_slice()],
        )
        .unwrap();
    }
    let db = SlashingDatabase::open(&path).unwrap();
    assert_eq!(db.check_block(&pk(7), 100, root(1)), Ok(Safe::SameData));
    assert!(matches!(
        db.check_block(&pk(7), 100, root(9)),
        Err(NotSafe::InvalidBlock(InvalidBlock::DoubleBlockProposal {
            slot: 100,
            ..
        }))
    ));
    assert!(matches!(
        db.check_attestation(&pk(7), 10, 11, root(3)),
        Err(NotSafe::InvalidAttestation(
            InvalidAttestation::DoubleVote { .. }
        ))
    ));
    assert_eq!(
        db.check_and_insert_attestation(&pk(7), 11, 12, root(4)),
        Ok(Safe::Valid)
    );
    assert_eq!(
        db.check_block(&pk(8), 1, root(1)),
        Err(NotSafe::DisabledValidator(pk(8)))
    );
    drop(db);
    // Lighthouse's tables are unchanged in shape: a plain reader still sees its rows.
    let conn = Connection::open(&path).unwrap();
    let count: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM signed_attestations WHERE validator_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 2);
}

#[test]
fn block_rules() {
    let (_dir, db) = fresh();
    assert_eq!(
        db.check_and_insert_block(&pk(1), 10, root(1)),
        Ok(Safe::Valid)
    );
    assert_eq!(
        db.check_and_insert_block(&pk(1), 10, root(1)),
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_and_insert_block(&pk(1), 10, root(2)),
        Err(NotSafe::InvalidBlock(InvalidBlock::DoubleBlockProposal {
            slot: 10,
            existing_root: root(1)
        }))
    );
    assert_eq!(
        db.check_and_insert_block(&pk(1), 9, root(3)),
        Err(NotSafe::InvalidBlock(
            InvalidBlock::SlotViolatesLowerBound {
                slot: 9,
                lower_bound: 10
            }
        ))
    );
    assert_eq!(
        db.check_and_insert_block(&pk(1), 12, root(3)),
        Ok(Safe::Valid)
    );
    // Another validator is independent.
    assert_eq!(
        db.check_and_insert_block(&pk(2), 10, root(2)),
        Ok(Safe::Valid)
    );
    assert_eq!(
        db.check_block(&pk(3), 10, root(2)),
        Err(NotSafe::UnregisteredValidator(pk(3)))
    );
}

#[test]
fn attestation_rules() {
    let (_dir, db) = fresh();
    let ok = |s, t, r| db.check_and_insert_attestation(&pk(1), s, t, root(r));
    let refused = |s, t, r| match db.check_and_insert_attestation(&pk(1), s, t, root(r)) {
        Err(NotSafe::InvalidAttestation(reason)) => reason,
        other => panic!("{s}->{t} was not refused: {other:?}"),
    };
    assert!(matches!(
        refused(5, 4, 1),
        InvalidAttestation::SourceExceedsTarget { .. }
    ));
    assert_eq!(ok(2, 5, 1), Ok(Safe::Valid));
    assert_eq!(ok(2, 5, 1), Ok(Safe::SameData));
    assert!(matches!(
        refused(2, 5, 2),
        InvalidAttestation::DoubleVote { .. }
    ));
    assert!(matches!(
        refused(1, 6, 3),
        InvalidAttestation::NewSurroundsPrev { .. }
    ));
    assert!(matches!(
        refused(3, 4, 3),
        InvalidAttestation::PrevSurroundsNew { .. }
    ));
    assert!(matches!(
        refused(1, 4, 3),
        InvalidAttestation::SourceLessThanLowerBound { .. }
    ));
    assert_eq!(ok(5, 6, 4), Ok(Safe::Valid));
    assert!(matches!(
        refused(2, 5, 9),
        InvalidAttestation::DoubleVote { .. }
    ));
}

#[test]
fn check_only_records_nothing() {
    let (_dir, db) = fresh();
    assert_eq!(db.check_attestation(&pk(1), 1, 2, root(1)), Ok(Safe::Valid));
    assert_eq!(db.check_block(&pk(1), 5, root(1)), Ok(Safe::Valid));
    // Had the checks recorded, these different roots would be refused.
    assert_eq!(
        db.check_and_insert_attestation(&pk(1), 1, 2, root(2)),
        Ok(Safe::Valid)
    );
    assert_eq!(
        db.check_and_insert_block(&pk(1), 5, root(2)),
        Ok(Safe::Valid)
    );
}

#[test]
fn batch_records_each_validator_and_refuses_individually() {
    let (_dir, db) = fresh();
    db.check_and_insert_attestation(&pk(2), 3, 4, root(1))
        .unwrap();
    let request = |p, r| AttestationRequest {
        pubkey: pk(p),
        source_epoch: 3,
        target_epoch: 4,
        signing_root: root(r),
    };
    let results = db
        .check_and_insert_attestations(&[request(1, 5), request(2, 5), request(3, 5)])
        .unwrap();
    assert_eq!(results[0], Ok(Safe::Valid));
    assert!(matches!(
        results[1],
        Err(NotSafe::InvalidAttestation(
            InvalidAttestation::DoubleVote { .. }
        ))
    ));
    assert_eq!(results[2], Err(NotSafe::UnregisteredValidator(pk(3))));
    assert_eq!(
        db.check_attestation(&pk(1), 3, 4, root(5)),
        Ok(Safe::SameData)
    );
}

#[test]
fn a_second_opener_is_refused() {
    let (dir, _db) = fresh();
    let err = SlashingDatabase::open_in_dir(dir.path()).unwrap_err();
    assert!(matches!(err, OpenError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("in use by another process"));
}

#[test]
fn corrupt_and_truncated_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let err = SlashingDatabase::open(&garbage).unwrap_err().to_string();
    assert!(err.contains("garbage.sqlite"), "{err}");

    let good = dir.path().join("good.sqlite");
    {
        let db = SlashingDatabase::open(&good).unwrap();
        db.register_validators(&(0..200).map(|i| pk(i as u8)).collect::<Vec<_>>())
            .unwrap();
        for s in 0..2000u64 {
            db.check_and_insert_attestation(&pk(1), s, s + 1, root(1))
                .unwrap();
        }
    }
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.sqlite");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = SlashingDatabase::open(&truncated).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("truncated.sqlite"), "{err}");
}

fn interchange_json(gvr: Root, data: &str) -> String {
    format!(
        r#"{{"metadata": {{"interchange_format_version": "5", "genesis_validators_root": "{gvr}"}}, "data": {data}}}"#
    )
}

#[test]
fn bad_interchanges_import_nothing() {
    let (_dir, db) = fresh();
    db.set_or_check_genesis_validators_root(root(0xaa)).unwrap();
    let key = pk(1).to_string();
    // Wrong genesis validators root.
    let other = Interchange::from_json(&interchange_json(root(0xbb), "[]")).unwrap();
    assert!(matches!(
        db.import_interchange(&other),
        Err(InterchangeError::GenesisValidatorsRootMismatch { .. })
    ));
    // Malformed JSON, wrong types, short pubkey, wrong version.
    for bad in [
        "{".to_string(),
        interchange_json(
            root(0xaa),
            &format!(
                r#"[{{"pubkey": "{key}", "signed_blocks": [{{"slot": {{}}}}], "signed_attestations": []}}]"#
            ),
        ),
        interchange_json(
            root(0xaa),
            r#"[{"pubkey": "0x0102", "signed_blocks": [], "signed_attestations": []}]"#,
        ),
        interchange_json(root(0xaa), "[]").replace("\"5\"", "\"4\""),
    ] {
        assert!(Interchange::from_json(&bad).is_err(), "{bad}");
    }
    // A valid entry followed by a slashable one: the whole import rolls back.
    let slashable = interchange_json(
        root(0xaa),
        &format!(
            r#"[{{"pubkey": "{key}", "signed_blocks": [{{"slot": "50"}}], "signed_attestations": []}},
                {{"pubkey": "{key}", "signed_blocks": [], "signed_attestations": [
                    {{"source_epoch": "1", "target_epoch": "10"}}, {{"source_epoch": "2", "target_epoch": "9"}}]}}]"#
        ),
    );
    let err = db
        .import_interchange(&Interchange::from_json(&slashable).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, InterchangeError::SlashableData { index: 1, .. }),
        "{err}"
    );
    assert_eq!(
        db.check_block(&pk(1), 50, root(1)),
        Ok(Safe::Valid),
        "partial import leaked"
    );
}

#[test]
fn export_then_import_protects_the_same() {
    let (_dir, db) = fresh();
    let gvr = root(0x11);
    db.check_and_insert_block(&pk(1), 100, root(1)).unwrap();
    db.check_and_insert_block(&pk(1), 120, root(2)).unwrap();
    db.check_and_insert_attestation(&pk(1), 10, 11, root(3))
        .unwrap();
    db.check_and_insert_attestation(&pk(1), 11, 12, root(4))
        .unwrap();
    for format in [ExportFormat::Complete, ExportFormat::Minimal] {
        let text = db.export_interchange(gvr, format, None).unwrap().to_json();
        let dir = tempfile::tempdir().unwrap();
        let copy = SlashingDatabase::open_in_dir(dir.path()).unwrap();
        copy.import_interchange(&Interchange::from_json(&text).unwrap())
            .unwrap();
        assert_eq!(copy.genesis_validators_root().unwrap(), Some(gvr));
        assert!(
            copy.check_block(&pk(1), 120, root(9)).is_err(),
            "{format:?}"
        );
        // Complete history allows a gap slot above the lowest; minimal only keeps the highest.
        let gap = copy.check_block(&pk(1), 110, root(9));
        assert_eq!(
            gap.is_ok(),
            format == ExportFormat::Complete,
            "{format:?}: {gap:?}"
        );
        assert!(
            copy.check_attestation(&pk(1), 11, 12, root(9)).is_err(),
            "{format:?}"
        );
        assert!(
            copy.check_attestation(&pk(1), 9, 13, root(9)).is_err(),
            "{format:?}"
        );
        assert_eq!(
            copy.check_attestation(&pk(1), 12, 13, root(9)),
            Ok(Safe::Valid),
            "{format:?}"
        );
        if format == ExportFormat::Complete {
            assert_eq!(copy.check_block(&pk(1), 100, root(1)), Ok(Safe::SameData));
        }
    }
}

#[test]
fn pruning_keeps_what_was_forbidden_forbidden() {
    let (_dir, db) = fresh();
    for e in 0..100u64 {
        db.check_and_insert_attestation(&pk(1), e, e + 1, root(1))
            .unwrap();
        db.check_and_insert_block(&pk(1), e * 8, root(2)).unwrap();
    }
    let summary = db.prune(90, 8).unwrap();
    assert_eq!(summary.attestations, 88);
    assert_eq!(summary.blocks, 89);
    // Everything older than the kept records is still refused.
    assert!(db.check_attestation(&pk(1), 20, 21, root(1)).is_err());
    assert!(db.check_attestation(&pk(1), 0, 101, root(9)).is_err());
    assert!(db.check_block(&pk(1), 16, root(2)).is_err());
    assert!(db.check_block(&pk(1), 712, root(7)).is_err());
    assert_eq!(
        db.check_attestation(&pk(1), 100, 101, root(1)),
        Ok(Safe::Valid)
    );
    assert_eq!(db.check_block(&pk(1), 800, root(2)), Ok(Safe::Valid));
}

/// A child process records an attestation and aborts at once; the record survives.
#[test]
fn a_recorded_attestation_survives_a_crash() {
    if let Ok(dir) = std::env::var("DV_SLASHING_CRASH_CHILD") {
        let db = SlashingDatabase::open_in_dir(std::path::Path::new(&dir)).unwrap();
        db.register_validators(&[pk(1)]).unwrap();
        db.check_and_insert_attestation(&pk(1), 4, 5, root(1))
            .unwrap();
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_recorded_attestation_survives_a_crash",
            "--nocapture",
        ])
        .env("DV_SLASHING_CRASH_CHILD", dir.path())
        .status()
        .unwrap();
    assert!(!status.success(), "the child should have aborted");
    let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
    assert!(matches!(
        db.check_attestation(&pk(1), 4, 5, root(2)),
        Err(NotSafe::InvalidAttestation(
            InvalidAttestation::DoubleVote { .. }
        ))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever is offered, the accepted attestations contain no slashable pair.
    #[test]
    fn accepted_attestations_are_never_slashable(offers in proptest::collection::vec((0u64..20, 0u64..20, 0u8..3), 1..40)) {
        let (_dir, db) = fresh();
        let mut accepted: Vec<(u64, u64, u8)> = Vec::new();
        for (s, t, r) in offers {
            if let Ok(Safe::Valid) = db.check_and_insert_attestation(&pk(1), s, t, root(r + 1)) {
                accepted.push((s, t, r));
            }
        }
        for (i, a) in accepted.iter().enumerate() {
            prop_assert!(a.0 <= a.1);
            for b in &accepted[i + 1..] {
                prop_assert!(a.1 != b.1, "double vote {a:?} {b:?}");
                let surrounds = |x: &(u64, u64, u8), y: &(u64, u64, u8)| x.0 < y.0 && y.1 < x.1;
                prop_assert!(!surrounds(a, b) && !surrounds(b, a), "surround {a:?} {b:?}");
            }
        }
    }
}
