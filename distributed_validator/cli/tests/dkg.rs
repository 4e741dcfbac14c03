//! Key generation ceremonies as real processes: each operator makes its
//! own key, one creates the definition, every operator runs `dvnode dkg`
//! on 127.0.0.1. The keys are checked without the ceremony's code
//! (interpolation, `dvnode combine`, deposit data through py_ecc), and the
//! nodes the ceremony wrote run a cluster on the simulated chain.

mod common;

use common::{dvnode, free_port, node_logs, tail, text, Processes, EPOCH_1_ALL_LANDED};
use dv_cluster::ClusterLock;
use dv_crypto::{combine_public_shares, PublicKey, PublicShare, ThresholdParams};
use dv_integration::server::now_ms;
use dv_integration::{router, AppState, Chain};
use dv_types::ForkName;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WITHDRAWAL: &str = "0x1111111111111111111111111111111111111111";

/// `dvnode create operator-key` for `data_dir`.
fn operator_key(data_dir: &Path, address: &str) -> std::process::Output {
    dvnode(&[
        "create",
        "operator-key",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--p2p-address",
        address,
    ])
}

/// `n` operators' directories under `dir` (`node0`..), each with its own
/// key, and a definition of `validators` signed by operator 0.
fn prepare(dir: &Path, n: usize, validators: usize, extra: &[&str]) -> PathBuf {
    let mut records = Vec::new();
    for i in 0..n {
        let address = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let made = operator_key(&dir.join(format!("node{i}")), &address);
        assert!(made.status.success(), "{}", text(&made));
        let record = text(&made)
            .lines()
            .find_map(|l| l.strip_prefix("share this with the cluster's creator: "))
            .expect("the record is printed")
            .to_string();
        records.push(record);
    }
    let definition = dir.join("definition.json");
    let mut args = vec![
        "create".to_string(),
        "dkg".into(),
        "--operators".into(),
        records.join(","),
        "--validators".into(),
        validators.to_string(),
        "--network".into(),
        "minimal".into(),
        "--withdrawal-address".into(),
        WITHDRAWAL.into(),
        "--fee-recipient".into(),
        common::FEE_RECIPIENT.into(),
        "--creator-key".into(),
        dir.join("node0/p2p-key").to_str().unwrap().into(),
        "--out".into(),
        definition.to_str().unwrap().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let created = dvnode(&args);
    assert!(created.status.success(), "{}", text(&created));
    definition
}

/// What an operator's process is made to do wrong.
#[derive(Clone, Copy)]
enum Fault {
    /// Crash at this `dv_fault` point.
    CrashAt(&'static str),
    /// Deal this operator bad shares.
    BadSharesTo(usize),
}

fn start_ceremony(dir: &Path, definition: &Path, i: usize, fault: Option<Fault>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dvnode"));
    command
        .args(["dkg", "--definition"])
        .arg(definition)
        .arg("--data-dir")
        .arg(dir.join(format!("node{i}")))
        .args([
            "--insecure-keystores",
            "--round-timeout",
            "60",
            "--join-timeout",
            "60",
        ])
        .env_remove(dv_fault::ENV)
        .env_remove(dv_fault::DKG_BAD_SHARE_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match fault {
        Some(Fault::CrashAt(point)) => {
            command.env(dv_fault::ENV, point);
        }
        Some(Fault::BadSharesTo(victim)) => {
            command.env(dv_fault::DKG_BAD_SHARE_ENV, victim.to_string());
        }
        None => {}
    }
    command.spawn().unwrap()
}

/// Runs every operator's ceremony; returns each one's exit success and output.
fn ceremony(
    dir: &Path,
    definition: &Path,
    n: usize,
    fault: Option<(usize, Fault)>,
) -> Vec<(bool, String)> {
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let own = fault.filter(|(at, _)| *at == i).map(|(_, f)| f);
            start_ceremony(dir, definition, i, own)
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            (out.status.success(), text(&out))
        })
        .collect()
}

/// Every node's lock is the same; its keys interpolate from any t public
/// shares; `dvnode combine` of t nodes rebuilds keys with the validator public keys.
fn check_keys_independently(dir: &Path, n: usize) -> ClusterLock {
    let lock = ClusterLock::load(&dir.join("node0/cluster-lock.json")).unwrap();
    for i in 1..n {
        let other =
            std::fs::read_to_string(dir.join(format!("node{i}/cluster-lock.json"))).unwrap();
        assert_eq!(other, lock.to_json(), "node{i}'s lock differs");
    }
    let signatures = lock
        .signatures
        .as_ref()
        .expect("a ceremony's lock is signed");
    assert_eq!(signatures.operator_signatures.len(), n);
    let t = lock.body.threshold;
    let params = ThresholdParams::new(t, n).unwrap();
    for v in &lock.body.validators {
        let key = PublicKey::from_bytes(&v.public_key.0).unwrap();
        // The last t public shares, and the first t.
        for range in [n - t..n, 0..t] {
            let shares: Vec<PublicShare> = range
                .map(|i| PublicShare {
                    index: i as u64 + 1,
                    key: PublicKey::from_bytes(&v.public_shares[i].0).unwrap(),
                })
                .collect();
            assert_eq!(combine_public_shares(&shares, params).unwrap(), key);
        }
    }
    // t node directories (the last t) combined into whole keys.
    let subset = dir.join("subset");
    std::fs::create_dir_all(&subset).unwrap();
    for i in n - t..n {
        let from = dir.join(format!("node{i}"));
        let to = subset.join(format!("node{i}"));
        std::fs::create_dir_all(to.join("validator_keys")).unwrap();
        std::fs::copy(from.join("cluster-lock.json"), to.join("cluster-lock.json")).unwrap();
        for entry in std::fs::read_dir(from.join("validator_keys")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                to.join("validator_keys").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    let combined_dir = dir.join("combined");
    let combined = dvnode(&[
        "combine",
        "--cluster",
        subset.to_str().unwrap(),
        "--out",
        combined_dir.to_str().unwrap(),
        "--insecure-keystores",
    ]);
    assert!(combined.status.success(), "{}", text(&combined));
    for (k, v) in lock.body.validators.iter().enumerate() {
        let password =
            std::fs::read_to_string(combined_dir.join(format!("keystore-{k}.txt"))).unwrap();
        let secret = dv_crypto::Keystore::load(
            &combined_dir.join(format!("keystore-{k}.json")),
            password.trim(),
        )
        .unwrap();
        assert_eq!(
            secret.public_key().to_bytes(),
            v.public_key.0,
            "validator {k}"
        );
    }
    lock
}

/// py_ecc (scripts/ensure-py-ecc.sh) checks the deposit data; a copy with
/// one signature byte changed must fail the same check.
fn check_deposits_with_py_ecc(dir: &Path, files: &[PathBuf]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ensure = Command::new("bash")
        .arg(root.join("scripts/ensure-py-ecc.sh"))
        .output()
        .unwrap();
    assert!(ensure.status.success(), "{}", text(&ensure));
    let python = String::from_utf8_lossy(&ensure.stdout).trim().to_string();
    let verify = |paths: &[PathBuf]| {
        Command::new(&python)
            .arg(root.join("scripts/verify-deposit-data.py"))
            .args(["--fork-version", "0x00000001"])
            .args(paths)
            .output()
            .unwrap()
    };
    let good = verify(files);
    assert!(good.status.success(), "{}", text(&good));
    assert!(text(&good).contains("failed=0"), "{}", text(&good));

    let mut entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    let signature = entries[0]["signature"].as_str().unwrap().to_string();
    let flipped = if signature.ends_with('0') { "1" } else { "0" };
    entries[0]["signature"] = format!("{}{flipped}", &signature[..signature.len() - 1]).into();
    let tampered = dir.join("tampered-deposits.json");
    std::fs::write(&tampered, serde_json::to_string(&entries).unwrap()).unwrap();
    let bad = verify(&[tampered]);
    assert!(
        !bad.status.success(),
        "a tampered deposit passed: {}",
        text(&bad)
    );
    assert!(text(&bad).contains("FAIL"), "{}", text(&bad));
}

fn deposit_files(node: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(node)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("deposit_data-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_operators_make_a_cluster_by_ceremony_and_it_performs_every_duty() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Partial deposits: 1 ETH then 31.
    let definition = prepare(dir, 4, 8, &["--deposit-amounts", "1,31"]);
    let results = ceremony(dir, &definition, 4, None);
    for (i, (ok, out)) in results.iter().enumerate() {
        assert!(ok, "operator {i}: {out}");
        assert!(out.contains("ceremony complete"), "{out}");
    }
    let lock = check_keys_independently(dir, 4);
    let files = deposit_files(&dir.join("node0"));
    assert_eq!(files.len(), 2, "{files:?}");
    check_deposits_with_py_ecc(dir, &files);

    // The chain's genesis validators are the deposits' keys, in order.
    let genesis_files: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let spec = dv_types::ChainSpec::minimal();
    let keys = dv_integration::genesis::load_genesis_keys(
        &genesis_files,
        spec.fork_schedule.genesis_fork_version,
    )
    .unwrap();
    // The chain refuses deposit data whose signature is not the key's.
    let tampered = dir.join("tampered-deposits.json");
    let refused = dv_integration::genesis::load_genesis_keys(
        &[tampered.as_path()],
        spec.fork_schedule.genesis_fork_version,
    )
    .unwrap_err();
    assert!(refused.contains("deposit 0"), "{refused}");
    let from_lock: Vec<[u8; 48]> = lock
        .body
        .validators
        .iter()
        .map(|v| v.public_key.0)
        .collect();
    assert_eq!(
        keys.iter().map(|k| k.to_bytes()).collect::<Vec<_>>(),
        from_lock
    );

    const SLOT_MS: u64 = 1000;
    let genesis = now_ms() / 1000 + 3;
    let state = AppState::new(Chain::<dv_types::Minimal>::with_keys(
        keys,
        false,
        ForkName::Fulu,
        SLOT_MS,
        genesis,
    ));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let nodes = Processes(
        (0..4)
            .map(|i| {
                common::start_dvnode(
                    &dir.join(format!("node{i}")),
                    &url,
                    &[],
                    &dir.join(format!("node{i}.log")),
                )
            })
            .collect(),
    );
    let until = genesis * 1000 + 17 * SLOT_MS;
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
    drop(nodes);
    let logs = node_logs(dir, &[0, 1, 2, 3]);
    let chain = state.chain();
    assert_eq!(chain.report.invalid_signatures, 0, "{}", tail(&logs));
    assert!(
        chain.report.slashable.is_empty(),
        "{:?}",
        chain.report.slashable
    );
    assert_eq!(
        chain.duty_summary(8, 15),
        EPOCH_1_ALL_LANDED,
        "{}",
        tail(&logs)
    );
    // The lock's builder registrations, signed in the ceremony, were accepted.
    assert_eq!(chain.registered.len(), 8, "{}", tail(&logs));
}

#[test]
fn seven_operators_finish_with_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let definition = prepare(tmp.path(), 7, 3, &[]);
    let results = ceremony(tmp.path(), &definition, 7, None);
    for (i, (ok, out)) in results.iter().enumerate() {
        assert!(ok, "operator {i}: {out}");
    }
    let lock = check_keys_independently(tmp.path(), 7);
    assert_eq!(lock.body.threshold, 5);
    assert_eq!(lock.body.validators.len(), 3);
}

#[test]
fn a_dealer_of_bad_shares_is_disqualified_by_all_and_the_cluster_still_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let definition = prepare(tmp.path(), 4, 3, &[]);
    // Operator 1 deals operator 3 shares that fail its commitments.
    let results = ceremony(tmp.path(), &definition, 4, Some((1, Fault::BadSharesTo(3))));
    for (i, (ok, out)) in results.iter().enumerate() {
        assert!(ok, "operator {i}: {out}");
        assert!(
            out.contains("disqualified operator 1: its share to operator 3 for validator 0 does not match its commitments"),
            "operator {i}: {out}"
        );
    }
    check_keys_independently(tmp.path(), 4);
}

#[test]
fn an_operator_killed_mid_ceremony_makes_the_others_abort_naming_it_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let definition = prepare(tmp.path(), 4, 4, &[]);
    let killed_peer = {
        let text = std::fs::read_to_string(&definition).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["operators"][2]["peer_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let results = ceremony(
        tmp.path(),
        &definition,
        4,
        Some((2, Fault::CrashAt(dv_fault::DKG_AFTER_DEAL))),
    );
    assert!(
        !results[2].0,
        "the operator with the crash point finished: {}",
        results[2].1
    );
    for i in [0, 1, 3] {
        let (ok, out) = &results[i];
        assert!(!ok, "operator {i} finished without operator 2: {out}");
        assert!(
            out.contains(&format!("operator 2 ({killed_peer})")),
            "operator {i}: {out}"
        );
        assert!(out.contains("nothing was written"), "operator {i}: {out}");
    }
    for i in 0..4 {
        let mut left: Vec<String> = std::fs::read_dir(tmp.path().join(format!("node{i}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, ["p2p-key"], "node{i}");
    }
}

#[test]
fn a_tampered_definition_and_an_outsider_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let definition = prepare(tmp.path(), 4, 2, &[]);
    let text_before = std::fs::read_to_string(&definition).unwrap();
    let tampered = tmp.path().join("tampered.json");
    std::fs::write(
        &tampered,
        text_before.replace(WITHDRAWAL, "0x2222222222222222222222222222222222222222"),
    )
    .unwrap();
    let refused = start_ceremony(tmp.path(), &tampered, 0, None)
        .wait_with_output()
        .unwrap();
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(said.contains("tampered.json"), "{said}");
    assert!(said.contains("does not match the content"), "{said}");

    let outsider = tmp.path().join("outsider");
    let made = operator_key(&outsider, "/ip4/127.0.0.1/tcp/1");
    assert!(made.status.success(), "{}", text(&made));
    let refused = dvnode(&[
        "dkg",
        "--definition",
        definition.to_str().unwrap(),
        "--data-dir",
        outsider.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not an operator of the definition"),
        "{}",
        text(&refused)
    );
    // An operator key is never replaced.
    let again = operator_key(&outsider, "/ip4/127.0.0.1/tcp/1");
    assert!(!again.status.success());
    assert!(text(&again).contains("never replaced"), "{}", text(&again));
}
