//! A deterministic, seeded simulation of `n` QBFT instances on a faulty network.
//!
//! Each run draws from its seed: which nodes fail and how (crashed from the
//! start or mid-run, silent, or Byzantine with one of several strategies), the
//! network before global stabilisation time (loss, duplication, delay and so
//! reordering, a partition), GST itself, clock skew and when each node gets
//! its own value. After GST links deliver within `POST_GST_MAX_DELAY_MS`.
//!
//! Checked in every run: **agreement** (no two honest nodes decide different
//! values), **validity** (a decided value passes the predicate and was
//! proposed by someone) and **termination** (every correct node decides within
//! `f + 3` rounds after GST and after the last honest value arrives).
//! The same seed always replays the same run.

use crate::engine::*;
use crate::message::*;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

pub const ROUND_MS: u64 = 1000;
pub const POST_GST_MAX_DELAY_MS: u64 = 150;
const MAX_SKEW_MS: u64 = 40;
const INVALID_PREFIX: u8 = 0xBA;

/// SplitMix64: small, fast, and fully determined by the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Simulated signatures: a keyed hash with the sender's secret. Only the
/// verifier sees every secret; a node signs with its own alone.
#[derive(Clone)]
struct SimAuth {
    me: usize,
    secrets: Arc<Vec<u64>>,
}

fn keyed_hash(secret: u64, message: &Message) -> Vec<u8> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    secret.hash(&mut hasher);
    message.signing_bytes().hash(&mut hasher);
    hasher.finish().to_le_bytes().to_vec()
}

impl Authenticator for SimAuth {
    fn sign(&self, message: &Message) -> Vec<u8> {
        keyed_hash(self.secrets[self.me], message)
    }

    fn verify(&self, message: &Message, signature: &[u8]) -> bool {
        self.secrets
            .get(message.sender)
            .is_some_and(|secret| keyed_hash(*secret, message) == signature)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// As leader, sends a different (valid) value to each peer.
    Equivocate,
    /// As leader, proposes values the predicate refuses, and votes for them.
    InvalidProposals,
    /// Votes PREPARE/COMMIT for values nobody proposed.
    PhantomVotes,
    /// Re-sends old messages it received, and its own for another instance.
    Replay,
    /// Sends PRE-PREPAREs and ROUND-CHANGEs with forged justifications and signatures.
    ForgedJustification,
}

const STRATEGIES: [Strategy; 5] = [
    Strategy::Equivocate,
    Strategy::InvalidProposals,
    Strategy::PhantomVotes,
    Strategy::Replay,
    Strategy::ForgedJustification,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Correct,
    CrashedFromStart,
    CrashesAt(u64),
    Silent,
    Byzantine(Strategy),
}

impl Role {
    fn is_honest(self) -> bool {
        !matches!(self, Role::Byzantine(_))
    }
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub nodes: usize,
    pub roles: Vec<Role>,
    pub gst_ms: u64,
    pub partitioned: bool,
    pub all_correct_decided: bool,
    pub violations: Vec<String>,
    pub messages_delivered: u64,
    pub highest_round: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Input {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Timer {
        node: usize,
        round: u64,
    },
    Deliver {
        to: usize,
        msg: Box<SignedMessageOrd>,
    },
    Misbehave {
        node: usize,
    },
}

/// Wrapper giving messages an arbitrary but fixed order inside the event heap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignedMessageOrd(SignedMessage);

impl PartialOrd for SignedMessageOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SignedMessageOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |m: &SignedMessage| {
            (
                m.message.round,
                m.message.sender,
                m.message.value,
                m.signature.clone(),
            )
        };
        key(&self.0).cmp(&key(&other.0))
    }
}

struct Node {
    role: Role,
    engine: Instance<SimAuth>,
    auth: SimAuth,
    input: Value,
    skew_ms: u64,
    alive: bool,
    decided: Option<(Value, u64)>,
    seen: Vec<SignedMessage>,
}

