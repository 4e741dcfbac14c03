//! End to end, middleware mode: real `dvnode run --validator-api` processes
//! over real libp2p on 127.0.0.1, each with a validator-client simulator
//! (holding that node's key shares, talking HTTP to the node's validator API
//! as to a beacon node), against the strict simulated chain. Epoch 1 (slots
//! 8..15) is judged.

mod common;

use common::generated::{generate, Gen};
use common::{
    create_cluster, free_port, node_logs, start_chain, tail, Processes, EPOCH_1_ALL_LANDED,
};
use dv_integration::chain::DutySummary;
use dv_integration::server::now_ms;
use dv_integration::validator_client::{load_share_keys, ClientCounts, Encoding, ValidatorClient};
use dv_types::ForkName;
use std::time::Duration;

/// Minimal preset with 8 validators fills the 32 sync committee positions
/// from them (the spec's draw), every member of a subcommittee of 8 an
/// aggregator: up to 32 contributions a slot (a mainnet cluster of 8 rarely
/// has one). Four nodes, four clients and the
/// chain share 2 cores; 3 s slots leave the contributions, which a strict
/// chain takes only until half a second past their slot, room to land.
const SLOT_MS: u64 = 3000;

struct Outcome {
    summary: DutySummary,
    /// Epoch 1's aggregation duties: (landed, missed).
    aggregates: (u64, u64),
    /// Epoch 1's sync committee messages and contributions: (landed, missed) each.
    sync: ((u64, u64), (u64, u64)),
    /// Validators registered with the builder, and registrations refused.
    registered: (usize, u64),
    invalid_signatures: u64,
    slashable: Vec<String>,
    clients: Vec<ClientCounts>,
    /// What the chain refused, by reason.
    rejections: std::collections::BTreeMap<String, u64>,
    logs: String,
    /// Generated hostile requests sent to node 0 during the run, and how many it refused.
    hostile: (usize, usize),
}

/// How the validator clients behave.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clients {
    /// Every duty, as a validator client run with `--distributed` does.
    Complete,
    /// Neither aggregator subscriptions nor aggregates.
    SkipAggregation,
}

