//! The partial-signature exchange and combiner stage: partials from this
//! node (its signer, or its validator client in middleware mode) and from
//! peers go into the [`ParSigStore`]; combined signatures go to whoever waits
//! for them.
//!
//! It runs as its own task, apart from consensus: verifying partials and
//! combined signatures is pairing work (milliseconds per signature), and a
//! slot with many sync committee contributions would otherwise hold up the
//! consensus messages queued behind it.

use crate::cpu::cpu_bound;
use crate::duty::{Duty, DutyType};
use crate::metrics::{Metrics, Participation};
use crate::parsig::{Combined, ParSigStore, Partial};
use crate::workflow::CurrentSlot;
use dv_crypto::{par_map, PartialSignature, Signature};
use dv_types::{PublicKeyBytes, Root, SignatureBytes, Slot};
use p2p::{Envelope, Topic};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Selection proofs (and exits) further ahead than this many slots are
/// dropped: next epoch's selection proofs are the furthest a peer sends
/// (mainnet epochs are 32 slots).
const MAX_PARTIALS_AHEAD: u64 = 96;
/// Every other duty's partials are signed in its own slot: a peer's clock
/// may run this far ahead.
const MAX_SAME_SLOT_AHEAD: u64 = 2;

/// How many slots ahead a peer may send partials of `kind`.
fn ahead_allowed(kind: DutyType) -> u64 {
    match kind {
        DutyType::Selection | DutyType::SyncSelection | DutyType::Exit => MAX_PARTIALS_AHEAD,
        _ => MAX_SAME_SLOT_AHEAD,
    }
}
/// Partials and combined signatures of voluntary exits are kept this many
/// slots (an exit may combine well after its first partial).
const KEEP_EXIT_SLOTS: u64 = 64;
/// Those of every other duty, this many: no duty waits for its signatures
/// past the start of the second slot after its own (an attestation's
/// deadline), and a slot at mainnet scale leaves thousands of them.
const KEEP_SLOTS: u64 = 3;

/// The oldest slot whose partials and combined signatures of `kind` are kept.
fn kept_from(kind: DutyType, current: Slot) -> Slot {
    let kept = match kind {
        DutyType::Exit => KEEP_EXIT_SLOTS,
        _ => KEEP_SLOTS,
    };
    current.saturating_sub(kept)
}
/// Peers' partial-signature messages held, unread, for duties this node has
/// not signed yet: per peer, at most this many, and this many bytes. (One
/// message per duty and peer is honest; next epoch's selection proofs are
/// the most held at once, 32 messages.)
const MAX_HELD_MESSAGES_PER_PEER: usize = 1024;
const MAX_HELD_BYTES_PER_PEER: usize = 32 << 20;

/// Inputs taken off the queue at once (bounds one batch verification).
const MAX_INPUTS_AT_ONCE: usize = 512;

/// Partials of one validator set over one signing root, and what came of them.
#[derive(Debug, Default)]
pub struct Exchanged {
    /// Combined and verified signatures, by validator.
    pub signatures: HashMap<PublicKeyBytes, Signature>,
}

/// The partial signatures of one node for one duty and signing root. On the
/// wire: the root (32 bytes), then per partial the validator key (48), the
/// share index (u64, big-endian) and the signature (96).
#[derive(Debug, PartialEq)]
pub struct PartialsMessage {
    pub root: Root,
    /// (validator, share index, partial signature)
    pub partials: Vec<(PublicKeyBytes, u64, SignatureBytes)>,
}

const PARTIAL_RECORD_BYTES: usize = 48 + 8 + 96;

impl PartialsMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.partials.len() * PARTIAL_RECORD_BYTES);
        out.extend_from_slice(self.root.as_slice());
        for (validator, index, signature) in &self.partials {
            out.extend_from_slice(&validator.0);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&signature.0);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (root, records) = bytes
            .split_at_checked(32)
            .ok_or_else(|| format!("{} bytes, shorter than a root", bytes.len()))?;
        if records.len() % PARTIAL_RECORD_BYTES != 0 {
            return Err(format!(
                "{} bytes of partials, not a whole number of {PARTIAL_RECORD_BYTES}-byte records",
                records.len()
            ));
        }
        let partials = records
            .chunks_exact(PARTIAL_RECORD_BYTES)
            .map(|record| {
                let (validator, rest) = record.split_at(48);
                let (index, signature) = rest.split_at(8);
                let mut index_bytes = [0u8; 8];
                index_bytes.copy_from_slice(index);
                let mut key = [0u8; 48];
                key.copy_from_slice(validator);
                let mut sig = [0u8; 96];
                sig.copy_from_slice(signature);
                (
                    PublicKeyBytes(key),
                    u64::from_be_bytes(index_bytes),
                    SignatureBytes(sig),
                )
            })
            .collect();
        Ok(Self {
            root: Root::from_slice(root),
            partials,
        })
    }
}

