//! The simulated beacon chain as a process: serves the Beacon API on
//! `--listen`, prints `listening on http://ADDR`, and on SIGINT/SIGTERM
//! writes its JSON report (to `--report` when given) and exits.

use clap::Parser;
use dv_integration::server::{now_ms, router, AppState};
use dv_integration::Chain;
use dv_types::{ForkName, Mainnet, Minimal, Preset};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "A strict simulated beacon chain for distributed validator tests")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Interop validators 0..N.
    #[arg(long, default_value_t = 64, conflicts_with = "genesis_validators")]
    validators: usize,
    /// Genesis validators from a cluster lock or launchpad deposit data
    /// (repeat for several files; a key's partial deposits are summed)
    /// instead of interop keys: e.g. the keys of a key-generation ceremony.
    #[arg(long, value_name = "FILE")]
    genesis_validators: Vec<PathBuf>,
    /// minimal or mainnet: the preset's containers, 8 or 32 slots per
    /// epoch, committees and sync committee sizes.
    #[arg(long, default_value = "minimal")]
    preset: String,
    /// deneb, electra or fulu.
    #[arg(long, default_value = "fulu")]
    fork: ForkName,
    #[arg(long, default_value_t = 2000)]
    slot_ms: u64,
    /// Genesis this many milliseconds after start.
    #[arg(long, default_value_t = 3000)]
    genesis_delay_ms: u64,
    /// Builder mode: block production returns blinded blocks (publication on
    /// /eth/v2/beacon/blinded_blocks).
    #[arg(long)]
    blinded: bool,
    /// SHARD_COMMITTEE_PERIOD: epochs before a validator may exit (the
    /// minimal preset's 64 unless a dev chain sets it lower, often to 0).
    #[arg(long, default_value_t = 64)]
    shard_committee_period: u64,
    /// Where to write the JSON report at exit.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !matches!(
        args.fork,
        ForkName::Deneb | ForkName::Electra | ForkName::Fulu
    ) || args.validators == 0
        || args.slot_ms < 100
    {
        eprintln!("error: --fork must be deneb, electra or fulu, --validators at least 1, --slot-ms at least 100");
        return std::process::ExitCode::from(2);
    }
    match args.preset.as_str() {
        "minimal" => serve::<Minimal>(args).await,
        "mainnet" => serve::<Mainnet>(args).await,
        other => {
            eprintln!("error: --preset must be minimal or mainnet, not {other:?}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn serve<P: Preset>(args: Args) -> std::process::ExitCode {
    let genesis_time = (now_ms() + args.genesis_delay_ms).div_ceil(1000);
    let mut chain = if args.genesis_validators.is_empty() {
        Chain::<P>::new(args.validators, args.fork, args.slot_ms, genesis_time)
    } else {
        let spec = if P::NAME == Mainnet::NAME {
            dv_types::ChainSpec::mainnet()
        } else {
            dv_types::ChainSpec::minimal()
        };
        let files: Vec<&std::path::Path> = args
            .genesis_validators
            .iter()
            .map(|p| p.as_path())
            .collect();
        let keys = match dv_integration::genesis::load_genesis_keys(
            &files,
            spec.fork_schedule.genesis_fork_version,
        ) {
            Ok(keys) => keys,
            Err(e) => {
                eprintln!("error: --genesis-validators: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        eprintln!(
            "genesis: {} validators from {} file(s)",
            keys.len(),
            files.len()
        );
        Chain::<P>::with_keys(keys, false, args.fork, args.slot_ms, genesis_time)
    };
    chain.builder = args.blinded;
    chain.spec.shard_committee_period = args.shard_committee_period;
    let state = AppState::new(chain);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    println!("listening on http://{addr}");
    let app = router(state.clone());
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
        }
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("error: server: {e}");
    }
    let report = state.chain().report_json(now_ms());
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    match &args.report {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: writing report {}: {e}", path.display());
                return std::process::ExitCode::FAILURE;
            }
        }
        None => println!("{text}"),
    }
    std::process::ExitCode::SUCCESS
}