/// A 4-node cluster in middleware mode; nodes (and their clients, behaving
/// as `behaviour` says) in `running` take part. The clients run slots
/// 1..=16. With `hostile`, generated malformed requests
/// (`common/generated.rs`) go to the first running node's validator API
/// throughout, about ten a second, beside its own client.
async fn run_middleware(
    running: &[usize],
    fork: ForkName,
    encoding: Encoding,
    hostile: bool,
    behaviour: Clients,
) -> Outcome {
    // The clients' errors, in the test's output.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let tmp = tempfile::tempdir().unwrap();
    let cluster = create_cluster(tmp.path(), 4);
    let (state, url, genesis) = start_chain(fork, SLOT_MS, false).await;
    let apis: Vec<String> = running
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _nodes = Processes(
        running
            .iter()
            .zip(&apis)
            .map(|(i, api)| {
                common::start_dvnode(
                    &cluster.join(format!("node{i}")),
                    &url,
                    &["--validator-api", api],
                    &tmp.path().join(format!("node{i}.log")),
                )
            })
            .collect(),
    );
    let clients = running.iter().zip(&apis).map(|(i, api)| {
        let keys = load_share_keys(&cluster.join(format!("node{i}/validator_keys"))).unwrap();
        let base = format!("http://{api}");
        async move {
            let mut client = None;
            for _ in 0..50 {
                match ValidatorClient::start(&base, keys.clone(), encoding).await {
                    Ok(c) => {
                        client = Some(c);
                        break;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            let mut client = client.expect("the node's validator API answers");
            if behaviour == Clients::SkipAggregation {
                client = client.without_aggregation();
            }
            let client = std::sync::Arc::new(client);
            client.run_slots(1, 16).await;
            client.counts()
        }
    });
    let attacker = {
        let base = format!("http://{}", apis[0]);
        let stop_ms = genesis * 1000 + 16 * SLOT_MS;
        async move {
            if !hostile {
                return (0, 0);
            }
            let http = reqwest::Client::new();
            let up = format!("{base}/eth/v1/node/syncing");
            while http.get(&up).send().await.is_err() && now_ms() < stop_ms {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut gen = Gen::from_env();
            let (mut sent, mut refused) = (0, 0);
            while now_ms() < stop_ms {
                let request = generate(&mut gen, 3);
                refused += request
                    .send_and_check(&http, &base, Duration::from_millis(2 * SLOT_MS))
                    .await as usize;
                sent += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (sent, refused)
        }
    };
    let (clients, hostile) =
        futures::future::join(futures::future::join_all(clients), attacker).await;
    let until = genesis * 1000 + 17 * SLOT_MS;
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
    let logs = node_logs(tmp.path(), running);
    let chain = state.chain();
    Outcome {
        summary: chain.duty_summary(8, 15),
        aggregates: chain.aggregation_summary(8, 15),
        sync: chain.sync_summary(8, 15),
        registered: (chain.registered.len(), chain.report.registrations_rejected),
        invalid_signatures: chain.report.invalid_signatures,
        slashable: chain.report.slashable.clone(),
        clients,
        rejections: chain.report.rejections.clone(),
        logs,
        hostile,
    }
}

fn assert_every_duty_landed(o: &Outcome) {
    assert_landed(o, 0);
}

/// As [`assert_every_duty_landed`], with up to `messages_missed` sync
/// committee messages that no block's sync aggregate carried.
fn assert_landed(o: &Outcome, messages_missed: u64) {
    assert_eq!(
        o.invalid_signatures,
        0,
        "{:?}\n{}",
        o.rejections,
        tail(&o.logs)
    );
    assert!(o.slashable.is_empty(), "{:?}", o.slashable);
    assert_eq!(
        o.summary,
        EPOCH_1_ALL_LANDED,
        "clients: {:?}\n{}",
        o.clients,
        tail(&o.logs)
    );
    assert_eq!(
        o.aggregates,
        (8, 0),
        "aggregates landed, missed\n{}",
        tail(&o.logs)
    );
    // Every sync committee member's message is in the next block's sync
    // aggregate, and every selected member's contribution landed (all are
    // selected in subcommittees of 8).
    assert!(
        o.sync.0 .1 <= messages_missed && o.sync.1 .1 == 0 && o.sync.0 .0 > 0 && o.sync.1 .0 > 0,
        "sync messages and contributions (landed, missed): {:?}\n{}",
        o.sync,
        tail(&o.logs)
    );
    // Each validator's registration from the cluster lock, nothing refused
    // (but the hostile requests' registrations of unknown keys, which the
    // node forwards as it forwards every registration not its own).
    assert_eq!(o.registered.0, 8, "{:?}", o.rejections);
    if o.hostile.0 == 0 {
        assert_eq!(o.registered.1, 0, "{:?}", o.rejections);
    } else {
        let unknown = o.rejections.get("unknown validator").copied().unwrap_or(0);
        assert!(o.registered.1 <= unknown, "{:?}", o.rejections);
    }
    for c in &o.clients {
        assert_eq!(c.errors, 0, "{:?}\n{}", o.clients, tail(&o.logs));
        // Each client holds a share of all 8 validators: 16 slots of 1
        // attestation each, and 16 blocks (every slot's proposer is one of them).
        // With one validator per committee each is its slot's aggregator.
        assert_eq!(
            (
                c.attestations_submitted,
                c.blocks_published,
                c.aggregates_published
            ),
            (16, 16, 16),
            "{:?}",
            o.clients
        );
        // Sync duties follow the spec's draw of the sync committee: every
        // client did the same ones.
        assert!(c.sync_messages_submitted > 0 && c.contributions_published > 0);
        assert_eq!(
            (c.sync_messages_submitted, c.contributions_published),
            (
                o.clients[0].sync_messages_submitted,
                o.clients[0].contributions_published
            ),
            "{:?}",
            o.clients
        );
        assert!(c.selections_combined > 0, "{:?}", o.clients);
        // Registrations at the first slot of epochs 0, 1 and 2, for 8 validators.
        assert_eq!(c.registrations_submitted, 24, "{:?}", o.clients);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_clients_behind_four_middleware_nodes_perform_every_duty() {
    // Clients speaking SSZ (Lodestar's default); node 0 gets hostile
    // requests all along: the duties go on regardless.
    let o = run_middleware(
        &[0, 1, 2, 3],
        ForkName::Fulu,
        Encoding::Ssz,
        true,
        Clients::Complete,
    )
    .await;
    eprintln!(
        "hostile requests to node 0 (sent, refused): {:?}",
        o.hostile
    );
    assert!(o.hostile.0 > 100, "{:?}", o.hostile);
    assert_every_duty_landed(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_and_its_client_down_changes_nothing() {
    let o = run_middleware(
        &[0, 2, 3],
        ForkName::Fulu,
        Encoding::Json,
        false,
        Clients::Complete,
    )
    .await;
    // As in the built-in test with a node down: a block whose consensus the
    // stopped node led is decided a round late, after the sync committee
    // messages were made over the previous head, and those no block can
    // carry; at most two slots' worth.
    assert_landed(&o, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deneb_clients_speaking_ssz_perform_every_duty() {
    // Before Electra: Deneb attestations (SSZ, v2), aggregates on v1 (JSON).
    let o = run_middleware(
        &[0, 1, 2, 3],
        ForkName::Deneb,
        Encoding::Ssz,
        false,
        Clients::Complete,
    )
    .await;
    assert_every_duty_landed(&o);
}

/// The judge counts attestations by inclusion: when no client subscribes as
/// aggregator nor aggregates, the chain keeps none of the committees'
/// attestations and no block includes them, although every one of them
/// arrived and verified. Everything else still lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestations_nobody_aggregates_are_missed() {
    let o = run_middleware(
        &[0, 1, 2, 3],
        ForkName::Fulu,
        Encoding::Ssz,
        false,
        Clients::SkipAggregation,
    )
    .await;
    assert_eq!(o.invalid_signatures, 0, "{:?}", o.rejections);
    assert!(o.slashable.is_empty(), "{:?}", o.slashable);
    assert_eq!(
        (o.summary.attestations_ok, o.summary.attestations_missed),
        (0, 8),
        "epoch 1's attestations (included, missed)\n{}",
        tail(&o.logs)
    );
    assert_eq!((o.summary.proposals_ok, o.summary.proposals_missed), (8, 0));
    assert_eq!(o.aggregates, (0, 8), "aggregation duties (landed, missed)");
    for c in &o.clients {
        assert_eq!(c.errors, 0, "{:?}\n{}", o.clients, tail(&o.logs));
        assert_eq!(
            (c.attestations_submitted, c.aggregates_published),
            (16, 0),
            "{:?}",
            o.clients
        );
    }
}
