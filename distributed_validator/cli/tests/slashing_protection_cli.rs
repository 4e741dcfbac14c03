//! `dvnode slashing-protection import|export` on a node's data directory.

mod common;

use common::{dvnode, text};

#[test]
fn import_then_export_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("node0");
    std::fs::create_dir(&data_dir).unwrap();
    let gvr = format!("0x{}", "ab".repeat(32));
    let pubkey = format!("0x{}", "a9".repeat(48));
    let interchange = serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": gvr},
        "data": [{"pubkey": pubkey, "signed_blocks": [{"slot": "81952", "signing_root": format!("0x{}", "11".repeat(32))}],
                  "signed_attestations": [{"source_epoch": "2290", "target_epoch": "3007"}]}]
    });
    let input = tmp.path().join("in.json");
    std::fs::write(&input, interchange.to_string()).unwrap();
    let dd = data_dir.to_str().unwrap();
    let r = dvnode(&[
        "slashing-protection",
        "import",
        input.to_str().unwrap(),
        "--data-dir",
        dd,
    ]);
    assert!(r.status.success(), "{}", text(&r));
    assert!(
        text(&r).contains("1 blocks, 1 attestations"),
        "{}",
        text(&r)
    );

    let output = tmp.path().join("out.json");
    let r = dvnode(&[
        "slashing-protection",
        "export",
        output.to_str().unwrap(),
        "--data-dir",
        dd,
    ]);
    assert!(r.status.success(), "{}", text(&r));
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(exported, interchange);
    // No silent overwrite.
    let again = dvnode(&[
        "slashing-protection",
        "export",
        output.to_str().unwrap(),
        "--data-dir",
        dd,
    ]);
    assert!(!again.status.success() && text(&again).contains("--force"));

    // Another chain's interchange is refused and names the file.
    let other = interchange
        .to_string()
        .replace(&"ab".repeat(32), &"cd".repeat(32));
    let other_path = tmp.path().join("other-chain.json");
    std::fs::write(&other_path, other).unwrap();
    let r = dvnode(&[
        "slashing-protection",
        "import",
        other_path.to_str().unwrap(),
        "--data-dir",
        dd,
    ]);
    assert!(!r.status.success());
    assert!(
        text(&r).contains("other-chain.json") && text(&r).contains("genesis validators root"),
        "{}",
        text(&r)
    );
}
