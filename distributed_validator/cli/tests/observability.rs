//! What an operator sees of a running node: readiness and liveness
//! (`/readyz`, `/livez`, `dvnode status`) as its beacon node goes away.

mod common;

use common::{create_cluster, free_port, http_get, node_logs, start_dvnode, tail, Processes};
use dv_integration::server::now_ms;
use dv_types::ForkName;
use std::time::Duration;

const SLOT_MS: u64 = 1000;

/// The four nodes of `cluster`, node 0 with `node0_flags`.
fn start_four(
    cluster: &std::path::Path,
    url: &str,
    logs: &std::path::Path,
    node0_flags: &[&str],
) -> Processes {
    Processes(
        (0..4)
            .map(|i| {
                let extra = if i == 0 { node0_flags } else { &[] };
                start_dvnode(
                    &cluster.join(format!("node{i}")),
                    url,
                    extra,
                    &logs.join(format!("node{i}.log")),
                )
            })
            .collect(),
    )
}

/// The HTTP status code of an answer of [`http_get`].
fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Polls `/readyz` until `done` holds for its answer, for at most `within`.
async fn wait_for_readyz(addr: &str, within: Duration, done: impl Fn(&str) -> bool) -> String {
    let until = std::time::Instant::now() + within;
    loop {
        let answer = http_get(addr, "/readyz");
        if done(&answer) || std::time::Instant::now() > until {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_a_stopped_beacon_node_and_dvnode_status_prints_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = create_cluster(tmp.path(), 4);
    let (_state, url, genesis, stop_chain) =
        common::start_chain_stoppable(ForkName::Fulu, SLOT_MS).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let nodes = start_four(&cluster, &url, tmp.path(), &["--metrics", &metrics]);
    // Ready once the peers are connected and duties go out (by slot 6).
    let at = genesis * 1000 + 4 * SLOT_MS;
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
    let ready = wait_for_readyz(&metrics, Duration::from_secs(3), |a| status_of(a) == 200).await;
    let logs = || tail(&node_logs(tmp.path(), &[0, 1, 2, 3]));
    assert_eq!(status_of(&ready), 200, "{ready}\n{}", logs());
    assert!(ready.contains(r#""ready":true"#), "{ready}");
    let status = common::dvnode(&["status", "--metrics-address", &metrics]);
    let printed = common::text(&status);
    assert!(status.status.success(), "{printed}");
    assert!(
        printed.contains(": ready") && printed.contains("ok   peers"),
        "{printed}"
    );

    // The beacon node goes away: not ready, and the reason names it.
    let _ = stop_chain.send(());
    let answer = wait_for_readyz(&metrics, Duration::from_secs(5), |a| status_of(a) == 503).await;
    assert_eq!(status_of(&answer), 503, "{answer}\n{}", logs());
    assert!(
        answer.contains(&format!("beacon_node: {url}: unreachable")),
        "{answer}"
    );
    let status = common::dvnode(&["status", "--metrics-address", &metrics]);
    let printed = common::text(&status);
    assert!(!status.status.success(), "{printed}");
    assert!(
        printed.contains("NOT READY")
            && printed.contains("FAIL beacon_node")
            && printed.contains("unreachable"),
        "{printed}"
    );
    // Still alive: the node keeps its slot loop and waits for a beacon node.
    assert_eq!(status_of(&http_get(&metrics, "/livez")), 200);
    // A node nobody runs: status says it cannot reach it.
    let nobody = format!("127.0.0.1:{}", free_port());
    let status = common::dvnode(&["status", "--metrics-address", &nobody]);
    assert!(!status.status.success());
    assert!(
        common::text(&status).contains(&nobody),
        "{}",
        common::text(&status)
    );
    drop(nodes);
}

/// Width and height of a PNG (its IHDR chunk), if it is one.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

/// Headless Chromium on `url`: (the DOM after load, the screenshot's bytes).
fn chromium(url: &str, dir: &std::path::Path) -> (String, Vec<u8>) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ensure-chromium.sh");
    let found = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    assert!(found.status.success(), "{}", common::text(&found));
    let browser = String::from_utf8_lossy(&found.stdout).trim().to_string();
    let profile = dir.join("chromium-profile");
    let run = |extra: &[&str]| {
        std::process::Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--window-size=1280,1400", "--virtual-time-budget=3000"])
            .args(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let dom = run(&["--dump-dom"]);
    assert!(dom.status.success(), "{}", common::text(&dom));
    let shot = dir.join("status.png");
    let taken = run(&[&format!("--screenshot={}", shot.display())]);
    assert!(taken.status.success(), "{}", common::text(&taken));
    (
        String::from_utf8_lossy(&dom.stdout).into_owned(),
        std::fs::read(&shot).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_peers_down_and_the_duties_they_failed_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = create_cluster(tmp.path(), 4);
    let (_state, url, genesis, _stop) =
        common::start_chain_stoppable(ForkName::Fulu, SLOT_MS).await;
    let metrics_port = free_port().to_string();
    let http_port = free_port().to_string();
    // Lighthouse's flag names.
    let lighthouse_flags = [
        "--metrics",
        "--metrics-port",
        &metrics_port,
        "--http",
        "--http-port",
        &http_port,
    ];
    let mut nodes = start_four(&cluster, &url, tmp.path(), &lighthouse_flags);
    // Two operators go down at slot 6: from then on nothing reaches the threshold.
    let at = genesis * 1000 + 6 * SLOT_MS;
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
    for child in &mut nodes.0[2..] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let at = genesis * 1000 + 11 * SLOT_MS;
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await;
    let page = format!("http://127.0.0.1:{http_port}/");
    let (dom, png) = chromium(&page, tmp.path());
    let logs = || tail(&node_logs(tmp.path(), &[0, 1]));

    // Structure: the four parts, laid out one under the other, none empty.
    let layout_at = dom
        .find("data-layout=\"")
        .map(|i| i + 13)
        .unwrap_or_else(|| panic!("no layout recorded:\n{dom}"));
    let layout_text = dom[layout_at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&quot;", "\"");
    let layout: std::collections::BTreeMap<String, [i64; 3]> =
        serde_json::from_str(&layout_text).unwrap();
    let tops: Vec<i64> = ["cluster", "health", "peers", "duties"]
        .iter()
        .map(|id| {
            let [top, width, height] = layout[*id];
            assert!(width > 600 && height > 20, "{id}: {:?}", layout[*id]);
            top
        })
        .collect();
    assert!(tops.windows(2).all(|w| w[0] < w[1]), "{layout:?}");
    // Content: not ready because of the peers, peers 2 and 3 shown down,
    // duties that landed before and failed after, with their reason.
    assert!(
        dom.contains(r#"class="badge not-ready">NOT READY"#),
        "{dom}"
    );
    assert!(dom.contains("not connected: peer 2, peer 3"), "{dom}");
    for peer in [2, 3] {
        assert!(
            dom.contains(&format!(r#"<tr data-peer="{peer}"><td>{peer}</td>"#))
                && dom.contains(r#"<td class="fail">no</td>"#),
            "{dom}"
        );
    }
    assert!(dom.contains(r#"<tr data-duty="attester">"#), "{dom}");
    assert!(
        dom.contains(r#"class="included""#),
        "nothing shown included:\n{dom}\n{}",
        logs()
    );
    assert!(
        dom.contains(r#"class="failed" data-slot="#)
            && dom.contains(r#"data-outcome="no_consensus""#),
        "no failed duty shown:\n{dom}\n{}",
        logs()
    );
    assert!(dom.contains(r#"<li data-reason="no_consensus">"#), "{dom}");
    // Each cell carries its duty's trace: the steps with their times.
    for step in [
        " ms fetch: ",
        " ms decided: round 1",
        " ms recorded: ",
        " ms submitted: ",
        " ms included: ",
    ] {
        assert!(dom.contains(step), "no {step:?} step in the page:\n{dom}");
    }
    // The same failure in the log and the metric.
    assert!(
        node_logs(tmp.path(), &[0]).contains("reason=no_consensus"),
        "{}",
        logs()
    );
    let metrics = http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics");
    assert!(
        metrics.contains(r#"dv_duty_failed_total{duty="attester",reason="no_consensus"}"#),
        "{metrics}"
    );
    // The screenshot: the window's size, and more than a blank page.
    assert_eq!(png_size(&png), Some((1280, 1400)));
    assert!(png.len() > 20_000, "{} bytes: a blank page?", png.len());
    eprintln!(
        "status page: {} bytes of DOM, screenshot {} bytes, layout {layout:?}",
        dom.len(),
        png.len()
    );
    drop(nodes);
}
