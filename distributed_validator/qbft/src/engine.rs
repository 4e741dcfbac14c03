//! One QBFT instance as a pure state machine (Moniz 2020, "The Istanbul BFT
//! Consensus Algorithm"): inputs are messages, timer expiries and the local
//! proposal; outputs are [`Action`]s. No I/O, no clock.
//!
//! Quorum is `ceil((n + f + 1) / 2)` with `f = floor((n - 1) / 3)`. A value is
//! prepared on a quorum of PREPAREs in the current round and decided on a
//! quorum of COMMITs in any round. Round changes carry the highest prepared
//! round and value with its prepare certificate; a leader of round `r > 1`
//! proposes the highest prepared value among a quorum of ROUND-CHANGEs (or its
//! own value when none was prepared) and justifies it with those messages.

use crate::message::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Round timing, anchored to the duty's start so honest nodes' rounds align
/// (each node computes the same absolute end of every round): round 1 lasts
/// `first_round`, round `r >= 2` lasts `round + (r - 1) * growth`. Short first
/// rounds make a dead leader cheap; growing ones let a slow network still
/// decide eventually.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundTiming {
    pub first_round: Duration,
    pub round: Duration,
    pub growth: Duration,
}

impl Default for RoundTiming {
    fn default() -> Self {
        Self {
            first_round: Duration::from_secs(1),
            round: Duration::from_secs(1),
            growth: Duration::ZERO,
        }
    }
}

impl RoundTiming {
    /// Offset from the duty's start at which round `round` (1-based) ends:
    /// `first_round + (r - 1) * round + growth * r * (r - 1) / 2`.
    pub fn deadline(&self, round: u64) -> Duration {
        let later = round.saturating_sub(1);
        let grown = later.saturating_mul(later.saturating_add(1)) / 2;
        let times = |d: Duration, n: u64| match u32::try_from(n) {
            _ if d.is_zero() => Duration::ZERO,
            Ok(n) => d.saturating_mul(n),
            Err(_) => Duration::MAX,
        };
        self.first_round
            .saturating_add(times(self.round, later))
            .saturating_add(times(self.growth, grown))
    }
}

impl RoundTiming {
    /// The last round that starts within `span` of the duty's start (at
    /// least 1, at most [`DEFAULT_MAX_ROUND`]): the cap for an instance
    /// that gives up at `span`.
    pub fn last_round_within(&self, span: Duration) -> u64 {
        let mut round = 1;
        while round < DEFAULT_MAX_ROUND && self.deadline(round) < span {
            round += 1;
        }
        round
    }
}

pub type LeaderFn = Arc<dyn Fn(&InstanceId, u64, usize) -> usize + Send + Sync>;
pub type ValidityFn = Box<dyn FnMut(&[u8]) -> bool + Send>;

/// Charon's rotation: `(slot + duty + round) mod n`.
pub fn default_leader(instance: &InstanceId, round: u64, members: usize) -> usize {
    let sum = instance
        .slot
        .wrapping_add(instance.duty as u64)
        .wrapping_add(round);
    (sum % members.max(1) as u64) as usize
}

pub struct Config {
    pub instance: InstanceId,
    /// Members are indices `0..members`; the node maps them to peers.
    pub members: usize,
    pub me: usize,
    pub leader: LeaderFn,
    /// The validity predicate; a value it refuses is never prepared.
    pub is_valid: ValidityFn,
    pub timing: RoundTiming,
    /// The highest round a message may name. Rounds past the duty's deadline
    /// can never run; a cap keeps a peer from making this node keep votes
    /// for endless future rounds.
    pub max_round: u64,
}

/// A cap for instances without a deadline of their own (tests, simulations).
pub const DEFAULT_MAX_ROUND: u64 = 1024;

/// What the node must do after feeding an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send to every other member.
    Broadcast(SignedMessage),
    /// Send to one member (the commit certificate for a late peer).
    SendTo(usize, SignedMessage),
    /// Call [`Instance::handle_timeout`] with `round` at `deadline` after the duty's start.
    ArmTimer { round: u64, deadline: Duration },
    /// The decision, with the quorum of COMMITs that proves it. Emitted once.
    Decide {
        value: Value,
        certificate: Vec<SignedMessage>,
    },
}

