//! The middleware's validator API, endpoint by endpoint, against one real
//! `dvnode run --validator-api` process (node 0 of a 4-node cluster, alone,
//! so nothing combines) and the simulated chain: key mapping both ways, and
//! a clear 4xx/501 for every bad body, with the node still serving after.

mod common;

use common::generated::{generate, Gen, Usage};
use common::{create_cluster, free_port, start_chain, Processes, FEE_RECIPIENT};
use dv_crypto::interop_secret_key;
use dv_integration::validator_client::load_share_keys;
use dv_types::*;
use serde_json::{json, Value};
use std::time::Duration;

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
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

    async fn post(&self, path: &str, body: &str, fork: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(fork) = fork {
            request = request.header("Eth-Consensus-Version", fork);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

fn message(v: &Value) -> String {
    format!("{} {}", v["message"], v["failures"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handled_endpoint_maps_keys_and_refuses_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = create_cluster(tmp.path(), 4);
    let (state, url, _genesis) = start_chain(ForkName::Fulu, 1000, false).await;
    let api_addr = format!("127.0.0.1:{}", free_port());
    let log_path = tmp.path().join("node0.log");
    let node = common::start_dvnode(
        &cluster.join("node0"),
        &url,
        &["--validator-api", &api_addr],
        &log_path,
    );
    let pid = node.id();
    let _node = Processes(vec![node]);
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://{api_addr}"),
    };
    let mut up = false;
    for _ in 0..100 {
        if api
            .http
            .get(format!("{}/eth/v1/node/syncing", api.base))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        up,
        "{}",
        std::fs::read_to_string(tmp.path().join("node0.log")).unwrap()
    );

    // One of node 0's share keys (of some validator), and a validator key.
    let shares = load_share_keys(&cluster.join("node0/validator_keys")).unwrap();
    let share0 = *shares.keys().next().unwrap();
    let validator0 = PublicKeyBytes(interop_secret_key(0).public_key().to_bytes());
    assert!(
        !shares.contains_key(&validator0),
        "shares are not validator keys"
    );

    // Key mapping: the client's share key in, the share key back out.
    let (status, body) = api
        .post(
            "/eth/v1/beacon/states/head/validators",
            &json!({"ids": [share0.to_string()]}).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["validator"]["pubkey"],
        json!(share0),
        "{body}"
    );
    let index: u64 = body["data"][0]["index"].as_str().unwrap().parse().unwrap();
    let (status, body) = api
        .post(
            "/eth/v1/validator/duties/attester/0",
            &json!([index.to_string()]).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["pubkey"], json!(share0), "{body}");
    // In a query too; and a validator key in the answer comes back as this
    // node's share of it (the client knows its validators by share keys).
    let (status, body) = api
        .get(&format!(
            "/eth/v1/beacon/states/head/validators?id={share0},{validator0}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let returned: Vec<&Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["validator"]["pubkey"])
        .collect();
    assert_eq!(returned.len(), 2, "{body}");
    assert!(
        returned.contains(&&json!(share0)) && !returned.contains(&&json!(validator0)),
        "{body}"
    );

    // Attestations: not JSON; data nobody decided.
    let (status, body) = api
        .post("/eth/v2/beacon/pool/attestations", "[{", Some("fulu"))
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("JSON"), "{body}");
    let stray = json!([{
        "committee_index": "0",
        "attester_index": index.to_string(),
        "data": {"slot": "1", "index": "0", "beacon_block_root": Root::ZERO,
                 "source": {"epoch": "0", "root": Root::ZERO}, "target": {"epoch": "0", "root": Root::ZERO}},
        "signature": SignatureBytes::infinity(),
    }]);
    let (status, body) = api
        .post(
            "/eth/v2/beacon/pool/attestations",
            &stray.to_string(),
            Some("fulu"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("decided"), "{body}");

    // Selections: a signature that is not this node's partial.
    let bad = json!([{"validator_index": index.to_string(), "slot": "9", "selection_proof": SignatureBytes::infinity()}]);
    let (status, body) = api
        .post(
            "/eth/v1/validator/beacon_committee_selections",
            &bad.to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&body).contains("signature"), "{body}");
    let (status, _) = api
        .post("/eth/v1/validator/beacon_committee_selections", "{}", None)
        .await;
    assert_eq!(status, 400);

    // Blocks: garbage, and a randao reveal that is not a partial of ours.
    let (status, body) = api
        .post("/eth/v2/beacon/blocks", "{\"x\": 1}", Some("fulu"))
        .await;
    assert_eq!(status, 400, "{body}");
    // (Slot 1, the next: every slot's proposer is one of the cluster's.)
    let (status, body) = api
        .get(&format!(
            "/eth/v3/validator/blocks/1?randao_reveal={}",
            SignatureBytes::infinity()
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("randao_reveal"), "{body}");

    // Exits: a bad partial.
    let exit = json!({"message": {"epoch": "0", "validator_index": index.to_string()}, "signature": SignatureBytes::infinity()});
    let (status, body) = api
        .post(
            "/eth/v1/beacon/pool/voluntary_exits",
            &exit.to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // Duties the middleware does not combine yet: refused, never forwarded as partials.
    // Aggregates: not an aggregate.
    let (status, body) = api
        .post(
            "/eth/v2/validator/aggregate_and_proofs",
            "[{\"x\": 1}]",
            Some("fulu"),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("SignedAggregateAndProof"), "{body}");

    // Sync committee messages: not a list; a signature that is not our partial.
    let (status, body) = api
        .post("/eth/v1/beacon/pool/sync_committees", "{", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("JSON"), "{body}");
    let sync_message = json!([{"slot": "1", "beacon_block_root": Root::ZERO,
        "validator_index": index.to_string(), "signature": SignatureBytes::infinity()}]);
    let (status, body) = api
        .post(
            "/eth/v1/beacon/pool/sync_committees",
            &sync_message.to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("signature"), "{body}");

    // Contributions: a query without its block root; not a contribution;
    // a contribution nobody decided.
    let (status, body) = api
        .get("/eth/v1/validator/sync_committee_contribution?slot=1&subcommittee_index=0")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("beacon_block_root"), "{body}");
    let (status, body) = api
        .post(
            "/eth/v1/validator/contribution_and_proofs",
            "[{\"x\": 1}]",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("SignedContributionAndProof"),
        "{body}"
    );
    let contribution = json!([{"message": {"aggregator_index": index.to_string(),
        "contribution": {"slot": "1", "beacon_block_root": Root::ZERO, "subcommittee_index": "0",
            "aggregation_bits": "0x01", "signature": SignatureBytes::infinity()},
        "selection_proof": SignatureBytes::infinity()},
        "signature": SignatureBytes::infinity()}]);
    let (status, body) = api
        .post(
            "/eth/v1/validator/contribution_and_proofs",
            &contribution.to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("decided"), "{body}");

    // Builder registrations: not a list; a signature that is not our
    // partial; a fee recipient other than the lock's; the client's own
    // registration (its share's signature) answered with the lock's.
    let (status, body) = api
        .post("/eth/v1/validator/register_validator", "{", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("JSON"), "{body}");
    let share_secret = &shares[&share0];
    let registration = |fee_recipient: &str, signed: bool| {
        let message = ValidatorRegistration {
            fee_recipient: fee_recipient.parse().unwrap(),
            gas_limit: dv_integration::validator_client::GAS_LIMIT,
            timestamp: 1,
            pubkey: share0,
        };
        let spec = ChainSpec::minimal();
        let domain = spec.domain(DomainKind::ApplicationBuilder, 0, Root::ZERO);
        let root = compute_signing_root(&message, domain);
        let signature = if signed {
            SignatureBytes(share_secret.sign(root.as_slice()).to_bytes())
        } else {
            SignatureBytes::infinity()
        };
        json!([SignedValidatorRegistration { message, signature }])
    };
    let (status, body) = api
        .post(
            "/eth/v1/validator/register_validator",
            &registration(FEE_RECIPIENT, false).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("signature"), "{body}");
    let (status, body) = api
        .post(
            "/eth/v1/validator/register_validator",
            &registration("0x00000000000000000000000000000000000000aa", true).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("fee recipient"), "{body}");
    let (status, body) = api
        .post(
            "/eth/v1/validator/register_validator",
            &registration(FEE_RECIPIENT, true).to_string(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        state.chain().registered.len(),
        1,
        "the lock registration reached the chain"
    );

    // (Slot 0 is then more than a slot past.)
    while state.chain().current_slot(dv_integration::server::now_ms()) < 3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let baseline = Usage::of(pid, &log_path);
    hostile_requests_get_prompt_beacon_api_errors(&api).await;
    let refused = generated_requests_get_bounded_answers(&api, index).await;
    let after = Usage::of(pid, &log_path);
    eprintln!(
        "node RSS {} -> {} kB, log {} -> {} bytes over {refused} refused generated requests",
        baseline.rss_kb, after.rss_kb, baseline.log_bytes, after.log_bytes
    );
    assert!(
        after.rss_kb < baseline.rss_kb + 50 * 1024,
        "RSS grew from {} kB to {} kB",
        baseline.rss_kb,
        after.rss_kb
    );
    assert!(
        after.log_bytes - baseline.log_bytes < 2048 * (refused as u64 + 16),
        "the log grew by {} bytes for {refused} refused requests",
        after.log_bytes - baseline.log_bytes
    );
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(!logged.contains("panicked"), "{}", common::tail(&logged));
    // (After the RSS check: bodies this large stay in the allocator's arenas.)
    the_largest_legal_block_is_read_not_refused_for_size(&api).await;

    // Still serving.
    let (status, _) = api.get("/eth/v1/node/syncing").await;
    assert_eq!(status, 200);
}

/// What a buggy or hostile client sends: every answer prompt, small, in the
/// Beacon API's error shape, and the node keeps serving.
/// A block at the largest legal size (a 10 MiB transaction, EIP-7934's
/// block limit, and 48 blobs with proofs) reaches the block handler in JSON
/// and in SSZ: it is refused for what it is (not a decided block), not for
/// its size. One byte over the limit is a 413.
async fn the_largest_legal_block_is_read_not_refused_for_size(api: &Api) {
    const BLOB: usize = 128 << 10;
    let hex = |n: usize| format!("\"0x{}\"", "ab".repeat(n));
    let blobs = vec![hex(BLOB); 48].join(",");
    let proofs = vec![hex(48); 48].join(",");
    let json = format!(
        r#"{{"signed_block":{{"message":{{"slot":"1","proposer_index":"0","body":{{"execution_payload":{{"transactions":[{}]}}}}}},"signature":{}}},"kzg_proofs":[{proofs}],"blobs":[{blobs}]}}"#,
        hex(10 << 20),
        hex(96)
    );
    assert!(json.len() > 30 << 20 && json.len() < dv_validator_api::MAX_BLOCK_BODY_BYTES);
    let ssz_len = (10 << 20) + 48 * (BLOB + 48) + 4096;
    for path in ["/eth/v2/beacon/blocks", "/eth/v2/beacon/blinded_blocks"] {
        let (status, body) = api.post(path, &json, Some("fulu")).await;
        assert_eq!(status, 400, "{path} JSON of {} bytes: {body}", json.len());
        let r = api
            .http
            .post(format!("{}{path}", api.base))
            .header("content-type", "application/octet-stream")
            .header("Eth-Consensus-Version", "fulu")
            .body(vec![0u8; ssz_len])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{path} SSZ of {ssz_len} bytes: {body}");
    }
    let over = "x".repeat(dv_validator_api::MAX_BLOCK_BODY_BYTES + 1);
    let (status, body) = api.post("/eth/v2/beacon/blocks", &over, Some("fulu")).await;
    assert_eq!(status, 413, "{body}");
}

async fn hostile_requests_get_prompt_beacon_api_errors(api: &Api) {
    let is_beacon_error = |status: u16, body: &Value| {
        body["code"] == json!(status) && body["message"].as_str().is_some_and(|m| !m.is_empty())
    };
    // Block bodies that are JSON but not a signed block (these panicked once).
    for path in ["/eth/v2/beacon/blocks", "/eth/v1/beacon/blinded_blocks"] {
        for bad in [
            "[null, null]",
            "5",
            "\"x\"",
            "{\"signed_block\": []}",
            "{\"message\": 1}",
        ] {
            let (status, body) = api.post(path, bad, Some("fulu")).await;
            assert_eq!(status, 400, "{path} {bad}: {body}");
            assert!(is_beacon_error(status, &body), "{path} {bad}: {body}");
        }
    }
    // A batch one item over the limit is refused at that item, in a small answer.
    let too_many = format!(
        "[{}]",
        vec!["{}"; dv_validator_api::MIN_BATCH_LIMIT + 1].join(",")
    );
    let started = std::time::Instant::now();
    let (status, body) = api
        .post("/eth/v1/validator/register_validator", &too_many, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("more than 1024 items"), "{body}");
    assert!(body.to_string().len() < 1024, "{body}");
    // The same in SSZ (180-byte registrations), counted before decoding.
    let ssz_registrations = vec![0u8; 180 * (dv_validator_api::MIN_BATCH_LIMIT + 1)];
    let r = api
        .http
        .post(format!("{}/eth/v1/validator/register_validator", api.base))
        .header("content-type", "application/octet-stream")
        .body(ssz_registrations)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("more than 1024"), "{body}");
    // SSZ where the Beacon API takes JSON only: 415.
    let r = api
        .http
        .post(format!("{}/eth/v1/beacon/pool/sync_committees", api.base))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 200])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 415, "{body}");
    assert!(is_beacon_error(status, &body), "{body}");
    // A million items: over the body limit, refused without reading it.
    let million = format!("[{}]", vec!["{}"; 1_000_000].join(","));
    let (status, body) = api
        .post("/eth/v1/beacon/pool/sync_committees", &million, None)
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(is_beacon_error(status, &body), "{body}");
    assert!(message(&body).contains("over this route's limit"), "{body}");
    // A batch whose every item fails lists a capped number of failures.
    let failing = format!("[{}]", vec!["{\"x\": 1}"; 1000].join(","));
    let (status, body) = api
        .post("/eth/v1/beacon/pool/sync_committees", &failing, None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["failures"].as_array().map(Vec::len),
        Some(dv_validator_api::MAX_FAILURES_SHOWN),
        "{body}"
    );
    assert!(
        message(&body).contains("1000 sync committee messages were refused"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Slots with no work that could finish: refused at once.
    for query in [
        "/eth/v1/validator/attestation_data?slot=0&committee_index=0".to_string(),
        "/eth/v1/validator/attestation_data?slot=1000000&committee_index=0".to_string(),
        format!("/eth/v1/validator/sync_committee_contribution?slot=1000000&subcommittee_index=0&beacon_block_root={}", Root::ZERO),
        format!("/eth/v1/validator/sync_committee_contribution?slot=1&subcommittee_index=9&beacon_block_root={}", Root::ZERO),
        format!("/eth/v2/validator/aggregate_attestation?slot=1&committee_index=16777215&attestation_data_root={}", Root::ZERO),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = api.get(&query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(is_beacon_error(status, &body), "{query}: {body}");
        assert!(started.elapsed() < Duration::from_secs(1), "{query}: {:?}", started.elapsed());
    }
    // A bad path segment: the Beacon API's shape, not axum's text.
    let (status, body) = api.get("/eth/v3/validator/blocks/notaslot").await;
    assert_eq!(status, 400, "{body}");
    assert!(is_beacon_error(status, &body), "{body}");
    // A read on a path the node handles for POST goes to the beacon node.
    let (status, body) = api.get("/eth/v1/beacon/pool/voluntary_exits").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([]), "{body}");
}

/// Generated requests (see `common/generated.rs`), four in flight, each
/// checked; returns how many were refused.
async fn generated_requests_get_bounded_answers(api: &Api, index: u64) -> usize {
    use futures::stream::{self, StreamExt};
    const REQUESTS: usize = 1500;
    let mut gen = Gen::from_env();
    let requests: Vec<_> = (0..REQUESTS).map(|_| generate(&mut gen, index)).collect();
    let refused: Vec<bool> = stream::iter(requests)
        .map(|r| r.send_and_check(&api.http, &api.base, Duration::from_secs(4)))
        .buffer_unordered(4)
        .collect()
        .await;
    let refused = refused.into_iter().filter(|r| *r).count();
    eprintln!("{REQUESTS} generated requests, {refused} refused");
    refused
}
