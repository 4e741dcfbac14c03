//! A beacon node's answer to a block request (`/eth/v3/validator/blocks`),
//! and a block in SSZ as the beacon node or a client sends it, every fork.
#![no_main]
use dv_types::{ForkName, Mainnet, VersionedBlindedBlock, VersionedBlock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = beacon_client::decode_produced_block::<Mainnet>(body);
    }
    for fork in [ForkName::Deneb, ForkName::Electra, ForkName::Fulu] {
        let _ = VersionedBlock::<Mainnet>::from_ssz_bytes(fork, data);
        let _ = VersionedBlindedBlock::<Mainnet>::from_ssz_bytes(fork, data);
    }
    let _ = beacon_client::block_contents::split_contents(data);
    let _ = beacon_client::block_contents::split_signed_block(data);
});