/// Why an incoming message was refused. The engine's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("sender {0} is not a member")]
    NotMember(usize),
    #[error("message for another instance ({0:?})")]
    WrongInstance(InstanceId),
    #[error("bad signature from {0}")]
    BadSignature(usize),
    #[error("round 0 does not exist")]
    RoundZero,
    #[error("round {round} is beyond the last round this instance can run, {max}")]
    RoundTooHigh { round: u64, max: u64 },
    #[error("attached value does not match the hash {sender} signed")]
    ValueMismatch { sender: usize },
    #[error("{sender} sent two different {kind:?} messages in round {round}")]
    Equivocation {
        sender: usize,
        kind: MsgKind,
        round: u64,
    },
    #[error("duplicate message")]
    Duplicate,
    #[error("{sender} is not the leader of round {round}")]
    NotLeader { sender: usize, round: u64 },
    #[error("PRE-PREPARE without its value")]
    MissingValue,
    #[error("proposed value fails the validity predicate (round {round}, leader {sender})")]
    InvalidValue { sender: usize, round: u64 },
    #[error("invalid justification of {kind:?} from {sender} in round {round}: {reason}")]
    InvalidJustification {
        sender: usize,
        kind: MsgKind,
        round: u64,
        reason: &'static str,
    },
}

impl Reject {
    /// A short name for metrics and logs (`None` for a harmless duplicate).
    pub fn label(&self) -> Option<&'static str> {
        Some(match self {
            Reject::Duplicate => return None,
            Reject::NotMember(_) => "not_member",
            Reject::WrongInstance(_) => "wrong_instance",
            Reject::BadSignature(_) => "bad_signature",
            Reject::RoundZero | Reject::RoundTooHigh { .. } => "round_out_of_range",
            Reject::ValueMismatch { .. } => "value_mismatch",
            Reject::Equivocation { .. } => "equivocation",
            Reject::NotLeader { .. } => "not_leader",
            Reject::MissingValue => "missing_value",
            Reject::InvalidValue { .. } => "invalid_value",
            Reject::InvalidJustification { .. } => "invalid_justification",
        })
    }
}

/// Messages of one kind, by round and sender.
type Votes = BTreeMap<u64, HashMap<usize, SignedMessage>>;

pub struct Instance<A: Authenticator> {
    cfg: Config,
    auth: A,
    quorum: usize,
    faulty: usize,
    round: u64,
    prepared: Option<(u64, ValueHash)>,
    input: Option<Value>,
    values: HashMap<ValueHash, Value>,
    validity: HashMap<ValueHash, bool>,
    pre_prepares: BTreeMap<u64, SignedMessage>,
    prepares: Votes,
    commits: Votes,
    round_changes: Votes,
    /// Our own justified ROUND-CHANGE certificate for the prepared value (prepares).
    prepare_certificate: Vec<SignedMessage>,
    proposed: HashSet<u64>,
    commit_sent: HashSet<u64>,
    decided: Option<(Value, Vec<SignedMessage>)>,
    /// The highest round each late peer was sent the decision for. A peer is
    /// answered again only from a higher round (its earlier answer may have
    /// been lost), so with rounds capped it gets at most `max_round` answers.
    answered: HashMap<usize, u64>,
}

impl<A: Authenticator> Instance<A> {
    /// Starts the instance in round 1; `input` may come later via [`Instance::propose`].
    pub fn new(cfg: Config, auth: A, input: Option<Value>) -> (Self, Vec<Action>) {
        let n = cfg.members.max(1);
        let faulty = (n - 1) / 3;
        let quorum = (n + faulty + 1).div_ceil(2);
        let mut instance = Self {
            cfg,
            auth,
            quorum,
            faulty,
            round: 1,
            prepared: None,
            input: None,
            values: HashMap::new(),
            validity: HashMap::new(),
            pre_prepares: BTreeMap::new(),
            prepares: Votes::new(),
            commits: Votes::new(),
            round_changes: Votes::new(),
            prepare_certificate: Vec::new(),
            proposed: HashSet::new(),
            commit_sent: HashSet::new(),
            decided: None,
            answered: HashMap::new(),
        };
        let mut out = vec![instance.timer(1)];
        if let Some(value) = input {
            out.extend(instance.propose(value));
        }
        (instance, out)
    }

