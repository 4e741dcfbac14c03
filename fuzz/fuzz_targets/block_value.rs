//! A decided block value from consensus (a block, possibly with its blobs), both presets.
#![no_main]
use dv_types::{Mainnet, Minimal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dv_node::validator_store::decode_block::<Mainnet>(data);
    let _ = dv_node::validator_store::decode_block::<Minimal>(data);
});
