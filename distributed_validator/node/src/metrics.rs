//! Prometheus metrics: duty outcomes, duty latency and per-stage latency,
//! served as text on `GET /metrics` at `--metrics ADDR`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Labels = Vec<(&'static str, String)>;
/// A peer (its index in the lock) and a misbehaviour reason.
type PeerReason = (usize, &'static str);
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 5 ms .. ~20 s
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

pub struct Metrics {
    registry: Registry,
    outcomes: Family<Labels, Counter>,
    duty_latency: HistogramFamily,
    stage_latency: HistogramFamily,
    combined: Family<Labels, Counter>,
    p2p_sent_messages: Family<Labels, Counter>,
    p2p_sent_bytes: Family<Labels, Counter>,
    peer_misbehaviour: Family<Labels, Counter>,
    /// When each (peer, reason) was last logged, and how many since were not.
    misbehaviour_logged: std::sync::Mutex<HashMap<PeerReason, (Instant, u64)>>,
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

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("dv");
        let outcomes = Family::<Labels, Counter>::default();
        let duty_latency = HistogramFamily::new_with_constructor(latency_histogram);
        let stage_latency = HistogramFamily::new_with_constructor(latency_histogram);
        registry.register(
            "duty_outcomes",
            "Duties by type and outcome (ok, or the failure reason)",
            outcomes.clone(),
        );
        registry.register(
            "duty_latency_seconds",
            "From the start of the duty's slot to the beacon node accepting the signed message",
            duty_latency.clone(),
        );
        registry.register(
            "stage_latency_seconds",
            "Time spent in each pipeline stage per duty",
            stage_latency.clone(),
        );
        let combined = Family::<Labels, Counter>::default();
        registry.register(
            "combined_signatures",
            "Signatures combined from a threshold of partials and verified, by duty type",
            combined.clone(),
        );
        let p2p_sent_messages = Family::<Labels, Counter>::default();
        registry.register(
            "p2p_sent_messages",
            "Messages handed to the cluster network (each delivery attempt), by topic",
            p2p_sent_messages.clone(),
        );
        let p2p_sent_bytes = Family::<Labels, Counter>::default();
        registry.register(
            "p2p_sent_bytes",
            "Encoded bytes of the messages handed to the cluster network, by topic",
            p2p_sent_bytes.clone(),
        );
        let peer_misbehaviour = Family::<Labels, Counter>::default();
        registry.register(
            "peer_misbehaviour",
            "Messages from a peer refused or dropped, by peer (its index in the cluster lock) and reason",
            peer_misbehaviour.clone(),
        );
        Arc::new(Self {
            registry,
            peer_misbehaviour,
            misbehaviour_logged: Default::default(),
            outcomes,
            duty_latency,
            stage_latency,
            combined,
            p2p_sent_messages,
            p2p_sent_bytes,
        })
    }

    pub fn outcome(&self, duty: &'static str, outcome: &str) {
        self.outcomes
            .get_or_create(&vec![
                ("duty", duty.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub fn duty_latency(&self, duty: &'static str, latency: Duration) {
        self.duty_latency
            .get_or_create(&vec![("duty", duty.to_string())])
            .observe(latency.as_secs_f64());
    }

    pub fn stage(&self, duty: &'static str, stage: Stage, took: Duration) {
        self.stage_latency
            .get_or_create(&vec![
                ("duty", duty.to_string()),
                ("stage", stage.name().to_string()),
            ])
            .observe(took.as_secs_f64());
    }

    /// `count` signatures of `duty` combined and verified.
    pub fn combined(&self, duty: &'static str, count: u64) {
        self.combined
            .get_or_create(&vec![("duty", duty.to_string())])
            .inc_by(count);
    }

    /// A message of `topic` (its encoded size `bytes`) handed to the cluster network.
    pub fn p2p_sent(&self, topic: &'static str, bytes: usize) {
        let labels = vec![("topic", topic.to_string())];
        self.p2p_sent_messages.get_or_create(&labels).inc();
        self.p2p_sent_bytes
            .get_or_create(&labels)
            .inc_by(bytes as u64);
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
        self.peer_misbehaviour
            .get_or_create(&vec![
                ("peer", peer.to_string()),
                ("reason", reason.to_string()),
            ])
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

    /// A duty ended well: its outcome line (latency from its slot's start,
    /// `slot_start_ms` in unix ms) and its counters.
    pub fn duty_ok(
        &self,
        slot: u64,
        duty: &'static str,
        slot_start_ms: u64,
        what: &str,
        count: usize,
    ) {
        let latency_ms = crate::scheduler::now_ms().saturating_sub(slot_start_ms);
        self.outcome(duty, "ok");
        self.duty_latency(duty, Duration::from_millis(latency_ms));
        tracing::info!(slot, duty, count, latency_ms, "duty ok: {what}");
    }

    /// A duty failed: its outcome line and the count under `label`.
    pub fn duty_failed(
        &self,
        slot: u64,
        duty: &'static str,
        label: &str,
        reason: impl std::fmt::Display,
    ) {
        self.outcome(duty, label);
        tracing::error!(slot, duty, "duty failed: {reason}");
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics server stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_outcomes_and_latencies() {
        let m = Metrics::new();
        m.outcome("attester", "ok");
        m.outcome("attester", "ok");
        m.outcome("proposer", "no_consensus");
        m.duty_latency("attester", Duration::from_millis(40));
        m.stage("proposer", Stage::Consensus, Duration::from_millis(7));
        let text = m.render();
        assert!(
            text.contains(r#"dv_duty_outcomes_total{duty="attester",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dv_duty_outcomes_total{duty="proposer",outcome="no_consensus"} 1"#)
        );
        assert!(text.contains(r#"dv_duty_latency_seconds_count{duty="attester"} 1"#));
        assert!(
            text.contains(r#"dv_stage_latency_seconds_count{duty="proposer",stage="consensus"} 1"#)
        );
        m.combined("attester", 625);
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
