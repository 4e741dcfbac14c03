//! `dvnode`: the distributed validator node.

mod config_file;
mod dkg;
mod runtime;

use clap::{Args, Parser, Subcommand};
use dv_cluster::{combine_cluster, create_cluster, network, CreateOptions, KeySource};
use dv_crypto::KdfChoice;
use dv_types::Version;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dvnode",
    version,
    about = "Distributed validator node for Ethereum"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create things: a cluster's key shares and locks, an operator's key, a
    /// key-generation ceremony's definition.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Run this operator's part of a key-generation ceremony: with the
    /// definition's other operators, make the cluster's keys without a
    /// trusted dealer and write this operator's node into --data-dir.
    Dkg(dkg::DkgArgs),
    /// Rebuild the full validator keystores from the key shares of t nodes.
    Combine(CombineArgs),
    /// Run a node of a cluster: built-in validator, attester and proposer duties (Electra and later).
    Run(RunArgs),
    /// Import or export the node's slashing protection history (EIP-3076).
    #[command(subcommand)]
    SlashingProtection(SlashingCommand),
    /// Voluntary exits of the cluster's validators.
    #[command(subcommand)]
    Exit(ExitCommand),
    /// Print a running node's health (its /readyz and /livez): exits 0 when
    /// the node is ready, 1 when it is not or cannot be reached.
    Status(StatusArgs),
}

#[derive(Args)]
struct StatusArgs {
    /// The node's --metrics address (host:port or a URL).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5064")]
    metrics_address: String,
}

#[derive(Subcommand)]
enum ExitCommand {
    /// Sign this operator's partial of a validator's voluntary exit. The
    /// partial is written to DATA_DIR/exits/; the node running on that
    /// directory offers it to its peers every epoch and submits the exit
    /// once the cluster's threshold of operators have signed it.
    Sign(ExitSignArgs),
}

#[derive(Args)]
struct ExitSignArgs {
    /// The node's directory (cluster lock and key shares).
    #[arg(long)]
    data_dir: PathBuf,
    /// The validator's public key (0x-hex, 48 bytes).
    #[arg(long)]
    validator: dv_types::PublicKeyBytes,
    /// The exit's epoch (default: the chain's current epoch); every
    /// operator must sign the same one.
    #[arg(long)]
    epoch: Option<u64>,
    /// Beacon node URL (validator index, genesis, chain spec); repeat for fallbacks.
    #[arg(long = "beacon-node", required = true)]
    beacon_nodes: Vec<String>,
}

