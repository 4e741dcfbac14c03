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
use crate::parsig::{Combined, ParSigStore, Partial};
use dv_crypto::{PartialSignature, Signature};
use dv_types::{PublicKeyBytes, Root, SignatureBytes, Slot};
use p2p::{Envelope, Topic};
use qbft::{Action, Config as QbftConfig, Instance, InstanceId, RoundTiming, ValidityFn, Value};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Peer messages kept per duty that has not started here yet.
const MAX_EARLY_PER_DUTY: usize = 256;
/// Partials for duties further ahead than this many slots are dropped (next
/// epoch's selection proofs are the furthest a peer sends; mainnet epochs are 32 slots).
const MAX_PARTIALS_AHEAD: u64 = 96;
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

/// Partials of one validator set over one signing root, and what came of them.
#[derive(Debug, Default)]
pub struct Exchanged {
    /// Combined and verified signatures, by validator.
    pub signatures: HashMap<PublicKeyBytes, Signature>,
}

/// The partial signatures of one node for one duty and signing root.
#[derive(Serialize, Deserialize)]
struct PartialsMessage {
    root: Root,
    partials: Vec<(PublicKeyBytes, u64, SignatureBytes)>,
}

enum Command {
    Decide(
        ConsensusRequest,
        oneshot::Sender<Result<Value, WorkflowError>>,
    ),
    Decided(Duty, oneshot::Sender<Option<Value>>),
    Exchange(ExchangeWaiter),
}

struct ExchangeWaiter {
    duty: Duty,
    root: Root,
    own: Vec<Partial>,
    wanted: HashSet<PublicKeyBytes>,
    got: HashMap<PublicKeyBytes, Signature>,
    deadline: Instant,
    reply: Option<oneshot::Sender<Exchanged>>,
}

/// A handle to the workflow task; cheap to clone.
#[derive(Clone)]
pub struct Workflow {
    commands: mpsc::UnboundedSender<Command>,
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

    /// Sends `own` partials (over `root`) to every peer and waits until the
    /// signatures of all `wanted` validators are combined, or `deadline`.
    pub async fn exchange(
        &self,
        duty: Duty,
        root: Root,
        own: Vec<Partial>,
        wanted: impl IntoIterator<Item = PublicKeyBytes>,
        deadline: Instant,
    ) -> Result<Exchanged, WorkflowError> {
        let (reply, answer) = oneshot::channel();
        let waiter = ExchangeWaiter {
            duty,
            root,
            own,
            wanted: wanted.into_iter().collect(),
            got: HashMap::new(),
            deadline,
            reply: Some(reply),
        };
        self.commands
            .send(Command::Exchange(waiter))
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
pub trait CurrentSlot: Send + 'static {
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
    early: HashMap<Duty, Vec<qbft::SignedMessage>>,
    timers: BinaryHeap<Reverse<(Instant, Duty, u64)>>,
    parsig: ParSigStore,
    /// Signatures combined from peers' partials before (or after) this node asked.
    combined: HashMap<(Duty, PublicKeyBytes, Root), Combined>,
    waiters: Vec<ExchangeWaiter>,
}

impl<C: CurrentSlot> WorkflowTask<C> {
    pub fn new(
        auth: P2pAuthenticator,
        net: p2p::Handle,
        incoming: mpsc::UnboundedReceiver<p2p::Incoming>,
        members: usize,
        parsig: ParSigStore,
        clock: C,
    ) -> (Self, Workflow) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = Self {
            me: net.me(),
            members,
            auth,
            net,
            incoming,
            commands: rx,
            clock,
            instances: HashMap::new(),
            early: HashMap::new(),
            timers: BinaryHeap::new(),
            parsig,
            combined: HashMap::new(),
            waiters: Vec::new(),
        };
        (task, Workflow { commands: tx })
    }

    /// Runs until every [`Workflow`] handle is dropped or `shutdown` completes.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
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
                    Some(Command::Exchange(waiter)) => self.start_exchange(waiter),
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
        for m in self.early.remove(&duty).unwrap_or_default() {
            self.on_consensus(duty, m);
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
                Action::Decide { value, .. } => {
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

    fn on_peer_message(&mut self, msg: p2p::Incoming) {
        let Some(kind) = DutyType::from_code(msg.envelope.duty) else {
            tracing::warn!(
                peer = msg.from,
                code = msg.envelope.duty,
                "message for an unknown duty type"
            );
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
                    tracing::warn!(peer = msg.from, %duty, "consensus message inside an envelope of another duty")
                }
                Ok(m) => self.on_consensus(duty, m),
                Err(e) => tracing::warn!(peer = msg.from, %duty, "{e}"),
            },
            Topic::PartialSignatures => self.on_partials(duty, msg.from, &msg.envelope.payload),
        }
    }

