//! The cluster's private network: rust-libp2p over TCP with noise and yamux.
//!
//! The peer set is fixed by the cluster lock: a connection from any other
//! peer id is closed as soon as it is established, and anything it sent is
//! dropped. Messages are typed [`Envelope`]s (versioned, tagged with the duty
//! they belong to) carried by a request-response protocol with a size limit
//! (plain bytes, see [`codec`]);
//! the sender of a message is the authenticated peer of the connection, never
//! a field a peer could forge. A message that cannot be delivered is retried
//! with backoff until its deadline (a duty's messages expire with the duty),
//! and disconnected peers are redialled with backoff.

pub mod codec;

use futures::StreamExt;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{StreamProtocol, Swarm};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use libp2p::identity::Keypair;
pub use libp2p::{Multiaddr, PeerId};

/// The envelope format this build speaks; a peer sending another is refused.
/// 2: envelopes and their payloads in binary (1 was JSON with hex payloads);
/// 3: consensus messages in binary too, values up to the largest block.
pub const PROTOCOL_VERSION: u16 = 3;
const PROTOCOL: StreamProtocol = StreamProtocol::new("/dv/cluster/4");
const RETRY_BASE: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);
const REDIAL_MAX: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Consensus,
    PartialSignatures,
    /// A key-generation ceremony's messages (`slot` carries the round).
    Dkg,
}

/// A message between cluster nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: u16,
    pub slot: u64,
    pub duty: u32,
    pub topic: Topic,
    pub payload: Vec<u8>,
}

impl Envelope {
    pub fn new(slot: u64, duty: u32, topic: Topic, payload: Vec<u8>) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            slot,
            duty,
            topic,
            payload,
        }
    }
}

/// Told of every message from a member that is refused here (its index in
/// the lock and a short reason), for misbehaviour metrics.
pub type RefusedHook = std::sync::Arc<dyn Fn(usize, &'static str) + Send + Sync>;

/// What each member may send this node: a token bucket of messages and one
/// of bytes, each refilled continuously up to its burst. A message over
/// either budget is refused (the sender is told) and never decoded. A
/// member that goes on sending after a burst's worth of refusals is
/// disconnected, and neither accepted nor dialled until a burst's worth of
/// messages would have refilled (a slot, as the node sizes it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InboundBudget {
    pub messages_per_second: f64,
    pub message_burst: f64,
    pub bytes_per_second: f64,
    pub byte_burst: f64,
}

impl InboundBudget {
    /// No limit (tests of other things).
    pub const UNLIMITED: Self = Self {
        messages_per_second: f64::INFINITY,
        message_burst: f64::INFINITY,
        bytes_per_second: f64::INFINITY,
        byte_burst: f64::INFINITY,
    };
}

/// One member's remaining allowance.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    messages: f64,
    bytes: f64,
    /// Refusals still tolerated (refilled as messages are).
    refusals: f64,
    at: Instant,
    /// Disconnected for going over its budget, until then.
    banned_until: Option<Instant>,
}

/// What a member's message cost it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spent {
    Accepted,
    Refused,
    /// Refused, and the member is now cut off.
    CutOff,
}

impl Allowance {
    fn full(budget: &InboundBudget, now: Instant) -> Self {
        Self {
            messages: budget.message_burst,
            bytes: budget.byte_burst,
            refusals: budget.message_burst,
            at: now,
            banned_until: None,
        }
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// [`Self::spend`], and past a burst's worth of refusals the member is
    /// cut off for the time a burst takes to refill.
    fn charge(&mut self, budget: &InboundBudget, bytes: usize, now: Instant) -> Spent {
        if self.spend(budget, bytes, now) {
            return Spent::Accepted;
        }
        self.refusals -= 1.0;
        if self.refusals >= 0.0 {
            return Spent::Refused;
        }
        let ban = Duration::try_from_secs_f64(budget.message_burst / budget.messages_per_second)
            .unwrap_or(Duration::from_secs(60));
        *self = Self::full(budget, now);
        self.banned_until = Some(now + ban);
        Spent::CutOff
    }

    /// Refills for the time since the last call, then spends one message of `bytes` if both buckets allow it.
    fn spend(&mut self, budget: &InboundBudget, bytes: usize, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.messages =
            (self.messages + elapsed * budget.messages_per_second).min(budget.message_burst);
        self.refusals =
            (self.refusals + elapsed * budget.messages_per_second).min(budget.message_burst);
        self.bytes = (self.bytes + elapsed * budget.bytes_per_second).min(budget.byte_burst);
        let bytes = bytes as f64;
        if self.messages < 1.0 || self.bytes < bytes {
            return false;
        }
        self.messages -= 1.0;
        self.bytes -= bytes;
        true
    }
}

/// Told of every message handed to the transport (each delivery attempt):
/// its topic and its encoded size in bytes. For traffic metrics.
pub type SentHook = std::sync::Arc<dyn Fn(Topic, usize) + Send + Sync>;

/// A member's answer to a message: taken or refused (and why), and the
/// member's clock when it answered (unix ms), from which the sender learns
/// the round trip and the clock offset between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub accepted: bool,
    pub reason: Option<String>,
    pub time_ms: u64,
}