/// `dvnode run`'s flags. Lighthouse's names where the meaning matches
/// (`--datadir`, `--beacon-nodes`, `--metrics`, `--metrics-address`,
/// `--metrics-port`, `--http`, `--http-address`, `--http-port`,
/// `--debug-level`, `--logfile`, `--network`); the earlier names stay as
/// aliases. Each flag can also come from an environment variable
/// (`DVNODE_` and its name) or from `--config-file` (TOML); the command
/// line wins over the environment, which wins over the file.
#[derive(Args)]
struct RunArgs {
    /// The node's directory as `dvnode create cluster` wrote it.
    #[arg(long = "datadir", visible_alias = "data-dir", env = "DVNODE_DATADIR")]
    data_dir: PathBuf,
    /// Beacon node URLs, comma separated (or the flag repeated), tried in order.
    #[arg(
        long = "beacon-nodes",
        visible_alias = "beacon-node",
        env = "DVNODE_BEACON_NODES",
        value_delimiter = ',',
        required = true
    )]
    beacon_nodes: Vec<String>,
    /// libp2p listen address (default: this node's address in the cluster lock).
    #[arg(long, env = "DVNODE_P2P_LISTEN")]
    p2p_listen: Option<String>,
    /// Serve Prometheus metrics on /metrics and the health checks on
    /// /readyz and /livez, at --metrics-address:--metrics-port (or at the
    /// address given here: `--metrics 127.0.0.1:9464`).
    #[arg(long, env = "DVNODE_METRICS", value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    metrics: Option<String>,
    /// Address of the metrics server.
    #[arg(
        long,
        env = "DVNODE_METRICS_ADDRESS",
        default_value = "127.0.0.1",
        requires = "metrics"
    )]
    metrics_address: std::net::IpAddr,
    /// Port of the metrics server.
    #[arg(
        long,
        env = "DVNODE_METRICS_PORT",
        default_value_t = 5064,
        requires = "metrics"
    )]
    metrics_port: u16,
    /// Metrics per validator too (one series per validator and duty: for
    /// small clusters only).
    #[arg(long, env = "DVNODE_METRICS_PER_VALIDATOR", requires = "metrics")]
    metrics_per_validator: bool,
    /// Serve the status page (the cluster, its peers and the last epochs'
    /// duties with their failure reasons) at --http-address:--http-port.
    #[arg(long, env = "DVNODE_HTTP")]
    http: bool,
    /// Address of the status page.
    #[arg(
        long,
        env = "DVNODE_HTTP_ADDRESS",
        default_value = "127.0.0.1",
        requires = "http"
    )]
    http_address: std::net::IpAddr,
    /// Port of the status page.
    #[arg(
        long,
        env = "DVNODE_HTTP_PORT",
        default_value_t = 5062,
        requires = "http"
    )]
    http_port: u16,
    /// Log level: trace, debug, info, warn, error or crit (RUST_LOG, when
    /// set, decides instead).
    #[arg(long, env = "DVNODE_DEBUG_LEVEL", default_value = "info", value_parser = ["trace", "debug", "info", "warn", "error", "crit"])]
    debug_level: String,
    /// Also write the log to this file (appended).
    #[arg(long, env = "DVNODE_LOGFILE")]
    logfile: Option<PathBuf>,
    /// The network the cluster must be on (refused if its lock names another).
    #[arg(long, env = "DVNODE_NETWORK")]
    network: Option<String>,
    /// Middleware mode: serve the Beacon API on ADDR to a validator client
    /// run with --distributed that holds this node's key shares (the node
    /// then loads no keystores).
    #[arg(
        long,
        env = "DVNODE_VALIDATOR_API",
        value_name = "ADDR",
        conflicts_with = "plain"
    )]
    validator_api: Option<std::net::SocketAddr>,
    /// Run a normal validator from a 1-node cluster's directory (its shares
    /// are the whole keys): no consensus, no peers, the same duty services
    /// and slashing protection. The baseline a distributed validator is
    /// measured against.
    #[arg(long, env = "DVNODE_PLAIN")]
    plain: bool,
    /// Read flags from this TOML file: `flag-name = value` (a list for
    /// repeated flags, true for switches).
    #[arg(long, env = "DVNODE_CONFIG_FILE")]
    config_file: Option<PathBuf>,
}

impl RunArgs {
    /// Where to serve metrics, if anywhere.
    fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>, String> {
        match self.metrics.as_deref() {
            None => Ok(None),
            Some("") | Some("true") => Ok(Some((self.metrics_address, self.metrics_port).into())),
            Some(addr) => addr.parse().map(Some).map_err(|e| {
                format!("--metrics {addr:?}: {e} (give host:port, or --metrics alone with --metrics-address and --metrics-port)")
            }),
        }
    }
}