    fn on_consensus(&mut self, duty: Duty, msg: qbft::SignedMessage) {
        let Some(running) = self.instances.get_mut(&duty) else {
            let current = self.clock.current_slot();
            let window = current.saturating_sub(EARLY_SLOTS)..=current + EARLY_SLOTS;
            let kept = self.early.entry(duty).or_default();
            if window.contains(&duty.slot) && kept.len() < MAX_EARLY_PER_DUTY {
                kept.push(msg);
            }
            return;
        };
        match running.engine.handle_message(msg) {
            Ok(actions) => self.apply(duty, actions),
            Err(qbft::Reject::Duplicate) => {}
            Err(e) => tracing::debug!(%duty, "consensus message refused: {e}"),
        }
    }

    fn on_partials(&mut self, duty: Duty, from: usize, payload: &[u8]) {
        if duty.slot > self.clock.current_slot() + MAX_PARTIALS_AHEAD {
            tracing::warn!(peer = from, %duty, "partial signatures for a duty too far ahead dropped");
            return;
        }
        let message = match serde_json::from_slice::<PartialsMessage>(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(peer = from, %duty, "malformed partial signatures message: {e}");
                return;
            }
        };
        let mut partials = Vec::new();
        for (validator, index, sig) in message.partials {
            if index != from as u64 + 1 {
                tracing::warn!(peer = from, %duty, "partial for share {index} from the holder of share {}", from + 1);
                continue;
            }
            match PartialSignature::from_bytes(index, &sig.0) {
                Ok(signature) => partials.push(Partial {
                    validator,
                    signature,
                }),
                Err(e) => tracing::warn!(peer = from, %duty, "bad partial signature: {e}"),
            }
        }
        self.store_partials(duty, message.root, &partials, Some(from));
    }

    fn store_partials(
        &mut self,
        duty: Duty,
        root: Root,
        partials: &[Partial],
        from: Option<usize>,
    ) {
        let (combined, errors) = self.parsig.insert(duty, root, partials);
        for e in errors {
            match from {
                Some(peer) => {
                    tracing::warn!(peer, %duty, "partial signature from a peer dropped: {e}")
                }
                None => tracing::error!(%duty, "own partial signature dropped: {e}"),
            }
        }
        for c in combined {
            self.combined.insert((c.duty, c.validator, c.root), c);
        }
        self.settle_waiters();
    }

    fn start_exchange(&mut self, waiter: ExchangeWaiter) {
        let message = PartialsMessage {
            root: waiter.root,
            partials: waiter
                .own
                .iter()
                .map(|p| {
                    (
                        p.validator,
                        p.signature.index,
                        SignatureBytes(p.signature.signature.to_bytes()),
                    )
                })
                .collect(),
        };
        // Plain data: serialisation cannot fail.
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        let envelope = Envelope::new(
            waiter.duty.slot,
            waiter.duty.kind.code(),
            Topic::PartialSignatures,
            payload,
        );
        let _ = self.net.broadcast(envelope, waiter.deadline);
        let (duty, root, own) = (waiter.duty, waiter.root, waiter.own.clone());
        self.waiters.push(waiter);
        self.store_partials(duty, root, &own, None);
    }

    /// Hands combined signatures to whoever waits for them; answers waiters that are complete.
    fn settle_waiters(&mut self) {
        for w in &mut self.waiters {
            for v in &w.wanted {
                if w.got.contains_key(v) {
                    continue;
                }
                if let Some(c) = self.combined.get(&(w.duty, *v, w.root)) {
                    w.got.insert(*v, c.signature);
                }
            }
        }
        self.waiters.retain_mut(|w| {
            if w.got.len() < w.wanted.len() {
                return true;
            }
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Exchanged {
                    signatures: std::mem::take(&mut w.got),
                });
            }
            false
        });
    }

    /// Answers what ran out of time and forgets duties that are over.
    fn expire(&mut self) {
        let now = Instant::now();
        self.waiters.retain_mut(|w| {
            if w.deadline > now {
                return true;
            }
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Exchanged {
                    signatures: std::mem::take(&mut w.got),
                });
            }
            false
        });
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
        let oldest = current.saturating_sub(EARLY_SLOTS);
        self.early.retain(|duty, _| duty.slot >= oldest);
        let keep_from = current.saturating_sub(64);
        self.combined
            .retain(|(duty, _, _), _| duty.slot >= keep_from);
        self.parsig.prune(keep_from);
    }
}
