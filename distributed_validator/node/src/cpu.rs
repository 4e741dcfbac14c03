//! CPU-bound work (signing, pairing checks, combination) run from async code.

/// Runs `work` on this thread; on a multi-threaded runtime the runtime first
/// moves its other tasks to another worker, so that milliseconds of BLS work
/// do not hold up network and timer tasks queued behind it.
pub fn cpu_bound<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}
