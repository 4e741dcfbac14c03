//! `dvnode create operator-key`, `dvnode create dkg` and `dvnode dkg`: a
//! cluster made by its operators, without a trusted dealer.

use crate::{init_logging, KeystoreArgs, NetworkArgs};
use clap::Args;
use dv_dkg::definition::{DefinitionOperator, DefinitionOptions};
use dv_dkg::Definition;
use dv_types::{ExecutionAddress, Gwei};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct OperatorKeyArgs {
    /// The operator's data directory (the key is written to DIR/p2p-key).
    #[arg(long, alias = "datadir")]
    data_dir: PathBuf,
    /// The multiaddress the other operators will dial, e.g. /ip4/203.0.113.7/tcp/13000.
    #[arg(long)]
    p2p_address: String,
}

#[derive(Args)]
pub struct CreateDkgArgs {
    /// Every operator, comma separated, as `dvnode create operator-key` printed it: PEER_ID@MULTIADDR.
    #[arg(long, value_delimiter = ',', required = true)]
    operators: Vec<String>,
    /// Validators to create.
    #[arg(long)]
    validators: usize,
    /// Partial signatures needed; default ceil(2N/3), must be in (N/2, N].
    #[arg(long)]
    threshold: Option<usize>,
    #[command(flatten)]
    network: NetworkArgs,
    /// Execution address the validators withdraw to.
    #[arg(long, value_name = "0xADDRESS")]
    withdrawal_address: ExecutionAddress,
    /// Fee recipient of the validators' builder registrations.
    #[arg(long, value_name = "0xADDRESS")]
    fee_recipient: ExecutionAddress,
    /// Gas limit of those registrations.
    #[arg(long, default_value_t = 36_000_000)]
    gas_limit: u64,
    /// 0x02 (compounding, EIP-7251) withdrawal credentials instead of 0x01.
    #[arg(long)]
    compounding: bool,
    /// Each validator's deposits in ETH, comma separated (partial deposits),
    /// e.g. 1,31; together at least 32, at most 32 (2048 with --compounding).
    #[arg(long, value_delimiter = ',', value_parser = parse_eth)]
    deposit_amounts: Option<Vec<Gwei>>,
    /// The creator's p2p key, which signs the definition (an operator's DIR/p2p-key will do).
    #[arg(long)]
    creator_key: PathBuf,
    #[arg(long, default_value = "dv-cluster")]
    name: String,
    /// Where to write the definition.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
pub struct DkgArgs {
    /// The cluster definition every operator was given.
    #[arg(long)]
    definition: PathBuf,
    /// This operator's data directory, holding its p2p-key; the node is written here.
    #[arg(long, alias = "datadir")]
    data_dir: PathBuf,
    /// Listen here instead of this operator's address in the definition.
    #[arg(long)]
    p2p_listen: Option<p2p::Multiaddr>,
    /// Seconds to wait for every operator to join.
    #[arg(long, default_value_t = 600)]
    join_timeout: u64,
    /// Seconds any later round may take.
    #[arg(long, default_value_t = 300)]
    round_timeout: u64,
    #[arg(long, default_value = "info")]
    debug_level: String,
    #[command(flatten)]
    keystore: KeystoreArgs,
}

/// "32", "1.5": ETH with up to nine decimals, in Gwei.
fn parse_eth(text: &str) -> Result<Gwei, String> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if fraction.len() > 9 || whole.is_empty() && fraction.is_empty() {
        return Err(format!(
            "{text:?} is not an amount of ETH (at most 9 decimals)"
        ));
    }
    let whole: u64 = if whole.is_empty() {
        Ok(0)
    } else {
        whole.parse()
    }
    .map_err(|e| format!("{text:?}: {e}"))?;
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}")
            .parse()
            .map_err(|e| format!("{text:?}: {e}"))?
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|g| g.checked_add(fraction))
        .ok_or_else(|| format!("{text:?} ETH is too large"))
}

