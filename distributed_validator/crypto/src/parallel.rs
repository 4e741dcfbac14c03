//! Per-item BLS work (signing, decoding, combining) spread over the
//! machine's cores: a slot brings hundreds of independent items at once,
//! and one core would do them one after another while the others idle.

/// Items below this many per thread are not worth a thread of their own
/// (a thread costs tens of µs to start; one item's BLS work about 100 µs).
const MIN_ITEMS_PER_THREAD: usize = 32;

/// `f` over `items`, in order, on up to as many threads as the machine has
/// cores (scoped threads; on the calling thread alone for small inputs).
pub fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        // The calling thread takes the first chunk itself.
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out: Vec<U> = first.iter().map(f).collect();
        for handle in others {
            match handle.join() {
                Ok(part) => out.extend(part),
                // A panic in `f` is re-raised here, as if it ran on this thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_for_small_and_large_inputs() {
        for n in [0, 1, 31, 32, 64, 1000, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let out = par_map(&items, |x| x * 2);
            assert_eq!(
                out,
                items.iter().map(|x| x * 2).collect::<Vec<_>>(),
                "n = {n}"
            );
        }
    }
}
