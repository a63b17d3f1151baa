//! The thread count the kernels use, set once at start-up.

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(1);

/// Sets how many threads the kernels may use and builds the global rayon pool
/// with that many workers. Results are bit-for-bit reproducible for a given count.
pub fn set_threads(n: usize) {
    let n = n.max(1);
    THREADS.store(n, Ordering::Relaxed);
    // The global pool can be built only once; a second call keeps the first pool,
    // which is fine because GEMM asks for at most `n` of its workers.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

/// The thread count set by [`set_threads`] (1 until it is called).
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// The number of cores this machine offers, for a default `--threads`.
pub fn available() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
