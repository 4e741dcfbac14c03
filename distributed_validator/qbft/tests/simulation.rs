//! The fault simulator as a test: 10,000 seeded runs over n in {1, 4, 7, 10}
//! with crashed, silent and Byzantine nodes, loss, duplication, delay,
//! reordering and partitions; every run must keep agreement, validity and
//! termination.

use qbft::simulator::*;

#[test]
fn ten_thousand_faulty_runs_keep_agreement_validity_and_termination() {
    let seed = std::env::var("DV_QBFT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let runs = std::env::var("DV_QBFT_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let reports = run_many(runs, seed, None);
    let bad: Vec<String> = reports
        .iter()
        .filter(|r| !r.violations.is_empty())
        .map(|r| {
            format!(
                "seed {} (n={}, roles {:?}, gst {} ms): {:?}",
                r.seed, r.nodes, r.roles, r.gst_ms, r.violations
            )
        })
        .collect();
    let faulty_runs = reports
        .iter()
        .filter(|r| r.roles.iter().any(|role| *role != Role::Correct))
        .count();
    let byzantine_runs = reports
        .iter()
        .filter(|r| {
            r.roles
                .iter()
                .any(|role| matches!(role, Role::Byzantine(_)))
        })
        .count();
    let max_round = reports.iter().map(|r| r.highest_round).max().unwrap_or(0);
    println!(
        "runs={} with faults={faulty_runs} with byzantine={byzantine_runs} partitioned={} highest round={max_round}",
        reports.len(),
        reports.iter().filter(|r| r.partitioned).count()
    );
    assert_eq!(reports.len() as u64, runs);
    assert!(
        bad.is_empty(),
        "{} violating runs (rerun one with `simulate --runs 1 --seed S --nodes n`):\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(reports.iter().all(|r| r.all_correct_decided));
}

#[test]
fn a_seed_replays_exactly() {
    for n in NODE_COUNTS {
        let a = run(42, n);
        let b = run(42, n);
        assert_eq!(a.messages_delivered, b.messages_delivered);
        assert_eq!(a.roles, b.roles);
        assert_eq!(a.highest_round, b.highest_round);
    }
}

/// Beyond the fault model (2 of 4 crashed) no quorum exists: the termination
/// check must report it. Guards against a checker that always passes.
#[test]
fn the_checks_notice_when_the_model_is_broken() {
    let roles = vec![
        Role::Correct,
        Role::CrashedFromStart,
        Role::Correct,
        Role::CrashedFromStart,
    ];
    let report = run_with_roles(7, roles);
    assert!(!report.all_correct_decided);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("termination")),
        "{:?}",
        report.violations
    );
}

/// Arbitrary messages (any kind, round, sender, value, signature, nested
/// justification) never panic the engine; most are refused with a reason.
#[test]
fn arbitrary_input_never_panics() {
    use qbft::*;
    use std::sync::Arc;

    struct AcceptAll;
    impl Authenticator for AcceptAll {
        fn sign(&self, _: &Message) -> Vec<u8> {
            vec![]
        }
        fn verify(&self, _: &Message, sig: &[u8]) -> bool {
            sig.is_empty()
        }
    }
    let mut rng = Rng::new(2024);
    let kinds = [
        MsgKind::PrePrepare,
        MsgKind::Prepare,
        MsgKind::Commit,
        MsgKind::RoundChange,
    ];
    let instance = InstanceId { slot: 3, duty: 1 };
    let cfg = Config {
        instance,
        members: 4,
        me: 0,
        leader: Arc::new(default_leader),
        is_valid: Box::new(|v| v.len() % 2 == 0),
        timing: RoundTiming::default(),
        max_round: DEFAULT_MAX_ROUND,
    };
    let (mut engine, _) = Instance::new(cfg, AcceptAll, None);
    let mut history: Vec<SignedMessage> = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..50_000u64 {
        let value: Value = Arc::from(vec![rng.below(4) as u8; rng.below(3) as usize]);
        let hash = if rng.chance(70) {
            value_hash(&value)
        } else {
            [rng.below(3) as u8; 32]
        };
        let round = match rng.below(10) {
            0 => 0,
            1 => u64::MAX - rng.below(2),
            _ => 1 + rng.below(6),
        };
        let justification = (0..rng.below(8))
            .filter_map(|_| {
                history
                    .get(rng.below(history.len() as u64 + 1) as usize)
                    .cloned()
            })
            .collect();
        let msg = SignedMessage {
            message: Message {
                kind: kinds[rng.below(4) as usize],
                instance: if rng.chance(95) {
                    instance
                } else {
                    InstanceId { slot: 4, duty: 1 }
                },
                round,
                sender: rng.below(6) as usize,
                value: hash,
                prepared_round: if rng.chance(50) { 0 } else { rng.below(8) },
            },
            signature: if rng.chance(97) { vec![] } else { vec![1] },
            value: rng.chance(50).then_some(value),
            justification,
        };
        if history.len() < 512 {
            history.push(msg.stripped());
        }
        match engine.handle_message(msg) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        if i % 1000 == 0 {
            let _ = engine.handle_timeout(engine.round());
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
}