    pub fn quorum(&self) -> usize {
        self.quorum
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn decided(&self) -> Option<&Value> {
        self.decided.as_ref().map(|(v, _)| v)
    }

    fn leader(&self, round: u64) -> usize {
        (self.cfg.leader)(&self.cfg.instance, round, self.cfg.members)
    }

    fn timer(&self, round: u64) -> Action {
        Action::ArmTimer {
            round,
            deadline: self.cfg.timing.deadline(round),
        }
    }

    /// Supplies this node's own value (it may already be voting on the leader's).
    pub fn propose(&mut self, value: Value) -> Vec<Action> {
        if self.input.is_some() || self.decided.is_some() {
            return Vec::new();
        }
        self.values.insert(value_hash(&value), value.clone());
        self.input = Some(value);
        let mut out = Vec::new();
        self.try_lead(&mut out);
        out
    }

    /// A round's timer fired.
    pub fn handle_timeout(&mut self, round: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.decided.is_some() || round != self.round || round == u64::MAX {
            return out;
        }
        self.enter_round(self.round.saturating_add(1), &mut out);
        out
    }

    /// Handles a message from the network (already attributed to a sender by the node).
    pub fn handle_message(&mut self, msg: SignedMessage) -> Result<Vec<Action>, Reject> {
        let mut out = Vec::new();
        self.receive(msg, &mut out)?;
        Ok(out)
    }

    fn check_envelope(&self, msg: &SignedMessage) -> Result<(), Reject> {
        let m = &msg.message;
        if m.sender >= self.cfg.members {
            return Err(Reject::NotMember(m.sender));
        }
        if m.instance != self.cfg.instance {
            return Err(Reject::WrongInstance(m.instance));
        }
        if m.round == 0 {
            return Err(Reject::RoundZero);
        }
        if m.round > self.cfg.max_round {
            return Err(Reject::RoundTooHigh {
                round: m.round,
                max: self.cfg.max_round,
            });
        }
        if !self.auth.verify(m, &msg.signature) {
            return Err(Reject::BadSignature(m.sender));
        }
        Ok(())
    }

    /// Checks a message embedded in a justification: signed, this instance, expected kind and round.
    fn check_embedded(&self, msg: &SignedMessage, kind: MsgKind, round: u64) -> bool {
        msg.message.kind == kind && msg.message.round == round && self.check_envelope(msg).is_ok()
    }

    /// True when `messages` hold a quorum of distinct valid PREPAREs for (round, value).
    fn is_prepare_certificate(
        &self,
        messages: &[SignedMessage],
        round: u64,
        value: &ValueHash,
    ) -> bool {
        let senders: HashSet<usize> = messages
            .iter()
            .filter(|p| {
                self.check_embedded(p, MsgKind::Prepare, round) && p.message.value == *value
            })
            .map(|p| p.message.sender)
            .collect();
        senders.len() >= self.quorum
    }

    fn receive(&mut self, msg: SignedMessage, out: &mut Vec<Action>) -> Result<(), Reject> {
        self.check_envelope(&msg)?;
        let m = msg.message;
        if let Some(value) = &msg.value {
            let carries_value = m.kind != MsgKind::RoundChange || m.prepared_round > 0;
            if !carries_value || value_hash(value) != m.value {
                return Err(Reject::ValueMismatch { sender: m.sender });
            }
        }
        if self.decided.is_some() {
            self.answer_late_peer(&m, out);
            return Ok(());
        }
        // Bytes a commit quorum waits for are taken from any signed message
        // that carries them, even a duplicate; other bytes are kept only once
        // their message is accepted, so a refused message leaves nothing behind.
        if let Some(value) = &msg.value {
            if !self.values.contains_key(&m.value) && self.commit_quorum_for(&m.value) {
                self.values.insert(m.value, value.clone());
                self.retry_decision(out);
                if self.decided.is_some() {
                    return Ok(());
                }
            }
        }
        match m.kind {
            MsgKind::PrePrepare => self.on_pre_prepare(msg, out),
            MsgKind::Commit if !msg.justification.is_empty() => {
                self.on_commit_certificate(msg, out)
            }
            MsgKind::Prepare | MsgKind::Commit => self.on_vote(msg, out),
            MsgKind::RoundChange => self.on_round_change(msg, out),
        }
    }

    /// A decided peer's proof: a quorum of COMMITs for one round and value,
    /// judged as a whole (a Byzantine sender may have shown us a different
    /// vote, but its signed COMMIT in a quorum still counts).
    fn on_commit_certificate(
        &mut self,
        msg: SignedMessage,
        out: &mut Vec<Action>,
    ) -> Result<(), Reject> {
        let m = msg.message;
        let senders: HashSet<usize> = msg
            .justification
            .iter()
            .filter(|c| {
                self.check_embedded(c, MsgKind::Commit, m.round) && c.message.value == m.value
            })
            .map(|c| c.message.sender)
            .collect();
        if senders.len() < self.quorum {
            return Err(Reject::InvalidJustification {
                sender: m.sender,
                kind: m.kind,
                round: m.round,
                reason: "not a quorum of COMMITs for one round and value",
            });
        }
        let value = msg
            .value
            .clone()
            .or_else(|| self.values.get(&m.value).cloned())
            .ok_or(Reject::MissingValue)?;
        let certificate: Vec<SignedMessage> = msg
            .justification
            .iter()
            .map(SignedMessage::stripped)
            .collect();
        self.decided = Some((value.clone(), certificate.clone()));
        out.push(Action::Decide { value, certificate });
        Ok(())
    }

    /// Whether some round has a quorum of COMMITs for `value`.
    fn commit_quorum_for(&self, value: &ValueHash) -> bool {
        self.commits
            .keys()
            .any(|round| Self::count(&self.commits, *round, value) >= self.quorum)
    }

    /// A commit quorum may have formed before the value's bytes arrived.
    fn retry_decision(&mut self, out: &mut Vec<Action>) {
        if self.decided.is_some() {
            return;
        }
        let ready = self.commits.iter().find_map(|(&round, by_sender)| {
            by_sender
                .values()
                .map(|c| c.message.value)
                .find(|v| {
                    self.values.contains_key(v)
                        && Self::count(&self.commits, round, v) >= self.quorum
                })
                .map(|v| (round, v))
        });
        if let Some((round, value)) = ready {
            self.check_committed(round, value, out);
        }
    }

    /// Stores a vote; refuses a second, different vote from the same sender in a round.
    fn store(votes: &mut Votes, msg: SignedMessage) -> Result<(), Reject> {
        let m = msg.message;
        let round = votes.entry(m.round).or_default();
        match round.get(&m.sender) {
            Some(existing) if existing.message == m => Err(Reject::Duplicate),
            Some(_) => Err(Reject::Equivocation {
                sender: m.sender,
                kind: m.kind,
                round: m.round,
            }),
            None => {
                round.insert(m.sender, msg);
                Ok(())
            }
        }
    }

    fn on_pre_prepare(&mut self, msg: SignedMessage, out: &mut Vec<Action>) -> Result<(), Reject> {
        let m = msg.message;
        if m.sender != self.leader(m.round) {
            return Err(Reject::NotLeader {
                sender: m.sender,
                round: m.round,
            });
        }
        if let Some(existing) = self.pre_prepares.get(&m.round) {
            return Err(if existing.message == m {
                Reject::Duplicate
            } else {
                Reject::Equivocation {
                    sender: m.sender,
                    kind: m.kind,
                    round: m.round,
                }
            });
        }
        if m.round < self.round {
            return Ok(()); // an old round: harmless, ignored
        }
        let value = msg.value.clone().ok_or(Reject::MissingValue)?;
        self.justify_pre_prepare(&msg)?;
        if !self.valid(&m.value, &value) {
            return Err(Reject::InvalidValue {
                sender: m.sender,
                round: m.round,
            });
        }
        self.values.insert(m.value, value);
        self.pre_prepares.insert(m.round, msg);
        if m.round > self.round {
            // The justification proves a quorum moved to this round.
            self.round = m.round;
            out.push(self.timer(m.round));
        }
        self.send(MsgKind::Prepare, m.round, m.value, 0, None, Vec::new(), out);
        Ok(())
    }

    fn justify_pre_prepare(&self, msg: &SignedMessage) -> Result<(), Reject> {
        let m = msg.message;
        if m.round == 1 {
            return Ok(());
        }
        let bad = |reason| Reject::InvalidJustification {
            sender: m.sender,
            kind: m.kind,
            round: m.round,
            reason,
        };
        let mut senders = HashSet::new();
        let mut highest: Option<(u64, ValueHash)> = None;
        for rc in msg
            .justification
            .iter()
            .filter(|j| j.message.kind == MsgKind::RoundChange)
        {
            if !self.check_embedded(rc, MsgKind::RoundChange, m.round) {
                return Err(bad(
                    "a ROUND-CHANGE in it does not verify or is for another round",
                ));
            }
            let r = rc.message;
            if r.prepared_round >= m.round {
                return Err(bad(
                    "a ROUND-CHANGE claims a prepared round not below its own",
                ));
            }
            senders.insert(r.sender);
            if r.prepared_round > 0 && highest.is_none_or(|(pr, _)| r.prepared_round > pr) {
                highest = Some((r.prepared_round, r.value));
            }
        }
        if senders.len() < self.quorum {
            return Err(bad("fewer than a quorum of ROUND-CHANGE messages"));
        }
        if let Some((pr, pv)) = highest {
            if m.value != pv {
                return Err(bad("the proposal is not the highest prepared value"));
            }
            if !self.is_prepare_certificate(&msg.justification, pr, &pv) {
                return Err(bad("no prepare certificate for the highest prepared value"));
            }
        }
        Ok(())
    }

    fn valid(&mut self, hash: &ValueHash, value: &[u8]) -> bool {
        if let Some(known) = self.validity.get(hash) {
            return *known;
        }
        let ok = (self.cfg.is_valid)(value);
        self.validity.insert(*hash, ok);
        ok
    }

    fn on_vote(&mut self, msg: SignedMessage, out: &mut Vec<Action>) -> Result<(), Reject> {
        let m = msg.message;
        let votes = if m.kind == MsgKind::Prepare {
            &mut self.prepares
        } else {
            &mut self.commits
        };
        Self::store(votes, msg)?;
        if m.kind == MsgKind::Prepare {
            self.check_prepared(m.round, m.value, out);
        } else {
            self.check_committed(m.round, m.value, out);
        }
        Ok(())
    }

    fn count(votes: &Votes, round: u64, value: &ValueHash) -> usize {
        votes.get(&round).map_or(0, |by_sender| {
            by_sender
                .values()
                .filter(|v| v.message.value == *value)
                .count()
        })
    }

    fn check_prepared(&mut self, round: u64, value: ValueHash, out: &mut Vec<Action>) {
        if round != self.round
            || self.commit_sent.contains(&round)
            || Self::count(&self.prepares, round, &value) < self.quorum
        {
            return;
        }
        self.prepared = Some((round, value));
        self.prepare_certificate = self.prepares[&round]
            .values()
            .filter(|p| p.message.value == value)
            .map(SignedMessage::stripped)
            .collect();
        self.commit_sent.insert(round);
        self.send(MsgKind::Commit, round, value, 0, None, Vec::new(), out);
    }

    fn check_committed(&mut self, round: u64, value: ValueHash, out: &mut Vec<Action>) {
        if self.decided.is_some() || Self::count(&self.commits, round, &value) < self.quorum {
            return;
        }
        let Some(bytes) = self.values.get(&value).cloned() else {
            return; // decided by quorum, but the value's bytes have not arrived yet
        };
        let certificate: Vec<SignedMessage> = self.commits[&round]
            .values()
            .filter(|c| c.message.value == value)
            .map(SignedMessage::stripped)
            .collect();
        self.decided = Some((bytes.clone(), certificate.clone()));
        out.push(Action::Decide {
            value: bytes,
            certificate,
        });
    }

    fn on_round_change(&mut self, msg: SignedMessage, out: &mut Vec<Action>) -> Result<(), Reject> {
        let m = msg.message;
        if m.prepared_round > 0 {
            let bad = |reason| Reject::InvalidJustification {
                sender: m.sender,
                kind: m.kind,
                round: m.round,
                reason,
            };
            if m.prepared_round >= m.round {
                return Err(bad("prepared round not below the round"));
            }
            if !self.is_prepare_certificate(&msg.justification, m.prepared_round, &m.value) {
                return Err(bad("no prepare certificate for the prepared value"));
            }
        } else if m.value != [0u8; 32] {
            return Err(Reject::InvalidJustification {
                sender: m.sender,
                kind: m.kind,
                round: m.round,
                reason: "a value without a prepared round",
            });
        }
        let bytes = msg.value.clone();
        Self::store(&mut self.round_changes, msg)?;
        if let Some(bytes) = bytes {
            // A prepared value (its certificate checked above): a leader may need to re-propose it.
            self.values.entry(m.value).or_insert(bytes);
        }
        // Some honest node may have decided in an earlier round and stopped; its commits may reach us later.
        self.catch_up(out);
        self.try_lead(out);
        Ok(())
    }

    /// f+1 ROUND-CHANGEs for rounds above ours: jump to the lowest round that f+1 of them reach.
    fn catch_up(&mut self, out: &mut Vec<Action>) {
        let mut highest_by_sender: HashMap<usize, u64> = HashMap::new();
        for (&round, by_sender) in self.round_changes.range(self.round.saturating_add(1)..) {
            for &sender in by_sender.keys() {
                highest_by_sender.insert(sender, round);
            }
        }
        if highest_by_sender.len() <= self.faulty {
            return;
        }
        let mut rounds: Vec<u64> = highest_by_sender.into_values().collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        let target = rounds[self.faulty];
        if target > self.round {
            self.enter_round(target, out);
        }
    }

    fn enter_round(&mut self, round: u64, out: &mut Vec<Action>) {
        self.round = round;
        out.push(self.timer(round));
        let (prepared_round, value, bytes, justification) = match self.prepared {
            Some((pr, pv)) => (
                pr,
                pv,
                self.values.get(&pv).cloned(),
                self.prepare_certificate.clone(),
            ),
            None => (0, [0u8; 32], None, Vec::new()),
        };
        self.send(
            MsgKind::RoundChange,
            round,
            value,
            prepared_round,
            bytes,
            justification,
            out,
        );
    }

    /// As leader of the current round, propose once the round allows it.
    fn try_lead(&mut self, out: &mut Vec<Action>) {
        let round = self.round;
        if self.decided.is_some()
            || self.leader(round) != self.cfg.me
            || self.proposed.contains(&round)
        {
            return;
        }
        if round == 1 {
            if let Some(input) = self.input.clone() {
                self.proposed.insert(round);
                self.send(
                    MsgKind::PrePrepare,
                    round,
                    value_hash(&input),
                    0,
                    Some(input),
                    Vec::new(),
                    out,
                );
            }
            return;
        }
        let Some(changes) = self.round_changes.get(&round) else {
            return;
        };
        if changes.len() < self.quorum {
            return;
        }
        let highest = changes
            .values()
            .filter(|rc| rc.message.prepared_round > 0)
            .max_by_key(|rc| rc.message.prepared_round);
        let mut justification: Vec<SignedMessage> =
            changes.values().map(SignedMessage::stripped).collect();
        let value = match highest {
            Some(rc) => {
                let Some(bytes) = self.values.get(&rc.message.value).cloned() else {
                    return;
                };
                justification.extend(rc.justification.iter().map(SignedMessage::stripped));
                bytes
            }
            None => match self.input.clone() {
                Some(input) => input,
                None => return, // wait for our own value
            },
        };
        self.proposed.insert(round);
        self.send(
            MsgKind::PrePrepare,
            round,
            value_hash(&value),
            0,
            Some(value),
            justification,
            out,
        );
    }

    /// After deciding, help a peer still running: send it the commit
    /// certificate (one COMMIT carrying the value and the quorum as its
    /// justification) once per round it moves to.
    fn answer_late_peer(&mut self, m: &Message, out: &mut Vec<Action>) {
        if m.sender == self.cfg.me
            || m.kind == MsgKind::Commit
            || self.answered.get(&m.sender).is_some_and(|r| *r >= m.round)
        {
            return;
        }
        self.answered.insert(m.sender, m.round);
        if let Some((value, certificate)) = &self.decided {
            if let Some(first) = certificate.first() {
                let mut proof = first.clone();
                proof.value = Some(value.clone());
                proof.justification = certificate.clone();
                out.push(Action::SendTo(m.sender, proof));
            }
        }
    }

    /// Signs, broadcasts, and processes our own message.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        kind: MsgKind,
        round: u64,
        value: ValueHash,
        prepared_round: u64,
        bytes: Option<Value>,
        justification: Vec<SignedMessage>,
        out: &mut Vec<Action>,
    ) {
        let message = Message {
            kind,
            instance: self.cfg.instance,
            round,
            sender: self.cfg.me,
            value,
            prepared_round,
        };
        let signed = SignedMessage {
            signature: self.auth.sign(&message),
            message,
            value: bytes,
            justification,
        };
        out.push(Action::Broadcast(signed.clone()));
        // Our own message counts like anyone's; it cannot be refused except as a duplicate.
        let _ = self.receive(signed, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signatures are the sender index: enough for tests that do not forge.
    struct Plain;
    impl Authenticator for Plain {
        fn sign(&self, m: &Message) -> Vec<u8> {
            vec![m.sender as u8]
        }
        fn verify(&self, m: &Message, sig: &[u8]) -> bool {
            sig == [m.sender as u8]
        }
    }

    fn config(me: usize, n: usize) -> Config {
        Config {
            instance: InstanceId { slot: 0, duty: 0 },
            members: n,
            me,
            leader: Arc::new(default_leader),
            is_valid: Box::new(|v| !v.starts_with(b"bad")),
            timing: RoundTiming::default(),
            max_round: DEFAULT_MAX_ROUND,
        }
    }

    fn broadcasts(actions: &[Action]) -> Vec<SignedMessage> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Broadcast(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rounds_grow_linearly_from_the_duty_start() {
        let ms = Duration::from_millis;
        let timing = RoundTiming {
            first_round: ms(1000),
            round: ms(1000),
            growth: ms(1000),
        };
        let ends: Vec<Duration> = (1..=4).map(|r| timing.deadline(r)).collect();
        assert_eq!(ends, vec![ms(1000), ms(3000), ms(6000), ms(10000)]);
        let constant = RoundTiming {
            growth: Duration::ZERO,
            ..timing
        };
        assert_eq!(constant.deadline(3), ms(3000));
        assert_eq!(timing.deadline(u64::MAX), Duration::MAX, "saturates");
        assert_eq!(timing.last_round_within(ms(500)), 1);
        assert_eq!(timing.last_round_within(ms(3000)), 2);
        assert_eq!(timing.last_round_within(ms(3001)), 3);
        let zero = RoundTiming {
            first_round: Duration::ZERO,
            round: Duration::ZERO,
            growth: Duration::ZERO,
        };
        assert_eq!(zero.last_round_within(ms(1)), DEFAULT_MAX_ROUND);
    }

    /// What a Byzantine member can make an instance keep is bounded: no
    /// round past the cap, no bytes from a refused message, and no second
    /// answer to a late peer unless it moved to a higher round.
    #[test]
    fn a_hostile_member_cannot_grow_the_state() {
        let mut cfg = config(0, 4);
        cfg.max_round = 5;
        let (mut node, _) = Instance::new(cfg, Plain, None);
        let junk: Value = Arc::from(vec![0xee; 1 << 20]);
        let rc = |sender, round, prepared_round| SignedMessage {
            message: Message {
                kind: MsgKind::RoundChange,
                instance: InstanceId { slot: 0, duty: 0 },
                round,
                sender,
                value: value_hash(&junk),
                prepared_round,
            },
            signature: vec![sender as u8],
            value: Some(junk.clone()),
            justification: vec![],
        };
        assert_eq!(
            node.handle_message(rc(2, 6, 0)),
            Err(Reject::RoundTooHigh { round: 6, max: 5 })
        );
        // Claims a prepared value without its certificate: refused, bytes not kept.
        assert!(matches!(
            node.handle_message(rc(2, 3, 1)),
            Err(Reject::InvalidJustification { .. })
        ));
        assert!(node.values.is_empty(), "a refused message left its bytes");
        assert!(node.round_changes.is_empty());

        // Decided: a late peer gets the certificate once, whatever round it is in.
        let nodes: Vec<_> = (0..4)
            .map(|me| Instance::new(config(me, 4), Plain, None).0)
            .collect();
        let mut nodes = nodes;
        let value: Value = Arc::from(&b"v"[..]);
        let mut queue: Vec<SignedMessage> = broadcasts(&nodes[1].propose(value.clone()));
        while let Some(m) = queue.pop() {
            for (i, n) in nodes.iter_mut().enumerate() {
                if i != m.message.sender {
                    queue.extend(broadcasts(&n.handle_message(m.clone()).unwrap_or_default()));
                }
            }
        }
        assert!(nodes[0].decided().is_some());
        let answers = [2, 2, 1, 2, 3]
            .into_iter()
            .map(|round| {
                let mut late = rc(3, round, 0);
                late.message.value = [0; 32];
                late.value = None;
                nodes[0].handle_message(late).unwrap()
            })
            .filter(|actions| actions.iter().any(|a| matches!(a, Action::SendTo(3, _))))
            .count();
        assert_eq!(answers, 2, "rounds 2 and 3 only");
    }

    #[test]
    fn quorum_sizes() {
        for (n, q) in [(1, 1), (4, 3), (7, 5), (10, 7)] {
            let (i, _) = Instance::new(config(0, n), Plain, None);
            assert_eq!(i.quorum(), q, "n={n}");
        }
    }

    #[test]
    fn single_node_decides_alone() {
        let (_, actions) = Instance::new(config(0, 1), Plain, Some(Arc::from(&b"v"[..])));
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Decide { value, .. } if &value[..] == b"v")));
    }

