//! Check-and-insert costs on a real database file (fsync included):
//! one attestation for a validator with 10,000 prior records, and a whole
//! slot's attestations for 20,000 validators in one transaction.

use criterion::{criterion_group, criterion_main, Criterion};
use dv_types::{PublicKeyBytes, Root};
use slashing_protection::*;
use std::cell::Cell;
use std::time::Duration;

fn key(i: u32) -> PublicKeyBytes {
    let mut bytes = [0u8; 48];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    PublicKeyBytes(bytes)
}

fn long_history(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
    db.register_validators(&[key(0)]).unwrap();
    let history: Vec<AttestationRequest> = (0..10_000u64)
        .map(|e| AttestationRequest {
            pubkey: key(0),
            source_epoch: e,
            target_epoch: e + 1,
            signing_root: Root::repeat_byte(1),
        })
        .collect();
    db.check_and_insert_attestations(&history).unwrap();
    let next = Cell::new(10_000u64);
    c.bench_function("attestation/1 validator, 10000 prior records", |b| {
        b.iter(|| {
            let e = next.get();
            next.set(e + 1);
            assert_eq!(
                db.check_and_insert_attestation(&key(0), e, e + 1, Root::repeat_byte(2)),
                Ok(Safe::Valid)
            );
        })
    });
}

fn slot_batch(c: &mut Criterion) {
    const VALIDATORS: u32 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let db = SlashingDatabase::open_in_dir(dir.path()).unwrap();
    let keys: Vec<PublicKeyBytes> = (0..VALIDATORS).map(key).collect();
    db.register_validators(&keys).unwrap();
    let next = Cell::new(0u64);
    let mut group = c.benchmark_group("attestation");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("20000 validators, one transaction", |b| {
        b.iter(|| {
            let e = next.get();
            next.set(e + 1);
            let batch: Vec<AttestationRequest> = keys
                .iter()
                .map(|k| AttestationRequest {
                    pubkey: *k,
                    source_epoch: e,
                    target_epoch: e + 1,
                    signing_root: Root::repeat_byte(3),
                })
                .collect();
            let results = db.check_and_insert_attestations(&batch).unwrap();
            assert!(results.iter().all(|r| *r == Ok(Safe::Valid)));
        })
    });
    group.finish();
}

criterion_group!(benches, long_history, slot_batch);
criterion_main!(benches);
