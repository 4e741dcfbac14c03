//! Running the real `dvnode` binary from integration tests, and the
//! fixtures the end-to-end tests share (each test binary uses a part).
#![allow(dead_code)]

pub mod byzantine;
pub mod generated;
pub mod netns;

use dv_integration::server::now_ms;
use dv_integration::{router, AppState, Chain};
use dv_types::{ForkName, Minimal, Preset};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub fn dvnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dvnode"))
        .args(args)
        .output()
        .expect("dvnode runs")
}

/// Everything the command printed, stdout then stderr.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port free now, below the kernel's ephemeral range: a port taken from
/// that range (by binding port 0) can be handed to another process's
/// outgoing connection before the node binds it, and the node then runs
/// without its listener. Test processes start at different offsets (their
/// pid), and a port that does not bind is skipped.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 10_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN)
}

/// Starts `dvnode run --data-dir DIR --beacon-node URL` with `extra`
/// arguments, its stdout dropped and its stderr appended to `log`.
pub fn start_dvnode(data_dir: &Path, beacon_node: &str, extra: &[&str], log: &Path) -> Child {
    start_dvnode_as(data_dir, beacon_node, extra, log, None, None)
}

/// [`start_dvnode`], with `DV_CRASH_AT` set to `crash_at` if given (see
/// `dv_fault`), inside network namespace `namespace` if given
/// (`ip netns exec` replaces itself with the node: the child is the node).
pub fn start_dvnode_as(
    data_dir: &Path,
    beacon_node: &str,
    extra: &[&str],
    log: &Path,
    crash_at: Option<&str>,
    namespace: Option<&str>,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let dvnode = env!("CARGO_BIN_EXE_dvnode");
    let mut command = match namespace {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, dvnode]);
            c
        }
        None => Command::new(dvnode),
    };
    command
        .args(["run", "--data-dir"])
        .arg(data_dir)
        .args(["--beacon-node", beacon_node])
        .args(extra)
        .env_remove(dv_fault::ENV)
        .stdout(std::process::Stdio::null())
        .stderr(log);
    if let Some(point) = crash_at {
        command.env(dv_fault::ENV, point);
    }
    command.spawn().unwrap()
}

/// Child processes, killed and reaped when the test ends (pass or panic).
pub struct Processes(pub Vec<Child>);

/// A process's resident memory (VmRSS), in kB; 0 if it is gone.
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `dvnode create cluster` over interop validators 0..8 in `dir/cluster`.
/// The fee recipient of the clusters' builder registrations (the one the
/// validator-client simulator asks for).
pub const FEE_RECIPIENT: &str = "0x0000000000000000000000000000000000000000";

pub fn create_cluster(dir: &Path, nodes: usize) -> PathBuf {
    create_cluster_on(dir, nodes, "minimal")
}

/// As [`create_cluster`], for `network`'s preset and fork version.
pub fn create_cluster_on(dir: &Path, nodes: usize, network: &str) -> PathBuf {
    let addresses: Vec<String> = (0..nodes)
        .map(|_| format!("/ip4/127.0.0.1/tcp/{}", free_port()))
        .collect();
    create_cluster_at(dir, network, &addresses)
}

/// As [`create_cluster_on`], the nodes at these p2p multiaddresses.
pub fn create_cluster_at(dir: &Path, network: &str, addresses: &[String]) -> PathBuf {
    let cluster = dir.join("cluster");
    let nodes = addresses.len();
    let created = dvnode(&[
        "create",
        "cluster",
        "--interop-validators",
        "0..8",
        "--nodes",
        &nodes.to_string(),
        "--network",
        network,
        "--insecure-keystores",
        "--fee-recipient",
        FEE_RECIPIENT,
        "--p2p-addresses",
        &addresses.join(","),
        "--out",
        cluster.to_str().unwrap(),
    ]);
    assert!(created.status.success(), "{}", text(&created));
    cluster
}

/// A simulated chain of 8 interop validators, genesis 3 s from now, served
/// on a free port: its state, URL and genesis time (unix seconds).
pub async fn start_chain(
    fork: ForkName,
    slot_ms: u64,
    builder: bool,
) -> (std::sync::Arc<AppState>, String, u64) {
    start_chain_on::<Minimal>(fork, slot_ms, builder).await
}

/// As [`start_chain`], on preset `P`.
pub async fn start_chain_on<P: Preset>(
    fork: ForkName,
    slot_ms: u64,
    builder: bool,
) -> (std::sync::Arc<AppState<P>>, String, u64) {
    start_chain_at::<P>(fork, slot_ms, builder, "127.0.0.1").await
}

/// As [`start_chain_on`], listening on `host` (an address of this machine).
pub async fn start_chain_at<P: Preset>(
    fork: ForkName,
    slot_ms: u64,
    builder: bool,
    host: &str,
) -> (std::sync::Arc<AppState<P>>, String, u64) {
    let genesis = now_ms() / 1000 + 3;
    let mut chain = Chain::<P>::new(8, fork, slot_ms, genesis);
    chain.builder = builder;
    let state = AppState::new(chain);
    let listener = tokio::net::TcpListener::bind((host, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url, genesis)
}

/// [`start_chain_at`] on 127.0.0.1, with a switch that stops the chain's
/// server (its listener closed, open connections finished): a beacon node
/// going away under the nodes.
pub async fn start_chain_stoppable(
    fork: ForkName,
    slot_ms: u64,
) -> (
    std::sync::Arc<AppState<dv_types::Minimal>>,
    String,
    u64,
    tokio::sync::oneshot::Sender<()>,
) {
    let genesis = now_ms() / 1000 + 3;
    let state = AppState::new(Chain::<dv_types::Minimal>::new(8, fork, slot_ms, genesis));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    (state, url, genesis, stop)
}

/// A plain HTTP/1.0 GET: the status line, headers and body ("" if nothing
/// listens). The tests need no HTTP client for a node's own endpoints.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// The last 40 lines, for assertion messages.
pub fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The `node{i}.log` files of the `running` nodes in `dir`, one after another.
pub fn node_logs(dir: &Path, running: &[usize]) -> String {
    running
        .iter()
        .map(|i| std::fs::read_to_string(dir.join(format!("node{i}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Every one of epoch 1's eight attestations and eight blocks landed.
pub const EPOCH_1_ALL_LANDED: dv_integration::chain::DutySummary =
    dv_integration::chain::DutySummary {
        attestations_ok: 8,
        attestations_missed: 0,
        proposals_ok: 8,
        proposals_missed: 0,
    };

/// Every metric the Grafana dashboard (`dashboards/dvnode.json`) queries
/// exists in `metrics` (a node's `/metrics`): its family is declared there
/// (`# TYPE`), whether or not it has samples yet. Returns the names checked.
pub fn assert_dashboard_metrics_exist(metrics: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards/dvnode.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query", serde_json::Value::String(e)) => out.push(e.clone()),
                        _ => collect(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    let mut names: Vec<String> = Vec::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(at) = rest.find("dv_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    names.sort();
    names.dedup();
    assert!(
        names.len() >= 15,
        "too few metrics found in the dashboard: {names:?}"
    );
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| {
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            let declared = format!("# TYPE {family} ");
            !metrics.lines().any(|l| l.starts_with(&declared))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics the node does not serve: {missing:?}"
    );
    names
}
