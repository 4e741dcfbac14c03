//! `dvnode run`: the node's stages wired in one place, for either
//! attachment (the built-in validator or the validator API of
//! `dv_validator_api`).
//!
//! The scheduler polls duties every slot; at slot start a proposer duty runs
//! (randao reveal, block, consensus, sign, publish), at the attestation due
//! time the slot's attester duty runs (own data, consensus, slashing record,
//! sign, exchange, combine, submit). Each duty is its own task that calls the
//! signing seam ([`DvValidatorStore`]); the seam talks to the workflow task
//! (consensus instances and partial-signature exchange over libp2p). With
//! `plain` the same services drive [`PlainValidatorStore`] instead: a
//! normal validator, without peers or consensus.

use beacon_client::BeaconNodes;
use dv_cluster::{ClusterLock, NodeDir};
use dv_node::consensus::P2pAuthenticator;
use dv_node::exits::{ExitService, PendingExits};
use dv_node::health::Health;
use dv_node::keys::{check_same_chain, load_public_keys, load_shares, whole_keys};
use dv_node::metrics::Metrics;
use dv_node::parsig::{OwnShares, ParSigStore};
use dv_node::scheduler::{Scheduler, SlotClock};
use dv_node::services::DutyContext;
use dv_node::signer::Signer;
use dv_node::status_page::ClusterInfo;
use dv_node::tracker::{InclusionChecker, Reason};
use dv_node::validator_store::{
    ChainContext, DvValidatorStore, PlainValidatorStore, ValidatorStore,
};
use dv_node::workflow::{Workflow, WorkflowTask};
use dv_types::*;
use dv_validator_api::{Middleware, MiddlewareConfig};
use slashing_protection::SlashingDatabase;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct RunConfig {
    pub data_dir: PathBuf,
    pub beacon_nodes: Vec<String>,
    /// Overrides the listen address the lock gives this node.
    pub p2p_listen: Option<String>,
    /// Where to serve Prometheus metrics and the health checks, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Metrics per validator too (small clusters only).
    pub metrics_per_validator: bool,
    /// Where to serve the status page, if anywhere.
    pub http: Option<SocketAddr>,
    /// The network the lock must name, if given.
    pub network: Option<String>,
    /// Middleware mode: serve the Beacon API to a validator client (which
    /// holds this node's key shares) here.
    pub validator_api: Option<SocketAddr>,
    /// A normal validator (a 1-node cluster's whole keys, the plain store):
    /// no consensus, no peers. The baseline a distributed validator is measured against.
    pub plain: bool,
}

/// How the node meets its validator keys.
enum Attachment {
    /// It holds the keys and performs the duties itself.
    BuiltIn(BuiltIn),
    /// A validator client holds the shares and talks to the node's validator API.
    Middleware(Arc<Middleware>, tokio::net::TcpListener),
}

pub struct Node {
    spec: ChainSpec,
    clock: SlotClock,
    db: Arc<SlashingDatabase>,
    beacon: BeaconNodes,
    scheduler: Scheduler,
    attachment: Attachment,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    inclusion: Arc<InclusionChecker>,
    /// The cluster network, watched by the health checks (none for a plain validator).
    net: Option<p2p::Handle>,
    /// The cluster's tasks (none for a plain validator).
    cluster: Option<ClusterTasks>,
    metrics_listener: Option<tokio::net::TcpListener>,
    /// The status page's listener and what it shows.
    status_page: Option<(tokio::net::TcpListener, ClusterInfo)>,
}

/// What runs beside the duties in a cluster: consensus and the exchange, exits.
struct ClusterTasks {
    workflow: WorkflowTask<SlotClock>,
    exits: ExitService,
}

/// The built-in validator's duty services, over one of the two stores.
enum BuiltIn {
    Dv(Arc<DutyContext<DvValidatorStore>>),
    Plain(Arc<DutyContext<PlainValidatorStore>>),
}

