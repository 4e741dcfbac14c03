//! Health: whether the node can do its duties now (`GET /readyz`) and
//! whether it is alive at all (`GET /livez`), served beside `/metrics`.
//!
//! Readiness is a list of named checks, each with a message an operator can
//! act on: the beacon node (reachable, synced, execution client online),
//! the peers (at least the threshold's worth of operators reachable), the
//! clocks (the peers' within [`MAX_CLOCK_OFFSET_MS`] of this node's), the
//! validators (all known to the chain) and the duties (not mostly failing
//! over the last epoch). A monitor task refreshes the checks that need
//! I/O every half slot; `dvnode status` prints the same report.

use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use beacon_client::BeaconNodes;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One check of the readiness report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub message: String,
}

/// What `/readyz` answers (200 when ready, 503 when not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ready: bool,
    /// The failing checks' messages, for a quick read.
    pub reasons: Vec<String>,
    pub checks: Vec<Check>,
}

/// The peers part of the checks: who is connected, how many are needed.
#[derive(Debug, Clone)]
struct Peers {
    /// Connected peers (operators' indices in the lock).
    connected: Vec<usize>,
    /// All the other operators.
    others: Vec<usize>,
    /// Peers needed besides this node for a threshold.
    needed: usize,
}

#[derive(Debug)]
struct State {
    /// The beacon nodes' state: `Ok` with a note, or why none is usable.
    beacon: Result<String, String>,
    /// `None` for a plain validator (no peers).
    peers: Option<Peers>,
    unknown_validators: usize,
    validators: usize,
    /// Last tick of the node's slot loop.
    heartbeat: Instant,
}

pub struct Health {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    slot: Duration,
    slots_per_epoch: u64,
}

/// The largest clock offset from a peer that still counts as ready: the
/// p2p specs' MAXIMUM_GOSSIP_CLOCK_DISPARITY. Past it, one of the two
/// clocks (the peers' offsets together say which) makes duties late or early.
pub const MAX_CLOCK_OFFSET_MS: i64 = 500;
/// Offsets older than this are not judged (the peer stopped answering).
const CLOCK_OFFSET_FRESH: Duration = Duration::from_secs(120);

/// The slot loop may miss this many slots before the node counts as not alive.
const LIVENESS_SLOTS: u32 = 3;