#[derive(Subcommand)]
enum SlashingCommand {
    /// Merge an EIP-3076 interchange file into the node's database (all or nothing).
    Import {
        file: PathBuf,
        /// The node's data directory (holds slashing_protection.sqlite).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Write the node's history as an EIP-3076 interchange file.
    Export {
        file: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        /// Only the highest block and (source, target) per validator.
        #[arg(long)]
        minimal: bool,
        /// Needed when the database has not recorded its chain's root yet.
        #[arg(long)]
        genesis_validators_root: Option<dv_types::Root>,
        /// Overwrite FILE if it exists.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum CreateCommand {
    /// Trusted dealer: split validator keys and write one directory per node.
    Cluster(CreateClusterArgs),
    /// This operator's p2p key (its identity in a cluster), made on its own
    /// machine; prints the record to give the cluster's creator.
    OperatorKey(dkg::OperatorKeyArgs),
    /// A cluster definition for a key-generation ceremony, signed by its creator.
    Dkg(dkg::CreateDkgArgs),
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).args(["interop_validators", "split_keystores", "validators"])))]
struct CreateClusterArgs {
    /// Interop (dev chain) validator indices, Rust range syntax: `4..8` is validators 4 to 7.
    #[arg(long, value_parser = parse_range)]
    interop_validators: Option<Range<u64>>,
    /// Split the existing EIP-2335 keystores (*.json) in this directory.
    #[arg(long)]
    split_keystores: Option<PathBuf>,
    /// Password for every keystore of --split-keystores (default: `<keystore>.txt` beside each).
    #[arg(long, requires = "split_keystores")]
    password_file: Option<PathBuf>,
    /// Create this many fresh random validator keys.
    #[arg(long)]
    validators: Option<usize>,
    /// Number of nodes (operators); at least 3, or 1 for a single-node baseline.
    #[arg(long)]
    nodes: usize,
    /// Partial signatures needed; default ceil(2N/3), must be in (N/2, N].
    #[arg(long)]
    threshold: Option<usize>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Directory to write node0..node{N-1} into.
    #[arg(long)]
    out: PathBuf,
    /// Replace a cluster already in --out.
    #[arg(long)]
    force: bool,
    /// One libp2p multiaddress per node, comma separated (default 127.0.0.1 ports from --p2p-base-port).
    #[arg(long, value_delimiter = ',')]
    p2p_addresses: Option<Vec<String>>,
    #[arg(long, default_value_t = 13000)]
    p2p_base_port: u16,
    /// Cluster name recorded in the lock.
    #[arg(long, default_value = "dv-cluster")]
    name: String,
    /// Sign each validator's builder registration (MEV-boost) with this fee
    /// recipient into the lock; the nodes submit it when validator clients
    /// register (their own registrations, signed with shares, cannot combine).
    #[arg(long, value_name = "0xADDRESS")]
    fee_recipient: Option<dv_types::ExecutionAddress>,
    /// Gas limit of those registrations.
    #[arg(long, default_value_t = 36_000_000, requires = "fee_recipient")]
    gas_limit: u64,
    #[command(flatten)]
    keystore: KeystoreArgs,
}

#[derive(Args)]
pub(crate) struct KeystoreArgs {
    /// Encrypt keystores with a cheap KDF (PBKDF2, 16 rounds). Test networks only.
    #[arg(long)]
    insecure_keystores: bool,
}

impl KeystoreArgs {
    fn kdf(&self) -> KdfChoice {
        if self.insecure_keystores {
            eprintln!("warning: --insecure-keystores: keystores use a cheap KDF; never use them on a real network");
            KdfChoice::Pbkdf2 { iterations: 16 }
        } else {
            KdfChoice::Scrypt
        }
    }
}

#[derive(Args)]
struct CombineArgs {
    /// Directory holding at least t node directories of one cluster.
    #[arg(long)]
    cluster: PathBuf,
    /// Where to write keystore-{k}.json and keystore-{k}.txt.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite keystores already in --out.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    keystore: KeystoreArgs,
}

fn parse_range(text: &str) -> Result<Range<u64>, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("{text:?} is not a range like 4..8"))?;
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|e| format!("{text:?}: {s:?}: {e}"))
    };
    let range = parse(start)?..parse(end)?;
    if range.is_empty() {
        return Err(format!(
            "{text:?} is empty (the end is exclusive: 4..8 is validators 4 to 7)"
        ));
    }
    Ok(range)
}

/// The chain a new cluster is for.
#[derive(Args)]
pub(crate) struct NetworkArgs {
    /// Network: mainnet, sepolia, holesky, hoodi or minimal (dev chains).
    #[arg(long, default_value = "mainnet", conflicts_with = "fork_version")]
    network: String,
    /// Genesis fork version of a custom chain, e.g. 0x10000038.
    #[arg(long)]
    fork_version: Option<Version>,
}

impl NetworkArgs {
    /// The genesis fork version and the network's name.
    pub(crate) fn resolve(&self) -> Result<(Version, String), String> {
        match self.fork_version {
            Some(version) => Ok((version, network::network_name(version).to_string())),
            None => {
                let version = network::genesis_fork_version(&self.network).ok_or_else(|| {
                    let known: Vec<&str> = network::NETWORKS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "unknown --network {:?} (known: {}; or pass --fork-version)",
                        self.network,
                        known.join(", ")
                    )
                })?;
                Ok((version, self.network.clone()))
            }
        }
    }
}