impl BuiltIn {
    fn at_slot_start(
        &self,
        scheduler: &Scheduler,
        slot: Slot,
        first_slot: bool,
        prepare: bool,
        minimal: bool,
    ) {
        match self {
            BuiltIn::Dv(ctx) => at_slot_start(ctx, scheduler, slot, first_slot, prepare, minimal),
            BuiltIn::Plain(ctx) => {
                at_slot_start(ctx, scheduler, slot, first_slot, prepare, minimal)
            }
        }
    }

    fn at_attestation_due(
        &self,
        slot: Slot,
        attesters: Vec<beacon_client::AttesterDuty>,
        minimal: bool,
    ) {
        match self {
            BuiltIn::Dv(ctx) => at_attestation_due(ctx, slot, attesters, minimal),
            BuiltIn::Plain(ctx) => at_attestation_due(ctx, slot, attesters, minimal),
        }
    }
}

/// What every duty context shares, whatever its store.
struct DutyParts {
    beacon: BeaconNodes,
    spec: ChainSpec,
    clock: SlotClock,
    metrics: Arc<Metrics>,
    scheduler: Scheduler,
    registrations: HashMap<PublicKeyBytes, SignedValidatorRegistration>,
    inclusion: Arc<InclusionChecker>,
}

impl DutyParts {
    fn with<S: ValidatorStore>(self, store: S) -> DutyContext<S> {
        DutyContext {
            store,
            beacon: self.beacon,
            spec: self.spec,
            clock: self.clock,
            metrics: self.metrics,
            graffiti: Graffiti::ZERO,
            scheduler: self.scheduler,
            registrations: self.registrations,
            inclusion: self.inclusion,
            attested: tokio::sync::watch::Sender::new(None),
        }
    }
}

