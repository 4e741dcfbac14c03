//! `validator-client-simulator --beacon-node URL --keys DIR`: a validator
//! client run with `--distributed` against a `dvnode` validator API, holding
//! the key shares in DIR (a node's `validator_keys/`). Runs until SIGINT or
//! SIGTERM and prints what it did.

use clap::Parser;
use dv_integration::validator_client::{load_share_keys, Encoding, ValidatorClient};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
struct Args {
    /// The node's validator API (what the client takes for its beacon node).
    #[arg(long)]
    beacon_node: String,
    /// Directory of keystore-*.json with keystore-*.txt passwords.
    #[arg(long)]
    keys: PathBuf,
    /// Speak JSON only (by default SSZ wherever the Beacon API offers it,
    /// as Lodestar's validator client does).
    #[arg(long)]
    json: bool,
    /// Subscribe as no committee's aggregator and publish no aggregate (a
    /// client that skips aggregation: the chain then counts its committees'
    /// attestations missed).
    #[arg(long)]
    skip_aggregation: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let encoding = if args.json {
        Encoding::Json
    } else {
        Encoding::Ssz
    };
    let keys = match load_share_keys(&args.keys) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The node may still be starting: retry the first contact for a while.
    let mut client = None;
    for _ in 0..60 {
        match ValidatorClient::start(&args.beacon_node, keys.clone(), encoding).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(e) => {
                tracing::warn!("validator client: waiting for {}: {e}", args.beacon_node);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let Some(client) = client else {
        eprintln!("error: {} never answered", args.beacon_node);
        return std::process::ExitCode::FAILURE;
    };
    let client = std::sync::Arc::new(if args.skip_aggregation {
        client.without_aggregation()
    } else {
        client
    });
    let first = client.first_slot_to_run();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: signal handler: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = client.run_slots(first, u64::MAX) => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let c = client.counts();
    println!(
        "validator client: attestations_submitted={} blocks_published={} selections_combined={} aggregates_published={} sync_messages_submitted={} contributions_published={} registrations_submitted={} errors={}",
        c.attestations_submitted, c.blocks_published, c.selections_combined, c.aggregates_published, c.sync_messages_submitted, c.contributions_published, c.registrations_submitted, c.errors
    );
    std::process::ExitCode::SUCCESS
}