    #[test]
    fn rejects_bad_inputs_with_reasons() {
        // Slot 0, duty 0, round 1: the leader is member 1.
        let (mut node, _) = Instance::new(config(0, 4), Plain, None);
        let value: Value = Arc::from(&b"bad value"[..]);
        let msg = |sender, kind, round| SignedMessage {
            message: Message {
                kind,
                instance: InstanceId { slot: 0, duty: 0 },
                round,
                sender,
                value: value_hash(&value),
                prepared_round: 0,
            },
            signature: vec![sender as u8],
            value: Some(value.clone()),
            justification: vec![],
        };
        assert_eq!(
            node.handle_message(msg(9, MsgKind::Prepare, 1)),
            Err(Reject::NotMember(9))
        );
        let mut forged = msg(2, MsgKind::Prepare, 1);
        forged.signature = vec![1];
        assert_eq!(node.handle_message(forged), Err(Reject::BadSignature(2)));
        assert_eq!(
            node.handle_message(msg(2, MsgKind::PrePrepare, 1)),
            Err(Reject::NotLeader {
                sender: 2,
                round: 1
            })
        );
        assert_eq!(
            node.handle_message(msg(1, MsgKind::PrePrepare, 1)),
            Err(Reject::InvalidValue {
                sender: 1,
                round: 1
            })
        );
        let mut other = msg(3, MsgKind::Prepare, 1);
        other.value = None;
        assert!(node.handle_message(other.clone()).is_ok());
        assert_eq!(node.handle_message(other.clone()), Err(Reject::Duplicate));
        other.message.value = [7; 32];
        assert!(matches!(
            node.handle_message(other),
            Err(Reject::Equivocation { sender: 3, .. })
        ));
        let mut wrong = msg(3, MsgKind::Commit, 1);
        wrong.message.instance.slot = 5;
        assert!(matches!(
            node.handle_message(wrong),
            Err(Reject::WrongInstance(_))
        ));
        // Round 2 needs a quorum of round changes.
        let (mut node, _) = Instance::new(config(0, 4), Plain, None);
        let mut unjustified = msg(2, MsgKind::PrePrepare, 2);
        unjustified.value = Some(Arc::from(&b"good"[..]));
        unjustified.message.value = value_hash(b"good");
        assert!(matches!(
            node.handle_message(unjustified),
            Err(Reject::InvalidJustification { .. })
        ));
    }

    #[test]
    fn a_node_without_a_value_votes_for_the_leaders() {
        let n = 4;
        let (mut leader, out) = Instance::new(config(1, n), Plain, Some(Arc::from(&b"x"[..])));
        let pre_prepare = broadcasts(&out).remove(0);
        let (mut follower, _) = Instance::new(config(0, n), Plain, None);
        let prepares = broadcasts(&follower.handle_message(pre_prepare).unwrap());
        assert_eq!(prepares[0].message.kind, MsgKind::Prepare);
        let _ = leader.handle_message(prepares[0].clone()).unwrap();
    }
}
