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

/// Runs `work` on a thread of its own at the lowest CPU priority (nice 19):
/// for checks nothing time-critical waits on, so that they take the CPU
/// the slot's duties leave idle. `None` if no thread could be started.
pub async fn in_background<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("dv-background".into())
        .spawn(move || {
            lowest_priority();
            let _ = tx.send(work());
        })
        .ok()?;
    rx.await.ok()
}

/// Lowers the calling thread's CPU priority to nice 19 (on Linux the nice
/// value is per thread); best effort elsewhere.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: changes only the calling thread's nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS as _, 0, 19);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn nice() -> i32 {
        // SAFETY: reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) }
    }

    #[tokio::test]
    async fn background_work_runs_at_the_lowest_priority_and_leaves_the_caller_alone() {
        let before = nice();
        assert_eq!(super::in_background(nice).await, Some(19));
        assert_eq!(nice(), before);
    }
}