pub fn create_operator_key(args: OperatorKeyArgs) -> Result<(), String> {
    let record = dv_dkg::output::create_operator_key(&args.data_dir, &args.p2p_address)?;
    println!(
        "wrote {} (keep it: it is this operator's identity)",
        args.data_dir
            .join(dv_cluster::layout::P2P_KEY_FILE)
            .display()
    );
    println!("peer id: {}", record.peer_id);
    println!("share this with the cluster's creator: {}", record.record());
    Ok(())
}

pub fn create_definition(args: CreateDkgArgs) -> Result<(), String> {
    let (fork_version, network) = args.network.resolve()?;
    let operators = args
        .operators
        .iter()
        .map(|record| DefinitionOperator::parse(record))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--operators: {e}"))?;
    let creator =
        p2p::load_keypair(&args.creator_key).map_err(|e| format!("--creator-key: {e}"))?;
    if args.out.exists() {
        return Err(format!("{} already exists", args.out.display()));
    }
    let definition = Definition::create(
        DefinitionOptions {
            name: args.name,
            operators,
            num_validators: args.validators,
            threshold: args.threshold,
            network,
            fork_version,
            withdrawal_address: args.withdrawal_address,
            fee_recipient: args.fee_recipient,
            gas_limit: args.gas_limit,
            compounding: args.compounding,
            deposit_amounts: args.deposit_amounts,
        },
        &creator,
    )?;
    std::fs::write(&args.out, definition.to_json())
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    let body = &definition.body;
    println!(
        "wrote {}: {} validators, {} operators, threshold {}, network {} (fork version {})",
        args.out.display(),
        body.num_validators,
        body.operators.len(),
        body.threshold,
        body.network,
        body.fork_version
    );
    println!("definition hash {}", definition.definition_hash);
    println!(
        "give this file to every operator; each runs: dvnode dkg --definition FILE --data-dir DIR"
    );
    Ok(())
}

pub fn run_ceremony(args: DkgArgs) -> Result<(), String> {
    init_logging(&args.debug_level, None)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    let summary = runtime.block_on(dv_dkg::run::run(dv_dkg::run::RunOptions {
        definition: args.definition,
        data_dir: args.data_dir.clone(),
        listen: args.p2p_listen,
        join_timeout: Duration::from_secs(args.join_timeout),
        round_timeout: Duration::from_secs(args.round_timeout),
        disconnect_grace: Duration::from_secs(5),
        kdf: args.keystore.kdf(),
    }))?;
    println!("ceremony complete in {:.1} s", summary.total.as_secs_f64());
    for (round, at) in &summary.rounds {
        println!("  {:<20} done at {:.2} s", round.name(), at.as_secs_f64());
    }
    if !summary.validators.is_empty() {
        println!(
            "  {:.1} ms per validator",
            summary.total.as_secs_f64() * 1000.0 / summary.validators.len() as f64
        );
    }
    for (dealer, reason) in &summary.disqualified {
        println!("disqualified operator {dealer}: {reason}");
    }
    for note in &summary.notes {
        println!("note: {note}");
    }
    println!("lock hash {}", summary.lock_hash);
    for (k, key) in summary.validators.iter().enumerate().take(10) {
        println!("validator {k}: {key}");
    }
    if summary.validators.len() > 10 {
        println!("... and {} more", summary.validators.len() - 10);
    }
    for path in &summary.written {
        println!("wrote {}", path.display());
    }
    println!(
        "run the node with: dvnode run --datadir {} --beacon-nodes URL",
        args.data_dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_eth;

    #[test]
    fn eth_amounts() {
        assert_eq!(parse_eth("32"), Ok(32_000_000_000));
        assert_eq!(parse_eth("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_eth("0.000000001"), Ok(1));
        assert!(parse_eth("1.0000000001").is_err());
        assert!(parse_eth("x").is_err());
        assert!(parse_eth(".").is_err());
    }
}
