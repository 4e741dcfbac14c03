//! Runs every `ssz_static` case of the consensus-spec tests we have:
//! `value.yaml` must hash to `roots.yaml`, and survive SSZ and JSON round trips.
//!
//! The directory is `$DV_SSZ_STATIC_DIR`, or `../shared/test-vectors/ssz_static`
//! beside the repository. Finding no case is a failure, never a pass.

use dv_types::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ssz::{Decode, Encode};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use tree_hash::TreeHash;

fn vectors_dir() -> PathBuf {
    std::env::var_os("DV_SSZ_STATIC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/test-vectors/ssz_static")
        })
}

#[derive(serde::Deserialize)]
struct Roots {
    root: Root,
}

/// Checks one case for container type `T`; returns an error text on mismatch.
fn check<T>(case: &Path) -> Result<(), String>
where
    T: DeserializeOwned + Serialize + Encode + Decode + TreeHash + PartialEq + Debug,
{
    let read = |name: &str| {
        std::fs::read_to_string(case.join(name))
            .map_err(|e| format!("{}: {e}", case.join(name).display()))
    };
    let value: T =
        serde_yaml::from_str(&read("value.yaml")?).map_err(|e| format!("value.yaml: {e}"))?;
    let roots: Roots =
        serde_yaml::from_str(&read("roots.yaml")?).map_err(|e| format!("roots.yaml: {e}"))?;
    let root = value.tree_hash_root();
    if root != roots.root {
        return Err(format!("root {root} != expected {}", roots.root));
    }
    let decoded =
        T::from_ssz_bytes(&value.as_ssz_bytes()).map_err(|e| format!("SSZ round trip: {e:?}"))?;
    if decoded != value {
        return Err("SSZ round trip changed the value".into());
    }
    let json = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    let from_json: T = serde_json::from_str(&json).map_err(|e| format!("JSON round trip: {e}"))?;
    if from_json != value {
        return Err("JSON round trip changed the value".into());
    }
    Ok(())
}

fn check_case(fork: &str, type_name: &str, case: &Path) -> Result<(), String> {
    type P = Mainnet;
    match (fork, type_name) {
        ("electra" | "fulu", "Attestation") => check::<AttestationElectra<P>>(case),
        ("electra" | "fulu", "BeaconBlock") => check::<BeaconBlockElectra<P>>(case),
        ("electra" | "fulu", "BeaconBlockBody") => check::<BeaconBlockBodyElectra<P>>(case),
        ("electra" | "fulu", "AggregateAndProof") => check::<AggregateAndProofElectra<P>>(case),
        ("electra" | "fulu", "ExecutionPayloadHeader") => check::<ExecutionPayloadHeader<P>>(case),
        ("deneb", "Attestation") => check::<AttestationDeneb<P>>(case),
        ("deneb", "BeaconBlock") => check::<BeaconBlockDeneb<P>>(case),
        ("deneb", "AggregateAndProof") => check::<AggregateAndProofDeneb<P>>(case),
        (_, "SingleAttestation") => check::<SingleAttestation>(case),
        (_, "AttestationData") => check::<AttestationData>(case),
        (_, "Checkpoint") => check::<Checkpoint>(case),
        (_, "BeaconBlockHeader") => check::<BeaconBlockHeader>(case),
        (_, "ContributionAndProof") => check::<ContributionAndProof<P>>(case),
        (_, "SyncCommitteeContribution") => check::<SyncCommitteeContribution<P>>(case),
        (_, "SyncCommitteeMessage") => check::<SyncCommitteeMessage>(case),
        (_, "SyncAggregatorSelectionData") => check::<SyncAggregatorSelectionData>(case),
        (_, "DepositMessage") => check::<DepositMessage>(case),
        (_, "DepositData") => check::<DepositData>(case),
        (_, "Fork") => check::<Fork>(case),
        (_, "ForkData") => check::<ForkData>(case),
        (_, "SigningData") => check::<SigningData>(case),
        (_, "VoluntaryExit") => check::<VoluntaryExit>(case),
        (_, "SignedVoluntaryExit") => check::<SignedVoluntaryExit>(case),
        (_, "ValidatorRegistrationV1") => check::<ValidatorRegistration>(case),
        (_, "ExecutionPayload") => check::<ExecutionPayload<P>>(case),
        _ => Err(format!("no container is mapped to {fork}/{type_name}")),
    }
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn ssz_static_vectors() {
    let root = vectors_dir();
    let mut passed = 0;
    let mut failures = Vec::new();
    for fork_dir in sorted_dirs(&root) {
        let fork = fork_dir.file_name().unwrap().to_string_lossy().to_string();
        for type_dir in sorted_dirs(&fork_dir) {
            let type_name = type_dir.file_name().unwrap().to_string_lossy().to_string();
            for case in sorted_dirs(&type_dir) {
                match check_case(&fork, &type_name, &case) {
                    Ok(()) => passed += 1,
                    Err(e) => failures.push(format!("{}: {e}", case.display())),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        passed > 0,
        "no ssz_static case found under {}",
        root.display()
    );
    println!("ssz_static: {passed} cases passed");
}

/// A corrupted root must fail: guards against a checker that always passes.
#[test]
fn wrong_root_is_detected() {
    let dir = tempfile_dir();
    let case = vectors_dir().join("electra/Fork/case_0");
    std::fs::copy(case.join("value.yaml"), dir.join("value.yaml")).unwrap();
    std::fs::write(
        dir.join("roots.yaml"),
        format!("{{root: '{}'}}\n", Root::repeat_byte(1)),
    )
    .unwrap();
    assert!(check::<Fork>(&dir).is_err());
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dv-ssz-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
