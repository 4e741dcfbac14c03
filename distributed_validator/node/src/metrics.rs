//! Prometheus metrics, served as text on `GET /metrics` at `--metrics ADDR`
//! (with the health endpoints of [`crate::health`]).
//!
//! Every family is named `dv_*` and labelled only with `duty`, `stage`,
//! `reason`, `peer` (an operator's index in the cluster lock), `endpoint`
//! and `node` (a beacon node): bounded label sets, whatever the number of
//! validators. `--metrics-per-validator` adds one family keyed by validator
//! for small clusters.

use crate::tracker::Reason;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, linear_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Labels = Vec<(&'static str, String)>;
/// A peer (its index in the lock) and a misbehaviour reason.
type PeerReason = (usize, &'static str);
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;
type CounterF64 = Counter<f64, AtomicU64>;
type GaugeF64 = Gauge<f64, AtomicU64>;

fn latency_histogram() -> Histogram {
    // 5 ms .. ~20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

fn fast_histogram() -> Histogram {
    // 0.1 ms .. ~3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

fn round_histogram() -> Histogram {
    Histogram::new(linear_buckets(1.0, 1.0, 8))
}

fn slots_histogram() -> Histogram {
    Histogram::new(linear_buckets(1.0, 1.0, 8))
}

/// Duty outcomes kept for the health check ("recent duties failing") and
/// the status page's timeline.
const DUTY_EVENTS_KEPT: usize = 4096;

/// How some of a duty's items ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The beacon node accepted them.
    Submitted,
    /// A block carried them.
    Included,
    Failed(Reason),
}

impl Outcome {
    /// `submitted`, `included`, or the failure reason.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Submitted => "submitted",
            Outcome::Included => "included",
            Outcome::Failed(reason) => reason.as_str(),
        }
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One outcome line, as the status page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DutyEvent {
    pub slot: u64,
    pub duty: &'static str,
    pub outcome: Outcome,
    pub count: u64,
    pub detail: String,
    #[serde(skip)]
    pub at: Instant,
}

/// One step a duty passed: the status page's trace of each duty.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    pub stage: &'static str,
    /// When, in unix ms.
    pub at_ms: u64,
    pub detail: String,
}

/// Slots whose duties' steps are kept (two mainnet epochs).
const TRACED_SLOTS: u64 = 64;
/// Steps kept per duty (a duty passes about ten, plus one per peer).
const STEPS_PER_DUTY: usize = 64;

/// A duty's steps, by (slot, duty).
pub type Traces = std::collections::BTreeMap<(u64, &'static str), Vec<Step>>;

/// What one peer did, in total, for the status page.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PeerTally {
    pub on_time: u64,
    pub late: u64,
    pub missing: u64,
    pub invalid: u64,
    /// Decisions whose quorum of commits had the peer's.
    pub decisions: u64,
    /// Messages refused from it.
    pub misbehaviour: u64,
}

pub struct Metrics {
    registry: Registry,
    submitted: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    included: Family<Labels, Counter>,
    inclusion_delay: HistogramFamily,
    duty_latency: HistogramFamily,
    stage_latency: HistogramFamily,
    combined: Family<Labels, Counter>,
    decided_round: HistogramFamily,
    decision_time: HistogramFamily,
    consensus_participation: Family<Labels, Counter>,
    peer_partials: Family<Labels, Counter>,
    peer_connected: Family<Labels, Gauge>,
    peer_rtt: HistogramFamily,
    peer_clock_offset: Family<Labels, GaugeF64>,
    /// Each peer's last clock offset (ms, theirs minus ours) and when it was learned.
    clock_offsets: Mutex<std::collections::BTreeMap<usize, (i64, Instant)>>,
    peers_connected: Gauge,
    beacon_request: HistogramFamily,
    beacon_errors: Family<Labels, Counter>,
    slashing_db: HistogramFamily,
    queue_depth: Family<Labels, Gauge>,
    p2p_sent_messages: Family<Labels, Counter>,
    p2p_sent_bytes: Family<Labels, Counter>,
    peer_misbehaviour: Family<Labels, Counter>,
    per_validator: Option<Family<Labels, Counter>>,
    process: ProcessGauges,
    /// When each (peer, reason) was last logged, and how many since were not.
    misbehaviour_logged: Mutex<HashMap<PeerReason, (Instant, u64)>>,
    /// The last outcome lines.
    events: Mutex<VecDeque<DutyEvent>>,
    peers: Mutex<std::collections::BTreeMap<usize, PeerTally>>,
    traces: Mutex<Traces>,
}

/// The process's own figures, read from `/proc` when the metrics are served.
struct ProcessGauges {
    resident_bytes: Gauge,
    cpu_seconds: CounterF64,
    open_fds: Gauge,
    threads: Gauge,
}

/// A misbehaving peer gets one log line per reason this often (every
/// refusal is counted in `dv_peer_misbehaviour_total`): a flood must not
/// turn into a flood of log lines.
const MISBEHAVIOUR_LOG_EVERY: Duration = Duration::from_secs(10);

/// A pipeline stage whose duration is measured.
#[derive(Debug, Clone, Copy)]
pub enum Stage {
    Fetch,
    Consensus,
    Exchange,
    Submit,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Consensus => "consensus",
            Stage::Exchange => "exchange",
            Stage::Submit => "submit",
        }
    }
}

