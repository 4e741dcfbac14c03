//! An EIP-3076 slashing protection interchange file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = slashing_protection::Interchange::from_json(text);
    }
});
