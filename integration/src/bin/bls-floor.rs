//! The cryptographic floor of one threshold signature on one node of a
//! cluster: the BLS work no distributed validator can skip, timed on this
//! machine. The cluster benchmark (`scripts/bench-cluster.sh`) divides a
//! node's measured CPU by it.
//!
//! Per signature, with every attester of a slot signing one root (Electra):
//! this node's partial (the root hashed to G2 once for the slot), the other
//! `nodes - 1` partials decoded from the wire (with the subgroup check) and
//! checked in one batch, one Lagrange combination of `threshold` partials
//! and one batch check of the combined signatures.
//! Prints `FLOOR ms_per_attestation=... sign_us=... decode_us=... verify_us=...
//! combine_us=... check_us=...` (process CPU time per signature), and the
//! same as `FLOOR_DISTINCT` for signatures whose roots differ per validator
//! (aggregates, sync contributions): each root hashed to G2 and paired on its own.

use clap::Parser;
use dv_crypto::{
    batch_verify_messages, combine, split, HashedMessage, PartialSignature, PublicKey, SecretKey,
    Signature, ThresholdParams,
};

/// CPU time of this process (all threads), in µs: blst spreads some work
/// over its own threads, and a node's figure it is compared with is CPU time.
fn cpu_us() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

#[derive(Parser)]
#[command(about = "Times the BLS work of one attestation on one node of a cluster")]
struct Args {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Validators signing one root (one slot's attesters on one node).
    #[arg(long, default_value_t = 625)]
    validators: usize,
    /// Rounds over the same validators; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Microseconds per attestation of each step, for one round.
#[derive(Clone, Copy)]
struct Steps {
    sign: f64,
    decode: f64,
    verify: f64,
    combine: f64,
    check: f64,
}

impl Steps {
    fn total(&self) -> f64 {
        self.sign + self.decode + self.verify + self.combine + self.check
    }
}

fn main() {
    let args = Args::parse();
    let nodes = args.nodes.max(1);
    let params = match ThresholdParams::new(nodes - (nodes - 1) / 3, nodes) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bls-floor: --nodes {nodes}: {e}");
            std::process::exit(2);
        }
    };
    let secrets: Vec<SecretKey> = (0..args.validators).map(|_| SecretKey::random()).collect();
    let keys: Vec<PublicKey> = secrets.iter().map(SecretKey::public_key).collect();
    let shares: Vec<Vec<_>> = secrets.iter().map(|s| split(s, params)).collect();
    for (label, distinct) in [("FLOOR", false), ("FLOOR_DISTINCT", true)] {
        let mut best: Option<Steps> = None;
        for round in 0..args.rounds.max(1) {
            let steps = one_round(round as u8, distinct, &keys, &shares, params);
            if best.is_none_or(|b| steps.total() < b.total()) {
                best = Some(steps);
            }
        }
        let Some(s) = best else { return };
        println!(
            "{label} ms_per_attestation={:.3} sign_us={:.0} decode_us={:.0} verify_us={:.0} combine_us={:.0} check_us={:.0} nodes={} threshold={} validators={}",
            s.total() / 1000.0,
            s.sign,
            s.decode,
            s.verify,
            s.combine,
            s.check,
            nodes,
            params.threshold(),
            args.validators
        );
    }
}

/// One slot's work: every validator signs one root (`distinct` false: an
/// attestation or selection proof), or each its own (an aggregate, a sync
/// contribution: the root hashed and paired once per validator).
fn one_round(
    round: u8,
    distinct: bool,
    keys: &[PublicKey],
    shares: &[Vec<dv_crypto::SecretShare>],
    params: ThresholdParams,
) -> Steps {
    let count = keys.len().max(1) as f64;
    let per = |t: f64| (cpu_us() - t) / count;
    let nodes = params.total();
    let roots: Vec<[u8; 32]> = (0..keys.len())
        .map(|v| {
            let mut root = [round; 32];
            if distinct {
                root[..8].copy_from_slice(&(v as u64).to_le_bytes());
            }
            root
        })
        .collect();

    // This node (share 1) signs; a shared root is hashed once for the slot.
    let t = cpu_us();
    let own: Vec<PartialSignature> = if distinct {
        shares
            .iter()
            .zip(&roots)
            .map(|(s, r)| s[0].sign(r))
            .collect()
    } else {
        let hashed = HashedMessage::new(&roots[0]);
        shares.iter().map(|s| s[0].sign_hashed(&hashed)).collect()
    };
    let sign = per(t);

    // The peers' partials as they arrive: compressed bytes (made outside the clock).
    let wire: Vec<Vec<[u8; 96]>> = (1..nodes)
        .map(|node| {
            shares
                .iter()
                .zip(&roots)
                .map(|(s, r)| s[node].sign(r).signature.to_bytes())
                .collect()
        })
        .collect();
    let t = cpu_us();
    let decoded: Vec<Vec<PartialSignature>> = wire
        .iter()
        .enumerate()
        .map(|(peer, sigs)| {
            sigs.iter()
                .map(|b| PartialSignature::from_bytes(peer as u64 + 2, b).expect("own encoding"))
                .collect()
        })
        .collect();
    let decode = per(t);

    // The peers' public shares are known in advance (the cluster lock).
    let share_keys: Vec<Vec<PublicKey>> = (1..nodes)
        .map(|node| shares.iter().map(|s| s[node].public_share().key).collect())
        .collect();
    let t = cpu_us();
    let items: Vec<(PublicKey, &[u8], Signature)> = decoded
        .iter()
        .zip(&share_keys)
        .flat_map(|(partials, keys)| {
            keys.iter()
                .zip(partials)
                .zip(&roots)
                .map(|((k, p), r)| (*k, r.as_slice(), p.signature))
        })
        .collect();
    assert!(batch_verify_messages(&items), "peer partials verify");
    let verify = per(t);

    let t = cpu_us();
    let combined: Vec<Signature> = (0..keys.len())
        .map(|v| {
            let mut set = vec![own[v]];
            set.extend(decoded.iter().map(|peer| peer[v]));
            set.truncate(params.threshold());
            combine(&set, params).expect("threshold partials")
        })
        .collect();
    let combine_us = per(t);

    let t = cpu_us();
    let items: Vec<(PublicKey, &[u8], Signature)> = keys
        .iter()
        .zip(&roots)
        .zip(combined)
        .map(|((k, r), s)| (*k, r.as_slice(), s))
        .collect();
    assert!(batch_verify_messages(&items), "combined signatures verify");
    let check = per(t);

    Steps {
        sign,
        decode,
        verify,
        combine: combine_us,
        check,
    }
}
