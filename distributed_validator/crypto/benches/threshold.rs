//! Threshold BLS costs next to the raw blst cost of the same operation.
//!
//! Groups: `sign` (full sign vs. partial sign with the message hashed once
//! for 64 validators), `verify` (one blst verify vs. batch verification per
//! partial), `combine` (t G2 multiplications in blst vs. our Lagrange
//! combination) for t = 3, 5, 7. After criterion's own report, a table prints
//! each figure per operation with its ratio to the blst floor.

use blst::min_pk;
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use dv_crypto::*;
use std::time::{Duration, Instant};

const VALIDATORS: usize = 64;

fn raw_g2_mul(point: &blst::blst_p2, scalar: &[u8; 32]) -> blst::blst_p2 {
    let mut out = blst::blst_p2::default();
    // SAFETY: valid point and 32-byte scalar.
    unsafe { blst::blst_p2_mult(&mut out, point, scalar.as_ptr(), 255) };
    out
}

fn raw_hash(msg: &[u8]) -> blst::blst_p2 {
    let mut out = blst::blst_p2::default();
    // SAFETY: valid buffers.
    unsafe {
        blst::blst_hash_to_g2(
            &mut out,
            msg.as_ptr(),
            msg.len(),
            dv_crypto::bls::DST.as_ptr(),
            dv_crypto::bls::DST.len(),
            std::ptr::null(),
            0,
        )
    };
    out
}

struct Fixture {
    raw_keys: Vec<min_pk::SecretKey>,
    shares: Vec<SecretShare>,
    msg: [u8; 32],
}

fn fixture() -> Fixture {
    let raw_keys: Vec<min_pk::SecretKey> = (0..VALIDATORS)
        .map(|i| min_pk::SecretKey::key_gen(&[i as u8 + 1; 32], &[]).unwrap())
        .collect();
    let params = ThresholdParams::new(3, 4).unwrap();
    let shares: Vec<SecretShare> = (0..VALIDATORS)
        .map(|_| split(&SecretKey::random(), params).remove(0))
        .collect();
    Fixture {
        raw_keys,
        shares,
        msg: [0x42; 32],
    }
}

fn bench_sign(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("sign");
    group.bench_function("blst_sign_one", |b| {
        b.iter(|| f.raw_keys[0].sign(black_box(&f.msg), dv_crypto::bls::DST, &[]))
    });
    group.bench_function("blst_hash_to_g2", |b| {
        b.iter(|| raw_hash(black_box(&f.msg)))
    });
    let point = raw_hash(&f.msg);
    group.bench_function("blst_g2_mul", |b| {
        b.iter(|| raw_g2_mul(black_box(&point), &[0x5a; 32]))
    });
    group.throughput(Throughput::Elements(VALIDATORS as u64));
    group.bench_function(
        BenchmarkId::new("partial_sign_hashed_once", VALIDATORS),
        |b| {
            b.iter(|| {
                let hashed = HashedMessage::new(black_box(&f.msg));
                f.shares
                    .iter()
                    .map(|s| s.sign_hashed(&hashed))
                    .collect::<Vec<_>>()
            })
        },
    );
    group.finish();
}

fn batch_items(f: &Fixture, n: usize) -> (HashedMessage, Vec<(PublicKey, Signature)>) {
    let hashed = HashedMessage::new(&f.msg);
    let items = f.shares[..n]
        .iter()
        .map(|s| (s.secret.public_key(), s.sign_hashed(&hashed).signature))
        .collect();
    (hashed, items)
}

fn bench_verify(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("verify");
    let raw_pk = f.raw_keys[0].sk_to_pk();
    let raw_sig = f.raw_keys[0].sign(&f.msg, dv_crypto::bls::DST, &[]);
    group.bench_function("blst_verify_one", |b| {
        b.iter(|| {
            raw_sig.verify(
                true,
                black_box(&f.msg),
                dv_crypto::bls::DST,
                &[],
                &raw_pk,
                false,
            )
        })
    });
    for n in [4usize, 16, 64] {
        let (hashed, items) = batch_items(f, n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("batch_verify_partials", n), &n, |b, _| {
            b.iter(|| assert!(batch_verify(&hashed, black_box(&items))))
        });
    }
    group.finish();
}