struct Sim {
    rng: Rng,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    now: u64,
    gst: u64,
    loss_percent: u64,
    dup_percent: u64,
    pre_gst_max_delay: u64,
    partition: Option<Vec<bool>>,
    delivered: u64,
    proposed: HashSet<ValueHash>,
    instance: InstanceId,
    /// `DV_QBFT_TRACE=1` prints every event, to study one seed.
    trace: bool,
}

fn is_valid_value(value: &[u8]) -> bool {
    value.first() != Some(&INVALID_PREFIX)
}

impl Sim {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn send(&mut self, from: usize, to: usize, msg: SignedMessage) {
        if from == to {
            return;
        }
        let copies = if self.rng.chance(self.dup_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let before_gst = self.now < self.gst;
            if before_gst {
                if self.rng.chance(self.loss_percent) {
                    continue;
                }
                if let Some(side) = &self.partition {
                    if side[from] != side[to] {
                        continue;
                    }
                }
            }
            let delay = if before_gst {
                1 + self.rng.below(self.pre_gst_max_delay)
            } else {
                1 + self.rng.below(POST_GST_MAX_DELAY_MS)
            };
            let at = self.now + delay;
            self.schedule(
                at,
                Event::Deliver {
                    to,
                    msg: Box::new(SignedMessageOrd(msg.clone())),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: SignedMessage) {
        for to in 0..self.nodes.len() {
            self.send(from, to, msg.clone());
        }
    }

    fn apply(&mut self, node: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Broadcast(msg) => {
                    if self.nodes[node].role == Role::Silent {
                        continue;
                    }
                    match self.nodes[node].role {
                        Role::Byzantine(Strategy::Equivocate)
                            if msg.message.kind == MsgKind::PrePrepare =>
                        {
                            self.equivocate(node, msg)
                        }
                        _ => self.broadcast(node, msg),
                    }
                }
                Action::SendTo(to, msg) => {
                    if self.nodes[node].role != Role::Silent {
                        self.send(node, to, msg);
                    }
                }
                Action::ArmTimer { round, deadline } => {
                    let at = deadline.as_millis() as u64 + self.nodes[node].skew_ms;
                    self.schedule(at.max(self.now), Event::Timer { node, round });
                }
                Action::Decide { value, .. } => {
                    if self.nodes[node].decided.is_none() {
                        self.nodes[node].decided = Some((value, self.now));
                    }
                }
            }
        }
    }

    fn sign_as(
        &self,
        node: usize,
        message: Message,
        value: Option<Value>,
        justification: Vec<SignedMessage>,
    ) -> SignedMessage {
        SignedMessage {
            signature: self.nodes[node].auth.sign(&message),
            message,
            value,
            justification,
        }
    }

    /// A different valid value to each peer, each properly signed by the equivocator.
    fn equivocate(&mut self, node: usize, msg: SignedMessage) {
        for to in 0..self.nodes.len() {
            let value: Value = Arc::from(
                format!("equivocation {node} r{} to {to}", msg.message.round).into_bytes(),
            );
            self.proposed.insert(value_hash(&value));
            let mut message = msg.message;
            message.value = value_hash(&value);
            let forked = self.sign_as(node, message, Some(value), msg.justification.clone());
            self.send(node, to, forked);
        }
    }

    fn message(
        &self,
        kind: MsgKind,
        round: u64,
        sender: usize,
        value: ValueHash,
        prepared_round: u64,
    ) -> Message {
        Message {
            kind,
            instance: self.instance,
            round,
            sender,
            value,
            prepared_round,
        }
    }