impl Node {
    /// Loads the node's directory, connects to the beacon node and the cluster.
    pub async fn start(cfg: RunConfig) -> Result<Node, String> {
        let dir = NodeDir::new(&cfg.data_dir);
        let lock = ClusterLock::load(&dir.lock_path()).map_err(|e| e.to_string())?;
        if let Some(network) = &cfg.network {
            if *network != lock.body.network {
                return Err(format!(
                    "--network {network}: the cluster lock in {} is for network {}",
                    cfg.data_dir.display(),
                    lock.body.network
                ));
            }
        }
        let keypair = p2p::load_keypair(&dir.p2p_key_path())?;
        let peers = dv_node::keys::operator_peer_ids(&lock)?;
        let me = peers
            .iter()
            .position(|p| *p == keypair.public().to_peer_id())
            .ok_or("the p2p key is not one of the lock's operators")?;
        let params = lock.body.threshold_params()?;
        let keys = load_public_keys(&lock)?;
        // In middleware mode the shares live in the validator client.
        let shares = match cfg.validator_api {
            Some(_) => HashMap::new(),
            None => load_shares(&dir, &lock, me)?,
        };
        let pubkeys: Vec<PublicKeyBytes> =
            lock.body.validators.iter().map(|v| v.public_key).collect();
        let db = SlashingDatabase::open_in_dir(&cfg.data_dir).map_err(|e| e.to_string())?;
        db.register_validators(&pubkeys)
            .map_err(|e| e.to_string())?;

        let metrics = Metrics::new(cfg.metrics_per_validator);
        let beacon = BeaconNodes::new(&cfg.beacon_nodes, Duration::from_secs(4))
            .map_err(|e| e.to_string())?
            .observed({
                let metrics = metrics.clone();
                Arc::new(move |endpoint, node, took, failed| {
                    metrics.beacon_request(endpoint, node, took, failed)
                })
            });
        let genesis = loop {
            match beacon.first_success(|n| n.genesis()).await {
                Ok(g) => break g,
                Err(e) => {
                    tracing::warn!("waiting for a beacon node: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        check_same_chain(&lock, &genesis)?;
        let spec = beacon
            .first_success(|n| n.spec())
            .await
            .map_err(|e| e.to_string())?;
        db.set_or_check_genesis_validators_root(genesis.genesis_validators_root)
            .map_err(|e| e.to_string())?;

        let clock = SlotClock::new(genesis.genesis_time, &spec);
        let slot_duration = Duration::from_millis(clock.slot_ms);
        let status_page = match cfg.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("--http-address/--http-port {addr}: {e}"))?;
                let info = ClusterInfo {
                    name: lock.body.name.clone(),
                    lock_hash: lock.lock_hash.to_string(),
                    network: lock.body.network.clone(),
                    threshold: params.threshold(),
                    validators: pubkeys.len(),
                    me: (!cfg.plain).then_some(me),
                    operators: lock
                        .body
                        .operators
                        .iter()
                        .map(|o| (o.index, o.peer_id.to_string(), o.address.to_string()))
                        .collect(),
                };
                Some((listener, info))
            }
            None => None,
        };
        let health = |cluster| {
            Health::new(
                metrics.clone(),
                slot_duration,
                spec.slots_per_epoch,
                pubkeys.len(),
                cluster,
            )
        };
        let metrics_listener = match cfg.metrics {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("--metrics {addr}: {e}"))?,
            ),
            None => None,
        };
        let db = Arc::new(db);
        let chain = ChainContext {
            spec: spec.clone(),
            genesis_validators_root: genesis.genesis_validators_root,
            clock,
        };
        let registrations: HashMap<PublicKeyBytes, SignedValidatorRegistration> = lock
            .body
            .validators
            .iter()
            .filter_map(|v| {
                let r = v.builder_registration.as_ref()?;
                Some((v.public_key, r.signed(v.public_key)))
            })
            .collect();
        let scheduler = Scheduler::new(spec.clone(), pubkeys.clone());
        let inclusion = InclusionChecker::new(
            beacon.clone(),
            metrics.clone(),
            scheduler.clone(),
            spec.clone(),
        );
        let parts = DutyParts {
            inclusion: inclusion.clone(),
            beacon: beacon.clone(),
            spec: spec.clone(),
            clock,
            metrics: metrics.clone(),
            scheduler: scheduler.clone(),
            registrations: registrations.clone(),
        };
        if cfg.plain {
            if cfg.validator_api.is_some() {
                return Err("--plain holds the keys itself; it takes no --validator-api".into());
            }
            // A normal validator: whole keys, no peers, no consensus.
            let keys = whole_keys(&lock, shares)?;
            let store = PlainValidatorStore::new(keys, db.clone(), chain);
            tracing::info!(
                validators = pubkeys.len(),
                "plain validator started (no consensus, no peers)"
            );
            return Ok(Node {
                scheduler: scheduler.clone(),
                spec: spec.clone(),
                clock,
                db,
                beacon: beacon.clone(),
                attachment: Attachment::BuiltIn(BuiltIn::Plain(Arc::new(parts.with(store)))),
                metrics: metrics.clone(),
                health: health(None),
                inclusion,
                net: None,
                cluster: None,
                metrics_listener,
                status_page,
            });
        }
        let members = dv_node::keys::cluster_members(&lock, &peers)?;
        let listen = match &cfg.p2p_listen {
            Some(a) => a.parse().map_err(|e| format!("--p2p-listen {a}: {e}"))?,
            None => members[me].address.clone(),
        };
        let (net, incoming) = p2p::start(p2p::Config {
            keypair: keypair.clone(),
            members,
            listen,
            max_message_bytes: MAX_P2P_MESSAGE_BYTES,
            on_sent: Some({
                let metrics = metrics.clone();
                Arc::new(move |topic, bytes| {
                    let topic = match topic {
                        p2p::Topic::Consensus => "consensus",
                        p2p::Topic::PartialSignatures => "partial_signatures",
                        p2p::Topic::Dkg => "dkg",
                    };
                    metrics.p2p_sent(topic, bytes)
                })
            }),
            inbound_budget: inbound_budget(clock.slot_ms, MAX_P2P_MESSAGE_BYTES),
            on_refused: Some({
                let metrics = metrics.clone();
                Arc::new(move |peer, reason| {
                    metrics.peer_misbehaved(peer, reason, &"message refused by the network layer")
                })
            }),
            on_ack: Some({
                let metrics = metrics.clone();
                Arc::new(move |peer, rtt, offset_ms| metrics.peer_answered(peer, rtt, offset_ms))
            }),
        })
        .await
        .map_err(|e| e.to_string())?;
        let auth = P2pAuthenticator::new(keypair.clone(), &peers, lock.lock_hash.as_bytes())
            .map_err(|e| format!("consensus keys: {e}"))?;
        let health = health(Some((me, peers.len(), params.threshold())));
        let watched_net = net.clone();
        let (workflow_task, workflow): (WorkflowTask<SlotClock>, Workflow) = WorkflowTask::new(
            auth,
            net,
            incoming,
            peers.len(),
            ParSigStore::new(params, keys.clone()),
            clock,
            metrics.clone(),
        );
        let store = DvValidatorStore::new(
            workflow,
            Signer::new(shares),
            pubkeys.clone(),
            db.clone(),
            chain,
            metrics.clone(),
        );
        let own = OwnShares {
            keys,
            share_index: me as u64 + 1,
        };
        let pending_exits = PendingExits::new(&cfg.data_dir);
        let exits = ExitService {
            store: store.clone(),
            beacon: beacon.clone(),
            scheduler: scheduler.clone(),
            own: own.clone(),
            pending: pending_exits.clone(),
            clock,
        };
        let attachment = match cfg.validator_api {
            None => Attachment::BuiltIn(BuiltIn::Dv(Arc::new(parts.with(store)))),
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("--validator-api {addr}: {e}"))?;
                let middleware = Middleware::new(MiddlewareConfig {
                    store,
                    beacon: beacon.clone(),
                    beacon_urls: cfg.beacon_nodes.clone(),
                    scheduler: scheduler.clone(),
                    clock,
                    metrics: metrics.clone(),
                    own,
                    exits: pending_exits,
                    registrations,
                    inclusion: inclusion.clone(),
                })?;
                tracing::info!(%addr, "validator API for a validator client run with --distributed");
                Attachment::Middleware(Arc::new(middleware), listener)
            }
        };
        tracing::info!(node = me, validators = pubkeys.len(), "node started");
        Ok(Node {
            scheduler,
            spec,
            clock,
            db,
            beacon,
            attachment,
            metrics,
            health,
            inclusion,
            net: Some(watched_net),
            cluster: Some(ClusterTasks {
                workflow: workflow_task,
                exits,
            }),
            metrics_listener,
            status_page,
        })
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Node {
            spec,
            clock,
            db,
            beacon,
            scheduler,
            attachment,
            metrics,
            health,
            inclusion,
            net,
            cluster,
            metrics_listener,
            status_page,
        } = self;
        if let Some((listener, cluster)) = status_page {
            let sources = dv_node::status_page::Sources {
                cluster,
                metrics: metrics.clone(),
                health: health.clone(),
                clock,
                slots_per_epoch: spec.slots_per_epoch,
            };
            tokio::spawn(dv_node::status_page::serve(listener, Arc::new(sources)));
        }
        if let Some(listener) = metrics_listener {
            tokio::spawn(dv_node::health::serve(
                listener,
                metrics.clone(),
                health.clone(),
            ));
        }
        let monitor = tokio::spawn(
            health
                .clone()
                .monitor(beacon.clone(), net, scheduler.clone()),
        );
        // Know the validators' indices and duties before the first request.
        let first_epoch = spec.epoch_of_slot(clock.current_slot());
        if tokio::time::timeout(
            Duration::from_millis(clock.slot_ms),
            scheduler.poll(&beacon, first_epoch),
        )
        .await
        .is_err()
        {
            tracing::warn!("first duty poll took longer than a slot");
        }
        let (duties, middleware) = match attachment {
            Attachment::BuiltIn(duties) => (Some(duties), None),
            Attachment::Middleware(middleware, listener) => {
                tokio::spawn(dv_validator_api::serve(listener, middleware.clone()));
                (None, Some(middleware))
            }
        };
        let (stop_workflow, workflow_stopped) = tokio::sync::oneshot::channel::<()>();
        let (workflow, exit_service) = match cluster {
            Some(ClusterTasks { workflow, exits }) => (
                Some(tokio::spawn(workflow.run(async {
                    let _ = workflow_stopped.await;
                }))),
                // Voluntary exits, in both attachments.
                Some(tokio::spawn(exits.run())),
            ),
            None => (None, None),
        };
        let preset_is_minimal = spec.preset_base == "minimal";
        tokio::pin!(shutdown);
        let mut slot = clock.first_slot_to_run();
        let mut pruned_epoch = None;
        let mut prepared_epoch = None;
        let mut first_slot = true;
        loop {
            // Slot start: duties, then the proposer (if one of ours).
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(clock.slot_start(slot)) => {}
            }
            health.beat();
            let epoch = spec.epoch_of_slot(slot);
            let polled = tokio::time::timeout(
                Duration::from_millis(clock.slot_ms / 3),
                scheduler.poll(&beacon, epoch),
            )
            .await;
            if polled.is_err() {
                tracing::warn!(
                    slot,
                    "duty polling took longer than a third of a slot; using the duties known"
                );
            }
            // (In middleware mode the client does these itself.)
            if let Some(duties) = &duties {
                let prepare = prepared_epoch != Some(epoch);
                prepared_epoch = Some(epoch);
                duties.at_slot_start(&scheduler, slot, first_slot, prepare, preset_is_minimal);
            }
            // Attestation due time: the slot's attester duty.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(SlotClock::instant_at(clock.attestation_due_ms(slot))) => {}
            }
            // The previous slot's block: what it carries of the cluster's
            // duties, read at mid-slot, between the attestation and the
            // aggregation due times.
            if let Some(previous) = slot.checked_sub(1) {
                let inclusion = inclusion.clone();
                let mid_slot = SlotClock::instant_at(clock.slot_start_ms(slot) + clock.slot_ms / 2);
                tokio::spawn(async move {
                    tokio::time::sleep_until(mid_slot).await;
                    if preset_is_minimal {
                        inclusion.check_slot::<Minimal>(previous).await
                    } else {
                        inclusion.check_slot::<Mainnet>(previous).await
                    }
                });
            }
            let attesters = scheduler.attesters_at(slot);
            match (&duties, &middleware) {
                _ if attesters.is_empty() => {}
                (Some(duties), _) => duties.at_attestation_due(slot, attesters, preset_is_minimal),
                // Middleware: take part in the slot's consensus even if the client is late or down.
                (None, Some(mw)) => {
                    let (mw, metrics, count) = (mw.clone(), metrics.clone(), attesters.len());
                    tokio::spawn(async move {
                        if let Err(e) = mw.decide_attestation(slot).await {
                            metrics.duty_failed(slot, "attester", Reason::of(&e), count, e);
                        }
                    });
                }
                (None, None) => {}
            }
            first_slot = false;
            if pruned_epoch != Some(epoch) {
                pruned_epoch = Some(epoch);
                prune_slashing_history(&db, epoch, spec.slots_per_epoch);
            }
            slot = (slot + 1).max(clock.current_slot() + 1);
        }
        monitor.abort();
        if let Some(exits) = exit_service {
            exits.abort();
        }
        let _ = stop_workflow.send(());
        if let Some(workflow) = workflow {
            let _ = workflow.await;
        }
        tracing::info!("node stopped");
    }
}

