//! An EIP-2335 keystore file (parsed only: decryption is the KDF's cost).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dv_crypto::Keystore::from_json(text);
    }
});
