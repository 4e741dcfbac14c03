//! A peer's partial-signatures message: decoding never panics, and what
//! decodes encodes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = dv_node::exchange::PartialsMessage::decode(data) {
        assert_eq!(message.encode(), data);
    }
});