/// The built-in validator's work at `slot`'s start: the slot's proposal
/// (if one of its validators proposes), the aggregation of the next slot (its
/// selection proofs and subscriptions must be ready before that slot's
/// attestations; the first slot's own too, having had no slot ahead), this
/// slot's sync committee duties, and once an epoch (`prepare`) the epoch's
/// preparations.
fn at_slot_start<S: ValidatorStore>(
    ctx: &Arc<DutyContext<S>>,
    scheduler: &Scheduler,
    slot: Slot,
    first_slot: bool,
    prepare: bool,
    minimal: bool,
) {
    // No block at the genesis slot: the genesis block is it (Lighthouse's
    // block service skips that slot too).
    if let Some(duty) = scheduler.proposer_at(slot).filter(|_| slot > 0) {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if minimal {
                ctx.propose::<Minimal>(duty).await
            } else {
                ctx.propose::<Mainnet>(duty).await
            }
        });
    }
    if first_slot {
        spawn_aggregation(ctx, scheduler, slot, minimal);
    }
    spawn_aggregation(ctx, scheduler, slot + 1, minimal);
    // The members who sign at `slot` are those of the committee of `slot + 1`'s epoch.
    let members = scheduler.sync_members(ctx.spec.epoch_of_slot(slot + 1));
    if !members.is_empty() {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if minimal {
                ctx.sync_committee::<Minimal>(slot, members).await
            } else {
                ctx.sync_committee::<Mainnet>(slot, members).await
            }
        });
    }
    if prepare {
        let epoch = ctx.spec.epoch_of_slot(slot);
        let next_sync = scheduler.sync_members(epoch + 1);
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.prepare_epoch(epoch, next_sync).await });
    }
}

