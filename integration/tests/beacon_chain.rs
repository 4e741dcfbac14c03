//! The simulated beacon chain over real HTTP: it serves what a validator
//! needs, accepts correctly signed duties, refuses bad signatures with the
//! beacon node's 400 shape, and flags slashable pairs.

use dv_crypto::interop_secret_key;
use dv_integration::{router, AppState, Chain};
use dv_types::tree_hash::TreeHash;
use dv_types::*;
use serde_json::{json, Value};
use ssz_types::BitList;

const SLOT_MS: u64 = 2000;
const VALIDATORS: usize = 16;

struct Node {
    base: String,
    http: reqwest::Client,
    spec: ChainSpec,
    gvr: Root,
    genesis_time: u64,
}

impl Node {
    async fn start(fork: ForkName) -> Node {
        let now = dv_integration::server::now_ms() / 1000;
        // Genesis 20 s ago: slot 10, the middle of epoch 1.
        let state = AppState::new(Chain::<Minimal>::new(VALIDATORS, fork, SLOT_MS, now - 20));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        let http = reqwest::Client::new();
        let spec_json: Value = http
            .get(format!("{base}/eth/v1/config/spec"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let spec = ChainSpec::from_beacon_node_json(&spec_json["data"]).unwrap();
        let genesis: Value = http
            .get(format!("{base}/eth/v1/beacon/genesis"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let gvr: Root =
            serde_json::from_value(genesis["data"]["genesis_validators_root"].clone()).unwrap();
        let genesis_time: u64 = genesis["data"]["genesis_time"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        Node {
            base,
            http,
            spec,
            gvr,
            genesis_time,
        }
    }

    fn current_slot(&self) -> Slot {
        (dv_integration::server::now_ms() / 1000 - self.genesis_time) * 1000 / SLOT_MS
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, fork: ForkName, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Eth-Consensus-Version", fork.as_str())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn report(&self) -> Value {
        self.get("/dv/report").await.1["report"].clone()
    }

    fn sign(&self, validator: u64, root: Root) -> SignatureBytes {
        SignatureBytes(
            interop_secret_key(validator)
                .sign(root.as_slice())
                .to_bytes(),
        )
    }

    /// A validator with an attester duty at `slot`, from the duties endpoint.
    async fn attester_at(&self, slot: Slot) -> u64 {
        let epoch = self.spec.epoch_of_slot(slot);
        let indices: Vec<String> = (0..VALIDATORS).map(|i| i.to_string()).collect();
        let (status, duties) = self
            .post(
                &format!("/eth/v1/validator/duties/attester/{epoch}"),
                ForkName::Fulu,
                json!(indices),
            )
            .await;
        assert_eq!(status, 200, "{duties}");
        duties["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["slot"].as_str() == Some(slot.to_string().as_str()))
            .map(|d| d["validator_index"].as_str().unwrap().parse().unwrap())
            .expect("a duty at the slot")
    }

    /// The proposer of `slot`, from the duties endpoint.
    async fn proposer_at(&self, slot: Slot) -> u64 {
        let epoch = self.spec.epoch_of_slot(slot);
        let (status, duties) = self
            .get(&format!("/eth/v1/validator/duties/proposer/{epoch}"))
            .await;
        assert_eq!(status, 200, "{duties}");
        duties["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["slot"].as_str() == Some(slot.to_string().as_str()))
            .map(|d| d["validator_index"].as_str().unwrap().parse().unwrap())
            .expect("a proposer at the slot")
    }

    /// Committee 0 of `slot` in committee order, from the duties endpoint.
    async fn committee_at(&self, slot: Slot) -> Vec<u64> {
        let epoch = self.spec.epoch_of_slot(slot);
        let indices: Vec<String> = (0..VALIDATORS).map(|i| i.to_string()).collect();
        let (status, duties) = self
            .post(
                &format!("/eth/v1/validator/duties/attester/{epoch}"),
                ForkName::Fulu,
                json!(indices),
            )
            .await;
        assert_eq!(status, 200, "{duties}");
        let field = |d: &Value, name: &str| -> u64 { d[name].as_str().unwrap().parse().unwrap() };
        let mut members: Vec<(u64, u64)> = duties["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| field(d, "slot") == slot && field(d, "committee_index") == 0)
            .map(|d| {
                (
                    field(d, "validator_committee_index"),
                    field(d, "validator_index"),
                )
            })
            .collect();
        members.sort();
        members.into_iter().map(|(_, v)| v).collect()
    }

    async fn attestation_data(&self, slot: Slot) -> AttestationData {
        let (status, body) = self
            .get(&format!(
                "/eth/v1/validator/attestation_data?slot={slot}&committee_index=0"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_value(body["data"].clone()).unwrap()
    }

    fn attest(&self, validator: u64, data: &AttestationData) -> SignatureBytes {
        let domain = self
            .spec
            .domain(DomainKind::BeaconAttester, data.target.epoch, self.gvr);
        self.sign(validator, compute_signing_root(data, domain))
    }
}

#[tokio::test]
async fn electra_attestations_and_blocks_are_judged_strictly() {
    let node = Node::start(ForkName::Fulu).await;
    let slot = node.current_slot();
    let epoch = node.spec.epoch_of_slot(slot);

    // Duties: whoever attests at `slot`.
    let attester = node.attester_at(slot).await;

    let data = node.attestation_data(slot).await;
    let single = |signature: SignatureBytes, data: &AttestationData| {
        json!([SingleAttestation {
            committee_index: 0,
            attester_index: attester,
            data: *data,
            signature
        }])
    };
    let (status, body) = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Fulu,
            single(node.attest(attester, &data), &data),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Signed by the wrong key: refused, with the failing index.
    let (status, body) = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Fulu,
            single(node.attest(attester + 1, &data), &data),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["failures"][0]["index"], 0);

    // A second, different vote for the same target is a slashable double vote
    // (flagged even though the unknown head root makes the chain refuse it).
    let mut other = data;
    other.beacon_block_root = Root::repeat_byte(9);
    let _ = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Fulu,
            single(node.attest(attester, &other), &other),
        )
        .await;

    // A block for the current slot: randao, production, signature, publication.
    let proposer = node.proposer_at(slot).await;
    let randao_domain = node.spec.domain(DomainKind::Randao, epoch, node.gvr);
    let randao = node.sign(proposer, compute_signing_root(&epoch, randao_domain));
    let bad_randao = node.sign(proposer + 1, compute_signing_root(&epoch, randao_domain));
    let (status, _) = node
        .get(&format!(
            "/eth/v3/validator/blocks/{slot}?randao_reveal={bad_randao}"
        ))
        .await;
    assert_eq!(status, 400, "a wrong randao reveal is refused");
    let r = node
        .http
        .get(format!(
            "{}/eth/v3/validator/blocks/{slot}?randao_reveal={randao}",
            node.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["Eth-Consensus-Version"], "fulu");
    let produced: Value = r.json().await.unwrap();
    let block_json = produced["data"]["block"].clone();
    let block =
        VersionedBlock::<Minimal>::from_json_value(ForkName::Fulu, block_json.clone()).unwrap();
    assert_eq!(block.slot(), slot);
    assert_eq!(block.proposer_index(), proposer);

    let mut events = node
        .http
        .get(format!("{}/eth/v1/events?topics=head", node.base))
        .send()
        .await
        .unwrap();
    let proposer_domain = node
        .spec
        .domain(DomainKind::BeaconProposer, epoch, node.gvr);
    let signature = node.sign(
        proposer,
        compute_signing_root(&block.root(), proposer_domain),
    );
    let (proofs, blobs) = (
        produced["data"]["kzg_proofs"].clone(),
        produced["data"]["blobs"].clone(),
    );
    assert_eq!(
        (
            proofs.as_array().unwrap().len(),
            blobs.as_array().unwrap().len()
        ),
        (128, 1),
        "a Fulu block's contents carry a proof per cell"
    );
    let contents = |message: Value, signature: SignatureBytes| json!({"signed_block": {"message": message, "signature": signature}, "kzg_proofs": proofs, "blobs": blobs});
    // Without its blobs the block cannot be made available: refused.
    let bare = json!({"signed_block": {"message": block_json, "signature": signature}, "kzg_proofs": [], "blobs": []});
    let (status, body) = node
        .post("/eth/v2/beacon/blocks", ForkName::Fulu, bare)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("blobs missing"),
        "{body}"
    );
    let (status, body) = node
        .post(
            "/eth/v2/beacon/blocks",
            ForkName::Fulu,
            contents(block_json.clone(), signature),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), events.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains("event: head") && text.contains(&block.root().to_string()),
        "{text}"
    );

    // Same slot, different block from the same proposer: refused and flagged.
    let mut forked = block_json;
    forked["body"]["graffiti"] = json!(Root::repeat_byte(7));
    let forked_block =
        VersionedBlock::<Minimal>::from_json_value(ForkName::Fulu, forked.clone()).unwrap();
    let forked_sig = node.sign(
        proposer,
        compute_signing_root(&forked_block.root(), proposer_domain),
    );
    let (status, _) = node
        .post(
            "/eth/v2/beacon/blocks",
            ForkName::Fulu,
            contents(forked, forked_sig),
        )
        .await;
    assert_eq!(status, 400);

    let report = node.report().await;
    assert_eq!(report["rejections"]["invalid signature"], 1, "{report}");
    assert_eq!(
        report["rejections"]["unknown beacon block root"], 1,
        "{report}"
    );
    // Received, but kept for no aggregate (nobody subscribed as its
    // committee's aggregator), so no block includes it.
    assert_eq!(report["attestations_received"], 1, "{report}");
    assert_eq!(report["attestations_unsubscribed"], 1, "{report}");
    assert_eq!(report["attestations_ok"], 0, "{report}");
    assert_eq!(report["proposals_ok"], 1, "{report}");
    assert!(
        report["invalid_signatures"].as_u64().unwrap() >= 2,
        "{report}"
    );
    let slashable = report["slashable"].as_array().unwrap();
    assert_eq!(slashable.len(), 2, "{report}");
    assert!(slashable[0].as_str().unwrap().contains("double vote"));
    assert!(slashable[1].as_str().unwrap().contains("two blocks"));
}

#[tokio::test]
async fn deneb_attestations_use_aggregation_bits() {
    let node = Node::start(ForkName::Deneb).await;
    let slot = node.current_slot();
    let data = node.attestation_data(slot).await;
    let committee = node.committee_at(slot).await;
    assert!(committee.len() >= 2, "{committee:?}");
    let mut bits =
        BitList::<<Minimal as Preset>::MaxValidatorsPerCommittee>::with_capacity(committee.len())
            .unwrap();
    bits.set(1, true).unwrap();
    let attestation = AttestationDeneb::<Minimal> {
        aggregation_bits: bits,
        data,
        signature: node.attest(committee[1], &data),
    };
    let (status, body) = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Deneb,
            json!([attestation]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The same bits signed by the committee's other member do not verify.
    let mut wrong = attestation.clone();
    wrong.signature = node.attest(committee[0], &data);
    let (status, _) = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Deneb,
            json!([wrong]),
        )
        .await;
    assert_eq!(status, 400);
    // An Electra body on a Deneb chain is refused.
    let (status, _) = node
        .post(
            "/eth/v2/beacon/pool/attestations",
            ForkName::Electra,
            json!([]),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(node.report().await["attestations_received"], 1);
}

#[tokio::test]
async fn serves_validators_duties_and_node_status() {
    let node = Node::start(ForkName::Electra).await;
    let key0 = interop_secret_key(0).public_key().to_hex();
    let (status, body) = node
        .get(&format!(
            "/eth/v1/beacon/states/head/validators?id={key0},3,999"
        ))
        .await;
    assert_eq!(status, 200);
    let found = body["data"].as_array().unwrap();
    assert_eq!(found.len(), 2, "unknown ids are left out: {body}");
    assert_eq!(found[0]["validator"]["pubkey"], key0);
    assert_eq!(found[1]["index"], "3");
    let (status, body) = node.get("/eth/v1/validator/duties/proposer/1").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 8);
    // The sync committee's 32 positions, drawn by the spec's rule from 16
    // validators (a validator may hold several, or none).
    let reference = Chain::<Minimal>::new(VALIDATORS, ForkName::Electra, SLOT_MS, 0);
    let member = (0..VALIDATORS as u64)
        .find(|v| !reference.sync_positions(*v, 1).is_empty())
        .unwrap();
    let positions: Vec<String> = reference
        .sync_positions(member, 1)
        .iter()
        .map(u64::to_string)
        .collect();
    let (status, body) = node
        .post(
            "/eth/v1/validator/duties/sync/1",
            ForkName::Fulu,
            json!([member.to_string(), "99"]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["validator_sync_committee_indices"],
        json!(positions),
        "{body}"
    );
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "unknown index left out"
    );
    let (status, body) = node.get("/eth/v1/node/syncing").await;
    assert_eq!(
        (status, body["data"]["is_syncing"].clone()),
        (200, json!(false))
    );
    let (status, body) = node.get("/eth/v1/config/fork_schedule").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"].as_array().unwrap().last().unwrap()["current_version"],
        "0x05000001"
    );
    let (status, body) = node
        .get(&format!(
            "/eth/v1/validator/attestation_data?slot={}",
            node.current_slot() + 5
        ))
        .await;
    assert_eq!(status, 400, "future slots are refused: {body}");
    assert!(body["message"].as_str().unwrap().contains("future"));
}

#[test]
fn builder_mode_unblinds_only_blocks_it_produced() {
    let now = dv_integration::server::now_ms();
    let mut chain = Chain::<Minimal>::new(VALIDATORS, ForkName::Electra, SLOT_MS, now / 1000 - 20);
    chain.builder = true;
    let slot = chain.current_slot(now);
    let proposer = chain.proposer_of(slot);
    let epoch = chain.spec.epoch_of_slot(slot);
    let gvr = chain.genesis_validators_root;
    let sign = |validator: u64, root: Root| {
        SignatureBytes(
            interop_secret_key(validator)
                .sign(root.as_slice())
                .to_bytes(),
        )
    };
    let randao_domain = chain.spec.domain(DomainKind::Randao, epoch, gvr);
    let reveal = sign(proposer, compute_signing_root(&epoch, randao_domain));
    let block = chain
        .produce_block(slot, reveal, Graffiti::ZERO, now)
        .unwrap();
    let proposer_domain = chain.spec.domain(DomainKind::BeaconProposer, epoch, gvr);

    // A blinded block the chain never produced: refused, nothing lands.
    let VersionedBlock::Electra(mut other) = block.clone() else {
        panic!("an Electra chain produced {:?}", block.fork_name());
    };
    other.state_root = Root::repeat_byte(3);
    let other = VersionedBlock::<Minimal>::Electra(other).to_blinded();
    let other_sig = sign(
        proposer,
        compute_signing_root(&other.root(), proposer_domain),
    );
    let refused = chain.publish_blinded_block(&other, &other_sig, now);
    assert!(refused.is_err_and(|e| e.message.contains("unknown blinded block")));

    // The produced one, blinded and signed: unblinded, verified, landed.
    let blinded = block.to_blinded();
    let signature = sign(
        proposer,
        compute_signing_root(&blinded.root(), proposer_domain),
    );
    chain
        .publish_blinded_block(&blinded, &signature, now)
        .unwrap();
    assert_eq!(chain.report.proposals_ok, 1);
    assert_eq!(chain.report.proposals_rejected, 1);
}

#[test]
fn aggregates_are_built_from_what_arrived_and_judged_strictly() {
    let now = dv_integration::server::now_ms();
    let mut chain = Chain::<Minimal>::new(VALIDATORS, ForkName::Electra, SLOT_MS, now / 1000 - 20);
    let slot = chain.current_slot(now);
    let gvr = chain.genesis_validators_root;
    let epoch = chain.spec.epoch_of_slot(slot);
    let sign = |validator: u64, root: Root| {
        SignatureBytes(
            interop_secret_key(validator)
                .sign(root.as_slice())
                .to_bytes(),
        )
    };
    let committee = chain.committee(slot, 0).unwrap();
    assert_eq!(
        committee.len(),
        2,
        "16 validators, 8 slots, one committee a slot"
    );
    // Nothing is kept for an aggregate until an aggregator subscribes.
    chain
        .subscribe_beacon_committees(&[(committee[0], 0, slot, true)], now)
        .unwrap();
    let data = chain.attestation_data(slot, 0, now).unwrap();
    let attester_domain = chain.spec.domain(DomainKind::BeaconAttester, epoch, gvr);
    let singles: Vec<SingleAttestation> = committee
        .iter()
        .map(|v| SingleAttestation {
            committee_index: 0,
            attester_index: *v,
            data,
            signature: sign(*v, compute_signing_root(&data, attester_domain)),
        })
        .collect();
    chain.submit_single_attestations(&singles, now).unwrap();
    let aggregate = chain
        .aggregate_attestation(data.tree_hash_root(), slot, 0)
        .unwrap();
    assert_eq!(aggregate.aggregation_bits.num_set_bits(), 2);

    let aggregator = committee[0];
    let selection_domain = chain.spec.domain(DomainKind::SelectionProof, epoch, gvr);
    let selection_proof = sign(aggregator, compute_signing_root(&slot, selection_domain));
    let domain = chain.spec.domain(DomainKind::AggregateAndProof, epoch, gvr);
    let signed = |message: AggregateAndProofElectra<Minimal>, signer: u64| {
        let signature = sign(signer, compute_signing_root(&message, domain));
        SignedAggregateAndProofElectra { message, signature }
    };
    let honest = AggregateAndProofElectra {
        aggregator_index: aggregator,
        aggregate: aggregate.clone(),
        selection_proof,
    };
    // Signed by someone else; an aggregate signature that is one attester's only.
    let wrong_signer = signed(honest.clone(), committee[1]);
    let mut short = honest.clone();
    short.aggregate.signature = singles[0].signature;
    let short = signed(short, aggregator);
    // Committee bits naming two committees, or one the slot does not have.
    let mut two = honest.clone();
    two.aggregate.committee_bits.set(1, true).unwrap();
    let two = signed(two, aggregator);
    let mut elsewhere = honest.clone();
    elsewhere.aggregate.committee_bits = Default::default();
    elsewhere.aggregate.committee_bits.set(1, true).unwrap();
    let elsewhere = signed(elsewhere, aggregator);
    let refused = chain
        .submit_aggregates(&[wrong_signer, short, two, elsewhere])
        .unwrap_err();
    assert_eq!(refused.failures.len(), 4, "{:?}", refused.failures);
    assert!(refused.failures[1]
        .1
        .contains("invalid aggregate signature"));
    assert!(refused.failures[2].1.contains("wrong committee bits"));
    assert!(refused.failures[3].1.contains("has no committee 1"));
    chain
        .submit_aggregates(&[signed(honest, aggregator)])
        .unwrap();
    assert_eq!(
        (chain.report.aggregates_ok, chain.report.aggregates_rejected),
        (1, 4)
    );
}

#[test]
fn sync_messages_and_contributions_are_judged_strictly() {
    let now = dv_integration::server::now_ms();
    let mut chain = Chain::<Minimal>::new(VALIDATORS, ForkName::Electra, SLOT_MS, now / 1000 - 20);
    let slot = chain.current_slot(now);
    let gvr = chain.genesis_validators_root;
    let epoch = chain.spec.epoch_of_slot(slot);
    let (_, head) = chain.head();
    let sign = |validator: u64, root: Root| {
        SignatureBytes(
            interop_secret_key(validator)
                .sign(root.as_slice())
                .to_bytes(),
        )
    };
    let sync_domain = chain.spec.domain(DomainKind::SyncCommittee, epoch, gvr);
    let message = |validator: u64, slot: Slot, root: Root| SyncCommitteeMessage {
        slot,
        beacon_block_root: root,
        validator_index: validator,
        signature: sign(validator, compute_signing_root(&root, sync_domain)),
    };
    // Subcommittee 0 is the sync committee's first 8 positions (drawn by
    // the spec's rule: some validators hold several, some none).
    let mut members: Vec<u64> = chain.sync_committee(epoch)[..8].to_vec();
    members.sort();
    members.dedup();
    assert!(members.len() >= 2, "{members:?}");
    let outsider = (0..VALIDATORS as u64)
        .find(|v| !members.contains(v))
        .unwrap();
    let honest: Vec<SyncCommitteeMessage> =
        members.iter().map(|v| message(*v, slot, head)).collect();
    chain.submit_sync_messages(&honest, now).unwrap();
    // A past slot, a block the chain does not know, a signature by another key.
    let late = message(members[0], slot - 2, head);
    let unknown = message(members[1], slot, Root::repeat_byte(9));
    let mut forged = message(members[0], slot, head);
    forged.signature = honest[1].signature;
    let refused = chain
        .submit_sync_messages(&[late, unknown, forged], now)
        .unwrap_err();
    let reasons: Vec<&str> = refused.failures.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[0].contains("not the current slot"), "{reasons:?}");
    assert!(
        reasons[1].contains("unknown beacon block root"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("invalid signature"), "{reasons:?}");

    let contribution = chain.sync_committee_contribution(slot, 0, head).unwrap();
    assert_eq!(contribution.aggregation_bits.num_set_bits(), 8);
    let aggregator = members[0];
    let selection = SyncAggregatorSelectionData {
        slot,
        subcommittee_index: 0,
    };
    let selection_domain = chain
        .spec
        .domain(DomainKind::SyncCommitteeSelectionProof, epoch, gvr);
    let selection_proof = sign(
        aggregator,
        compute_signing_root(&selection, selection_domain),
    );
    assert!(
        chain.is_sync_aggregator(&selection_proof),
        "minimal: every member aggregates"
    );
    let domain = chain
        .spec
        .domain(DomainKind::ContributionAndProof, epoch, gvr);
    let signed = |message: ContributionAndProof<Minimal>, signer: u64| {
        let signature = sign(signer, compute_signing_root(&message, domain));
        SignedContributionAndProof { message, signature }
    };
    let honest = ContributionAndProof {
        aggregator_index: aggregator,
        contribution: contribution.clone(),
        selection_proof,
    };
    // Not in subcommittee 0; a contribution signature of one member only;
    // signed by another validator.
    let mut outsider_signed = honest.clone();
    outsider_signed.aggregator_index = outsider;
    let mut short = honest.clone();
    // One member's own message signature: valid, but not the aggregate of all.
    short.contribution.signature = sign(members[0], compute_signing_root(&head, sync_domain));
    let refused = chain
        .submit_contributions(
            &[
                signed(outsider_signed, outsider),
                signed(short, aggregator),
                signed(honest.clone(), members[1]),
            ],
            now,
        )
        .unwrap_err();
    let reasons: Vec<&str> = refused.failures.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[0].contains("not in subcommittee"), "{reasons:?}");
    assert!(
        reasons[1].contains("invalid contribution signature"),
        "{reasons:?}"
    );
    assert!(reasons[2].contains("invalid signature"), "{reasons:?}");
    // Too late: half a second past the slot's end.
    let after = chain.slot_start_ms(slot + 1) + 501;
    let refused = chain
        .submit_contributions(&[signed(honest.clone(), aggregator)], after)
        .unwrap_err();
    assert!(refused.failures[0].1.contains("not the current slot"));
    chain
        .submit_contributions(&[signed(honest, aggregator)], now)
        .unwrap();
    assert_eq!(
        (
            chain.report.sync_messages_ok,
            chain.report.contributions_ok,
            chain.report.sync_rejected
        ),
        (members.len() as u64, 1, 7)
    );
}

#[test]
fn voluntary_exits_are_judged_as_process_voluntary_exit_and_count_once_in_a_block() {
    let now = dv_integration::server::now_ms();
    // Slot 10: epoch 1.
    let mut chain = Chain::<Minimal>::new(VALIDATORS, ForkName::Deneb, SLOT_MS, now / 1000 - 20);
    let gvr = chain.genesis_validators_root;
    let signed = |chain: &Chain<Minimal>, validator: u64, epoch: Epoch, signer: u64| {
        let message = VoluntaryExit {
            epoch,
            validator_index: validator,
        };
        // From Deneb the domain is Capella's (EIP-7044).
        let domain = chain.spec.domain(DomainKind::VoluntaryExit, epoch, gvr);
        assert_eq!(
            domain,
            compute_domain(
                chain.spec.domain_type(DomainKind::VoluntaryExit),
                chain.spec.fork_schedule.version_of(ForkName::Capella),
                gvr
            )
        );
        let root = compute_signing_root(&message, domain);
        SignedVoluntaryExit {
            message,
            signature: SignatureBytes(interop_secret_key(signer).sign(root.as_slice()).to_bytes()),
        }
    };
    // The minimal preset's SHARD_COMMITTEE_PERIOD (64 epochs) has not passed.
    let early = chain.submit_voluntary_exit(&signed(&chain, 3, 0, 3), now);
    assert!(early.is_err_and(|e| e.code == 400 && e.message.contains("not active long enough")));
    chain.spec.shard_committee_period = 0;
    let future = chain.submit_voluntary_exit(&signed(&chain, 3, 2, 3), now);
    assert!(future.is_err_and(|e| e.message.contains("future exit epoch")));
    let forged = chain.submit_voluntary_exit(&signed(&chain, 3, 0, 4), now);
    assert!(forged.is_err_and(|e| e.message.contains("invalid signature")));
    let exit = signed(&chain, 3, 0, 3);
    chain.submit_voluntary_exit(&exit, now).unwrap();
    chain.submit_voluntary_exit(&exit, now).unwrap();
    assert_eq!(chain.report.exits_accepted, 1);
    assert_eq!(chain.report.exits_rejected, 3);
    assert!(chain.exit_epoch_of(3).is_none(), "pooled is not on chain");

    // The next block carries it; once the block is on the chain the exit counts.
    let slot = chain.current_slot(now);
    let proposer = chain.proposer_of(slot);
    let epoch = chain.spec.epoch_of_slot(slot);
    let sign = |root: Root| {
        SignatureBytes(
            interop_secret_key(proposer)
                .sign(root.as_slice())
                .to_bytes(),
        )
    };
    let reveal = sign(compute_signing_root(
        &epoch,
        chain.spec.domain(DomainKind::Randao, epoch, gvr),
    ));
    let block = chain
        .produce_block(slot, reveal, Graffiti::ZERO, now)
        .unwrap();
    assert_eq!(block.voluntary_exits(), &[exit.clone()][..]);
    let blobs = chain.blobs_of(&block.root());
    let proposer_domain = chain.spec.domain(DomainKind::BeaconProposer, epoch, gvr);
    chain
        .publish_block(
            &block,
            &blobs,
            &sign(compute_signing_root(&block.root(), proposer_domain)),
            now,
        )
        .unwrap();
    // compute_activation_exit_epoch: epoch 1 + 1 + MAX_SEED_LOOKAHEAD.
    assert_eq!(chain.exit_epoch_of(3), Some(6));
    let again = chain.submit_voluntary_exit(&exit, now);
    assert!(again.is_err_and(|e| e.message.contains("exit already initiated")));
}

/// SSZ as a real beacon node speaks it: answers in SSZ where the Beacon API
/// offers them and the client prefers them, SSZ bodies where the API takes
/// them (judged exactly as their JSON), a 415 elsewhere.
#[tokio::test]
async fn ssz_is_spoken_where_the_beacon_api_offers_it() {
    use beacon_client::block_contents::{contents_ssz, signed_block_ssz, split_contents};
    use dv_types::ssz::{Decode, Encode};
    const ACCEPT_SSZ: &str = "application/octet-stream;q=1.0,application/json;q=0.9";
    let node = Node::start(ForkName::Fulu).await;
    let get_ssz = |path: String| {
        let request = node
            .http
            .get(format!("{}{path}", node.base))
            .header("Accept", ACCEPT_SSZ);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/octet-stream");
            r.bytes().await.unwrap().to_vec()
        }
    };
    let post_ssz = |path: &str, fork: Option<ForkName>, body: Vec<u8>| {
        let mut request = node
            .http
            .post(format!("{}{path}", node.base))
            .header("content-type", "application/octet-stream")
            .body(body);
        if let Some(fork) = fork {
            request = request.header("Eth-Consensus-Version", fork.as_str());
        }
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let slot = node.current_slot();
    let epoch = node.spec.epoch_of_slot(slot);

    // Attestation data: the same in SSZ as in JSON.
    let data = node.attestation_data(slot).await;
    let bytes = get_ssz(format!(
        "/eth/v1/validator/attestation_data?slot={slot}&committee_index=0"
    ))
    .await;
    assert_eq!(AttestationData::from_ssz_bytes(&bytes).unwrap(), data);

    // An SSZ SingleAttestation list, judged as JSON would be.
    let attester = node.attester_at(slot).await;
    let single = |signature| {
        vec![SingleAttestation {
            committee_index: 0,
            attester_index: attester,
            data,
            signature,
        }]
        .as_ssz_bytes()
    };
    let path = "/eth/v2/beacon/pool/attestations";
    let (status, body) = post_ssz(path, None, single(node.attest(attester, &data))).await;
    assert_eq!(status, 400, "an SSZ body needs its fork: {body}");
    let (status, body) = post_ssz(
        path,
        Some(ForkName::Fulu),
        single(node.attest(attester + 1, &data)),
    )
    .await;
    assert_eq!(status, 400, "wrong key: {body}");
    let (status, body) = post_ssz(
        path,
        Some(ForkName::Fulu),
        single(node.attest(attester, &data)),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // A block produced in SSZ (BlockContents), signed and published in SSZ.
    let proposer = node.proposer_at(slot).await;
    let randao_domain = node.spec.domain(DomainKind::Randao, epoch, node.gvr);
    let randao = node.sign(proposer, compute_signing_root(&epoch, randao_domain));
    let bytes = get_ssz(format!(
        "/eth/v3/validator/blocks/{slot}?randao_reveal={randao}"
    ))
    .await;
    let (block_bytes, blobs) = split_contents(&bytes).unwrap();
    let block = VersionedBlock::<Minimal>::from_ssz_bytes(ForkName::Fulu, block_bytes).unwrap();
    assert_eq!((block.slot(), block.proposer_index()), (slot, proposer));
    assert_eq!((blobs.kzg_proofs.len(), blobs.blobs.len()), (128, 1));
    let proposer_domain = node
        .spec
        .domain(DomainKind::BeaconProposer, epoch, node.gvr);
    let signature = node.sign(
        proposer,
        compute_signing_root(&block.root(), proposer_domain),
    );
    let signed = contents_ssz(&signed_block_ssz(block_bytes, &signature), &blobs).unwrap();
    let (status, body) = post_ssz("/eth/v2/beacon/blocks", Some(ForkName::Fulu), signed).await;
    assert_eq!(status, 200, "{body}");

    // No SSZ body on a route the API gives none.
    let (status, body) = post_ssz("/eth/v1/beacon/pool/sync_committees", None, vec![0; 8]).await;
    assert_eq!(status, 415, "{body}");

    let report = node.report().await;
    // Received, but kept for no aggregate (nobody subscribed as its
    // committee's aggregator), so no block includes it.
    assert_eq!(report["attestations_received"], 1, "{report}");
    assert_eq!(report["attestations_unsubscribed"], 1, "{report}");
    assert_eq!(report["attestations_ok"], 0, "{report}");
    assert_eq!(report["proposals_ok"], 1, "{report}");
    assert_eq!(report["invalid_signatures"], 1, "{report}");
}

/// An attestation counts once a block includes it, and only what an
/// aggregator subscribed for is kept to include; the flags follow Deneb's
/// rules (head: the next slot; source: within sqrt(SLOTS_PER_EPOCH)).
/// 64 validators on the minimal preset: two committees of four a slot, so
/// an Electra block's aggregate spans committees.
#[test]
fn attestations_count_once_a_block_includes_them_with_their_timeliness() {
    const N: usize = 64;
    let genesis = 1_000_000;
    let mut chain = Chain::<Minimal>::new(N, ForkName::Electra, SLOT_MS, genesis);
    let gvr = chain.genesis_validators_root;
    let sign = |validator: u64, root: Root| {
        SignatureBytes(
            interop_secret_key(validator)
                .sign(root.as_slice())
                .to_bytes(),
        )
    };
    let at = |slot: Slot, ms: u64| genesis * 1000 + slot * SLOT_MS + ms;
    let attest = |chain: &mut Chain<Minimal>, slot: Slot, members: &[(u64, u64)], now: u64| {
        let data = chain.attestation_data(slot, 0, now).unwrap();
        let domain = chain
            .spec
            .domain(DomainKind::BeaconAttester, data.target.epoch, gvr);
        let items: Vec<SingleAttestation> = members
            .iter()
            .map(|(committee, v)| SingleAttestation {
                committee_index: *committee,
                attester_index: *v,
                data,
                signature: sign(*v, compute_signing_root(&data, domain)),
            })
            .collect();
        chain.submit_single_attestations(&items, now).unwrap();
    };
    let propose = |chain: &mut Chain<Minimal>, slot: Slot, now: u64| {
        let proposer = chain.proposer_of(slot);
        let epoch = chain.spec.epoch_of_slot(slot);
        let reveal = sign(
            proposer,
            compute_signing_root(&epoch, chain.spec.domain(DomainKind::Randao, epoch, gvr)),
        );
        let block = chain
            .produce_block(slot, reveal, Graffiti::ZERO, now)
            .unwrap();
        let domain = chain.spec.domain(DomainKind::BeaconProposer, epoch, gvr);
        let blobs = chain.blobs_of(&block.root());
        chain
            .publish_block(
                &block,
                &blobs,
                &sign(proposer, compute_signing_root(&block.root(), domain)),
                now,
            )
            .unwrap();
        block
    };
    let members = |chain: &Chain<Minimal>, slot: Slot| -> Vec<(u64, u64)> {
        chain
            .committees_at(slot)
            .iter()
            .enumerate()
            .flat_map(|(c, m)| m.iter().map(move |v| (c as u64, *v)))
            .collect()
    };
    let s = 10;
    assert_eq!(chain.committees_at(s).len(), 2);
    let due = SLOT_MS / 3;

    // Slot s: committee 0 has a subscribed aggregator, committee 1 none.
    let now = at(s, 0);
    let first = chain.committee(s, 0).unwrap()[0];
    chain
        .subscribe_beacon_committees(&[(first, 0, s, true)], now)
        .unwrap();
    let all = members(&chain, s);
    attest(&mut chain, s, &all, at(s, due + 40));
    assert_eq!(chain.report.attestations_received, 8);
    assert_eq!(chain.report.attestations_unsubscribed, 4);
    assert_eq!(chain.report.attestations_ok, 0, "arrived is not included");
    propose(&mut chain, s + 1, at(s + 1, 100));
    let summary = chain.duty_summary(s, s);
    assert_eq!(
        (summary.attestations_ok, summary.attestations_missed),
        (4, 4),
        "the unsubscribed committee's attestations are missed"
    );
    let t = chain.timeliness(s, s);
    assert_eq!(
        (t.duties, t.source_timely, t.target_timely, t.head_timely),
        (8, 4, 4, 4)
    );

    // Slot s + 1: both committees subscribed; one attester of committee 1
    // arrives after the next block was built: included a slot later, not
    // head-timely (but source- and target-timely).
    let now = at(s + 1, 200);
    let subscriptions: Vec<(u64, u64, Slot, bool)> = (0..2)
        .map(|c| (chain.committee(s + 1, c).unwrap()[0], c, s + 1, true))
        .collect();
    chain
        .subscribe_beacon_committees(&subscriptions, now)
        .unwrap();
    let all = members(&chain, s + 1);
    let (late, on_time) = all.split_last().unwrap();
    attest(&mut chain, s + 1, on_time, at(s + 1, due + 40));
    let block = propose(&mut chain, s + 2, at(s + 2, 100));
    let VersionedBlock::Electra(b) = &block else {
        panic!("an Electra block");
    };
    let spanning = b
        .body
        .attestations
        .iter()
        .find(|a| a.data.slot == s + 1)
        .expect("slot s + 1's aggregate");
    assert_eq!(
        spanning.committee_bits.num_set_bits(),
        2,
        "one on-chain aggregate across committees"
    );
    assert_eq!(spanning.aggregation_bits.num_set_bits(), 7);
    attest(&mut chain, s + 1, &[*late], at(s + 2, 300));
    propose(&mut chain, s + 3, at(s + 3, 100));
    let epoch = chain.spec.epoch_of_slot(s + 1);
    let inclusion = chain.inclusion_of(late.1, epoch).unwrap();
    assert_eq!(inclusion.delay, 2);
    assert!(!inclusion.head_timely && inclusion.target_timely && inclusion.source_timely);
    let t = chain.timeliness(s + 1, s + 1);
    assert_eq!(
        (t.duties, t.source_timely, t.target_timely, t.head_timely),
        (8, 8, 8, 7)
    );
    assert_eq!(chain.duty_summary(s + 1, s + 1).attestations_missed, 0);
    // Delays by slot: 4 + 7 at one slot, 1 at two.
    assert_eq!(
        chain.report.inclusion_delays,
        [(1, 11), (2, 1)].into_iter().collect()
    );
}
