//! `dvnode create cluster` and `dvnode combine`, run as the real binary.

use dv_cluster::{ClusterLock, NodeDir};
use dv_crypto::keystore::read_password_file;
use dv_crypto::*;
use std::path::Path;
mod common;

use common::{dvnode, text};
use std::process::Output;

/// Validator 0's interop public key, as dev chains derive it.
const INTEROP_PUBKEY_0: &str =
    "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";

fn create(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "create",
        "cluster",
        "--out",
        out.to_str().unwrap(),
        "--insecure-keystores",
    ];
    args.extend_from_slice(extra);
    dvnode(&args)
}

fn share_of(cluster: &Path, node: usize, validator: usize) -> SecretKey {
    let dir = NodeDir::in_cluster(cluster, node);
    let password = read_password_file(&dir.password_path(validator)).unwrap();
    Keystore::load(&dir.keystore_path(validator), &password).unwrap()
}

#[test]
fn any_threshold_of_node_keystores_signs_for_the_interop_validator() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cluster");
    let result = create(
        &out,
        &[
            "--interop-validators",
            "0..2",
            "--nodes",
            "4",
            "--network",
            "minimal",
        ],
    );
    assert!(result.status.success(), "{}", text(&result));

    let lock = ClusterLock::load(&NodeDir::in_cluster(&out, 0).lock_path()).unwrap();
    assert_eq!(lock.body.threshold, 3);
    assert_eq!(lock.body.validators.len(), 2);
    assert_eq!(
        lock.body.validators[0].public_key.to_string(),
        INTEROP_PUBKEY_0
    );
    for node in 1..4 {
        let other = ClusterLock::load(&NodeDir::in_cluster(&out, node).lock_path()).unwrap();
        assert_eq!(other.lock_hash, lock.lock_hash);
    }

    let params = ThresholdParams::new(3, 4).unwrap();
    let validator_key = PublicKey::from_bytes(&lock.body.validators[0].public_key.0).unwrap();
    let message = b"a signing root of 32 bytes......";
    let hashed = HashedMessage::new(message);
    for subset in [[0usize, 1, 2], [1, 2, 3], [0, 2, 3], [0, 1, 3]] {
        let partials: Vec<PartialSignature> = subset
            .iter()
            .map(|&node| PartialSignature {
                index: node as u64 + 1,
                signature: share_of(&out, node, 0).sign(message),
            })
            .collect();
        let combined = combine_verified(&partials, params, &validator_key, &hashed).unwrap();
        assert_eq!(
            combined,
            interop_secret_key(0).sign(message),
            "nodes {subset:?}"
        );
    }
    // Two shares are not enough, and shares of validator 1 do not sign for validator 0.
    let two: Vec<PartialSignature> = [0usize, 1]
        .iter()
        .map(|&n| PartialSignature {
            index: n as u64 + 1,
            signature: share_of(&out, n, 0).sign(message),
        })
        .collect();
    assert!(combine(&two, params).is_err());
    let wrong: Vec<PartialSignature> = [0usize, 1, 2]
        .iter()
        .map(|&n| PartialSignature {
            index: n as u64 + 1,
            signature: share_of(&out, n, 1).sign(message),
        })
        .collect();
    assert_eq!(
        combine_verified(&wrong, params, &validator_key, &hashed),
        Err(ThresholdError::CombinedSignatureInvalid)
    );

    // Nothing secret reaches the terminal.
    let printed = text(&result);
    let secret_hex = hex::encode(interop_secret_key(0).to_bytes().as_slice());
    assert!(!printed.contains(&secret_hex));
    let password = read_password_file(&NodeDir::in_cluster(&out, 0).password_path(0)).unwrap();
    assert!(!printed.contains(password.as_str()));
}