/// The slot's attester duty, at its due time.
fn at_attestation_due<S: ValidatorStore>(
    ctx: &Arc<DutyContext<S>>,
    slot: Slot,
    attesters: Vec<beacon_client::AttesterDuty>,
    minimal: bool,
) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if minimal {
            ctx.attest::<Minimal>(slot, attesters).await
        } else {
            ctx.attest::<Mainnet>(slot, attesters).await
        }
    });
}

/// The aggregation duty of `slot` (selection proofs and subscriptions now,
/// aggregates at the slot's aggregation due time).
fn spawn_aggregation<S: ValidatorStore>(
    ctx: &Arc<DutyContext<S>>,
    scheduler: &Scheduler,
    slot: Slot,
    minimal: bool,
) {
    let attesters = scheduler.attesters_at(slot);
    if attesters.is_empty() {
        return;
    }
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if minimal {
            ctx.aggregate::<Minimal>(slot, attesters).await
        } else {
            ctx.aggregate::<Mainnet>(slot, attesters).await
        }
    });
}

/// Slashing history this old can no longer matter (Lighthouse prunes the same
/// way); what it forbade stays forbidden through the kept high-water marks.
const SLASHING_HISTORY_EPOCHS: u64 = 512;

fn prune_slashing_history(db: &SlashingDatabase, epoch: Epoch, slots_per_epoch: u64) {
    let Some(before) = epoch.checked_sub(SLASHING_HISTORY_EPOCHS) else {
        return;
    };
    match db.prune(before, slots_per_epoch) {
        Ok(summary) => tracing::debug!(epoch = before, "slashing history pruned: {summary:?}"),
        Err(e) => tracing::warn!("slashing history pruning failed: {e}"),
    }
}

