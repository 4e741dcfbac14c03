//! End to end: real `dvnode run` processes over real libp2p on 127.0.0.1,
//! against the strict simulated beacon chain (in this test process), attest
//! and propose for eight interop validators (every slot's proposer is one of
//! them); at 3 s slots they also aggregate, do sync committee duties and
//! register with the builder. Epoch 1 (slots 8..15) is judged.

mod common;

use common::{create_cluster, free_port, http_get, node_logs, tail, Processes, EPOCH_1_ALL_LANDED};
use dv_integration::chain::DutySummary;
use dv_integration::server::now_ms;
use dv_types::ForkName;
use std::time::Duration;

/// Attester and proposer duties fit 1 s slots. Every duty family is judged
/// at 3 s slots, as in the middleware test: contributions are due at two
/// thirds and refused half a second after their slot, and on the minimal
/// preset 8 validators make 32 of them a slot; a debug build of 4 nodes
/// beside the chain on 2 cores missed about one slot's worth at 2 s (a
/// release build keeps 2 s slots: see the README's testnet figures).
const SLOT_MS: u64 = 1000;
const ALL_DUTIES_SLOT_MS: u64 = 3000;

/// What happens to the nodes while the chain runs.
#[derive(Clone, Copy)]
enum Scenario {
    /// The nodes run throughout.
    Steady,
    /// Node `0` of `running` is killed with SIGKILL at `at_slot` and started
    /// again with the same data directory `down_slots` slots later.
    Restart { at_slot: u64, down_slots: u64 },
    /// At slot 2 the operators of nodes 0, 1 and 2 sign the exit of
    /// validator 5 (a threshold of 4 nodes), those of nodes 0 and 1 the exit
    /// of validator 6 (fewer), both at epoch 0, with `dvnode exit sign`.
    Exits,
    /// The nodes run as normal validators (`--plain`: whole keys of a
    /// 1-node cluster, no consensus, no peers).
    Plain,
    /// Node `0` of `running` crashes (SIGKILL, by itself) at every crash
    /// point of `dv_fault` in turn, each time started again from its data
    /// directory as soon as it is gone; then it runs to the end.
    Crashes,
    /// Each node in a network namespace of its own (`common::netns`); from
    /// each `(slot, groups)` on, the groups are cut off from each other (no
    /// groups: healed).
    Partition {
        phases: &'static [(u64, &'static [&'static [usize]])],
    },
    /// The operators of the nodes not running are Byzantine: an
    /// adversary with each one's keys attacks the others every slot
    /// (`common::byzantine`).
    Byzantine,
}

/// The validators of [`Scenario::Exits`]: signed by three operators, by two.
const EXIT_SIGNED_BY_THRESHOLD: u64 = 5;
const EXIT_SIGNED_BY_TOO_FEW: u64 = 6;

struct Outcome {
    summary: dv_integration::chain::DutySummary,
    /// Aggregation duties landed, missed.
    aggregates: (u64, u64),
    /// Sync committee messages and contributions landed, missed.
    sync: ((u64, u64), (u64, u64)),
    /// Validators registered with the builder.
    registered: usize,
    /// Blocks published again after they landed (answered "already known").
    duplicate_blocks: u64,
    rejections: String,
    invalid_signatures: u64,
    slashable: Vec<String>,
    logs: String,
    /// What the first running node served on `--metrics` at the end.
    metrics: String,
    /// Its `/readyz` answer (status line and body) at the end.
    readyz: String,
    /// Validators whose exit a block included, with the exit epoch set.
    exits_included: std::collections::BTreeMap<u64, u64>,
    /// The exit files left pending and those moved to `submitted/`, as `node/name`.
    exit_files: (Vec<String>, Vec<String>),
    /// The latest attestation arrival of each slot, ms after the slot started.
    latest_attestation_ms: std::collections::BTreeMap<u64, u64>,
    /// Each running node's resident memory at the end, in kB.
    rss_kb: Vec<u64>,
    /// What the adversaries sent, by attack ([`Scenario::Byzantine`]).
    attacks: std::collections::BTreeMap<&'static str, usize>,
    /// Slots 3..=5 (the warm-up epoch), as the chain judged them.
    slots_3_to_5: dv_integration::chain::DutySummary,
    /// Each crash point, the signal the node died of there, and the slot ([`Scenario::Crashes`]).
    crashes: Vec<(&'static str, Option<i32>, u64)>,
}

/// The exit files of every node directory in `cluster`: pending, submitted.
fn exit_files(cluster: &std::path::Path, n: usize) -> (Vec<String>, Vec<String>) {
    let names = |dir: std::path::PathBuf, node: usize| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| format!("node{node}/{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = (Vec::new(), Vec::new());
    for i in 0..n {
        let exits = cluster.join(format!("node{i}")).join("exits");
        out.0.extend(names(exits.clone(), i));
        out.1.extend(names(exits.join("submitted"), i));
    }
    out.0.sort();
    out.1.sort();
    out
}

/// Creates an `n`-node cluster over interop validators 0..8, starts the nodes
/// in `running` as processes against a fresh simulated chain, and judges epoch 1.
async fn run_cluster(n: usize, running: &[usize]) -> Outcome {
    run_on_chain(n, running, Scenario::Steady, ForkName::Fulu, false, SLOT_MS).await
}

/// Every duty family, at slots long enough for contributions.
async fn run_all_duties(running: &[usize], fork: ForkName) -> Outcome {
    run_on_chain(
        4,
        running,
        Scenario::Steady,
        fork,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await
}

/// `builder`: the chain answers block production with blinded blocks.
async fn run_on_chain(
    n: usize,
    running: &[usize],
    scenario: Scenario,
    fork: ForkName,
    builder: bool,
    slot_ms: u64,
) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let mut netns = match scenario {
        Scenario::Partition { .. } => {
            Some(common::netns::Netns::create(n).expect("network namespaces (probed by the test)"))
        }
        _ => None,
    };
    let (cluster, chain_host, metrics_host) = match &netns {
        Some(net) => {
            // Each node alone on its address: the same port everywhere.
            let addresses: Vec<String> = (0..n)
                .map(|i| format!("/ip4/{}/tcp/9000", net.node_ip(i)))
                .collect();
            let cluster = common::create_cluster_at(tmp.path(), "minimal", &addresses);
            (cluster, net.host_ip(), net.node_ip(running[0]))
        }
        None => (
            create_cluster(tmp.path(), n),
            "127.0.0.1".to_string(),
            "127.0.0.1".to_string(),
        ),
    };
    let namespaces: Vec<Option<String>> = (0..n)
        .map(|i| netns.as_ref().map(|net| net.namespace(i)))
        .collect();
    let (state, url, genesis) =
        common::start_chain_at::<dv_types::Minimal>(fork, slot_ms, builder, &chain_host).await;
    if let Scenario::Exits = scenario {
        // As dev chains set it: validators may exit from genesis on.
        state.chain().spec.shard_committee_period = 0;
    }

    let metrics_addr = format!("{metrics_host}:{}", free_port());
    let start = |i: usize| {
        let mut extra = Vec::new();
        if i == running[0] {
            extra.extend(["--metrics", metrics_addr.as_str()]);
        }
        if let Scenario::Plain = scenario {
            extra.push("--plain");
        }
        common::start_dvnode_as(
            &cluster.join(format!("node{i}")),
            &url,
            &extra,
            &tmp.path().join(format!("node{i}.log")),
            None,
            namespaces[i].as_deref(),
        )
    };
    let mut nodes = Processes(running.iter().map(|i| start(*i)).collect());
    let mut crashes = Vec::new();
    if let Scenario::Crashes = scenario {
        let log = tmp.path().join(format!("node{}.log", running[0]));
        let dir = cluster.join(format!("node{}", running[0]));
        let restart = |crash_at: Option<&str>| {
            let metrics = ["--metrics", metrics_addr.as_str()];
            common::start_dvnode_as(&dir, &url, &metrics, &log, crash_at, None)
        };
        nodes.0[0].kill().unwrap();
        nodes.0[0].wait().unwrap();
        for point in dv_fault::POINTS {
            nodes.0[0] = restart(Some(point));
            let status = loop {
                if let Some(status) = nodes.0[0].try_wait().unwrap() {
                    break Some(status);
                }
                if now_ms() > genesis * 1000 + 14 * slot_ms {
                    break None; // never reached: reported below
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            use std::os::unix::process::ExitStatusExt;
            let slot = (now_ms().saturating_sub(genesis * 1000)) / slot_ms;
            crashes.push((point, status.and_then(|s| s.signal()), slot));
        }
        nodes.0[0] = restart(None);
    }
    if let Scenario::Restart {
        at_slot,
        down_slots,
    } = scenario
    {
        let kill_at = genesis * 1000 + at_slot * slot_ms + slot_ms / 2;
        tokio::time::sleep(Duration::from_millis(kill_at.saturating_sub(now_ms()))).await;
        nodes.0[0].kill().unwrap(); // SIGKILL: no clean shutdown
        nodes.0[0].wait().unwrap();
        tokio::time::sleep(Duration::from_millis(down_slots * slot_ms)).await;
        nodes.0[0] = start(running[0]);
    }
    if let Scenario::Exits = scenario {
        let at = genesis * 1000 + 2 * slot_ms;
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
        for (validator, signers) in [
            (EXIT_SIGNED_BY_THRESHOLD, &[0, 1, 2][..]),
            (EXIT_SIGNED_BY_TOO_FEW, &[0, 1][..]),
        ] {
            let pubkey = state.chain().pubkey(validator).unwrap().to_string();
            for i in signers {
                let dir = cluster.join(format!("node{i}"));
                let signed = common::dvnode(&[
                    "exit",
                    "sign",
                    "--data-dir",
                    dir.to_str().unwrap(),
                    "--validator",
                    &pubkey,
                    "--epoch",
                    "0",
                    "--beacon-node",
                    &url,
                ]);
                assert!(signed.status.success(), "{}", common::text(&signed));
                assert!(
                    common::text(&signed).contains(&format!("(index {validator}) at epoch 0")),
                    "{}",
                    common::text(&signed)
                );
            }
        }
    }
    // Through the end of epoch 1 (slots 8..15) and one more slot.
    let until = (genesis * 1000) + 17 * slot_ms;
    if let (Scenario::Partition { phases }, Some(net)) = (scenario, netns.as_mut()) {
        for (slot, groups) in phases {
            let at = genesis * 1000 + slot * slot_ms;
            tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
            net.heal().unwrap();
            if !groups.is_empty() {
                net.partition(groups).unwrap();
            }
        }
    }
    let mut attacks = std::collections::BTreeMap::new();
    if let Scenario::Byzantine = scenario {
        let mut adversaries = Vec::new();
        for i in (0..n).filter(|i| !running.contains(i)) {
            let adversary =
                common::byzantine::Adversary::start(&cluster.join(format!("node{i}"))).await;
            adversaries.push(tokio::spawn(adversary.run(genesis * 1000, slot_ms, until)));
        }
        for adversary in adversaries {
            for (attack, count) in adversary.await.unwrap() {
                *attacks.entry(attack).or_default() += count;
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
    let metrics = http_get(&metrics_addr, "/metrics");
    let readyz = http_get(&metrics_addr, "/readyz");
    let rss_kb = nodes.0.iter().map(|c| common::rss_kb(c.id())).collect();
    drop(nodes);

    let logs = node_logs(tmp.path(), running);
    let chain = state.chain();
    Outcome {
        summary: chain.duty_summary(8, 15),
        slots_3_to_5: chain.duty_summary(3, 5),
        aggregates: chain.aggregation_summary(8, 15),
        sync: chain.sync_summary(8, 15),
        registered: chain.registered.len(),
        duplicate_blocks: chain.report.duplicate_blocks,
        rejections: format!("{:?}", chain.report.rejections),
        invalid_signatures: chain.report.invalid_signatures,
        slashable: chain.report.slashable.clone(),
        logs,
        metrics,
        readyz,
        exits_included: chain.report.exits_included.clone(),
        exit_files: exit_files(&cluster, n),
        latest_attestation_ms: chain.report.latest_attestation_by_slot.clone(),
        rss_kb,
        attacks,
        crashes,
    }
}

/// Epoch 1's eight attestations and eight blocks landed; nothing invalid or
/// slashable reached the chain.
fn assert_every_duty_landed(o: &Outcome) {
    assert_eq!(o.invalid_signatures, 0, "{}", tail(&o.logs));
    assert!(o.slashable.is_empty(), "{:?}", o.slashable);
    assert_eq!(o.summary, EPOCH_1_ALL_LANDED, "{}", tail(&o.logs));
}

/// Every duty family of epoch 1 landed: attestations and blocks, the
/// aggregators' aggregates, every sync committee member's message in the
/// next block's sync aggregate and every selected member's contribution,
/// and the builder registrations of all 8 validators.
fn assert_every_duty_family_landed(o: &Outcome) {
    assert_duty_families_landed(o, 0);
}

/// As [`assert_every_duty_family_landed`], with up to `messages_missed`
/// sync committee messages that no block's sync aggregate carried.
fn assert_duty_families_landed(o: &Outcome, messages_missed: u64) {
    assert_every_duty_landed(o);
    assert_eq!(
        o.aggregates.1,
        0,
        "aggregates landed, missed: {:?}\n{}\n{}",
        o.aggregates,
        o.rejections,
        tail(&o.logs)
    );
    assert!(
        o.aggregates.0 > 0,
        "no aggregator in epoch 1: {:?}",
        o.aggregates
    );
    assert!(
        o.sync.0 .1 <= messages_missed && o.sync.1 .1 == 0 && o.sync.0 .0 > 0 && o.sync.1 .0 > 0,
        "sync messages and contributions (landed, missed): {:?}\n{}\n{}",
        o.sync,
        o.rejections,
        tail(&o.logs)
    );
    assert_eq!(o.registered, 8, "{}", o.rejections);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_perform_every_duty_for_every_validator_with_nothing_invalid_or_slashable() {
    let o = run_all_duties(&[0, 1, 2, 3], ForkName::Fulu).await;
    assert_every_duty_family_landed(&o);
    // Every node publishes the decided block; the beacon node answers the
    // later copies "already known", which is a published block, not a failure.
    assert!(o.duplicate_blocks > 0, "{}", tail(&o.logs));
    assert!(
        o.logs
            .contains("block published (the beacon node already had it from another operator)"),
        "{}",
        tail(&o.logs)
    );
    // No duty of the judged epoch failed anywhere (the slots before it are
    // the cluster's warm-up, as in the chain's judgement).
    let failed_in_epoch_1: Vec<&str> = o
        .logs
        .lines()
        .filter(|l| l.contains("duty failed"))
        .filter(|l| {
            l.split_whitespace()
                .find_map(|field| field.strip_prefix("slot="))
                .and_then(|slot| slot.parse::<u64>().ok())
                .is_some_and(|slot| (8..=15).contains(&slot))
        })
        .take(20)
        .collect();
    assert!(
        failed_in_epoch_1.is_empty(),
        "{}",
        failed_in_epoch_1.join("\n")
    );
    for line in [
        "duty ok: attestations submitted",
        "duty ok: block published",
        "duty ok: aggregates submitted",
        "duty ok: sync committee messages submitted",
        "duty ok: sync contributions submitted",
        "duty ok: builder registrations submitted",
    ] {
        assert!(o.logs.contains(line), "{line}\n{}", tail(&o.logs));
    }
    for series in [
        r#"dv_duty_submitted_total{duty="attester"}"#,
        r#"dv_duty_submitted_total{duty="proposer"}"#,
        r#"dv_stage_latency_seconds_count{duty="attester",stage="consensus"}"#,
        r#"dv_duty_latency_seconds_count{duty="proposer"}"#,
        r#"dv_consensus_decided_round_count{duty="attester"}"#,
        r#"dv_consensus_decision_seconds_count{duty="proposer"}"#,
        r#"dv_peer_consensus_participation_total{duty="attester",peer="3"}"#,
        r#"dv_peer_connected{peer="3"} 1"#,
        "dv_peers_connected 3",
        r#"dv_peer_rtt_seconds_count{peer="3"}"#,
        r#"dv_peer_clock_offset_seconds{peer="3"}"#,
        r#"dv_peer_partials_total{duty="attester",peer="3",reason="on_time"}"#,
        // Found in the chain's blocks (one block read a slot).
        r#"dv_duty_included_total{duty="attester"}"#,
        r#"dv_duty_included_total{duty="proposer"}"#,
        r#"dv_duty_included_total{duty="sync_message"}"#,
        r#"dv_duty_inclusion_delay_slots_bucket{le="1.0",duty="attester"}"#,
        r#"dv_beacon_node_request_seconds_count{endpoint="/eth/v2/beacon/blocks/{id}",node="0"}"#,
        r#"dv_beacon_node_request_seconds_count{endpoint="/eth/v1/validator/attestation_data",node="0"}"#,
        r#"dv_slashing_db_transaction_seconds_count{duty="attester"}"#,
        r#"dv_exchange_queue_depth{queue="held"}"#,
        "dv_process_resident_memory_bytes",
        "dv_build_info{version=",
    ] {
        assert!(
            o.metrics.contains(series),
            "{series} not in:\n{}",
            o.metrics
        );
    }
    assert!(
        o.readyz.starts_with("HTTP/1.1 200") || o.readyz.starts_with("HTTP/1.0 200"),
        "{}",
        o.readyz
    );
    assert!(o.readyz.contains(r#""ready":true"#), "{}", o.readyz);
    assert!(
        o.readyz.contains(
            r#"{"name":"clock","ok":true,"message":"peers' clocks minus this node's: peer 1 "#
        ),
        "{}",
        o.readyz
    );
    let queried = common::assert_dashboard_metrics_exist(&o.metrics);
    eprintln!("dashboard: {} metrics queried, all served", queried.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_down_changes_nothing() {
    let o = run_all_duties(&[0, 2, 3], ForkName::Fulu).await;
    // Measured, not yet fixed: when the stopped node leads a block's
    // consensus, the block is decided a full round (a third of a slot)
    // later, after the sync committee messages at a third of the slot were
    // made over the previous head; those messages cannot go in the next
    // block's sync aggregate (it signs the root of the late block), as on a
    // real chain. Everything else lands; at most two slots' messages miss.
    assert_duty_families_landed(&o, 16);
}

/// Every attestation of epoch 1 reached the chain before its slot ended.
fn assert_attestations_within_their_slot(o: &Outcome) {
    let late: Vec<(u64, u64)> = (8..=15)
        .filter_map(|slot| {
            let latest = o.latest_attestation_ms.get(&slot).copied();
            (latest.is_none_or(|ms| ms >= SLOT_MS)).then_some((slot, latest.unwrap_or(u64::MAX)))
        })
        .collect();
    assert!(
        late.is_empty(),
        "slots whose attestations arrived late or not at all (slot, ms after its start): {late:?}\n{}",
        tail(&o.logs)
    );
}

/// Deadlines, not only arrival: with 1 s slots every attestation reaches
/// the chain within its slot, also when the leader of a quarter of the
/// slots' consensus is down (their first round then times out: a third of
/// these short slots, `SlotClock::round_timing`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestations_land_within_their_slot_with_all_nodes_and_with_one_down() {
    for running in [&[0, 1, 2, 3][..], &[1, 2, 3][..]] {
        let o = run_cluster(4, running).await;
        assert_every_duty_landed(&o);
        assert_attestations_within_their_slot(&o);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_down_sign_nothing() {
    let o = run_cluster(4, &[1, 3]).await;
    assert_eq!(
        o.summary,
        DutySummary {
            attestations_ok: 0,
            attestations_missed: 8,
            proposals_ok: 0,
            proposals_missed: 8
        },
        "{}",
        tail(&o.logs)
    );
    assert_eq!(o.invalid_signatures, 0);
    assert!(o.slashable.is_empty());
    // Nothing that needs a threshold of operators went out (the builder
    // registrations were signed into the lock beforehand).
    for signed in [
        "duty ok: attestations",
        "duty ok: block",
        "duty ok: aggregates",
        "duty ok: sync",
    ] {
        assert!(!o.logs.contains(signed), "{signed}\n{}", tail(&o.logs));
    }
    assert!(
        o.logs.contains("reason=no_consensus") && o.logs.contains("duty failed: no consensus"),
        "{}",
        tail(&o.logs)
    );
    // Node 1 sees peers 0 and 2 down: not ready, and says why.
    assert!(
        o.readyz.starts_with("HTTP/1.0 503") || o.readyz.starts_with("HTTP/1.1 503"),
        "{}",
        o.readyz
    );
    assert!(
        o.readyz.contains(
            "peers: 1 of 3 peers connected, 2 needed for the threshold; not connected: peer 0, peer 2"
        ),
        "{}",
        o.readyz
    );
    assert!(
        o.readyz
            .contains(r#"{"name":"duties","ok":false,"message":"in the last epoch: "#),
        "{}",
        o.readyz
    );
    for series in [
        r#"dv_duty_failed_total{duty="attester",reason="no_consensus"}"#,
        r#"dv_duty_failed_total{duty="proposer",reason="missing_prerequisite"}"#,
        r#"dv_peer_connected{peer="0"} 0"#,
        r#"dv_peer_connected{peer="3"} 1"#,
        // Randao reveals are signed without consensus: peer 3's came, 0's and 2's never.
        r#"dv_peer_partials_total{duty="randao",peer="3",reason="on_time"}"#,
        r#"dv_peer_partials_total{duty="randao",peer="0",reason="missing"}"#,
        r#"dv_peer_partials_total{duty="randao",peer="2",reason="missing"}"#,
    ] {
        assert!(
            o.metrics.contains(series),
            "{series} not in:\n{}",
            o.metrics
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_cluster_runs_consensus_alone() {
    let o = run_cluster(1, &[0]).await;
    assert_every_duty_landed(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_validator_baseline_performs_every_duty_family() {
    // The same duty services over the plain store: a normal validator.
    let o = run_on_chain(
        1,
        &[0],
        Scenario::Plain,
        ForkName::Fulu,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    assert_every_duty_family_landed(&o);
    assert!(
        o.logs
            .contains("plain validator started (no consensus, no peers)"),
        "{}",
        tail(&o.logs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_and_restarted_mid_run_rejoins_without_anything_slashable() {
    // Node 1 dies (SIGKILL) in the middle of slot 5 and is back two slots
    // later, with the same data directory and slashing database.
    // At 3 s slots: the node also does every other duty, and a 4-node debug
    // cluster on 2 cores cannot do 32 contributions a slot at 1 s without
    // the proposals beside them suffering.
    let o = run_on_chain(
        4,
        &[1, 0, 2, 3],
        Scenario::Restart {
            at_slot: 5,
            down_slots: 2,
        },
        ForkName::Fulu,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    assert_every_duty_family_landed(&o);
    let restarted = o.logs.split("\n---\n").next().unwrap_or_default();
    let after_restart = restarted.rsplit("node started").next().unwrap_or_default();
    assert!(
        restarted.matches("node started").count() == 2
            && after_restart.contains("duty ok: attestations submitted"),
        "the restarted node did not resume its duties:\n{}",
        tail(restarted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_electra_every_duty_goes_out_in_the_deneb_shape() {
    let o = run_all_duties(&[0, 1, 2, 3], ForkName::Deneb).await;
    assert_every_duty_family_landed(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blinded_blocks_from_a_builder_are_agreed_signed_and_published() {
    // One node down as well, so some rounds have an absent leader.
    let o = run_on_chain(
        4,
        &[0, 1, 3],
        Scenario::Steady,
        ForkName::Electra,
        true,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    assert_every_duty_landed(&o);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_signed_by_a_threshold_of_operators_lands_and_one_signed_by_fewer_does_not() {
    let o = run_on_chain(
        4,
        &[0, 1, 2, 3],
        Scenario::Exits,
        ForkName::Fulu,
        false,
        SLOT_MS,
    )
    .await;
    assert_every_duty_landed(&o);
    // Validator 5's exit is in a block (exit epoch: inclusion epoch + 5);
    // validator 6's, signed by two of four operators, is not.
    assert_eq!(
        o.exits_included.keys().copied().collect::<Vec<_>>(),
        vec![EXIT_SIGNED_BY_THRESHOLD],
        "{}",
        tail(&o.logs)
    );
    assert!(
        o.logs.contains("duty ok: voluntary exit submitted"),
        "{}",
        tail(&o.logs)
    );
    assert!(
        o.logs
            .contains("fewer than the threshold of operators' partials this epoch"),
        "{}",
        tail(&o.logs)
    );
    // The three signers' files of validator 5 moved to submitted/; the two of
    // validator 6 wait for a third operator.
    let five = format!("exit-{EXIT_SIGNED_BY_THRESHOLD}-0.json");
    let six = format!("exit-{EXIT_SIGNED_BY_TOO_FEW}-0.json");
    assert_eq!(
        o.exit_files,
        (
            vec![format!("node0/{six}"), format!("node1/{six}")],
            vec![
                format!("node0/{five}"),
                format!("node1/{five}"),
                format!("node2/{five}")
            ]
        )
    );
}

/// The mainnet preset end to end, judged by inclusion: 32-slot epochs, the
/// spec's committees (8 validators: one single-member committee in a
/// quarter of the slots), 16 target aggregators, and a sync committee of
/// 512 that 8 validators fill 64 positions each. 2 s slots; judged over
/// slots 2 to 33, an epoch's worth across the first epoch boundary (the
/// next epoch's duties, selections and subscriptions made ahead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_mainnet_preset_every_duty_lands_on_time() {
    const MAINNET_SLOT_MS: u64 = 2000;
    let (first, last) = (2, 33);
    let tmp = tempfile::tempdir().unwrap();
    let cluster = common::create_cluster_on(tmp.path(), 4, "mainnet");
    let (state, url, genesis) =
        common::start_chain_on::<dv_types::Mainnet>(ForkName::Fulu, MAINNET_SLOT_MS, false).await;
    let nodes = Processes(
        (0..4)
            .map(|i| {
                common::start_dvnode(
                    &cluster.join(format!("node{i}")),
                    &url,
                    &[],
                    &tmp.path().join(format!("node{i}.log")),
                )
            })
            .collect(),
    );
    // Slot `last`'s attestations and sync messages land in the next block.
    let until = genesis * 1000 + (last + 2) * MAINNET_SLOT_MS + MAINNET_SLOT_MS / 2;
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()))).await;
    drop(nodes);
    let logs = node_logs(tmp.path(), &[0, 1, 2, 3]);

    let chain = state.chain();
    assert_eq!(chain.report.preset, "mainnet");
    assert_eq!(chain.spec.slots_per_epoch, 32);
    assert_eq!(
        (
            chain.report.invalid_signatures,
            chain.report.slashable.len()
        ),
        (0, 0),
        "{:?}\n{}",
        chain.report.slashable,
        tail(&logs)
    );
    let attesters: u64 = (first..=last)
        .map(|slot| {
            chain
                .committees_at(slot)
                .iter()
                .map(|c| c.len() as u64)
                .sum::<u64>()
        })
        .sum();
    assert_eq!(attesters, 8, "each validator attests once an epoch");
    assert_eq!(
        chain.duty_summary(first, last),
        DutySummary {
            attestations_ok: attesters,
            attestations_missed: 0,
            proposals_ok: last - first + 1,
            proposals_missed: 0,
        },
        "{:?}\n{}",
        chain.report.rejections,
        tail(&logs)
    );
    let t = chain.timeliness(first, last);
    assert_eq!(
        (t.source_timely, t.target_timely, t.head_timely),
        (t.duties, t.duties, t.duties),
        "timely source, target, head of {} duties",
        t.duties
    );
    let (aggregates_landed, aggregates_missed) = chain.aggregation_summary(first, last);
    assert_eq!(
        (aggregates_landed, aggregates_missed),
        (attesters, 0),
        "single-member committees: every attester aggregates"
    );
    let ((messages, messages_missed), (contributions, contributions_missed)) =
        chain.sync_summary(first, last);
    assert_eq!(
        (messages, messages_missed),
        (8 * (last - first + 1), 0),
        "every member's sync committee message in the next block's aggregate"
    );
    assert!(
        contributions > 0 && contributions_missed == 0,
        "contributions landed, missed: {contributions}, {contributions_missed}\n{}",
        tail(&logs)
    );
}

/// Prints one line of the fault suite (`scripts/fault-suite.sh` collects
/// them), and keeps the nodes' logs in `$DV_FAULT_LOGS/<scenario>.log` when
/// set. Missed counts every duty family of epoch 1.
fn fault_line(scenario: &str, o: &Outcome) {
    if let Some(dir) = std::env::var_os("DV_FAULT_LOGS") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join(format!("{scenario}.log")),
            &o.logs,
        );
    }
    let missed = o.summary.attestations_missed
        + o.summary.proposals_missed
        + o.aggregates.1
        + o.sync.0 .1
        + o.sync.1 .1;
    let max_rss_mb = o.rss_kb.iter().max().copied().unwrap_or(0) / 1024;
    println!(
        "FAULT scenario={scenario} slashable={} invalid={} panics={} missed_honest={missed} \
         sync_messages_missed={} max_rss_mb={max_rss_mb} log_kb={} attacks={:?} crashes={:?}",
        o.slashable.len(),
        o.invalid_signatures,
        o.logs.matches("panicked").count(),
        o.sync.0 .1,
        o.logs.len() / 1024,
        o.attacks,
        o.crashes
    );
}

/// What an honest node may log over a fault run: a flood of refused
/// messages must not become a flood of log lines.
const HONEST_LOG_BOUND_BYTES: usize = 256 << 10;

/// The checks every Byzantine scenario makes of the honest nodes.
fn assert_honest_nodes_bounded(o: &Outcome, running: usize) {
    let max_rss_mb = o.rss_kb.iter().max().copied().unwrap_or(0) / 1024;
    assert!(
        max_rss_mb > 0 && max_rss_mb < HONEST_RSS_BOUND_MB,
        "honest RSS {:?} kB",
        o.rss_kb
    );
    assert!(
        o.logs.len() < HONEST_LOG_BOUND_BYTES * running,
        "{} bytes of logs from {running} nodes",
        o.logs.len()
    );
    assert!(!o.logs.contains("panicked"), "{}", tail(&o.logs));
}

/// The misbehaviour counts `metrics` hold for `peer`, by reason.
fn misbehaviour_of(metrics: &str, peer: usize) -> std::collections::BTreeMap<String, u64> {
    let prefix = format!("dv_peer_misbehaviour_total{{peer=\"{peer}\",reason=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (reason, count) = rest.split_once("\"} ")?;
            Some((reason.to_string(), count.trim().parse().ok()?))
        })
        .collect()
}

/// One operator of four is Byzantine: every slot it equivocates, proposes
/// what no predicate takes, names rounds far ahead and duties that cannot
/// exist, sends bad partials over the roots the honest nodes sign and
/// replays its valid ones (over a root of its own) under other duties and
/// slots, sends truncated, malformed and (once) oversized messages, and
/// floods at about 18 times an honest peer's rate. The three honest nodes
/// perform every duty as with that node simply down, nothing invalid or
/// slashable reaches the chain, their memory stays bounded, and their
/// metrics name the bad peer for each kind of attack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_one_byzantine_operator_of_four() {
    let o = run_on_chain(
        4,
        &[0, 1, 2],
        Scenario::Byzantine,
        ForkName::Fulu,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    fault_line("byzantine_1_of_4", &o);
    // As with the node down (`one_node_down_changes_nothing`): when it leads
    // a block's consensus the block comes a round late, and at most two
    // slots' sync messages miss the next block.
    assert_duty_families_landed(&o, 16);
    assert_honest_nodes_bounded(&o, 3);
    let named = misbehaviour_of(&o.metrics, 3);
    for reason in [
        "equivocation",
        "round_out_of_range",
        "unknown_duty",
        "duty_out_of_window",
        "malformed",
        "invalid_partial",
        "wrong_share",
        "root_mismatch",
        "rate_limited",
    ] {
        assert!(
            named.get(reason).is_some_and(|n| *n > 0),
            "peer 3 not named for {reason}: {named:?}"
        );
    }
    for honest in 1..3 {
        assert!(
            misbehaviour_of(&o.metrics, honest).is_empty(),
            "honest peer {honest} named: {:?}",
            misbehaviour_of(&o.metrics, honest)
        );
    }
}

/// Each honest node's resident memory under attack, at most.
const HONEST_RSS_BOUND_MB: u64 = 200;

/// Two operators of seven are Byzantine (the most a 7-node cluster
/// tolerates), both attacking as in [`fault_one_byzantine_operator_of_four`].
///
/// The slots are 6 s here. Leaders rotate by slot, duty and round, so both
/// Byzantine operators lead two rounds in a row of some duties; the third
/// round then starts 1.5 s after the attestations are due (rounds grow by
/// 500 ms at least). With 3 s slots that is past the point where
/// aggregators gather the attestations (2/3 of the slot, retried to 5/6),
/// and an aggregation misses; with 6 s slots the round step is a twelfth of
/// the slot, as on mainnet (1 s of 12), and it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_two_byzantine_operators_of_seven() {
    let o = run_on_chain(
        7,
        &[0, 1, 2, 3, 4],
        Scenario::Byzantine,
        ForkName::Fulu,
        false,
        2 * ALL_DUTIES_SLOT_MS,
    )
    .await;
    fault_line("byzantine_2_of_7", &o);
    assert_duty_families_landed(&o, 16);
    assert_honest_nodes_bounded(&o, 5);
    for bad in [5, 6] {
        let named = misbehaviour_of(&o.metrics, bad);
        for reason in ["equivocation", "invalid_partial", "rate_limited"] {
            assert!(
                named.get(reason).is_some_and(|n| *n > 0),
                "peer {bad} not named for {reason}: {named:?}"
            );
        }
    }
}

/// One node of four crashes at every point of the pipeline in turn (after a
/// decision, inside a slashing-database transaction, after the commit and
/// before its partial leaves, after its partials went out, while combining,
/// while submitting), killed with SIGKILL by itself each time and started
/// again from its data directory at once. Nothing slashable or invalid
/// reaches the chain, every duty lands (the other three are a threshold),
/// and the node works again after its last restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_crash_at_every_pipeline_point() {
    let o = run_on_chain(
        4,
        &[0, 1, 2, 3],
        Scenario::Crashes,
        ForkName::Fulu,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    fault_line("crash_at_every_point", &o);
    assert_eq!(o.crashes.len(), dv_fault::POINTS.len());
    for (point, signal, slot) in &o.crashes {
        assert_eq!(
            *signal,
            Some(9),
            "no SIGKILL at {point} (slot {slot})\n{}",
            tail(&o.logs)
        );
    }
    assert_every_duty_landed(&o);
    assert_honest_nodes_bounded(&o, 4);
    // It resumed: duties done after its last start, with its database intact.
    let crashed_node = o.logs.split("\n---\n").next().unwrap_or_default();
    let last_start = crashed_node
        .rfind("crashing at ")
        .expect("crash lines in its log");
    assert!(
        crashed_node[last_start..].contains("duty ok: attestations"),
        "{}",
        tail(crashed_node)
    );
}

/// The partitions of [`fault_network_partitions_heal`]: 2|2 over slots
/// 3..=5, healed at 6; then node 0 alone over slots 10..=12, healed at 13.
const PARTITIONS: &[(u64, &[&[usize]])] = &[
    (3, &[&[0, 1], &[2, 3]]),
    (6, &[]),
    (10, &[&[0], &[1, 2, 3]]),
    (13, &[]),
];

/// Real partitions: each node in a network namespace of its own, joined to
/// the others and the chain by veth pairs and a bridge; a partition drops
/// the packets between groups (the chain stays reachable). While 2|2 no
/// side has a threshold: nothing is signed, so nothing double. Healed, the
/// duties resume; with one node cut off, the other three do every duty.
/// Skipped, with the reason printed, where namespaces cannot be made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_network_partitions_heal() {
    if let Err(why) = common::netns::Netns::create(1) {
        println!("SKIP fault_network_partitions_heal: network namespaces unavailable here: {why}");
        return;
    }
    let o = run_on_chain(
        4,
        &[0, 1, 2, 3],
        Scenario::Partition { phases: PARTITIONS },
        ForkName::Fulu,
        false,
        ALL_DUTIES_SLOT_MS,
    )
    .await;
    fault_line("partitions_2_2_then_1_3", &o);
    // The 2|2 partition was real: neither half had a threshold.
    assert_eq!(
        (o.slots_3_to_5.attestations_ok, o.slots_3_to_5.proposals_ok),
        (0, 0),
        "signed while split 2|2: {:?}",
        o.slots_3_to_5
    );
    // Epoch 1 (slots 8..15) runs healed, then with node 0 cut off over 10..=12.
    assert_duty_families_landed(&o, 16);
    assert_honest_nodes_bounded(&o, 4);
}
