//! A signed block a validator client posts to the middleware: JSON or SSZ,
//! full or blinded, with or without a fork header (the first byte picks).
#![no_main]
use dv_types::Mainnet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((choice, body)) = data.split_first() else {
        return;
    };
    let ssz = choice & 1 == 1;
    let blinded = choice & 2 == 2;
    let fork = match (choice >> 2) % 4 {
        0 => None,
        1 => Some("deneb"),
        2 => Some("electra"),
        _ => Some("fulu"),
    };
    let _ = dv_validator_api::parse_submitted_block::<Mainnet>(ssz, fork, body, blinded);
});