/// How a peer's partial signature for a duty this node signed fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Participation {
    /// Arrived before the duty's signatures were combined.
    OnTime,
    /// Arrived after they were combined (or after the duty ended).
    Late,
    /// Never arrived while the duty's partials were kept.
    Missing,
    /// Arrived and failed verification.
    Invalid,
}

impl Participation {
    fn name(self) -> &'static str {
        match self {
            Participation::OnTime => "on_time",
            Participation::Late => "late",
            Participation::Missing => "missing",
            Participation::Invalid => "invalid",
        }
    }
}

fn labels<const N: usize>(pairs: [(&'static str, String); N]) -> Labels {
    pairs.into_iter().collect()
}

impl Metrics {
    /// The node's metrics; `per_validator` adds `dv_validator_duties_total`
    /// keyed by validator (for small clusters only: one series per validator).
    pub fn new(per_validator: bool) -> Arc<Self> {
        let mut registry = Registry::with_prefix("dv");
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<Labels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let histogram =
            |registry: &mut Registry, name: &str, help: &str, make: fn() -> Histogram| {
                let family = HistogramFamily::new_with_constructor(make);
                registry.register(name, help, family.clone());
                family
            };
        let submitted = counter(
            &mut registry,
            "duty_submitted",
            "Duty items (one per validator) the beacon node accepted, by duty",
        );
        let failed = counter(
            &mut registry,
            "duty_failed",
            "Duty items (one per validator) that failed, by duty and reason (the taxonomy of dv_node::tracker::Reason)",
        );
        let included = counter(
            &mut registry,
            "duty_included",
            "Attestations and blocks of the cluster's validators found in a block of the chain, by duty",
        );
        let inclusion_delay = histogram(
            &mut registry,
            "duty_inclusion_delay_slots",
            "Slots from a duty's slot to the block that included it, by duty",
            slots_histogram,
        );
        let duty_latency = histogram(
            &mut registry,
            "duty_latency_seconds",
            "From the start of the duty's slot to the beacon node accepting the signed message",
            latency_histogram,
        );
        let stage_latency = histogram(
            &mut registry,
            "stage_latency_seconds",
            "Time spent in each pipeline stage per duty",
            latency_histogram,
        );
        let combined = counter(
            &mut registry,
            "combined_signatures",
            "Signatures combined from a threshold of partials and verified, by duty",
        );
        let decided_round = histogram(
            &mut registry,
            "consensus_decided_round",
            "The QBFT round in which a duty's value was decided (1: the first leader's), by duty",
            round_histogram,
        );
        let decision_time = histogram(
            &mut registry,
            "consensus_decision_seconds",
            "From the start of a consensus instance to its decision, by duty",
            latency_histogram,
        );
        let consensus_participation = counter(
            &mut registry,
            "peer_consensus_participation",
            "Decisions whose quorum of commits included the peer's, by duty and peer",
        );
        let peer_partials = counter(
            &mut registry,
            "peer_partials",
            "Peers' partial-signature messages for duties this node signed, by duty, peer and reason (on_time, late, missing, invalid)",
        );
        let peer_connected = Family::<Labels, Gauge>::default();
        registry.register(
            "peer_connected",
            "1 if the peer is connected, 0 if not, by peer",
            peer_connected.clone(),
        );
        let peer_rtt = histogram(
            &mut registry,
            "peer_rtt_seconds",
            "From handing a message to the network to the peer's answer (the message's transfer included), by peer",
            fast_histogram,
        );
        let peer_clock_offset = Family::<Labels, GaugeF64>::default();
        registry.register(
            "peer_clock_offset_seconds",
            "The peer's clock minus this node's, from its last answer (assuming a symmetric round trip), by peer",
            peer_clock_offset.clone(),
        );
        let peers_connected = Gauge::default();
        registry.register(
            "peers_connected",
            "Peers connected (the cluster's other operators)",
            peers_connected.clone(),
        );
        let beacon_request = histogram(
            &mut registry,
            "beacon_node_request_seconds",
            "Beacon node requests by endpoint (path template) and node (its position in --beacon-nodes)",
            latency_histogram,
        );
        let beacon_errors = counter(
            &mut registry,
            "beacon_node_errors",
            "Beacon node requests that failed (no answer, or an error status), by endpoint and node",
        );
        let slashing_db = histogram(
            &mut registry,
            "slashing_db_transaction_seconds",
            "Slashing-protection checks and records of decided values (one transaction each), by duty",
            fast_histogram,
        );
        let queue_depth = Family::<Labels, Gauge>::default();
        registry.register(
            "exchange_queue_depth",
            "Items waiting in the partial-signature exchange, by queue (held: peers' messages for duties not signed yet; waiting: duties waiting for partials)",
            queue_depth.clone(),
        );
        let p2p_sent_messages = counter(
            &mut registry,
            "p2p_sent_messages",
            "Messages handed to the cluster network (each delivery attempt), by topic",
        );
        let p2p_sent_bytes = counter(
            &mut registry,
            "p2p_sent_bytes",
            "Encoded bytes of the messages handed to the cluster network, by topic",
        );
        let peer_misbehaviour = counter(
            &mut registry,
            "peer_misbehaviour",
            "Messages from a peer refused or dropped, by peer (its index in the cluster lock) and reason",
        );
        let per_validator = per_validator.then(|| {
            counter(
                &mut registry,
                "validator_duties",
                "Duty items by validator, duty and outcome (submitted, included or the failure reason); only with --metrics-per-validator",
            )
        });
        let build = Family::<Labels, Gauge>::default();
        registry.register("build_info", "The node's version (always 1)", build.clone());
        build
            .get_or_create(&labels([(
                "version",
                env!("CARGO_PKG_VERSION").to_string(),
            )]))
            .set(1);
        let start_time: Gauge = Gauge::default();
        registry.register(
            "process_start_time_seconds",
            "When the process started, in unix seconds",
            start_time.clone(),
        );
        start_time.set((crate::scheduler::now_ms() / 1000) as i64);
        let process = ProcessGauges {
            resident_bytes: Gauge::<i64>::default(),
            cpu_seconds: CounterF64::default(),
            open_fds: Gauge::default(),
            threads: Gauge::default(),
        };
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the process",
            process.resident_bytes.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time of the process (user and system), in seconds",
            process.cpu_seconds.clone(),
        );
        registry.register(
            "process_open_fds",
            "Open file descriptors of the process",
            process.open_fds.clone(),
        );
        registry.register(
            "process_threads",
            "Threads of the process",
            process.threads.clone(),
        );
        Arc::new(Self {
            registry,
            submitted,
            failed,
            included,
            inclusion_delay,
            duty_latency,
            stage_latency,
            combined,
            decided_round,
            decision_time,
            consensus_participation,
            peer_partials,
            peer_connected,
            peer_rtt,
            peer_clock_offset,
            clock_offsets: Default::default(),
            peers_connected,
            beacon_request,
            beacon_errors,
            slashing_db,
            queue_depth,
            p2p_sent_messages,
            p2p_sent_bytes,
            peer_misbehaviour,
            per_validator,
            process,
            misbehaviour_logged: Default::default(),
            events: Default::default(),
            peers: Default::default(),
            traces: Default::default(),
        })
    }

    fn remember(
        &self,
        slot: u64,
        duty: &'static str,
        outcome: Outcome,
        count: u64,
        detail: String,
    ) {
        let stage = match outcome {
            Outcome::Submitted => "submitted",
            Outcome::Included => "included",
            Outcome::Failed(_) => "failed",
        };
        self.step(
            slot,
            duty,
            stage,
            false,
            format_args!("{count}: {} ({detail})", outcome.name()),
        );
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() == DUTY_EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(DutyEvent {
            slot,
            duty,
            outcome,
            count,
            detail,
            at: Instant::now(),
        });
    }

    /// Duty items that ended in the last `window`: (accepted by the beacon
    /// node, failed).
    pub fn recent_outcomes(&self, window: Duration) -> (u64, u64) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        events
            .iter()
            .filter(|e| now.duration_since(e.at) <= window)
            .fold((0, 0), |(ok, bad), e| match e.outcome {
                Outcome::Submitted => (ok + e.count, bad),
                Outcome::Failed(_) => (ok, bad + e.count),
                Outcome::Included => (ok, bad),
            })
    }

    /// The outcome lines of slots `from` on, oldest first.
    pub fn events_since(&self, from: u64) -> Vec<DutyEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().filter(|e| e.slot >= from).cloned().collect()
    }

    /// A step of `slot`'s `duty`; with `once`, only if the duty has no step
    /// of that stage yet (e.g. the first of a duty's combined signatures).
    pub fn step(
        &self,
        slot: u64,
        duty: &'static str,
        stage: &'static str,
        once: bool,
        detail: impl std::fmt::Display,
    ) {
        let mut traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        let latest = traces
            .keys()
            .next_back()
            .map_or(slot, |(s, _)| (*s).max(slot));
        while traces
            .first_key_value()
            .is_some_and(|((s, _), _)| *s + TRACED_SLOTS < latest)
        {
            traces.pop_first();
        }
        if slot + TRACED_SLOTS < latest {
            return;
        }
        let steps = traces.entry((slot, duty)).or_default();
        if steps.len() >= STEPS_PER_DUTY || (once && steps.iter().any(|s| s.stage == stage)) {
            return;
        }
        steps.push(Step {
            stage,
            at_ms: crate::scheduler::now_ms(),
            detail: detail.to_string(),
        });
    }

    /// The steps of the duties of slots `from` on.
    pub fn traces_since(&self, from: u64) -> Traces {
        let traces = self.traces.lock().unwrap_or_else(|p| p.into_inner());
        traces
            .range((from, "")..)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Each peer's tally.
    pub fn peer_tallies(&self) -> std::collections::BTreeMap<usize, PeerTally> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn tally(&self, peer: usize, f: impl FnOnce(&mut PeerTally)) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        f(peers.entry(peer).or_default());
    }

    /// Per validator (with `--metrics-per-validator`): `validator`'s `duty` ended in `outcome`.
    pub fn validator_outcome(&self, validator: &dyn std::fmt::Display, duty: &str, outcome: &str) {
        if let Some(family) = &self.per_validator {
            family
                .get_or_create(&labels([
                    ("validator", validator.to_string()),
                    ("duty", duty.to_string()),
                    ("outcome", outcome.to_string()),
                ]))
                .inc();
        }
    }

    pub fn duty_latency(&self, duty: &'static str, latency: Duration) {
        self.duty_latency
            .get_or_create(&labels([("duty", duty.to_string())]))
            .observe(latency.as_secs_f64());
    }

    /// `slot`'s `duty` spent `took` in `stage`.
    pub fn stage(&self, slot: u64, duty: &'static str, stage: Stage, took: Duration) {
        self.step(
            slot,
            duty,
            stage.name(),
            false,
            format_args!("{} ms", took.as_millis()),
        );
        self.stage_latency
            .get_or_create(&labels([
                ("duty", duty.to_string()),
                ("stage", stage.name().to_string()),
            ]))
            .observe(took.as_secs_f64());
    }

    /// `count` signatures of `slot`'s `duty` combined and verified.
    pub fn combined(&self, slot: u64, duty: &'static str, count: u64) {
        self.step(slot, duty, "combined", true, "first signature combined");
        self.combined
            .get_or_create(&labels([("duty", duty.to_string())]))
            .inc_by(count);
    }

    /// A consensus instance of `duty` decided in `round`, `took` after it started;
    /// `quorum` are the members whose commits made the decision.
    pub fn decided(
        &self,
        slot: u64,
        duty: &'static str,
        round: u64,
        took: Duration,
        quorum: &[usize],
    ) {
        self.step(
            slot,
            duty,
            "decided",
            true,
            format_args!("round {round}, commits from {quorum:?}"),
        );
        let duty_label = labels([("duty", duty.to_string())]);
        self.decided_round
            .get_or_create(&duty_label)
            .observe(round as f64);
        self.decision_time
            .get_or_create(&duty_label)
            .observe(took.as_secs_f64());
        for peer in quorum {
            self.tally(*peer, |t| t.decisions += 1);
            self.consensus_participation
                .get_or_create(&labels([
                    ("duty", duty.to_string()),
                    ("peer", peer.to_string()),
                ]))
                .inc();
        }
    }

    /// How `peer`'s partials for a `duty` this node signed fared.
    pub fn peer_partials(&self, slot: u64, duty: &'static str, peer: usize, how: Participation) {
        self.step(
            slot,
            duty,
            "peer_partials",
            false,
            format_args!("peer {peer}: {}", how.name()),
        );
        self.tally(peer, |t| match how {
            Participation::OnTime => t.on_time += 1,
            Participation::Late => t.late += 1,
            Participation::Missing => t.missing += 1,
            Participation::Invalid => t.invalid += 1,
        });
        self.peer_partials
            .get_or_create(&labels([
                ("duty", duty.to_string()),
                ("peer", peer.to_string()),
                ("reason", how.name().to_string()),
            ]))
            .inc();
    }

    /// The peers connected now, of `peers` (this node excluded).
    pub fn connected(&self, peers: impl Iterator<Item = (usize, bool)>) {
        let mut count = 0;
        for (peer, up) in peers {
            count += i64::from(up);
            self.peer_connected
                .get_or_create(&labels([("peer", peer.to_string())]))
                .set(i64::from(up));
        }
        self.peers_connected.set(count);
    }

    /// `peer` answered a message after `rtt`; its clock is `offset_ms` ahead of this node's.
    pub fn peer_answered(&self, peer: usize, rtt: Duration, offset_ms: i64) {
        let key = labels([("peer", peer.to_string())]);
        self.peer_rtt.get_or_create(&key).observe(rtt.as_secs_f64());
        self.peer_clock_offset
            .get_or_create(&key)
            .set(offset_ms as f64 / 1000.0);
        self.clock_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, (offset_ms, Instant::now()));
    }

    /// The peers' clock offsets (ms, theirs minus ours) learned in the last `within`.
    pub fn clock_offsets(&self, within: Duration) -> std::collections::BTreeMap<usize, i64> {
        self.clock_offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, (_, at))| at.elapsed() <= within)
            .map(|(peer, (offset, _))| (*peer, *offset))
            .collect()
    }

    /// A beacon node request: its path template, the node's position, how long, whether it failed.
    pub fn beacon_request(&self, endpoint: &str, node: usize, took: Duration, failed: bool) {
        let key = labels([
            ("endpoint", endpoint.to_string()),
            ("node", node.to_string()),
        ]);
        self.beacon_request
            .get_or_create(&key)
            .observe(took.as_secs_f64());
        if failed {
            self.beacon_errors.get_or_create(&key).inc();
        }
    }

    /// One slashing-protection transaction of `duty` took `took`.
    pub fn slashing_db(&self, slot: u64, duty: &'static str, took: Duration) {
        self.step(
            slot,
            duty,
            "recorded",
            true,
            format_args!("slashing database, {} ms", took.as_millis()),
        );
        self.slashing_db
            .get_or_create(&labels([("duty", duty.to_string())]))
            .observe(took.as_secs_f64());
    }

    /// The exchange's queues: messages held, duties waiting.
    pub fn exchange_queues(&self, held: usize, waiting: usize) {
        for (queue, depth) in [("held", held), ("waiting", waiting)] {
            self.queue_depth
                .get_or_create(&labels([("queue", queue.to_string())]))
                .set(depth as i64);
        }
    }

    /// A message of `topic` (its encoded size `bytes`) handed to the cluster network.
    pub fn p2p_sent(&self, topic: &'static str, bytes: usize) {
        let key = labels([("topic", topic.to_string())]);
        self.p2p_sent_messages.get_or_create(&key).inc();
        self.p2p_sent_bytes.get_or_create(&key).inc_by(bytes as u64);
    }

    /// Peer `peer` (its index in the lock) sent something refused for
    /// `reason`: counted, and logged with `detail` unless that peer's
    /// `reason` was logged in the last [`MISBEHAVIOUR_LOG_EVERY`].
    pub fn peer_misbehaved(
        &self,
        peer: usize,
        reason: &'static str,
        detail: &dyn std::fmt::Display,
    ) {
        self.tally(peer, |t| t.misbehaviour += 1);
        self.peer_misbehaviour
            .get_or_create(&labels([
                ("peer", peer.to_string()),
                ("reason", reason.to_string()),
            ]))
            .inc();
        let now = Instant::now();
        let mut logged = self
            .misbehaviour_logged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match logged.get_mut(&(peer, reason)) {
            Some((at, unlogged)) if now.duration_since(*at) < MISBEHAVIOUR_LOG_EVERY => {
                *unlogged += 1
            }
            previous => {
                let unlogged = previous.map_or(0, |(_, n)| *n);
                tracing::warn!(
                    peer,
                    reason,
                    not_logged_since_last = unlogged,
                    "peer misbehaved: {detail}"
                );
                logged.insert((peer, reason), (now, 0));
            }
        }
    }

    /// A duty ended well: the beacon node accepted its `count` items. Its
    /// outcome line (latency from its slot's start, `slot_start_ms` in unix
    /// ms) and its counters.
    pub fn duty_ok(
        &self,
        slot: u64,
        duty: &'static str,
        slot_start_ms: u64,
        what: &str,
        count: usize,
    ) {
        let latency_ms = crate::scheduler::now_ms().saturating_sub(slot_start_ms);
        self.submitted
            .get_or_create(&labels([("duty", duty.to_string())]))
            .inc_by(count as u64);
        self.remember(
            slot,
            duty,
            Outcome::Submitted,
            count as u64,
            what.to_string(),
        );
        self.duty_latency(duty, Duration::from_millis(latency_ms));
        tracing::info!(slot, duty, count, latency_ms, "duty ok: {what}");
    }

    /// `count` items of a duty failed for `reason`: the outcome line (with
    /// `detail`) and the count.
    pub fn duty_failed(
        &self,
        slot: u64,
        duty: &'static str,
        reason: Reason,
        count: usize,
        detail: impl std::fmt::Display,
    ) {
        self.failed
            .get_or_create(&labels([
                ("duty", duty.to_string()),
                ("reason", reason.as_str().to_string()),
            ]))
            .inc_by(count as u64);
        let detail = detail.to_string();
        self.remember(
            slot,
            duty,
            Outcome::Failed(reason),
            count as u64,
            detail.clone(),
        );
        tracing::error!(
            slot,
            duty,
            reason = %reason,
            count,
            "duty failed: {detail}"
        );
    }

    /// `count` items of `duty` found on chain `delay` slots after their slot.
    pub fn duty_included(&self, slot: u64, duty: &'static str, delay: u64, count: usize) {
        self.remember(
            slot,
            duty,
            Outcome::Included,
            count as u64,
            format!("in the block of slot {}", slot + delay),
        );
        let key = labels([("duty", duty.to_string())]);
        self.included.get_or_create(&key).inc_by(count as u64);
        let histogram = self.inclusion_delay.get_or_create(&key);
        for _ in 0..count {
            histogram.observe(delay as f64);
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        self.read_process();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// The process's memory, CPU time, descriptors and threads, from `/proc/self`.
    fn read_process(&self) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command (which may hold spaces), from field 3 on.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            return;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        // SAFETY: sysconf only reads a system constant.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
                libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
            )
        };
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            let total = (utime + stime) as f64 / ticks;
            let counted = self.process.cpu_seconds.get();
            if total > counted {
                self.process.cpu_seconds.inc_by(total - counted);
            }
        }
        if let Some(threads) = field(20) {
            self.process.threads.set(threads as i64);
        }
        if let Some(pages) = field(24) {
            self.process.resident_bytes.set((pages * page) as i64);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.process.open_fds.set(fds.count() as i64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_outcomes_and_latencies() {
        let m = Metrics::new(false);
        m.duty_ok(3, "attester", 0, "attestations submitted", 2);
        m.duty_failed(3, "proposer", Reason::NoConsensus, 1, "no consensus");
        m.duty_latency("attester", Duration::from_millis(40));
        m.stage(4, "proposer", Stage::Consensus, Duration::from_millis(7));
        let text = m.render();
        assert!(
            text.contains(r#"dv_duty_submitted_total{duty="attester"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"dv_duty_failed_total{duty="proposer",reason="no_consensus"} 1"#));
        assert!(text.contains(r#"dv_duty_latency_seconds_count{duty="attester"} 2"#));
        assert_eq!(m.recent_outcomes(Duration::from_secs(60)), (2, 1));
        assert!(text.contains("dv_process_resident_memory_bytes "), "{text}");
        assert!(
            !text.contains("dv_process_resident_memory_bytes 0"),
            "{text}"
        );
        assert!(text.contains(r#"dv_build_info{version=""#));
        assert!(
            text.contains(r#"dv_stage_latency_seconds_count{duty="proposer",stage="consensus"} 1"#)
        );
        m.combined(3, "attester", 625);
        m.p2p_sent("consensus", 300);
        m.p2p_sent("consensus", 200);
        let text = m.render();
        assert!(text.contains(r#"dv_combined_signatures_total{duty="attester"} 625"#));
        assert!(text.contains(r#"dv_p2p_sent_messages_total{topic="consensus"} 2"#));
        assert!(text.contains(r#"dv_p2p_sent_bytes_total{topic="consensus"} 500"#));
        for _ in 0..3 {
            m.peer_misbehaved(2, "rate_limited", &"over budget");
        }
        assert!(m
            .render()
            .contains(r#"dv_peer_misbehaviour_total{peer="2",reason="rate_limited"} 3"#));
        // Logged once; the other two are counted as not logged.
        assert_eq!(
            m.misbehaviour_logged.lock().unwrap()[&(2, "rate_limited")].1,
            2
        );
    }
}