pub(crate) enum ExchangeInput {
    /// This node's partials, to send to every peer and wait on.
    Own(ExchangeWaiter),
    /// A peer's partial-signatures message.
    Peer(Duty, usize, Vec<u8>),
    /// Asks for a signature combined here (still kept).
    Combined(
        Duty,
        PublicKeyBytes,
        Root,
        oneshot::Sender<Option<Signature>>,
    ),
}

/// Peers' partials for duties this node has not signed yet, kept unread:
/// a partial binds only a signing root, so a duty's partials are taken only
/// over the roots this node itself signs for that duty, and until it signs
/// they wait here (bounded per peer).
#[derive(Default)]
struct Held {
    by_duty: HashMap<Duty, Vec<(usize, Vec<u8>)>>,
    /// Messages and bytes held, per peer.
    by_peer: HashMap<usize, (usize, usize)>,
}

impl Held {
    /// Keeps `payload` from `from` for `duty`; false when over that peer's bounds.
    fn hold(&mut self, duty: Duty, from: usize, payload: Vec<u8>) -> bool {
        let (messages, bytes) = self.by_peer.entry(from).or_default();
        if *messages >= MAX_HELD_MESSAGES_PER_PEER
            || *bytes + payload.len() > MAX_HELD_BYTES_PER_PEER
        {
            return false;
        }
        *messages += 1;
        *bytes += payload.len();
        self.by_duty.entry(duty).or_default().push((from, payload));
        true
    }

    /// The messages held for `duty` over `root`, taken out.
    fn take(&mut self, duty: Duty, root: &Root) -> Vec<(usize, Vec<u8>)> {
        let Some(held) = self.by_duty.get_mut(&duty) else {
            return Vec::new();
        };
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(held)
            .into_iter()
            .partition(|(_, payload)| payload.get(..32) == Some(root.as_slice()));
        *held = kept;
        for (from, payload) in &taken {
            self.release(*from, payload.len());
        }
        taken
    }

    fn release(&mut self, from: usize, len: usize) {
        if let Some((messages, bytes)) = self.by_peer.get_mut(&from) {
            *messages = messages.saturating_sub(1);
            *bytes = bytes.saturating_sub(len);
        }
    }

    /// Forgets the duties `keep` says not to keep; the (duty, sender) of every message dropped.
    fn retain(&mut self, keep: impl Fn(&Duty) -> bool) -> Vec<(Duty, usize)> {
        let dropped: Vec<Duty> = self.by_duty.keys().filter(|d| !keep(d)).copied().collect();
        let mut unread = Vec::new();
        for duty in dropped {
            for (from, payload) in self.by_duty.remove(&duty).unwrap_or_default() {
                self.release(from, payload.len());
                unread.push((duty, from));
            }
        }
        unread
    }
}

/// One peer message's partials, parsed.
struct PeerPartials {
    duty: Duty,
    root: Root,
    from: usize,
    partials: Vec<Partial>,
}

pub(crate) struct ExchangeWaiter {
    pub duty: Duty,
    pub root: Root,
    pub own: Vec<Partial>,
    /// Whether the caller verified `own` against this node's share keys.
    pub own_verified: bool,
    pub wanted: HashSet<PublicKeyBytes>,
    pub got: HashMap<PublicKeyBytes, Signature>,
    pub deadline: Instant,
    pub reply: Option<oneshot::Sender<Exchanged>>,
}

/// How each peer took part in the duties this node signed: per duty,
/// whether this node's signatures were all combined yet, and how each
/// peer's first partials fared.
#[derive(Default)]
struct PeerParticipation {
    by_duty: HashMap<Duty, (bool, Vec<Option<Participation>>)>,
}

