//! The public EIP-3076 interchange test suite, run against a fresh database
//! per case. Directory: `$DV_INTERCHANGE_TESTS_DIR`, or
//! `../shared/test-vectors/slashing-interchange` beside the repository.

use dv_types::{PublicKeyBytes, Root};
use serde::Deserialize;
use slashing_protection::*;
use std::path::{Path, PathBuf};

fn suite_dir() -> PathBuf {
    std::env::var_os("DV_INTERCHANGE_TESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/test-vectors/slashing-interchange")
        })
}

#[derive(Deserialize)]
struct Case {
    name: String,
    genesis_validators_root: Root,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    should_succeed: bool,
    contains_slashable_data: bool,
    interchange: serde_json::Value,
    blocks: Vec<TestBlock>,
    attestations: Vec<TestAttestation>,
}

#[derive(Deserialize)]
struct TestBlock {
    pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64")]
    slot: u64,
    signing_root: Option<Root>,
    should_succeed_complete: bool,
}

#[derive(Deserialize)]
struct TestAttestation {
    pubkey: PublicKeyBytes,
    #[serde(with = "serde_utils::quoted_u64")]
    source_epoch: u64,
    #[serde(with = "serde_utils::quoted_u64")]
    target_epoch: u64,
    signing_root: Option<Root>,
    should_succeed_complete: bool,
}

/// Runs one case; returns the failures found and whether a refused slashable import cut it short.
fn run_case(case: &Case) -> (Vec<String>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
    db.set_or_check_genesis_validators_root(case.genesis_validators_root)
        .unwrap();
    let mut failures = Vec::new();
    for (s, step) in case.steps.iter().enumerate() {
        let imported = Interchange::from_json(&step.interchange.to_string())
            .and_then(|i| db.import_interchange(&i));
        match (&imported, step.should_succeed) {
            (Ok(_), true) | (Err(_), false) => {}
            (Err(_), true) if step.contains_slashable_data => return (failures, true), // refusing is allowed; skip the rest
            (Ok(_), false) => failures.push(format!("step {s}: import succeeded but should fail")),
            (Err(e), true) => failures.push(format!("step {s}: import failed: {e}")),
        }
        for (i, b) in step.blocks.iter().enumerate() {
            let root = b.signing_root.unwrap_or(Root::ZERO);
            let outcome = db.check_and_insert_block(&b.pubkey, b.slot, root);
            if outcome.is_ok() != b.should_succeed_complete {
                failures.push(format!(
                    "step {s} block {i} (slot {}): got {outcome:?}",
                    b.slot
                ));
            }
        }
        for (i, a) in step.attestations.iter().enumerate() {
            let root = a.signing_root.unwrap_or(Root::ZERO);
            let outcome =
                db.check_and_insert_attestation(&a.pubkey, a.source_epoch, a.target_epoch, root);
            if outcome.is_ok() != a.should_succeed_complete {
                failures.push(format!(
                    "step {s} attestation {i} ({}→{}): got {outcome:?}",
                    a.source_epoch, a.target_epoch
                ));
            }
        }
    }
    (failures, false)
}

#[test]
fn eip3076_interchange_suite() {
    let dir = suite_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("schema.json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut refused = 0;
    for path in &paths {
        let case: Case = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (case_failures, cut_short) = run_case(&case);
        refused += cut_short as usize;
        for f in case_failures {
            failures.push(format!("{}: {f}", case.name));
        }
    }
    assert!(
        !paths.is_empty(),
        "no interchange case found in {}",
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "EIP-3076: {} cases passed ({refused} of them by refusing a slashable import, as the suite permits)",
        paths.len()
    );
}