fn create(args: CreateClusterArgs) -> Result<(), String> {
    let (fork_version, network_name) = args.network.resolve()?;
    let keys = match (
        args.interop_validators,
        args.split_keystores,
        args.validators,
    ) {
        (Some(range), _, _) => KeySource::Interop(range),
        (_, Some(dir), _) => KeySource::Keystores {
            dir,
            password_file: args.password_file,
        },
        (_, _, Some(count)) => KeySource::Random(count),
        _ => {
            return Err(
                "one of --interop-validators, --split-keystores, --validators is required".into(),
            )
        }
    };
    let opts = CreateOptions {
        name: args.name,
        keys,
        nodes: args.nodes,
        threshold: args.threshold,
        fork_version,
        network: network_name,
        out: args.out.clone(),
        force: args.force,
        kdf: args.keystore.kdf(),
        p2p_addresses: args.p2p_addresses,
        p2p_base_port: args.p2p_base_port,
        builder: args.fee_recipient.map(|f| (f, args.gas_limit)),
    };
    let lock = create_cluster(&opts).map_err(|e| e.to_string())?;
    let body = &lock.body;
    println!(
        "created cluster {:?}: {} nodes, threshold {}, {} validators, network {} (fork version {})",
        body.name,
        body.node_count(),
        body.threshold,
        body.validators.len(),
        body.network,
        body.fork_version
    );
    println!("lock hash {}", lock.lock_hash);
    for (k, v) in body.validators.iter().enumerate() {
        println!("validator {k}: {}", v.public_key);
    }
    for op in &body.operators {
        println!(
            "node{}: peer {} at {} -> {}",
            op.index,
            op.peer_id,
            op.address,
            args.out.join(format!("node{}", op.index)).display()
        );
    }
    Ok(())
}

fn combine(args: CombineArgs) -> Result<(), String> {
    let written = combine_cluster(&args.cluster, &args.out, args.keystore.kdf(), args.force)
        .map_err(|e| e.to_string())?;
    for (k, key) in written.iter().enumerate() {
        println!(
            "validator {k}: {key} -> {}",
            args.out.join(format!("keystore-{k}.json")).display()
        );
    }
    Ok(())
}

fn slashing_protection(command: SlashingCommand) -> Result<(), String> {
    use slashing_protection::{ExportFormat, Interchange, SlashingDatabase};
    match command {
        SlashingCommand::Import { file, data_dir } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let interchange =
                Interchange::from_json(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let db = SlashingDatabase::open_in_dir(&data_dir).map_err(|e| e.to_string())?;
            let summary = db
                .import_interchange(&interchange)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "imported {} validators: {} blocks, {} attestations ({} already present) into {}",
                summary.validators,
                summary.blocks_imported,
                summary.attestations_imported,
                summary.duplicates_skipped,
                db.path().display()
            );
        }
        SlashingCommand::Export {
            file,
            data_dir,
            minimal,
            genesis_validators_root,
            force,
        } => {
            if file.exists() && !force {
                return Err(format!(
                    "{} exists; pass --force to overwrite it",
                    file.display()
                ));
            }
            let db = SlashingDatabase::open_in_dir(&data_dir).map_err(|e| e.to_string())?;
            let recorded = db.genesis_validators_root().map_err(|e| e.to_string())?;
            let root = match (recorded, genesis_validators_root) {
                (Some(r), Some(given)) if r != given => {
                    return Err(format!("--genesis-validators-root {given} differs from the database's {r}"))
                }
                (Some(r), _) | (None, Some(r)) => r,
                (None, None) => {
                    return Err("the database has no genesis validators root yet; pass --genesis-validators-root".into())
                }
            };
            let format = if minimal {
                ExportFormat::Minimal
            } else {
                ExportFormat::Complete
            };
            let interchange = db
                .export_interchange(root, format, None)
                .map_err(|e| e.to_string())?;
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, interchange.to_json())
                .and_then(|()| std::fs::rename(&tmp, &file))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            println!(
                "exported {} validators to {}",
                interchange.data.len(),
                file.display()
            );
        }
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<(), String> {
    let metrics = args.metrics_addr()?;
    let http = args
        .http
        .then(|| std::net::SocketAddr::from((args.http_address, args.http_port)));
    init_logging(&args.debug_level, args.logfile.as_deref())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    runtime.block_on(async {
        let node = runtime::Node::start(runtime::RunConfig {
            data_dir: args.data_dir,
            beacon_nodes: args.beacon_nodes,
            p2p_listen: args.p2p_listen,
            metrics,
            metrics_per_validator: args.metrics_per_validator,
            http,
            network: args.network,
            validator_api: args.validator_api,
            plain: args.plain,
        })
        .await?;
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("shutting down");
        };
        node.run(shutdown).await;
        Ok(())
    })
}