/// Largest message between cluster nodes: a consensus proposal carrying the
/// largest block with its blobs (or one duty's partials), and its envelope.
const MAX_P2P_MESSAGE_BYTES: u64 = dv_node::consensus::MAX_VALUE_BYTES as u64 + (1 << 20);
/// Messages each peer may send per slot. An honest peer sends about 110 a
/// slot at 5,000 validators (the count is flat in validators) and about 230
/// with a node down (round changes).
const PEER_MESSAGES_PER_SLOT: f64 = 1500.0;
/// Bytes each peer may send per slot, beyond room for two largest messages
/// (a proposal and a round change carrying it). An honest peer sends about
/// 1.6 MB a slot at 20,000 validators, plus its proposals.
const PEER_BYTES_PER_SLOT: f64 = 16.0 * 1024.0 * 1024.0;

/// Each peer's inbound allowance: a slot's worth of messages and bytes as
/// the burst, refilled over a slot.
fn inbound_budget(slot_ms: u64, max_message_bytes: u64) -> p2p::InboundBudget {
    let slot_secs = (slot_ms.max(1) as f64) / 1000.0;
    let bytes = PEER_BYTES_PER_SLOT + 2.0 * max_message_bytes as f64;
    p2p::InboundBudget {
        messages_per_second: PEER_MESSAGES_PER_SLOT / slot_secs,
        message_burst: PEER_MESSAGES_PER_SLOT,
        bytes_per_second: bytes / slot_secs,
        byte_burst: bytes,
    }
}
