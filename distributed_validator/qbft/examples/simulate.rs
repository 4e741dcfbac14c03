//! `cargo run --release -p qbft --example simulate -- --runs N --seed S [--nodes n]`
//!
//! Runs N seeded simulations (run i uses seed S + i; without --nodes, n cycles
//! through 1, 4, 7, 10), prints each violating run so it can be replayed alone
//! with `--runs 1 --seed <its seed> --nodes <its n>`, and ends with
//! `runs=<N> decided=<D> violations=<V>` (V counts violating runs).

use qbft::simulator::run_many;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut runs = 1000u64;
    let mut seed = 1u64;
    let mut nodes = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--runs", Some(v)) => runs = v,
            ("--seed", Some(v)) => seed = v,
            ("--nodes", Some(v)) if v >= 1 => nodes = Some(v as usize),
            (flag, _) => {
                eprintln!(
                    "error: bad argument {flag:?}; usage: simulate --runs N --seed S [--nodes n]"
                );
                return ExitCode::from(2);
            }
        }
        i += 2;
    }
    let reports = run_many(runs, seed, nodes);
    let mut violating = 0;
    for r in &reports {
        if !r.violations.is_empty() {
            violating += 1;
            println!(
                "seed={} nodes={} roles={:?} gst={}ms: {:?}",
                r.seed, r.nodes, r.roles, r.gst_ms, r.violations
            );
        }
    }
    let decided = reports.iter().filter(|r| r.all_correct_decided).count();
    println!(
        "runs={} decided={decided} violations={violating}",
        reports.len()
    );
    if violating == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
