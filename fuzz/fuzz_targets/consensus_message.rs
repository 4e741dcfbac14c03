//! A peer's consensus message: decoding never panics, and what decodes
//! encodes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = dv_node::consensus::decode(data, 4) {
        assert_eq!(dv_node::consensus::encode(&message), data);
    }
});
