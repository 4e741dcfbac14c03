//! The cluster-facing core of the pipeline: the consensus stage (one QBFT
//! instance per duty, over the cluster network) and the partial-signature
//! exchange with the combiner.
//!
//! One task owns this state and is driven by three inputs: requests from the
//! signing seam, messages from peers, and time (round timers, deadlines). It
//! holds no key shares: partials come from the caller, which is this node's
//! signer in the built-in validator and the validator client in middleware
//! mode. Peers' messages for a duty this node has not started yet are kept
//! (bounded) until it starts, so a slow node still joins in.

use crate::consensus::{decode, encode, P2pAuthenticator};
use crate::duty::{Duty, DutyType};
pub use crate::exchange::Exchanged;
use crate::exchange::{ExchangeInput, ExchangeTask, ExchangeWaiter};
use crate::parsig::{ParSigStore, Partial};
use dv_types::{PublicKeyBytes, Root, Slot};
use p2p::{Envelope, Topic};
use qbft::{Action, Config as QbftConfig, Instance, InstanceId, RoundTiming, ValidityFn, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Messages kept per peer for one duty that has not started here yet: more
/// than an honest peer sends before a slow node starts (a proposal, its
/// votes, round changes of a few rounds, a relayed decision).
const MAX_EARLY_PER_PEER_AND_DUTY: usize = 24;
/// Bytes kept per peer over all duties not started here yet: room for two
/// proposals of the largest block.
const MAX_EARLY_BYTES_PER_PEER: usize = 2 * crate::consensus::MAX_VALUE_BYTES + (4 << 20);
/// Duties further ahead than this many slots are not buffered.
const EARLY_SLOTS: u64 = 2;

/// A consensus instance to run.
pub struct ConsensusRequest {
    pub duty: Duty,
    /// This node's proposal (from its beacon node); `None` if it has none,
    /// in which case it still votes for a leader's valid value.
    pub proposal: Option<Vec<u8>>,
    pub is_valid: ValidityFn,
    /// Round timers count from here.
    pub start: Instant,
    pub timing: RoundTiming,
    /// Past this the duty is useless: the request fails with no consensus.
    pub deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error("no consensus before the duty's deadline")]
    NoConsensus,
    #[error("the node is shutting down")]
    Stopped,
}

enum Command {
    Decide(
        ConsensusRequest,
        oneshot::Sender<Result<Value, WorkflowError>>,
    ),
    Decided(Duty, oneshot::Sender<Option<Value>>),
}

/// A handle to the workflow task; cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    commands: mpsc::UnboundedSender<Command>,
    exchange: mpsc::UnboundedSender<ExchangeInput>,
}

impl Workflow {
    /// Runs consensus for `request.duty`; the decided value or why there is none.
    /// If the duty's instance already runs, this joins it (its proposal and
    /// predicate are not used) and gets the same decision.
    pub async fn decide(&self, request: ConsensusRequest) -> Result<Value, WorkflowError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Decide(request, reply))
            .map_err(|_| WorkflowError::Stopped)?;
        answer.await.unwrap_or(Err(WorkflowError::Stopped))
    }

    /// The value decided for `duty`, if its instance decided and is not over.
    pub async fn decided(&self, duty: Duty) -> Option<Value> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Decided(duty, reply)).ok()?;
        answer.await.ok().flatten()
    }

    /// The signature of `validator` over `root` for `duty` if this node
    /// combined it (in the last 64 slots).
    pub async fn combined(
        &self,
        duty: Duty,
        validator: PublicKeyBytes,
        root: Root,
    ) -> Option<dv_crypto::Signature> {
        let (reply, answer) = oneshot::channel();
        self.exchange
            .send(ExchangeInput::Combined(duty, validator, root, reply))
            .ok()?;
        answer.await.ok().flatten()
    }

    /// Sends `own` partials (over `root`) to every peer and waits until the
    /// signatures of all `wanted` validators are combined, or `deadline`.
    /// `own_verified`: the caller checked `own` against this node's share
    /// keys already (they are not checked twice).
    pub async fn exchange(
        &self,
        duty: Duty,
        root: Root,
        own: Vec<Partial>,
        own_verified: bool,
        wanted: impl IntoIterator<Item = PublicKeyBytes>,
        deadline: Instant,
    ) -> Result<Exchanged, WorkflowError> {
        let (reply, answer) = oneshot::channel();
        let waiter = ExchangeWaiter {
            duty,
            root,
            own,
            own_verified,
            wanted: wanted.into_iter().collect(),
            got: HashMap::new(),
            deadline,
            reply: Some(reply),
        };
        self.exchange
            .send(ExchangeInput::Own(waiter))
            .map_err(|_| WorkflowError::Stopped)?;
        answer.await.map_err(|_| WorkflowError::Stopped)
    }
}

