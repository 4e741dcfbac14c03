//! The status page (`dvnode run --http`): the cluster, this node's
//! readiness, its peers (connected, and how their partial signatures and
//! consensus votes fared) and the last two epochs' duties as a timeline,
//! each failure with its reason. Plain HTML rendered here, no scripts
//! needed to read it (one small script records the page's layout for the
//! browser test); the same data as JSON on `/api/status`.

use crate::health::{Health, Report};
use crate::metrics::{DutyEvent, Metrics, Outcome, PeerTally, Step};
use crate::scheduler::SlotClock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// The cluster as the lock describes it, and this node's place in it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    pub name: String,
    pub lock_hash: String,
    pub network: String,
    pub threshold: usize,
    pub validators: usize,
    /// This node's index (`None` for a plain validator).
    pub me: Option<usize>,
    /// Each operator: index, peer id, address.
    pub operators: Vec<(usize, String, String)>,
}

/// What the page shows, also served as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub cluster: ClusterInfo,
    pub version: &'static str,
    pub current_slot: u64,
    pub first_slot: u64,
    pub health: Report,
    pub peers: Vec<PeerStatus>,
    pub duties: Vec<DutyEvent>,
    /// Each duty's steps, with their times after the slot's start.
    pub traces: Vec<DutyTrace>,
}

