//! The envelope every cluster message comes in.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = p2p::Envelope::decode(data) {
        assert_eq!(envelope.encode(), data);
    }
});