struct Running {
    engine: Instance<P2pAuthenticator>,
    start: Instant,
    deadline: Instant,
    waiting: Vec<oneshot::Sender<Result<Value, WorkflowError>>>,
    decided: Option<Value>,
}

/// Where the workflow task gets the slot of "now" (to bound what it buffers).
pub trait CurrentSlot: Clone + Send + 'static {
    fn current_slot(&self) -> Slot;
}

pub struct WorkflowTask<C: CurrentSlot> {
    me: usize,
    members: usize,
    auth: P2pAuthenticator,
    net: p2p::Handle,
    incoming: mpsc::UnboundedReceiver<p2p::Incoming>,
    commands: mpsc::UnboundedReceiver<Command>,
    clock: C,
    instances: HashMap<Duty, Running>,
    early: EarlyMessages,
    timers: BinaryHeap<Reverse<(Instant, Duty, u64)>>,
    /// The exchange stage, run beside this task; peers' partials go to it.
    exchange: Option<ExchangeTask<C>>,
    to_exchange: mpsc::UnboundedSender<ExchangeInput>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Peers' consensus messages for duties not started here yet, bounded per
/// peer (by count per duty and by bytes over all duties), so one peer
/// cannot crowd out the others' messages or this node's memory.
#[derive(Default)]
struct EarlyMessages {
    by_duty: HashMap<Duty, Vec<(usize, usize, qbft::SignedMessage)>>,
    bytes_by_peer: HashMap<usize, usize>,
}

impl EarlyMessages {
    /// Keeps `msg` (`bytes` long) from `peer`; false if over that peer's bounds.
    fn keep(&mut self, duty: Duty, peer: usize, bytes: usize, msg: qbft::SignedMessage) -> bool {
        let kept = self.by_duty.entry(duty).or_default();
        let from_peer = kept.iter().filter(|(p, _, _)| *p == peer).count();
        let peer_bytes = self.bytes_by_peer.entry(peer).or_default();
        if from_peer >= MAX_EARLY_PER_PEER_AND_DUTY
            || *peer_bytes + bytes > MAX_EARLY_BYTES_PER_PEER
        {
            return false;
        }
        *peer_bytes += bytes;
        kept.push((peer, bytes, msg));
        true
    }

    /// The messages kept for `duty`, with their senders, and forgets them.
    fn take(&mut self, duty: &Duty) -> Vec<(usize, qbft::SignedMessage)> {
        let kept = self.by_duty.remove(duty).unwrap_or_default();
        kept.into_iter()
            .map(|(peer, bytes, msg)| {
                self.release(peer, bytes);
                (peer, msg)
            })
            .collect()
    }

    fn release(&mut self, peer: usize, bytes: usize) {
        if let Some(total) = self.bytes_by_peer.get_mut(&peer) {
            *total = total.saturating_sub(bytes);
        }
    }

    /// Forgets duties before `oldest`.
    fn drop_before(&mut self, oldest: Slot) {
        let old: Vec<Duty> = self
            .by_duty
            .keys()
            .filter(|d| d.slot < oldest)
            .copied()
            .collect();
        for duty in old {
            self.take(&duty);
        }
    }
}

impl<C: CurrentSlot> WorkflowTask<C> {
    pub fn new(
        auth: P2pAuthenticator,
        net: p2p::Handle,
        incoming: mpsc::UnboundedReceiver<p2p::Incoming>,
        members: usize,
        parsig: ParSigStore,
        clock: C,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> (Self, Workflow) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (exchange, to_exchange) =
            ExchangeTask::new(net.clone(), parsig, clock.clone(), metrics.clone());
        let task = Self {
            me: net.me(),
            members,
            auth,
            net,
            incoming,
            commands: rx,
            clock,
            instances: HashMap::new(),
            early: EarlyMessages::default(),
            timers: BinaryHeap::new(),
            exchange: Some(exchange),
            to_exchange: to_exchange.clone(),
            metrics,
        };
        let handle = Workflow {
            commands: tx,
            exchange: to_exchange,
        };
        (task, handle)
    }