impl PeerParticipation {
    fn begin(&mut self, duty: Duty, members: usize) {
        self.by_duty
            .entry(duty)
            .or_insert_with(|| (false, vec![None; members]));
    }

    /// Notes `peer`'s partials for `duty` (late if the duty was settled):
    /// what to count, the first time only.
    fn note(&mut self, duty: Duty, peer: usize, how: Participation) -> Option<Participation> {
        let (settled, peers) = self.by_duty.get_mut(&duty)?;
        let slot = peers.get_mut(peer)?;
        if slot.is_some() {
            return None;
        }
        let how = match (how, *settled) {
            (Participation::OnTime, true) => Participation::Late,
            (how, _) => how,
        };
        *slot = Some(how);
        Some(how)
    }

    fn settle(&mut self, duty: Duty) {
        if let Some((settled, _)) = self.by_duty.get_mut(&duty) {
            *settled = true;
        }
    }

    /// Forgets the duties not `kept`; the peers (other than `me`) that sent
    /// nothing for them.
    fn retain(&mut self, kept: impl Fn(&Duty) -> bool, me: usize) -> Vec<(Duty, usize)> {
        let mut missing = Vec::new();
        self.by_duty.retain(|duty, (_, peers)| {
            if kept(duty) {
                return true;
            }
            for (peer, how) in peers.iter().enumerate() {
                if how.is_none() && peer != me {
                    missing.push((*duty, peer));
                }
            }
            false
        });
        missing
    }
}

pub(crate) struct ExchangeTask<C: CurrentSlot> {
    net: p2p::Handle,
    inputs: mpsc::UnboundedReceiver<ExchangeInput>,
    clock: C,
    parsig: ParSigStore,
    /// Signatures combined from peers' partials before (or after) this node asked.
    combined: HashMap<(Duty, PublicKeyBytes, Root), Combined>,
    waiters: Vec<ExchangeWaiter>,
    /// The roots this node signs, per duty (from its own partials).
    signing: HashMap<Duty, HashSet<Root>>,
    held: Held,
    participation: PeerParticipation,
    metrics: std::sync::Arc<Metrics>,
}

impl<C: CurrentSlot> ExchangeTask<C> {
    pub fn new(
        net: p2p::Handle,
        parsig: ParSigStore,
        clock: C,
        metrics: std::sync::Arc<Metrics>,
    ) -> (Self, mpsc::UnboundedSender<ExchangeInput>) {
        let (tx, inputs) = mpsc::unbounded_channel();
        let task = Self {
            net,
            inputs,
            clock,
            parsig,
            combined: HashMap::new(),
            waiters: Vec::new(),
            signing: HashMap::new(),
            held: Held::default(),
            participation: PeerParticipation::default(),
            metrics,
        };
        (task, tx)
    }

