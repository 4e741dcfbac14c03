//! One happy-path decision (every node correct, instant in-order delivery)
//! for n = 4, 7, 10: engine CPU time per decision (criterion), and the
//! number of point-to-point messages exchanged (printed once per n).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use qbft::*;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Keyed-hash signatures: cheap, so the figure is the engine's own cost.
struct HashAuth {
    me: usize,
}

fn tag(sender: usize, m: &Message) -> Vec<u8> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (sender as u64 ^ 0xA5A5).hash(&mut h);
    m.signing_bytes().hash(&mut h);
    h.finish().to_le_bytes().to_vec()
}

impl Authenticator for HashAuth {
    fn sign(&self, m: &Message) -> Vec<u8> {
        tag(self.me, m)
    }
    fn verify(&self, m: &Message, sig: &[u8]) -> bool {
        tag(m.sender, m) == sig
    }
}

/// Runs one decision; returns the number of messages delivered.
fn decide(n: usize) -> usize {
    let value: Value = Arc::from(vec![7u8; 128]);
    let mut queue: VecDeque<(usize, SignedMessage)> = VecDeque::new();
    let mut decided = 0;
    let mut nodes = Vec::with_capacity(n);
    let mut pending: Vec<(usize, Vec<Action>)> = Vec::new();
    for me in 0..n {
        let cfg = Config {
            instance: InstanceId { slot: 100, duty: 0 },
            members: n,
            me,
            leader: Arc::new(default_leader),
            is_valid: Box::new(|_| true),
            timing: RoundTiming::default(),
            max_round: DEFAULT_MAX_ROUND,
        };
        let (node, actions) = Instance::new(cfg, HashAuth { me }, Some(value.clone()));
        nodes.push(node);
        pending.push((me, actions));
    }
    let mut delivered = 0;
    loop {
        for (from, actions) in pending.drain(..) {
            for action in actions {
                match action {
                    Action::Broadcast(m) => (0..n)
                        .filter(|&to| to != from)
                        .for_each(|to| queue.push_back((to, m.clone()))),
                    Action::SendTo(to, m) => queue.push_back((to, m)),
                    Action::Decide { .. } => decided += 1,
                    Action::ArmTimer { .. } => {}
                }
            }
        }
        if decided == n {
            return delivered;
        }
        let Some((to, msg)) = queue.pop_front() else {
            panic!("no decision: {decided} of {n} decided");
        };
        delivered += 1;
        if let Ok(actions) = nodes[to].handle_message(msg) {
            pending.push((to, actions));
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("happy_path_decision");
    for n in [4usize, 7, 10] {
        println!(
            "n={n}: {} messages delivered until all {n} nodes decided",
            decide(n)
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| decide(n))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