    /// Runs until every [`Workflow`] handle is dropped or `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let exchange = self.exchange.take().map(|e| tokio::spawn(e.run()));
        let _stop_exchange = AbortOnDrop(exchange);
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        loop {
            let next_timer = self.timers.peek().map(|Reverse((at, _, _))| *at);
            let sleep_until =
                next_timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => return,
                command = self.commands.recv() => match command {
                    Some(Command::Decide(request, reply)) => self.start_instance(request, reply),
                    Some(Command::Decided(duty, reply)) => {
                        let _ = reply.send(self.instances.get(&duty).and_then(|r| r.decided.clone()));
                    }
                    None => return,
                },
                Some(msg) = self.incoming.recv() => self.on_peer_message(msg),
                _ = tokio::time::sleep_until(sleep_until), if next_timer.is_some() => self.fire_timers(),
                _ = housekeeping.tick() => self.expire(),
            }
        }
    }

    fn start_instance(
        &mut self,
        request: ConsensusRequest,
        reply: oneshot::Sender<Result<Value, WorkflowError>>,
    ) {
        let duty = request.duty;
        if let Some(running) = self.instances.get_mut(&duty) {
            match &running.decided {
                Some(value) => {
                    let _ = reply.send(Ok(value.clone()));
                }
                None => running.waiting.push(reply),
            }
            return;
        }
        let cfg = QbftConfig {
            instance: InstanceId {
                slot: duty.slot,
                duty: duty.kind.code(),
            },
            members: self.members,
            me: self.me,
            leader: Arc::new(qbft::default_leader),
            is_valid: request.is_valid,
            timing: request.timing,
            max_round: request
                .timing
                .last_round_within(request.deadline.saturating_duration_since(request.start)),
        };
        let input = request.proposal.map(Arc::from);
        let (engine, actions) = Instance::new(cfg, self.auth.clone(), input);
        self.instances.insert(
            duty,
            Running {
                engine,
                start: request.start,
                deadline: request.deadline,
                waiting: vec![reply],
                decided: None,
            },
        );
        self.apply(duty, actions);
        for (peer, m) in self.early.take(&duty) {
            self.on_consensus(duty, peer, 0, m);
        }
    }

    fn apply(&mut self, duty: Duty, actions: Vec<Action>) {
        let Some(running) = self.instances.get_mut(&duty) else {
            return;
        };
        let (start, deadline) = (running.start, running.deadline);
        for action in actions {
            let envelope = |m: &qbft::SignedMessage| {
                Envelope::new(duty.slot, duty.kind.code(), Topic::Consensus, encode(m))
            };
            match action {
                Action::Broadcast(m) => {
                    let _ = self.net.broadcast(envelope(&m), deadline);
                }
                Action::SendTo(to, m) => {
                    let _ = self.net.send(to, envelope(&m), deadline);
                }
                Action::ArmTimer { round, deadline } => {
                    self.timers.push(Reverse((start + deadline, duty, round)))
                }
                Action::Decide { value, certificate } => {
                    dv_fault::reached(dv_fault::AFTER_DECISION);
                    let round = certificate.first().map_or(0, |c| c.message.round);
                    let quorum: Vec<usize> = certificate.iter().map(|c| c.message.sender).collect();
                    self.metrics.decided(
                        duty.slot,
                        duty.kind.name(),
                        round,
                        Instant::now().saturating_duration_since(start),
                        &quorum,
                    );
                    if let Some(running) = self.instances.get_mut(&duty) {
                        for reply in running.waiting.drain(..) {
                            let _ = reply.send(Ok(value.clone()));
                        }
                        running.decided = Some(value);
                    }
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, duty, round))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(running) = self.instances.get_mut(&duty) {
                let actions = running.engine.handle_timeout(round);
                self.apply(duty, actions);
            }
        }
    }

    /// Logs and counts a peer's message refused for `reason`.
    fn misbehaved(&self, peer: usize, duty: Option<Duty>, reason: &'static str, detail: &str) {
        match duty {
            Some(duty) => {
                let detail = format!("{duty}: {detail}");
                self.metrics.peer_misbehaved(peer, reason, &detail)
            }
            None => self.metrics.peer_misbehaved(peer, reason, &detail),
        }
    }

    fn on_peer_message(&mut self, msg: p2p::Incoming) {
        let Some(kind) = DutyType::from_code(msg.envelope.duty) else {
            let detail = format!("duty code {} names no duty", msg.envelope.duty);
            self.misbehaved(msg.from, None, "unknown_duty", &detail);
            return;
        };
        let duty = Duty::new(msg.envelope.slot, kind);
        match msg.envelope.topic {
            // The message may be another member's, relayed (a decided peer hands
            // a late one the commits it decided on); the engine checks every
            // signature against its signer, so the relaying peer is not trusted.
            Topic::Consensus => match decode(&msg.envelope.payload, self.members) {
                Ok(m)
                    if m.message.instance.slot != duty.slot
                        || m.message.instance.duty != duty.kind.code() =>
                {
                    let detail = "consensus message inside an envelope of another duty";
                    self.misbehaved(msg.from, Some(duty), "wrong_instance", detail)
                }
                Ok(m) => self.on_consensus(duty, msg.from, msg.envelope.payload.len(), m),
                Err(e) => self.misbehaved(msg.from, Some(duty), "malformed", &e.to_string()),
            },
            Topic::PartialSignatures => {
                let _ = self.to_exchange.send(ExchangeInput::Peer(
                    duty,
                    msg.from,
                    msg.envelope.payload,
                ));
            }
            // A running cluster holds no key-generation ceremony.
            Topic::Dkg => self.misbehaved(
                msg.from,
                Some(duty),
                "wrong_topic",
                "a key-generation message sent to a running node",
            ),
        }
    }

    /// A consensus message relayed by `peer` (`bytes` on the wire).
    fn on_consensus(&mut self, duty: Duty, peer: usize, bytes: usize, msg: qbft::SignedMessage) {
        let Some(running) = self.instances.get_mut(&duty) else {
            let current = self.clock.current_slot();
            let window = current.saturating_sub(EARLY_SLOTS)..=current + EARLY_SLOTS;
            if !window.contains(&duty.slot) {
                // Old duties' messages arrive from slow peers: not a fault.
                if duty.slot > current + EARLY_SLOTS {
                    self.misbehaved(
                        peer,
                        Some(duty),
                        "duty_out_of_window",
                        "a duty too far ahead",
                    );
                }
            } else if !self.early.keep(duty, peer, bytes, msg) {
                let detail = "over its bound of messages kept for duties not started here";
                self.misbehaved(peer, Some(duty), "early_buffer_full", detail);
            }
            return;
        };
        // The signer is to blame for what it signed; the relaying peer for anything else.
        let signer = msg.message.sender;
        match running.engine.handle_message(msg) {
            Ok(actions) => self.apply(duty, actions),
            Err(e) => {
                if let Some(reason) = e.label() {
                    let blamed = match e {
                        qbft::Reject::Equivocation { sender, .. } => sender,
                        qbft::Reject::InvalidValue { sender, .. } => sender,
                        _ if signer == peer => signer,
                        _ => peer,
                    };
                    self.misbehaved(blamed, Some(duty), reason, &e.to_string());
                }
            }
        }
    }

    /// Answers instances that ran out of time and forgets duties that are over.
    fn expire(&mut self) {
        let now = Instant::now();
        self.instances.retain(|_, r| {
            if r.deadline > now {
                return true;
            }
            for reply in r.waiting.drain(..) {
                let _ = reply.send(Err(WorkflowError::NoConsensus));
            }
            false
        });
        let instances = &self.instances;
        self.timers
            .retain(|Reverse((_, duty, _))| instances.contains_key(duty));
        let current = self.clock.current_slot();
        self.early.drop_before(current.saturating_sub(EARLY_SLOTS));
    }
}

/// Stops the exchange task when the workflow task ends.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