    /// Runs until every sender of inputs is dropped.
    pub async fn run(mut self) {
        let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(first) => {
                        // Whatever queued up meanwhile is handled together:
                        // peers' partials are then checked in one batch.
                        let mut inputs = vec![first];
                        while inputs.len() < MAX_INPUTS_AT_ONCE {
                            match self.inputs.try_recv() {
                                Ok(input) => inputs.push(input),
                                Err(_) => break,
                            }
                        }
                        self.handle(inputs);
                    }
                    None => return,
                },
                _ = housekeeping.tick() => self.expire(),
            }
        }
    }

    fn handle(&mut self, inputs: Vec<ExchangeInput>) {
        let mut from_peers = Vec::new();
        let mut to_read: Vec<(Duty, usize, Vec<u8>)> = Vec::new();
        for input in inputs {
            match input {
                ExchangeInput::Own(waiter) => {
                    let (duty, root) = (waiter.duty, waiter.root);
                    self.signing.entry(duty).or_default().insert(root);
                    self.participation.begin(duty, self.net.members());
                    self.start(waiter);
                    for (from, payload) in self.held.take(duty, &root) {
                        to_read.push((duty, from, payload));
                    }
                }
                ExchangeInput::Peer(duty, from, payload) => {
                    if let Some(payload) = self.bind_to_own_root(duty, from, payload) {
                        to_read.push((duty, from, payload));
                    }
                }
                ExchangeInput::Combined(duty, validator, root, reply) => {
                    let found = self
                        .combined
                        .get(&(duty, validator, root))
                        .map(|c| c.signature);
                    let _ = reply.send(found);
                }
            }
        }
        for (duty, from, payload) in to_read {
            // Decoding checks each signature's subgroup: CPU work.
            if let Some(mut m) = cpu_bound(|| self.parse_peer(duty, from, &payload)) {
                // Bounds first, so that nothing over them costs a verification.
                let mut refused = Vec::new();
                m.partials = self.parsig.admit(duty, m.root, &m.partials, &mut refused);
                self.log_refused(duty, Some(from), refused);
                from_peers.push(m);
            }
        }
        if from_peers.is_empty() {
            return;
        }
        // One batch check over all of them (one Miller loop per partial, one
        // final exponentiation); if it fails, each message is checked on its
        // own so that the bad partials are named and only they are dropped.
        let parsig = &self.parsig;
        let groups: Vec<(Root, &[Partial])> = from_peers
            .iter()
            .map(|m| (m.root, m.partials.as_slice()))
            .collect();
        let all_valid = cpu_bound(|| parsig.verify_all(&groups));
        for m in &from_peers {
            let refused = cpu_bound(|| self.parsig.add(m.duty, m.root, &m.partials, all_valid));
            let invalid = refused
                .iter()
                .any(|e| matches!(e, crate::parsig::ParSigError::InvalidPartial { .. }));
            if invalid || !m.partials.is_empty() {
                let how = match invalid {
                    true => Participation::Invalid,
                    false => Participation::OnTime,
                };
                if let Some(how) = self.participation.note(m.duty, m.from, how) {
                    self.metrics
                        .peer_partials(m.duty.slot, m.duty.kind.name(), m.from, how);
                }
            }
            self.log_refused(m.duty, Some(m.from), refused);
        }
        self.combine_ready();
    }

    /// Counts and (rate-limited) logs what `peer` sent for `duty` that was refused.
    fn misbehaved(
        &self,
        peer: usize,
        duty: Duty,
        reason: &'static str,
        detail: &dyn std::fmt::Display,
    ) {
        self.metrics
            .peer_misbehaved(peer, reason, &format_args!("{duty}: {detail}"));
    }

    /// Logs refused partials; a peer's count against it in the misbehaviour metric.
    fn log_refused(
        &self,
        duty: Duty,
        from: Option<usize>,
        refused: Vec<crate::parsig::ParSigError>,
    ) {
        for e in refused {
            match from {
                Some(peer) => self.misbehaved(peer, duty, e.label(), &e),
                None => tracing::error!(%duty, "own partial signature dropped: {e}"),
            }
        }
    }

    /// A peer's message, to read now if it signs a root this node signs for
    /// `duty`, else held unread until this node signs that root (dropped
    /// when the duty is forgotten: see [`Self::expire`]).
    fn bind_to_own_root(&mut self, duty: Duty, from: usize, payload: Vec<u8>) -> Option<Vec<u8>> {
        let Some(root) = payload.get(..32).map(Root::from_slice) else {
            return Some(payload); // too short for a root: read, and refused as malformed
        };
        let signed_here = self.signing.get(&duty).is_some_and(|r| r.contains(&root));
        // Outside the window: read at once, to be refused (and counted if ahead) there.
        if signed_here || peer_slot_window(duty, self.clock.current_slot()).is_err() {
            return Some(payload);
        }
        if !self.held.hold(duty, from, payload) {
            let detail = "over its bound of partials held for roots not signed here (yet)";
            self.misbehaved(from, duty, "over_held_limit", &detail);
        }
        None
    }

    /// A peer's partial-signatures message, parsed; `None` (logged) if unusable.
    fn parse_peer(&self, duty: Duty, from: usize, payload: &[u8]) -> Option<PeerPartials> {
        if let Err(why) = peer_slot_window(duty, self.clock.current_slot()) {
            // Late messages from a slow peer are not a fault; early ones past the window are.
            if duty.slot > self.clock.current_slot() {
                self.misbehaved(from, duty, "duty_out_of_window", &why);
            } else {
                tracing::debug!(peer = from, %duty, "partial signatures dropped: {why}");
            }
            return None;
        }
        let message = match PartialsMessage::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                let detail = format!("malformed partial signatures message: {e}");
                self.misbehaved(from, duty, "malformed", &detail);
                return None;
            }
        };
        let share = from as u64 + 1;
        let claimed: Vec<(PublicKeyBytes, SignatureBytes)> = message
            .partials
            .into_iter()
            .filter_map(|(validator, index, sig)| {
                if index != share {
                    let detail =
                        format!("partial for share {index} from the holder of share {share}");
                    self.misbehaved(from, duty, "wrong_share", &detail);
                    return None;
                }
                Some((validator, sig))
            })
            .collect();
        // Decoding checks each point's subgroup: spread over the cores.
        let decoded = par_map(&claimed, |(validator, sig)| {
            PartialSignature::from_bytes(share, &sig.0).map(|signature| Partial {
                validator: *validator,
                signature,
            })
        });
        let mut partials = Vec::with_capacity(decoded.len());
        for result in decoded {
            match result {
                Ok(partial) => partials.push(partial),
                Err(e) => {
                    let detail = format!("bad partial signature: {e}");
                    self.misbehaved(from, duty, "malformed", &detail)
                }
            }
        }
        Some(PeerPartials {
            duty,
            root: message.root,
            from,
            partials,
        })
    }

    /// This node's own partials: stored, and combined with what is there.
    fn store_own(&mut self, duty: Duty, root: Root, partials: &[Partial], verified: bool) {
        let parsig = &mut self.parsig;
        let refused = cpu_bound(|| parsig.add(duty, root, partials, verified));
        self.log_refused(duty, None, refused);
        self.combine_ready();
    }

    /// Combines every set at the threshold and hands the signatures out.
    fn combine_ready(&mut self) {
        let parsig = &mut self.parsig;
        let (combined, errors) = cpu_bound(|| parsig.combine_ready());
        for e in errors {
            tracing::error!("combining partial signatures: {e}");
        }
        for c in combined {
            self.metrics.combined(c.duty.slot, c.duty.kind.name(), 1);
            self.combined.insert((c.duty, c.validator, c.root), c);
        }
        self.settle_waiters();
    }

    fn start(&mut self, waiter: ExchangeWaiter) {
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
        let payload = message.encode();
        let envelope = Envelope::new(
            waiter.duty.slot,
            waiter.duty.kind.code(),
            Topic::PartialSignatures,
            payload,
        );
        let _ = self.net.broadcast(envelope, waiter.deadline);
        dv_fault::reached(dv_fault::AFTER_PARTIALS_SENT);
        let (duty, root, own) = (waiter.duty, waiter.root, waiter.own.clone());
        let verified = waiter.own_verified;
        self.waiters.push(waiter);
        self.store_own(duty, root, &own, verified);
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
        let mut settled = Vec::new();
        self.waiters.retain_mut(|w| {
            if w.got.len() < w.wanted.len() {
                return true;
            }
            settled.push(w.duty);
            if let Some(reply) = w.reply.take() {
                let _ = reply.send(Exchanged {
                    signatures: std::mem::take(&mut w.got),
                });
            }
            false
        });
        for duty in settled {
            self.participation.settle(duty);
        }
    }

    /// Answers waiters that ran out of time and forgets old duties.
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
        let current = self.clock.current_slot();
        let kept = |duty: &Duty| duty.slot >= kept_from(duty.kind, current);
        self.combined.retain(|(duty, _, _), _| kept(duty));
        // Held partials over a root this node never signed for their duty
        // (it signed others) were never read: a peer's, not a late node's.
        // Sync messages excepted: each node signs its own beacon node's head.
        for (duty, from) in self.held.retain(kept) {
            if duty.kind != DutyType::SyncMessage && self.signing.contains_key(&duty) {
                let detail = "partials over a root this node did not sign for the duty";
                self.misbehaved(from, duty, "root_mismatch", &detail);
            }
        }
        self.signing.retain(|duty, _| kept(duty));
        for (duty, peer) in self.participation.retain(kept, self.net.me()) {
            self.metrics
                .peer_partials(duty.slot, duty.kind.name(), peer, Participation::Missing);
        }
        self.parsig.retain(kept);
        let held: usize = self
            .held
            .by_peer
            .values()
            .map(|(messages, _)| messages)
            .sum();
        self.metrics.exchange_queues(held, self.waiters.len());
    }
}