#[test]
fn refuses_to_overwrite_and_checks_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    let args = ["--validators", "1", "--nodes", "3"];
    assert!(create(&out, &args).status.success());
    let first = ClusterLock::load(&NodeDir::in_cluster(&out, 0).lock_path()).unwrap();
    let again = create(&out, &args);
    assert!(!again.status.success());
    assert!(text(&again).contains("--force"), "{}", text(&again));
    // The refused run left the first cluster intact.
    assert_eq!(
        ClusterLock::load(&NodeDir::in_cluster(&out, 0).lock_path()).unwrap(),
        first
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(create(&out, &forced).status.success());
    assert_ne!(
        ClusterLock::load(&NodeDir::in_cluster(&out, 0).lock_path()).unwrap(),
        first
    );

    for bad in [
        &["--validators", "1", "--nodes", "2"][..],
        &["--validators", "1", "--nodes", "4", "--threshold", "2"],
        &["--validators", "1", "--nodes", "4", "--threshold", "5"],
        &["--interop-validators", "8..4", "--nodes", "4"],
        &["--validators", "1", "--nodes", "4", "--network", "nowhere"],
    ] {
        let r = create(&tmp.path().join("bad"), bad);
        assert!(!r.status.success(), "{bad:?} was accepted");
        assert!(text(&r).contains("error"), "{}", text(&r));
    }
    // The single-node baseline is allowed.
    assert!(create(
        &tmp.path().join("single"),
        &["--validators", "1", "--nodes", "1"]
    )
    .status
    .success());
}

#[test]
fn tampered_lock_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    assert!(create(&out, &["--validators", "1", "--nodes", "4"])
        .status
        .success());
    let path = NodeDir::in_cluster(&out, 0).lock_path();
    let edited =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("\"threshold\": 3", "\"threshold\": 4", 1);
    std::fs::write(&path, edited).unwrap();
    let err = ClusterLock::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("lock_hash") && err.contains("cluster-lock.json"),
        "{err}"
    );
}

#[test]
fn combine_rebuilds_validator_keystores_from_threshold_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cluster");
    assert!(create(
        &out,
        &[
            "--interop-validators",
            "4..7",
            "--nodes",
            "4",
            "--network",
            "minimal"
        ]
    )
    .status
    .success());
    // Keep nodes 1..=3 only: any t nodes suffice.
    let partial = tmp.path().join("three");
    std::fs::create_dir(&partial).unwrap();
    for node in 1..4 {
        std::fs::rename(
            out.join(format!("node{node}")),
            partial.join(format!("node{node}")),
        )
        .unwrap();
    }
    let keys = tmp.path().join("keys");
    let r = dvnode(&[
        "combine",
        "--cluster",
        partial.to_str().unwrap(),
        "--out",
        keys.to_str().unwrap(),
        "--insecure-keystores",
    ]);
    assert!(r.status.success(), "{}", text(&r));
    for k in 0..3 {
        let password = read_password_file(&keys.join(format!("keystore-{k}.txt"))).unwrap();
        let sk = Keystore::load(&keys.join(format!("keystore-{k}.json")), &password).unwrap();
        assert_eq!(sk.to_bytes(), interop_secret_key(4 + k as u64).to_bytes());
    }
    // With only t-1 nodes it refuses.
    std::fs::remove_dir_all(partial.join("node3")).unwrap();
    let r = dvnode(&[
        "combine",
        "--cluster",
        partial.to_str().unwrap(),
        "--out",
        tmp.path().join("k2").to_str().unwrap(),
    ]);
    assert!(!r.status.success());
    assert!(text(&r).contains("needed"), "{}", text(&r));
}

#[test]
fn splits_existing_keystores() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let sk = interop_secret_key(9);
    let ks = Keystore::encrypt(&sk, "pw", KdfChoice::Pbkdf2 { iterations: 16 }, "", "");
    std::fs::write(src.join("keystore-a.json"), ks.to_json()).unwrap();
    std::fs::write(src.join("pass.txt"), "pw\n").unwrap();
    let out = tmp.path().join("c");
    let r = create(
        &out,
        &[
            "--split-keystores",
            src.to_str().unwrap(),
            "--password-file",
            src.join("pass.txt").to_str().unwrap(),
            "--nodes",
            "3",
        ],
    );
    assert!(r.status.success(), "{}", text(&r));
    let lock = ClusterLock::load(&NodeDir::in_cluster(&out, 2).lock_path()).unwrap();
    assert_eq!(
        lock.body.validators[0].public_key.0,
        sk.public_key().to_bytes()
    );
    // A wrong password names the keystore file.
    std::fs::write(src.join("pass.txt"), "nope").unwrap();
    let r = create(
        &tmp.path().join("c2"),
        &[
            "--split-keystores",
            src.to_str().unwrap(),
            "--password-file",
            src.join("pass.txt").to_str().unwrap(),
            "--nodes",
            "3",
        ],
    );
    assert!(!r.status.success());
    assert!(
        text(&r).contains("keystore-a.json") && text(&r).contains("wrong password"),
        "{}",
        text(&r)
    );
}
