//! Real Beacon API traffic (a Lodestar dev chain, minimal preset, Deneb) parsed
//! with our JSON types, hashed with our containers and checked with our domains:
//! the block's root must equal the header the node reported, and its proposer
//! and randao signatures must verify under the interop key.

use dv_crypto::{interop_secret_key, PublicKey, Signature};
use dv_types::*;
use serde_json::Value;
use std::path::Path;
use tree_hash::TreeHash;

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/beacon-api-samples/lodestar-deneb")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut value: Value = serde_json::from_str(&text).unwrap();
    value["data"].take()
}

fn verify(validator: u64, root: Root, signature: &SignatureBytes) -> bool {
    let key: PublicKey = interop_secret_key(validator).public_key();
    let sig = Signature::from_bytes(&signature.0).unwrap();
    key.verify(root.as_slice(), &sig)
}

#[test]
fn deneb_block_matches_its_header_and_signatures_verify() {
    let spec = ChainSpec::from_beacon_node_json(&sample("spec.json")).unwrap();
    let genesis = sample("genesis.json");
    let gvr: Root = serde_json::from_value(genesis["genesis_validators_root"].clone()).unwrap();

    let signed: SignedBeaconBlock<BeaconBlockBodyDeneb<Minimal>> =
        serde_json::from_value(sample("block_head.json")).unwrap();
    let header = sample("head_header.json");
    let expected_root: Root = serde_json::from_value(header["root"].clone()).unwrap();
    let expected_header: BeaconBlockHeader =
        serde_json::from_value(header["header"]["message"].clone()).unwrap();

    let block = &signed.message;
    assert_eq!(block.header(), expected_header);
    assert_eq!(block.tree_hash_root(), expected_root);
    let versioned = VersionedBlock::<Minimal>::Deneb(block.clone());
    assert_eq!(
        versioned.to_blinded().root(),
        expected_root,
        "a blinded block keeps the root"
    );

    let epoch = spec.epoch_of_slot(block.slot);
    assert_eq!(spec.fork_at_slot(block.slot), ForkName::Deneb);
    let proposer_domain = spec.domain(DomainKind::BeaconProposer, epoch, gvr);
    assert!(verify(
        block.proposer_index,
        compute_signing_root(block, proposer_domain),
        &signed.signature
    ));
    let randao_domain = spec.domain(DomainKind::Randao, epoch, gvr);
    assert!(verify(
        block.proposer_index,
        compute_signing_root(&epoch, randao_domain),
        &block.body.randao_reveal
    ));
    // The same checks fail with the wrong domain or key: they are not vacuous.
    assert!(!verify(
        block.proposer_index,
        compute_signing_root(block, randao_domain),
        &signed.signature
    ));
    assert!(!verify(
        block.proposer_index + 1,
        compute_signing_root(block, proposer_domain),
        &signed.signature
    ));

    // SSZ round trip of the real block.
    let bytes = ssz::Encode::as_ssz_bytes(&signed);
    let back: SignedBeaconBlock<BeaconBlockBodyDeneb<Minimal>> =
        ssz::Decode::from_ssz_bytes(&bytes).unwrap();
    assert_eq!(back, signed);
}

#[test]
fn attestation_data_parses_and_points_at_the_head() {
    let data: AttestationData = serde_json::from_value(sample("attestation_data.json")).unwrap();
    let head_root: Root =
        serde_json::from_value(sample("head_header.json")["root"].clone()).unwrap();
    assert_eq!(data.beacon_block_root, head_root);
    assert_eq!(data.slot, 71);
    // Serialises back to the Beacon API's quoted form.
    assert_eq!(
        serde_json::to_value(data).unwrap(),
        sample("attestation_data.json")
    );
}
