//! A cluster lock file: parsed, and validated when it parses.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(lock) = dv_cluster::lock::ClusterLock::from_json(text) {
            let _ = lock.body.validate();
        }
    }
});