impl Ack {
    /// An answer stamped with this node's clock.
    pub fn answer(accepted: bool, reason: Option<String>) -> Ack {
        Ack {
            accepted,
            reason,
            time_ms: unix_ms(),
        }
    }
}

/// This machine's clock, in unix ms.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Told of every acknowledged message: the member, the round trip (from
/// handing the message to the transport to its answer, so the message's
/// transfer included) and the member's clock minus this node's at the
/// answer, in ms (estimated as if the round trip were symmetric).
pub type AckHook = std::sync::Arc<dyn Fn(usize, Duration, i64) + Send + Sync>;

/// A cluster member: its position in the lock, identity and address.
#[derive(Debug, Clone)]
pub struct Member {
    pub peer_id: PeerId,
    pub address: Multiaddr,
}

pub struct Config {
    pub keypair: Keypair,
    /// Every operator of the lock, in lock order (including this node).
    pub members: Vec<Member>,
    pub listen: Multiaddr,
    /// Largest encoded message accepted, in bytes (the payload plus a
    /// [`codec::ENVELOPE_HEADER_BYTES`] header).
    pub max_message_bytes: u64,
    /// Called for every message sent (see [`SentHook`]).
    pub on_sent: Option<SentHook>,
    /// What each member may send (see [`InboundBudget`]).
    pub inbound_budget: InboundBudget,
    /// Called for every member's message refused here (see [`RefusedHook`]).
    pub on_refused: Option<RefusedHook>,
    /// Called for every answer to a message sent (see [`AckHook`]).
    pub on_ack: Option<AckHook>,
}

/// A message from a member, attributed by its authenticated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub from: usize,
    pub envelope: Envelope,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("p2p: this node's peer id {0} is not a member of the cluster lock")]
    NotAMember(PeerId),
    #[error("p2p: cannot listen on {address}: {reason}")]
    Listen { address: Multiaddr, reason: String },
    #[error("p2p: transport setup failed: {0}")]
    Transport(String),
    #[error("p2p: the network task has stopped")]
    Stopped,
}

enum Command {
    Send {
        to: usize,
        envelope: Envelope,
        deadline: Instant,
    },
    Connected(oneshot::Sender<Vec<usize>>),
    Flush(oneshot::Sender<()>),
}

/// Sends messages and queries the network task. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
    me: usize,
    members: usize,
}

impl Handle {
    /// This node's index in the lock.
    pub fn me(&self) -> usize {
        self.me
    }

    /// How many members the cluster has (this node included).
    pub fn members(&self) -> usize {
        self.members
    }

    /// Sends to one member, retrying until `deadline` if it is unreachable.
    pub fn send(&self, to: usize, envelope: Envelope, deadline: Instant) -> Result<(), Error> {
        self.commands
            .send(Command::Send {
                to,
                envelope,
                deadline,
            })
            .map_err(|_| Error::Stopped)
    }

    /// Sends to every other member.
    pub fn broadcast(&self, envelope: Envelope, deadline: Instant) -> Result<(), Error> {
        for to in (0..self.members).filter(|i| *i != self.me) {
            self.send(to, envelope.clone(), deadline)?;
        }
        Ok(())
    }