/// The log: stderr, and `logfile` too if given; at `level` unless RUST_LOG says otherwise.
pub(crate) fn init_logging(level: &str, logfile: Option<&std::path::Path>) -> Result<(), String> {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    // Lighthouse's "crit" is the most severe level tracing has.
    let level = if level == "crit" { "error" } else { level };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // libp2p's request-response handler warns once per stream it drops
        // over its concurrency cap: a flooding peer would fill the log. What
        // a peer does wrong is logged (rate-limited) and counted by the node.
        tracing_subscriber::EnvFilter::new(format!("{level},libp2p_request_response=error"))
    });
    let writer = match logfile {
        None => BoxMakeWriter::new(std::io::stderr),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("--logfile {}: {e}", path.display()))?;
            BoxMakeWriter::new(std::io::stderr.and(std::sync::Mutex::new(file)))
        }
    };
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(())
}

fn exit(command: ExitCommand) -> Result<(), String> {
    let ExitCommand::Sign(args) = command;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    let (path, exit) = runtime.block_on(dv_node::exits::sign_exit(
        &args.data_dir,
        &args.beacon_nodes,
        args.validator,
        args.epoch,
    ))?;
    println!(
        "signed this operator's partial of the exit of validator {} (index {}) at epoch {} -> {}",
        args.validator,
        exit.validator_index,
        exit.epoch,
        path.display()
    );
    println!("the node running on {} submits the exit once the cluster's threshold of operators have signed it", args.data_dir.display());
    Ok(())
}

fn status(args: StatusArgs) -> Result<(), String> {
    let base = match args.metrics_address.contains("://") {
        true => args.metrics_address.trim_end_matches('/').to_string(),
        false => format!("http://{}", args.metrics_address),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio: {e}"))?;
    let (report, alive) = runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            let http = http.clone();
            async move {
                let response = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                let status = response.status();
                let body = response.text().await.map_err(|e| format!("{url}: {e}"))?;
                Ok::<_, String>((status, body, url))
            }
        };
        let (_, body, url) = get("/readyz").await?;
        let report: dv_node::health::Report = serde_json::from_str(&body)
            .map_err(|e| format!("{url}: not a readiness report ({e}): {body}"))?;
        let alive = get("/livez").await.map(|(s, _, _)| s.is_success());
        Ok::<_, String>((report, alive))
    })?;
    println!(
        "node at {base}: {}",
        if report.ready { "ready" } else { "NOT READY" }
    );
    for check in &report.checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        println!("  {mark} {:<12} {}", check.name, check.message);
    }
    println!("  alive: {}", matches!(alive, Ok(true)));
    match report.ready {
        true => Ok(()),
        false => Err(format!("not ready: {}", report.reasons.join("; "))),
    }
}

/// glibc's malloc gives threads that allocate at once arenas of their own,
/// up to eight per core, and keeps what is freed in each: a node's bursts of
/// signing and verification on every core left its resident memory growing
/// through the run (20,000 validators: 250 MB after one epoch, against 138 MB
/// with two arenas and the same latency). `MALLOC_ARENA_MAX` set in the
/// environment still decides.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread runs;
        // mallopt only changes a malloc parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = match config_file::parse_args::<Cli>(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(config_file::ParseError::Clap(e)) => e.exit(),
        Err(config_file::ParseError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = dv_fault::check_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Create(CreateCommand::Cluster(args)) => create(args),
        Command::Create(CreateCommand::OperatorKey(args)) => dkg::create_operator_key(args),
        Command::Create(CreateCommand::Dkg(args)) => dkg::create_definition(args),
        Command::Dkg(args) => dkg::run_ceremony(args),
        Command::Combine(args) => combine(args),
        Command::SlashingProtection(command) => slashing_protection(command),
        Command::Exit(command) => exit(command),
        Command::Status(args) => status(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