    /// Extra traffic a Byzantine node injects every few hundred milliseconds.
    fn misbehave(&mut self, node: usize, strategy: Strategy) {
        let round = self.nodes[node].engine.round();
        let n = self.nodes.len();
        match strategy {
            Strategy::Equivocate => {}
            Strategy::InvalidProposals => {
                let bad: Value = Arc::from(vec![INVALID_PREFIX, node as u8, round as u8]);
                let hash = value_hash(&bad);
                let pre = self.sign_as(
                    node,
                    self.message(MsgKind::PrePrepare, round, node, hash, 0),
                    Some(bad),
                    vec![],
                );
                self.broadcast(node, pre);
                for kind in [MsgKind::Prepare, MsgKind::Commit] {
                    let vote =
                        self.sign_as(node, self.message(kind, round, node, hash, 0), None, vec![]);
                    self.broadcast(node, vote);
                }
            }
            Strategy::PhantomVotes => {
                let mut phantom = [0u8; 32];
                phantom[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
                for kind in [MsgKind::Prepare, MsgKind::Commit] {
                    let r = round + self.rng.below(2);
                    let vote =
                        self.sign_as(node, self.message(kind, r, node, phantom, 0), None, vec![]);
                    self.broadcast(node, vote);
                }
            }
            Strategy::Replay => {
                let seen = &self.nodes[node].seen;
                if !seen.is_empty() {
                    let old = seen[self.rng.below(seen.len() as u64) as usize].clone();
                    let to = self.rng.below(n as u64) as usize;
                    self.send(node, to, old);
                }
                let mut other = self.message(MsgKind::Commit, round, node, [9; 32], 0);
                other.instance.slot = self.instance.slot.wrapping_sub(1);
                let replayed = self.sign_as(node, other, None, vec![]);
                self.broadcast(node, replayed);
            }
            Strategy::ForgedJustification => {
                let target = round + 1;
                let value: Value = Arc::from(format!("forged by {node}").into_bytes());
                let hash = value_hash(&value);
                // Round changes "from" everyone, with made-up signatures, claiming a prepared value.
                let fake_rcs: Vec<SignedMessage> = (0..n)
                    .map(|sender| SignedMessage {
                        message: self.message(MsgKind::RoundChange, target, sender, hash, round),
                        signature: self.rng.next_u64().to_le_bytes().to_vec(),
                        value: None,
                        justification: vec![],
                    })
                    .collect();
                let fake_prepares: Vec<SignedMessage> = (0..n)
                    .map(|sender| SignedMessage {
                        message: self.message(MsgKind::Prepare, round, sender, hash, 0),
                        signature: self.rng.next_u64().to_le_bytes().to_vec(),
                        value: None,
                        justification: vec![],
                    })
                    .collect();
                let mut justification = fake_rcs;
                justification.extend(fake_prepares.clone());
                let pre = self.sign_as(
                    node,
                    self.message(MsgKind::PrePrepare, target, node, hash, 0),
                    Some(value.clone()),
                    justification,
                );
                self.broadcast(node, pre);
                let rc = self.sign_as(
                    node,
                    self.message(MsgKind::RoundChange, target, node, hash, round),
                    Some(value),
                    fake_prepares,
                );
                self.broadcast(node, rc);
            }
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Input { node } => {
                if self.nodes[node].alive {
                    let value = self.nodes[node].input.clone();
                    let actions = self.nodes[node].engine.propose(value);
                    self.apply(node, actions);
                }
            }
            Event::Crash { node } => self.nodes[node].alive = false,
            Event::Timer { node, round } => {
                if self.trace {
                    eprintln!("{:>6} ms  node {node} timer round {round}", self.now);
                }
                if self.nodes[node].alive {
                    let actions = self.nodes[node].engine.handle_timeout(round);
                    self.apply(node, actions);
                }
            }
            Event::Deliver { to, msg } => {
                if !self.nodes[to].alive {
                    return;
                }
                self.delivered += 1;
                let msg = msg.0;
                if matches!(self.nodes[to].role, Role::Byzantine(Strategy::Replay))
                    && self.nodes[to].seen.len() < 256
                {
                    self.nodes[to].seen.push(msg.clone());
                }
                let m = msg.message;
                // Refusals are expected under attack; the engine state is unchanged by them.
                let result = self.nodes[to].engine.handle_message(msg);
                if self.trace {
                    let outcome = result.as_ref().map(|a| a.len()).map_err(|e| e.to_string());
                    eprintln!(
                        "{:>6} ms  node {to} (round {}) <- {:?} r{} pr{} from {}: {outcome:?}",
                        self.now,
                        self.nodes[to].engine.round(),
                        m.kind,
                        m.round,
                        m.prepared_round,
                        m.sender
                    );
                }
                if let Ok(actions) = result {
                    self.apply(to, actions);
                }
            }
            Event::Misbehave { node } => {
                if let Role::Byzantine(strategy) = self.nodes[node].role {
                    self.misbehave(node, strategy);
                    let next = self.now + 100 + self.rng.below(400);
                    self.schedule(next, Event::Misbehave { node });
                }
            }
        }
    }
}

fn pick_roles(rng: &mut Rng, n: usize) -> Vec<Role> {
    let f = (n - 1) / 3;
    let mut roles = vec![Role::Correct; n];
    let faulty = rng.below(f as u64 + 1) as usize;
    let mut chosen = HashSet::new();
    while chosen.len() < faulty {
        chosen.insert(rng.below(n as u64) as usize);
    }
    let mut chosen: Vec<usize> = chosen.into_iter().collect();
    chosen.sort_unstable();
    for i in chosen {
        roles[i] = match rng.below(4) {
            0 => Role::CrashedFromStart,
            1 => Role::CrashesAt(rng.below(6 * ROUND_MS)),
            2 => Role::Silent,
            _ => Role::Byzantine(STRATEGIES[rng.below(STRATEGIES.len() as u64) as usize]),
        };
    }
    roles
}

/// Runs one seeded simulation with `n` nodes, at most `f` of them faulty.
pub fn run(seed: u64, n: usize) -> RunReport {
    assert!(n >= 1, "a cluster has at least one node");
    let mut rng = Rng::new(seed);
    let roles = pick_roles(&mut rng, n);
    run_with_roles(seed, roles)
}

/// Runs one seeded simulation with the given roles (which may exceed the
/// fault model, to check that the checks notice).
pub fn run_with_roles(seed: u64, roles: Vec<Role>) -> RunReport {
    let n = roles.len();
    let mut rng = Rng::new(seed ^ 0x5eed);
    let f = (n - 1) / 3;
    let gst = if rng.chance(25) {
        0
    } else {
        rng.below(8 * ROUND_MS)
    };
    let partitioned = n > 1 && gst > 0 && rng.chance(30);
    let partition = partitioned.then(|| (0..n).map(|_| rng.chance(50)).collect::<Vec<bool>>());
    let secrets: Arc<Vec<u64>> = Arc::new((0..n).map(|_| rng.next_u64()).collect());
    let instance = InstanceId {
        slot: rng.below(1 << 20),
        duty: rng.below(3) as u32,
    };
    // Constant rounds, or rounds that grow (as the node's attestation timing does).
    let timing = RoundTiming {
        first_round: Duration::from_millis(ROUND_MS),
        round: Duration::from_millis(ROUND_MS),
        growth: Duration::from_millis(if rng.chance(50) { ROUND_MS } else { 0 }),
    };

    let mut nodes = Vec::with_capacity(n);
    let mut proposed = HashSet::new();
    for (me, role) in roles.iter().enumerate() {
        let auth = SimAuth {
            me,
            secrets: secrets.clone(),
        };
        let cfg = Config {
            instance,
            members: n,
            me,
            leader: Arc::new(default_leader),
            is_valid: Box::new(is_valid_value),
            timing,
            max_round: crate::engine::DEFAULT_MAX_ROUND,
        };
        let (engine, actions) = Instance::new(cfg, auth.clone(), None);
        let input: Value = Arc::from(format!("value of node {me}, seed {seed}").into_bytes());
        proposed.insert(value_hash(&input));
        nodes.push((
            Node {
                role: *role,
                engine,
                auth,
                input,
                skew_ms: rng.below(MAX_SKEW_MS),
                alive: *role != Role::CrashedFromStart,
                decided: None,
                seen: Vec::new(),
            },
            actions,
        ));
    }
    let (nodes, initial): (Vec<Node>, Vec<Vec<Action>>) = nodes.into_iter().unzip();
    let mut sim = Sim {
        loss_percent: rng.below(30),
        dup_percent: rng.below(15),
        pre_gst_max_delay: 50 + rng.below(3 * ROUND_MS),
        rng,
        nodes,
        queue: BinaryHeap::new(),
        seq: 0,
        now: 0,
        gst,
        partition,
        delivered: 0,
        proposed,
        instance,
        trace: std::env::var_os("DV_QBFT_TRACE").is_some(),
    };
    for (node, actions) in initial.into_iter().enumerate() {
        sim.apply(node, actions);
    }
    let mut last_input = 0;
    for (node, role) in roles.iter().enumerate() {
        let at = if sim.rng.chance(60) {
            0
        } else {
            sim.rng.below(2 * ROUND_MS)
        };
        last_input = last_input.max(at);
        sim.schedule(at, Event::Input { node });
        match *role {
            Role::CrashesAt(t) => sim.schedule(t, Event::Crash { node }),
            Role::Byzantine(_) => {
                let first = sim.rng.below(ROUND_MS);
                sim.schedule(first, Event::Misbehave { node });
            }
            _ => {}
        }
    }

    // Termination bound: f + 3 rounds after the one running at GST and the
    // last honest value (rounds that grow are longer), plus clock skew and
    // one constant round of slack.
    let settled = gst.max(last_input);
    let mut running_round = 1;
    while (timing.deadline(running_round).as_millis() as u64) <= settled {
        running_round += 1;
    }
    let deadline =
        timing.deadline(running_round + f as u64 + 3).as_millis() as u64 + MAX_SKEW_MS + ROUND_MS;
    let end = deadline + 2 * ROUND_MS;
    while let Some(Reverse((at, _, event))) = sim.queue.pop() {
        if at > end {
            break;
        }
        sim.now = at;
        sim.step(event);
    }

    let mut violations = Vec::new();
    let mut agreed: Option<Value> = None;
    for (i, node) in sim.nodes.iter().enumerate() {
        let Some((value, at)) = &node.decided else {
            if node.role == Role::Correct {
                violations.push(format!(
                    "termination: correct node {i} did not decide by {deadline} ms"
                ));
            }
            continue;
        };
        if !node.role.is_honest() {
            continue;
        }
        if node.role == Role::Correct && *at > deadline {
            violations.push(format!(
                "termination: node {i} decided at {at} ms, after the bound {deadline} ms"
            ));
        }
        if !is_valid_value(value) {
            violations.push(format!(
                "validity: node {i} decided a value the predicate refuses"
            ));
        }
        if !sim.proposed.contains(&value_hash(value)) {
            violations.push(format!(
                "validity: node {i} decided a value nobody proposed"
            ));
        }
        match &agreed {
            None => agreed = Some(value.clone()),
            Some(v) if v != value => {
                violations.push(format!("agreement: node {i} decided differently"))
            }
            Some(_) => {}
        }
    }
    let all_correct_decided = sim
        .nodes
        .iter()
        .all(|node| node.role != Role::Correct || node.decided.is_some());
    RunReport {
        seed,
        nodes: n,
        roles,
        gst_ms: gst,
        partitioned,
        all_correct_decided,
        violations,
        messages_delivered: sim.delivered,
        highest_round: sim
            .nodes
            .iter()
            .map(|node| node.engine.round())
            .max()
            .unwrap_or(1),
    }
}

/// Node counts the simulator cycles through when none is fixed.
pub const NODE_COUNTS: [usize; 4] = [1, 4, 7, 10];

/// Runs `runs` simulations from `seed` (run `i` uses seed `seed + i`), with
/// `nodes` fixed or cycling through [`NODE_COUNTS`]. Returns every report.
pub fn run_many(runs: u64, seed: u64, nodes: Option<usize>) -> Vec<RunReport> {
    (0..runs)
        .map(|i| {
            let n = nodes.unwrap_or(NODE_COUNTS[(i % NODE_COUNTS.len() as u64) as usize]);
            run(seed.wrapping_add(i), n)
        })
        .collect()
}