    /// Members currently connected (those cut off for going over their budget excepted).
    pub async fn connected(&self) -> Result<Vec<usize>, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Connected(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Waits until every message handed to this node's network has been
    /// answered or has expired: a process sends its last messages, flushes,
    /// then exits without cutting them off.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Flush(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}

struct Pending {
    to: usize,
    envelope: Envelope,
    deadline: Instant,
    attempts: u32,
    /// When it was last handed to the transport: monotonic, and unix ms.
    sent_at: Option<(Instant, u64)>,
}

type Behaviour = request_response::Behaviour<codec::EnvelopeCodec>;

/// Starts the network task; returns the handle and the stream of incoming messages.
pub async fn start(config: Config) -> Result<(Handle, mpsc::UnboundedReceiver<Incoming>), Error> {
    let local = config.keypair.public().to_peer_id();
    let me = config
        .members
        .iter()
        .position(|m| m.peer_id == local)
        .ok_or(Error::NotAMember(local))?;
    let max = config.max_message_bytes;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_behaviour(|_| {
            Behaviour::with_codec(
                codec::EnvelopeCodec {
                    max_request_bytes: max,
                },
                [(PROTOCOL, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(5)),
            )
        })
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .listen_on(config.listen.clone())
        .map_err(|e| Error::Listen {
            address: config.listen.clone(),
            reason: e.to_string(),
        })?;
    for member in &config.members {
        swarm.add_peer_address(member.peer_id, member.address.clone());
    }
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (incoming_tx, incoming) = mpsc::unbounded_channel();
    let members = config.members.len();
    let now = Instant::now();
    let task = Network {
        allowances: vec![Allowance::full(&config.inbound_budget, now); members],
        budget: config.inbound_budget,
        on_refused: config.on_refused,
        on_ack: config.on_ack,
        swarm,
        me,
        members: config.members,
        incoming: incoming_tx,
        in_flight: HashMap::new(),
        retries: Vec::new(),
        redial: HashMap::new(),
        on_sent: config.on_sent,
        flushes: Vec::new(),
    };
    tokio::spawn(task.run(command_rx));
    Ok((
        Handle {
            commands,
            me,
            members,
        },
        incoming,
    ))
}

struct Network {
    swarm: Swarm<Behaviour>,
    me: usize,
    members: Vec<Member>,
    incoming: mpsc::UnboundedSender<Incoming>,
    in_flight: HashMap<request_response::OutboundRequestId, Pending>,
    retries: Vec<(Instant, Pending)>,
    /// Next redial time and current backoff per member index.
    redial: HashMap<usize, (Instant, Duration)>,
    on_sent: Option<SentHook>,
    budget: InboundBudget,
    allowances: Vec<Allowance>,
    on_refused: Option<RefusedHook>,
    on_ack: Option<AckHook>,
    /// Waiting for every pending message to be answered or to expire.
    flushes: Vec<oneshot::Sender<()>>,
}

impl Network {
    fn answer_flushes(&mut self) {
        if self.in_flight.is_empty() && self.retries.is_empty() {
            for waiter in self.flushes.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn refused(&self, from: usize, reason: &'static str) {
        if let Some(hook) = &self.on_refused {
            hook(from, reason);
        }
    }

    fn index_of(&self, peer: &PeerId) -> Option<usize> {
        self.members.iter().position(|m| m.peer_id == *peer)
    }

    fn dispatch(&mut self, mut pending: Pending) {
        if Instant::now() >= pending.deadline {
            tracing::debug!(
                to = pending.to,
                slot = pending.envelope.slot,
                "dropping expired message"
            );
            return;
        }
        if self.allowances[pending.to].banned(Instant::now()) {
            return self.retry_later(pending); // not dialled while cut off
        }
        if let Some(hook) = &self.on_sent {
            hook(pending.envelope.topic, pending.envelope.encoded_len());
        }
        let peer = self.members[pending.to].peer_id;
        pending.sent_at = Some((Instant::now(), unix_ms()));
        let id = self
            .swarm
            .behaviour_mut()
            .send_request(&peer, pending.envelope.clone());
        self.in_flight.insert(id, pending);
    }

    fn retry_later(&mut self, mut pending: Pending) {
        pending.attempts += 1;
        let backoff = RETRY_BASE
            .saturating_mul(1 << pending.attempts.min(5))
            .min(MAX_RETRY);
        let at = Instant::now() + backoff;
        if at < pending.deadline {
            self.retries.push((at, pending));
        } else {
            tracing::debug!(
                to = pending.to,
                slot = pending.envelope.slot,
                "message expired before delivery"
            );
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Send { to, envelope, deadline }) => {
                        if to < self.members.len() && to != self.me {
                            self.dispatch(Pending {
                                to,
                                envelope,
                                deadline,
                                attempts: 0,
                                sent_at: None,
                            });
                        }
                    }
                    Some(Command::Connected(reply)) => {
                        // A cut-off member that redials is connected until its
                        // connection is closed on arrival: not counted.
                        let now = Instant::now();
                        let connected = (0..self.members.len())
                            .filter(|i| *i != self.me && self.swarm.is_connected(&self.members[*i].peer_id))
                            .filter(|i| !self.allowances[*i].banned(now))
                            .collect();
                        let _ = reply.send(connected);
                    }
                    Some(Command::Flush(reply)) => {
                        self.flushes.push(reply);
                        self.answer_flushes();
                    }
                },
                event = self.swarm.select_next_some() => {
                    self.on_event(event);
                    self.answer_flushes();
                }
                _ = tick.tick() => {
                    self.on_tick();
                    self.answer_flushes();
                }
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retries = later;
        for (_, pending) in due {
            self.dispatch(pending);
        }
        for index in (0..self.members.len()).filter(|i| *i != self.me) {
            let peer = self.members[index].peer_id;
            if self.swarm.is_connected(&peer) {
                self.redial.remove(&index);
                continue;
            }
            if self.allowances[index].banned(now) {
                continue;
            }
            let (next, backoff) = *self.redial.entry(index).or_insert((now, RETRY_BASE));
            if now >= next {
                let _ = self.swarm.dial(self.members[index].address.clone());
                let backoff = backoff.saturating_mul(2).min(REDIAL_MAX);
                self.redial.insert(index, (now + backoff, backoff));
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<request_response::Event<Envelope, Ack>>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => match self.index_of(&peer_id) {
                Some(index) if self.allowances[index].banned(Instant::now()) => {
                    tracing::debug!(
                        peer = index,
                        "closing a connection from a peer cut off for going over its budget"
                    );
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
                Some(index) => {
                    tracing::debug!(peer = index, "connected");
                    self.redial.remove(&index);
                }
                None => {
                    tracing::warn!(%peer_id, "closing a connection from a peer outside the cluster lock");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
            },
            SwarmEvent::Behaviour(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        let ack = match self.index_of(&peer) {
                            None => Ack::answer(false, Some("not a cluster member".into())),
                            Some(from) if request.version != PROTOCOL_VERSION => {
                                tracing::warn!(
                                    peer = from,
                                    version = request.version,
                                    "message with an unsupported version"
                                );
                                self.refused(from, "unsupported_version");
                                Ack::answer(
                                    false,
                                    Some(format!("unsupported version {}", request.version)),
                                )
                            }
                            Some(from) if self.allowances[from].banned(Instant::now()) => {
                                let _ = self.swarm.disconnect_peer_id(peer);
                                Ack::answer(
                                    false,
                                    Some(
                                        "cut off for going over this peer's message budget".into(),
                                    ),
                                )
                            }
                            Some(from) => {
                                let now = Instant::now();
                                let bytes = request.encoded_len();
                                match self.allowances[from].charge(&self.budget, bytes, now) {
                                    Spent::Accepted => {
                                        let _ = self.incoming.send(Incoming {
                                            from,
                                            envelope: request,
                                        });
                                        Ack::answer(true, None)
                                    }
                                    spent => {
                                        tracing::debug!(
                                            peer = from,
                                            slot = request.slot,
                                            "message over the peer's budget dropped"
                                        );
                                        self.refused(from, "rate_limited");
                                        if spent == Spent::CutOff {
                                            self.refused(from, "disconnected_over_budget");
                                            let _ = self.swarm.disconnect_peer_id(peer);
                                        }
                                        Ack::answer(
                                            false,
                                            Some("over this peer's message budget".into()),
                                        )
                                    }
                                }
                            }
                        };
                        let _ = self.swarm.behaviour_mut().send_response(channel, ack);
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(pending) = self.in_flight.remove(&request_id) {
                            if let (Some(hook), Some((at, at_ms))) = (&self.on_ack, pending.sent_at)
                            {
                                let rtt = at.elapsed();
                                let midpoint = at_ms as i64 + rtt.as_millis() as i64 / 2;
                                hook(pending.to, rtt, response.time_ms as i64 - midpoint);
                            }
                            if !response.accepted {
                                tracing::warn!(to = pending.to, reason = ?response.reason, "peer refused a message");
                            }
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => {
                if let Some(pending) = self.in_flight.remove(&request_id) {
                    tracing::debug!(to = pending.to, %error, "send failed; will retry");
                    self.retry_later(pending);
                }
            }
            SwarmEvent::Behaviour(request_response::Event::InboundFailure {
                peer, error, ..
            }) => {
                tracing::warn!(%peer, %error, "bad inbound message");
                // Oversized or undecodable: the codec refused it before it became a request.
                if let (Some(from), request_response::InboundFailure::Io(_)) =
                    (self.index_of(&peer), &error)
                {
                    self.refused(from, "malformed");
                }
            }
            _ => {}
        }
    }
}

/// Reads a node's libp2p key as `dvnode create cluster` writes it (hex protobuf).
pub fn load_keypair(path: &std::path::Path) -> Result<Keypair, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bytes =
        hex::decode(text.trim()).map_err(|e| format!("{}: not hex: {e}", path.display()))?;
    Keypair::from_protobuf_encoding(&bytes)
        .map_err(|e| format!("{}: not a libp2p key: {e}", path.display()))
}