fn combine_inputs(t: usize) -> (Vec<PartialSignature>, ThresholdParams) {
    let params = ThresholdParams::new(t, t + t / 2).unwrap();
    let shares = split(&SecretKey::random(), params);
    let partials = shares.iter().take(t).map(|s| s.sign(b"combine")).collect();
    (partials, params)
}

fn bench_combine(c: &mut Criterion) {
    let mut group = c.benchmark_group("combine");
    let point = raw_hash(b"combine");
    for t in [3usize, 5, 7] {
        group.bench_with_input(BenchmarkId::new("blst_t_g2_muls", t), &t, |b, &t| {
            b.iter(|| {
                (0..t)
                    .map(|i| raw_g2_mul(black_box(&point), &[i as u8 + 9; 32]))
                    .collect::<Vec<_>>()
            })
        });
        let (partials, params) = combine_inputs(t);
        group.bench_with_input(BenchmarkId::new("lagrange_combine", t), &t, |b, _| {
            b.iter(|| combine(black_box(&partials), params).unwrap())
        });
    }
    group.finish();
}

/// Median time of `op` per call over `rounds` rounds of `batch` calls.
fn median_per_op(rounds: usize, batch: usize, mut op: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed() / batch as u32
        })
        .collect();
    samples.sort();
    samples[rounds / 2]
}

fn print_ratios(f: &Fixture) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let raw_sign = median_per_op(30, 20, || {
        black_box(f.raw_keys[0].sign(&f.msg, dv_crypto::bls::DST, &[]));
    });
    let ours_sign = median_per_op(30, 1, || {
        let hashed = HashedMessage::new(&f.msg);
        f.shares.iter().for_each(|s| {
            black_box(s.sign_hashed(&hashed));
        });
    }) / VALIDATORS as u32;
    let raw_pk = f.raw_keys[0].sk_to_pk();
    let raw_sig = f.raw_keys[0].sign(&f.msg, dv_crypto::bls::DST, &[]);
    let raw_verify = median_per_op(30, 10, || {
        black_box(raw_sig.verify(true, &f.msg, dv_crypto::bls::DST, &[], &raw_pk, false));
    });
    println!(
        "\n{:<44} {:>12} {:>12} {:>8}",
        "operation", "ours µs", "blst µs", "ratio"
    );
    let row = |name: &str, ours: Duration, raw: Duration| {
        println!(
            "{name:<44} {:>12.1} {:>12.1} {:>8.2}",
            us(ours),
            us(raw),
            us(ours) / us(raw)
        );
    };
    row(
        &format!("partial sign per validator ({VALIDATORS}, hashed once)"),
        ours_sign,
        raw_sign,
    );
    for n in [4usize, 16, 64] {
        let (hashed, items) = batch_items(f, n);
        let per = median_per_op(20, 1, || assert!(batch_verify(&hashed, &items))) / n as u32;
        row(
            &format!("batch verify per partial (batch of {n})"),
            per,
            raw_verify,
        );
    }
    let point = raw_hash(b"combine");
    for t in [3usize, 5, 7] {
        let (partials, params) = combine_inputs(t);
        let ours = median_per_op(30, 5, || {
            black_box(combine(&partials, params).unwrap());
        });
        let raw = median_per_op(30, 5, || {
            (0..t).for_each(|i| {
                black_box(raw_g2_mul(&point, &[i as u8 + 9; 32]));
            })
        });
        row(&format!("combine t={t} (vs t blst G2 muls)"), ours, raw);
    }
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    bench_sign(&mut c, &f);
    bench_verify(&mut c, &f);
    bench_combine(&mut c);
    c.final_summary();
    print_ratios(&f);
}
