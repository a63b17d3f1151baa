//! Thread counts: every entry point of the library takes one, and runs its
//! kernels with that many threads, without a process-wide setting.

use crate::error::{check, Result};

/// The most threads accepted: far beyond any core count this runs on, and
/// low enough that a typo cannot start a hundred thousand spinning threads.
pub const MAX_THREADS: usize = 256;

/// `requested`, checked, or all cores.
pub fn resolve_threads(requested: Option<usize>) -> Result<usize> {
    let n = requested.unwrap_or_else(|| recurrent_kernels::threads::available().min(MAX_THREADS));
    check(
        (1..=MAX_THREADS).contains(&n),
        "threads",
        n,
        "between 1 and 256",
    )?;
    Ok(n)
}

/// Runs `f` with the kernels it calls on this thread using `n` threads.
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    recurrent_kernels::threads::with_threads(n, f)
}