/// The steps one duty of one slot passed.
#[derive(Debug, Clone, Serialize)]
pub struct DutyTrace {
    pub slot: u64,
    pub duty: &'static str,
    /// (stage, ms after the slot's start, detail)
    pub steps: Vec<(&'static str, i64, String)>,
}

impl DutyTrace {
    fn of(slot: u64, duty: &'static str, steps: &[Step], slot_start_ms: u64) -> DutyTrace {
        DutyTrace {
            slot,
            duty,
            steps: steps
                .iter()
                .map(|s| {
                    (
                        s.stage,
                        s.at_ms as i64 - slot_start_ms as i64,
                        s.detail.clone(),
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub index: usize,
    pub peer_id: String,
    pub connected: Option<bool>,
    pub tally: PeerTally,
}

/// Where the page's data comes from.
pub struct Sources {
    pub cluster: ClusterInfo,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub clock: SlotClock,
    pub slots_per_epoch: u64,
}

impl Sources {
    /// The status now: the last two epochs' duties (this one and the one before).
    pub fn status(&self) -> Status {
        let current_slot = self.clock.current_slot();
        let epoch_start = current_slot - current_slot % self.slots_per_epoch.max(1);
        let first_slot = epoch_start.saturating_sub(self.slots_per_epoch);
        let connected = self.health.connected_peers();
        let tallies = self.metrics.peer_tallies();
        let peers = self
            .cluster
            .operators
            .iter()
            .filter(|(index, _, _)| Some(*index) != self.cluster.me)
            .map(|(index, peer_id, _)| PeerStatus {
                index: *index,
                peer_id: peer_id.clone(),
                connected: connected.as_ref().map(|c| c.contains(index)),
                tally: tallies.get(index).copied().unwrap_or_default(),
            })
            .collect();
        Status {
            cluster: self.cluster.clone(),
            version: env!("CARGO_PKG_VERSION"),
            current_slot,
            first_slot,
            health: self.health.report(),
            peers,
            duties: self.metrics.events_since(first_slot),
            traces: self
                .metrics
                .traces_since(first_slot)
                .iter()
                .map(|((slot, duty), steps)| {
                    DutyTrace::of(*slot, duty, steps, self.clock.slot_start_ms(*slot))
                })
                .collect(),
        }
    }
}

/// Text safe inside HTML (element content and quoted attributes): details
/// carry beacon nodes' and peers' words.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The order duties are listed in.
const DUTY_ORDER: [&str; 9] = [
    "proposer",
    "randao",
    "attester",
    "selection",
    "aggregator",
    "sync_message",
    "sync_selection",
    "sync_contribution",
    "exit",
];

const STYLE: &str = "body{font-family:sans-serif;margin:16px;color:#222}h1{white-space:nowrap}\
header{display:flex;gap:16px;align-items:center}\
.badge{padding:4px 10px;border-radius:4px;color:#fff;font-weight:bold}\
.ready{background:#2e7d32}.not-ready{background:#c62828}\
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}\
.timeline td{width:22px;height:22px;padding:0;text-align:center}\
td.submitted{background:#a5d6a7}td.included{background:#2e7d32;color:#fff}\
td.failed{background:#c62828;color:#fff}td.none{background:#f5f5f5}\
.fail{color:#c62828}.ok{color:#2e7d32}";

/// Records each section's box on the body, for the browser test: the
/// rendered layout, not only the markup.
const LAYOUT_SCRIPT: &str = "addEventListener('load',function(){var o={};\
document.querySelectorAll('section,header').forEach(function(s){var r=s.getBoundingClientRect();\
o[s.id]=[Math.round(r.top),Math.round(r.width),Math.round(r.height)];});\
document.body.setAttribute('data-layout',JSON.stringify(o));});";

/// The page.
pub fn render(status: &Status) -> String {
    let mut h = String::new();
    let c = &status.cluster;
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"12\">\
<title>dvnode: {}</title><style>{STYLE}</style><script>{LAYOUT_SCRIPT}</script></head><body>",
        escape(&c.name)
    );
    let (badge, class) = match status.health.ready {
        true => ("READY", "ready"),
        false => ("NOT READY", "not-ready"),
    };
    let me =
        c.me.map_or("plain validator".to_string(), |m| format!("node {m}"));
    let _ = write!(
        h,
        "<header id=\"cluster\"><h1>{}</h1><span id=\"readiness\" class=\"badge {class}\">{badge}</span>\
<span>{me} of {} operators, threshold {}, {} validators, network {}, lock {}, dvnode {}</span></header>",
        escape(&c.name),
        c.operators.len(),
        c.threshold,
        c.validators,
        escape(&c.network),
        escape(&c.lock_hash),
        status.version
    );
    h.push_str("<section id=\"health\"><h2>Health</h2><table><tr><th>check</th><th></th><th>state</th></tr>");
    for check in &status.health.checks {
        let (mark, class) = if check.ok {
            ("ok", "ok")
        } else {
            ("FAIL", "fail")
        };
        let _ = write!(
            h,
            "<tr data-check=\"{}\"><td>{}</td><td class=\"{class}\">{mark}</td><td>{}</td></tr>",
            escape(&check.name),
            escape(&check.name),
            escape(&check.message)
        );
    }
    h.push_str("</table></section>");
    h.push_str("<section id=\"peers\"><h2>Peers</h2><table><tr><th>peer</th><th>id</th><th>connected</th>\
<th>partials on time</th><th>late</th><th>missing</th><th>invalid</th><th>in deciding quorums</th><th>refused messages</th></tr>");
    for p in &status.peers {
        let connected = match p.connected {
            Some(true) => "<td class=\"ok\">yes</td>",
            Some(false) => "<td class=\"fail\">no</td>",
            None => "<td>?</td>",
        };
        let t = &p.tally;
        let _ = write!(
            h,
            "<tr data-peer=\"{}\"><td>{}</td><td>{}</td>{connected}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.index,
            p.index,
            escape(&p.peer_id),
            t.on_time,
            t.late,
            t.missing,
            t.invalid,
            t.decisions,
            t.misbehaviour
        );
    }
    h.push_str("</table></section>");
    render_timeline(&mut h, status);
    h.push_str("</body></html>");
    h
}

/// The duties of the last two epochs: one row per duty, one cell per slot.
fn render_timeline(h: &mut String, status: &Status) {
    let mut cells: BTreeMap<(&str, u64), Vec<&DutyEvent>> = BTreeMap::new();
    for e in &status.duties {
        cells.entry((e.duty, e.slot)).or_default().push(e);
    }
    let traces: BTreeMap<(&str, u64), &DutyTrace> = status
        .traces
        .iter()
        .map(|t| ((t.duty, t.slot), t))
        .collect();
    let mut duties: Vec<&str> = DUTY_ORDER
        .iter()
        .copied()
        .filter(|d| cells.keys().any(|(duty, _)| duty == d))
        .collect();
    for (duty, _) in cells.keys() {
        if !duties.contains(duty) {
            duties.push(duty);
        }
    }
    let _ = write!(
        h,
        "<section id=\"duties\"><h2>Duties, slots {} to {}</h2><table class=\"timeline\"><tr><th>duty</th>",
        status.first_slot, status.current_slot
    );
    let slots = status.first_slot..=status.current_slot;
    for slot in slots.clone() {
        let _ = write!(h, "<th>{}</th>", slot % 100);
    }
    h.push_str("</tr>");
    for duty in &duties {
        let _ = write!(h, "<tr data-duty=\"{duty}\"><td>{duty}</td>");
        for slot in slots.clone() {
            let events = cells.get(&(duty, slot)).map(Vec::as_slice).unwrap_or(&[]);
            let failed: Vec<&str> = events
                .iter()
                .filter_map(|e| match e.outcome {
                    Outcome::Failed(r) => Some(r.as_str()),
                    _ => None,
                })
                .collect();
            let has = |o: Outcome| events.iter().any(|e| e.outcome == o);
            let (class, mark) = if !failed.is_empty() {
                ("failed", "✗")
            } else if has(Outcome::Included) {
                ("included", "✓")
            } else if has(Outcome::Submitted) {
                ("submitted", "·")
            } else {
                ("none", "")
            };
            let mut title: Vec<String> = events
                .iter()
                .map(|e| format!("{} ×{}: {}", e.outcome.name(), e.count, e.detail))
                .collect();
            if let Some(trace) = traces.get(&(*duty, slot)) {
                title.extend(
                    trace
                        .steps
                        .iter()
                        .map(|(stage, ms, detail)| format!("{ms:+} ms {stage}: {detail}")),
                );
            }
            let _ = write!(
                h,
                "<td class=\"{class}\" data-slot=\"{slot}\" data-outcome=\"{}\" title=\"slot {slot}&#10;{}\">{mark}</td>",
                escape(&failed.join(" ")),
                escape(&title.join("\n")).replace('\n', "&#10;")
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h3>Failures</h3><ul id=\"failures\">");
    for e in status.duties.iter().rev() {
        if let Outcome::Failed(reason) = e.outcome {
            let _ = write!(
                h,
                "<li data-reason=\"{reason}\">slot {} {} <b>{reason}</b> ×{}: {}</li>",
                e.slot,
                e.duty,
                e.count,
                escape(&e.detail)
            );
        }
    }
    h.push_str("</ul></section>");
}

/// Serves the page on `/` and its data on `/api/status` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, sources: Arc<Sources>) {
    use axum::routing::get;
    let page = {
        let sources = sources.clone();
        move || {
            let html = render(&sources.status());
            async move { axum::response::Html(html) }
        }
    };
    let api = move || {
        let status = sources.status();
        async move { axum::Json(status) }
    };
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/api/status", get(api));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("status page server stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Reason;
    use std::time::Duration;

    #[test]
    fn the_page_shows_failures_with_their_reasons_and_escapes_what_it_is_told() {
        let metrics = Metrics::new(false);
        let health = Health::new(
            metrics.clone(),
            Duration::from_secs(1),
            8,
            2,
            Some((0, 4, 3)),
        );
        metrics.duty_ok(3, "attester", 0, "attestations submitted", 2);
        metrics.duty_included(3, "attester", 1, 2);
        metrics.duty_failed(
            4,
            "proposer",
            Reason::BroadcastFailed,
            1,
            "beacon node said <script>",
        );
        let status = Status {
            cluster: ClusterInfo {
                name: "test <cluster>".into(),
                lock_hash: "0xab".into(),
                network: "minimal".into(),
                threshold: 3,
                validators: 2,
                me: Some(0),
                operators: (0..4)
                    .map(|i| (i, format!("peer{i}"), String::new()))
                    .collect(),
            },
            version: "0",
            current_slot: 5,
            first_slot: 0,
            health: health.report(),
            peers: Vec::new(),
            duties: metrics.events_since(0),
            traces: metrics
                .traces_since(0)
                .iter()
                .map(|((slot, duty), steps)| DutyTrace::of(*slot, duty, steps, 0))
                .collect(),
        };
        let page = render(&status);
        assert!(page.contains("test &lt;cluster&gt;") && !page.contains("<script>beacon"));
        assert!(page.contains("beacon node said &lt;script&gt;"));
        assert!(
            page.contains(r#"<td class="included" data-slot="3""#),
            "{page}"
        );
        assert!(
            page.contains(r#"<td class="failed" data-slot="4" data-outcome="broadcast_failed""#)
        );
        assert!(page.contains(r#"<li data-reason="broadcast_failed">slot 4 proposer"#));
        // Each cell's title is the duty's trace: outcome lines, then its steps.
        assert!(
            page.contains("included ×2: in the block of slot 4&#10;")
                && page.contains(" ms included: 2: included (in the block of slot 4)"),
            "{page}"
        );
        assert!(page.contains(r#"<span id="readiness" class="badge not-ready">NOT READY</span>"#));
    }
}