impl Health {
    /// `threshold` and `operators` of the cluster (`None` for a plain validator).
    pub fn new(
        metrics: Arc<Metrics>,
        slot: Duration,
        slots_per_epoch: u64,
        validators: usize,
        cluster: Option<(usize, usize, usize)>,
    ) -> Arc<Self> {
        let peers = cluster.map(|(me, operators, threshold)| Peers {
            connected: Vec::new(),
            others: (0..operators).filter(|i| *i != me).collect(),
            needed: threshold.saturating_sub(1),
        });
        Arc::new(Self {
            state: Mutex::new(State {
                beacon: Err("not checked yet".into()),
                peers,
                unknown_validators: validators,
                validators,
                heartbeat: Instant::now(),
            }),
            metrics,
            slot,
            slots_per_epoch,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node's slot loop is running.
    pub fn beat(&self) {
        self.state().heartbeat = Instant::now();
    }

    /// The peers connected at the last check (`None` without peers).
    pub fn connected_peers(&self) -> Option<Vec<usize>> {
        self.state().peers.as_ref().map(|p| p.connected.clone())
    }

    /// Whether the slot loop ticked recently.
    pub fn alive(&self) -> bool {
        self.state().heartbeat.elapsed() <= self.slot * LIVENESS_SLOTS + Duration::from_secs(5)
    }

    /// The readiness report now.
    pub fn report(&self) -> Report {
        let state = self.state();
        let mut checks = Vec::new();
        checks.push(match &state.beacon {
            Ok(note) => check("beacon_node", true, note.clone()),
            Err(why) => check("beacon_node", false, why.clone()),
        });
        if let Some(peers) = &state.peers {
            let down: Vec<String> = peers
                .others
                .iter()
                .filter(|p| !peers.connected.contains(p))
                .map(|p| p.to_string())
                .collect();
            let mut message = format!(
                "{} of {} peers connected, {} needed for the threshold",
                peers.connected.len(),
                peers.others.len(),
                peers.needed
            );
            if !down.is_empty() {
                message.push_str(&format!("; not connected: peer {}", down.join(", peer ")));
            }
            checks.push(check(
                "peers",
                peers.connected.len() >= peers.needed,
                message,
            ));
            let offsets = self.metrics.clock_offsets(CLOCK_OFFSET_FRESH);
            let listed: Vec<String> = offsets
                .iter()
                .map(|(peer, ms)| format!("peer {peer} {ms:+} ms"))
                .collect();
            checks.push(match listed.is_empty() {
                true => check("clock", true, "no peer has answered yet".into()),
                false => check(
                    "clock",
                    offsets.values().all(|ms| ms.abs() <= MAX_CLOCK_OFFSET_MS),
                    format!(
                        "peers' clocks minus this node's: {} (bound ±{MAX_CLOCK_OFFSET_MS} ms)",
                        listed.join(", ")
                    ),
                ),
            });
        }
        checks.push(check(
            "validators",
            state.unknown_validators == 0,
            format!(
                "{} of {} validators known to the chain",
                state.validators - state.unknown_validators,
                state.validators
            ),
        ));
        drop(state);
        let epoch = self.slot * self.slots_per_epoch as u32;
        let (ok, failed) = self.metrics.recent_outcomes(epoch);
        checks.push(check(
            "duties",
            failed == 0 || ok > failed,
            format!(
                "in the last epoch: {ok} duty items accepted by the beacon node, {failed} failed"
            ),
        ));
        let reasons = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        Report {
            ready: checks.iter().all(|c| c.ok),
            reasons,
            checks,
        }
    }

    /// Refreshes the checks that need the beacon nodes, the network and the
    /// scheduler, every half slot (at least every 6 s), until the task is dropped.
    pub async fn monitor(
        self: Arc<Self>,
        beacon: BeaconNodes,
        net: Option<p2p::Handle>,
        scheduler: Scheduler,
    ) {
        let every = (self.slot / 2).min(Duration::from_secs(6));
        loop {
            let beacon_state = beacon_state(&beacon).await;
            let connected = match &net {
                Some(net) => net.connected().await.ok(),
                None => None,
            };
            let unknown = scheduler.unknown_validators().len();
            {
                let mut state = self.state();
                state.beacon = beacon_state;
                state.unknown_validators = unknown;
                if let (Some(peers), Some(connected)) = (state.peers.as_mut(), connected) {
                    peers.connected = connected;
                    self.metrics.connected(
                        peers
                            .others
                            .iter()
                            .map(|p| (*p, peers.connected.contains(p))),
                    );
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

fn check(name: &str, ok: bool, message: String) -> Check {
    Check {
        name: name.to_string(),
        ok,
        message,
    }
}

/// Ready if one beacon node answers, synced, with its execution client
/// online; otherwise every node's problem.
async fn beacon_state(beacon: &BeaconNodes) -> Result<String, String> {
    let mut problems = Vec::new();
    for node in beacon.nodes() {
        match node.syncing().await {
            Ok(s) if s.is_syncing => problems.push(format!(
                "{}: syncing, {} slots behind",
                node.url(),
                s.sync_distance
            )),
            Ok(s) if s.el_offline => {
                problems.push(format!("{}: its execution client is offline", node.url()))
            }
            Ok(s) => return Ok(format!("{}: synced at slot {}", node.url(), s.head_slot)),
            Err(e) => problems.push(format!("{}: unreachable: {e}", node.url())),
        }
    }
    Err(problems.join("; "))
}

/// The monitoring endpoint: `/metrics`, `/readyz`, `/livez`, until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, health: Arc<Health>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let readyz = {
        let health = health.clone();
        move || {
            let report = health.report();
            let status = match report.ready {
                true => StatusCode::OK,
                false => StatusCode::SERVICE_UNAVAILABLE,
            };
            async move { (status, axum::Json(report)) }
        }
    };
    let livez = move || {
        let status = match health.alive() {
            true => StatusCode::OK,
            false => StatusCode::SERVICE_UNAVAILABLE,
        };
        async move {
            (
                status,
                axum::Json(serde_json::json!({"alive": status == StatusCode::OK})),
            )
        }
    };
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/readyz", get(readyz))
        .route("/livez", get(livez));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("monitoring server stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Reason;

    #[test]
    fn readiness_names_what_is_wrong() {
        let metrics = Metrics::new(false);
        let health = Health::new(
            metrics.clone(),
            Duration::from_secs(1),
            8,
            4,
            Some((0, 4, 3)),
        );
        let report = health.report();
        assert!(!report.ready);
        let failing: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failing, ["beacon_node", "peers", "validators"]);
        assert!(
            report.reasons[1].contains("0 of 3 peers connected, 2 needed")
                && report.reasons[1].contains("not connected: peer 1, peer 2, peer 3"),
            "{report:?}"
        );
        {
            let mut state = health.state();
            state.beacon = Ok("synced".into());
            state.unknown_validators = 0;
            if let Some(peers) = state.peers.as_mut() {
                peers.connected = vec![1, 3];
            }
        }
        assert!(health.report().ready, "{:?}", health.report());
        metrics.peer_answered(1, Duration::from_millis(3), 2);
        metrics.peer_answered(3, Duration::from_millis(3), -1300);
        let report = health.report();
        assert_eq!(
            report.reasons,
            ["clock: peers' clocks minus this node's: peer 1 +2 ms, peer 3 -1300 ms (bound ±500 ms)"]
        );
        metrics.peer_answered(3, Duration::from_millis(3), -4);
        assert!(health.report().ready, "{:?}", health.report());
        metrics.duty_failed(1, "attester", Reason::NoConsensus, 4, "no consensus");
        let report = health.report();
        assert!(!report.ready);
        assert_eq!(
            report.reasons,
            ["duties: in the last epoch: 0 duty items accepted by the beacon node, 4 failed"]
        );
        assert!(health.alive());
    }
}
