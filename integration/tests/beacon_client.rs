//! The typed beacon client against the simulated chain over real HTTP,
//! including fallback past a dead beacon node.

use beacon_client::{BeaconNode, BeaconNodes, Error, ProducedBlock};
use dv_crypto::interop_secret_key;
use dv_integration::{router, AppState, Chain};
use dv_types::*;
use std::time::Duration;

const SLOT_MS: u64 = 2000;

async fn start(fork: ForkName) -> String {
    let now = dv_integration::server::now_ms() / 1000;
    let state = AppState::new(Chain::<Minimal>::new(16, fork, SLOT_MS, now - 20));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    url
}

/// A port that refuses connections: bind, note the port, drop the listener.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn sign(validator: u64, root: Root) -> SignatureBytes {
    SignatureBytes(
        interop_secret_key(validator)
            .sign(root.as_slice())
            .to_bytes(),
    )
}

#[tokio::test]
async fn performs_a_proposal_and_an_attestation() {
    let url = start(ForkName::Electra).await;
    let node = BeaconNode::new(&url, Duration::from_secs(5)).unwrap();
    let genesis = node.genesis().await.unwrap();
    let spec = node.spec().await.unwrap();
    let gvr = genesis.genesis_validators_root;
    let slot = (dv_integration::server::now_ms() / 1000 - genesis.genesis_time) * 1000 / SLOT_MS;
    let epoch = spec.epoch_of_slot(slot);

    let key = interop_secret_key(3).public_key().to_hex();
    let found = node.validators(&[key.clone(), "999".into()]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].index, found[0].validator.pubkey.to_string()),
        (3, key)
    );

    let duties = node
        .attester_duties(epoch, &(0..16).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(duties.duties.len(), 16);
    let duty = *duties.duties.iter().find(|d| d.slot == slot).unwrap();
    let data = node
        .attestation_data(slot, duty.committee_index)
        .await
        .unwrap();
    let domain = spec.domain(DomainKind::BeaconAttester, data.target.epoch, gvr);
    let attestation = SingleAttestation {
        committee_index: duty.committee_index,
        attester_index: duty.validator_index,
        data,
        signature: sign(duty.validator_index, compute_signing_root(&data, domain)),
    };
    node.submit_attestations(ForkName::Electra, std::slice::from_ref(&attestation))
        .await
        .unwrap();

    // A refused submission names the node and the beacon node's reason.
    let mut forged = attestation;
    forged.signature = sign(
        duty.validator_index + 1,
        compute_signing_root(&data, domain),
    );
    let err = node
        .submit_attestations(ForkName::Electra, &[forged])
        .await
        .unwrap_err();
    assert!(err.is_request_refused());
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains("HTTP 400") && text.contains("invalid signature"),
        "{text}"
    );

    let proposers = node.proposer_duties(epoch).await.unwrap();
    let proposer = proposers
        .duties
        .iter()
        .find(|d| d.slot == slot)
        .unwrap()
        .validator_index;
    let randao = sign(
        proposer,
        compute_signing_root(&epoch, spec.domain(DomainKind::Randao, epoch, gvr)),
    );
    let ProducedBlock::Full(block, blobs) = node
        .produce_block::<Minimal>(slot, &randao, &Graffiti::ZERO)
        .await
        .unwrap()
    else {
        panic!("the simulator produces full blocks");
    };
    assert_eq!(block.fork_name(), ForkName::Electra);
    let domain = spec.domain(DomainKind::BeaconProposer, epoch, gvr);
    let signature = sign(proposer, compute_signing_root(&block.root(), domain));
    node.publish_block(&block, &blobs, &signature)
        .await
        .unwrap();

    // The block is served back (JSON through the client, SSZ on request),
    // by slot, root and head; a slot without one is a 404, read as none.
    assert_eq!(
        node.block::<Minimal>(slot).await.unwrap(),
        Some(block.clone())
    );
    assert_eq!(node.block::<Minimal>(slot + 3).await.unwrap(), None);
    let http = reqwest::Client::new();
    for id in [slot.to_string(), block.root().to_string(), "head".into()] {
        let answer = http
            .get(format!("{url}/eth/v2/beacon/blocks/{id}"))
            .header("accept", "application/octet-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{id}");
        assert_eq!(answer.headers()["eth-consensus-version"], "electra");
        let bytes = answer.bytes().await.unwrap();
        let (message, served) = beacon_client::block_contents::split_signed_block(&bytes).unwrap();
        assert_eq!(served, signature);
        assert_eq!(
            VersionedBlock::<Minimal>::from_ssz_bytes(ForkName::Electra, message).unwrap(),
            block
        );
    }
    let missing = http
        .get(format!("{url}/eth/v2/beacon/blocks/genesis"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The committees of the slot: the attester sits at its position in its committee.
    let sizes = node.committee_sizes(slot).await.unwrap();
    assert_eq!(sizes.len() as u64, duty.committees_at_slot);
    assert_eq!(sizes[duty.committee_index as usize], duty.committee_length);
    assert_eq!(sizes.iter().sum::<u64>(), 16 / spec.slots_per_epoch);
    let far = http
        .get(format!(
            "{url}/eth/v1/beacon/states/head/committees?epoch={}",
            epoch + 2
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(far.status(), 400);
}

#[tokio::test]
async fn falls_back_past_a_dead_node_and_names_every_failure() {
    let live = start(ForkName::Fulu).await;
    let dead = dead_url();
    let nodes = BeaconNodes::new(&[dead.clone(), live.clone()], Duration::from_secs(2)).unwrap();
    let genesis = nodes.first_success(|n| n.genesis()).await.unwrap();
    assert!(genesis.genesis_time > 0);

    let only_dead = BeaconNodes::new(&[dead.clone(), dead_url()], Duration::from_secs(2)).unwrap();
    let err = only_dead.first_success(|n| n.spec()).await.unwrap_err();
    assert!(matches!(&err, Error::AllFailed(errors) if errors.len() == 2));
    assert!(err.to_string().contains(&dead), "{err}");

    // A request the live node refuses is not retried elsewhere and keeps its 400.
    let nodes = BeaconNodes::new(&[live.clone(), dead], Duration::from_secs(2)).unwrap();
    let err = nodes
        .first_success(|n| n.attestation_data(1 << 40, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 400, .. }), "{err}");
}