/// Duties whose partials a peer may send: up to [`ahead_allowed`] slots
/// ahead, and no older than what is kept ([`kept_from`]): an older
/// one would be verified and stored only to be pruned, so a peer could make
/// this node do that work without end.
fn peer_slot_window(duty: Duty, current: Slot) -> Result<(), &'static str> {
    if duty.slot > current.saturating_add(ahead_allowed(duty.kind)) {
        return Err("a duty too far ahead");
    }
    if duty.slot < kept_from(duty.kind, current) {
        return Err("a duty older than the slots kept");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_messages_round_trip_and_malformed_ones_are_errors() {
        let message = PartialsMessage {
            root: Root::repeat_byte(7),
            partials: vec![
                (PublicKeyBytes([1; 48]), 2, SignatureBytes([3; 96])),
                (PublicKeyBytes([4; 48]), u64::MAX, SignatureBytes([5; 96])),
            ],
        };
        let bytes = message.encode();
        assert_eq!(bytes.len(), 32 + 2 * PARTIAL_RECORD_BYTES);
        assert_eq!(PartialsMessage::decode(&bytes).unwrap(), message);
        let empty = PartialsMessage {
            root: Root::ZERO,
            partials: Vec::new(),
        };
        assert_eq!(PartialsMessage::decode(&empty.encode()).unwrap(), empty);
        for cut in [0, 31, 33, bytes.len() - 1] {
            assert!(
                PartialsMessage::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn held_partials_are_bounded_per_peer_and_released_by_root() {
        let duty = Duty::new(7, DutyType::Attester);
        let (mine, theirs) = (Root::repeat_byte(1), Root::repeat_byte(2));
        let message = |root: Root| {
            let mut m = root.as_slice().to_vec();
            m.extend([0u8; 152]);
            m
        };
        let mut held = Held::default();
        for _ in 0..MAX_HELD_MESSAGES_PER_PEER / 2 {
            assert!(held.hold(duty, 1, message(mine)));
            assert!(held.hold(duty, 1, message(theirs)));
        }
        assert!(!held.hold(duty, 1, message(mine)), "over the peer's count");
        assert!(
            held.hold(duty, 2, message(mine)),
            "another peer has its own bound"
        );
        assert!(
            !held.hold(duty, 3, vec![0; MAX_HELD_BYTES_PER_PEER + 1]),
            "over the bytes"
        );
        let taken = held.take(duty, &mine);
        assert_eq!(taken.len(), MAX_HELD_MESSAGES_PER_PEER / 2 + 1);
        assert!(taken.iter().all(|(_, m)| m[..32] == *mine.as_slice()));
        assert!(
            held.hold(duty, 1, message(mine)),
            "taking released the bound"
        );
        let unread = held.retain(|_| false);
        assert_eq!(unread.len(), MAX_HELD_MESSAGES_PER_PEER / 2 + 1);
        assert_eq!(held.by_peer.get(&1), Some(&(0, 0)));
    }

    #[test]
    fn peers_partials_are_taken_only_for_the_slots_kept() {
        let current = 1000;
        let at = |slot, kind| peer_slot_window(Duty::new(slot, kind), current);
        for (kind, kept, ahead) in [
            (DutyType::Attester, KEEP_SLOTS, MAX_SAME_SLOT_AHEAD),
            (DutyType::SyncMessage, KEEP_SLOTS, MAX_SAME_SLOT_AHEAD),
            (DutyType::Selection, KEEP_SLOTS, MAX_PARTIALS_AHEAD),
            (DutyType::Exit, KEEP_EXIT_SLOTS, MAX_PARTIALS_AHEAD),
        ] {
            assert!(at(current, kind).is_ok());
            assert!(at(current - kept, kind).is_ok(), "{kind:?}");
            assert!(at(current - kept - 1, kind).is_err(), "{kind:?}");
            assert!(at(current + ahead, kind).is_ok(), "{kind:?}");
            assert!(at(current + ahead + 1, kind).is_err(), "{kind:?}");
        }
        let early = |slot| peer_slot_window(Duty::new(slot, DutyType::Attester), 3);
        assert!(early(0).is_ok(), "early in the chain");
        assert!(early(u64::MAX).is_err());
    }
}
