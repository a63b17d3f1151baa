//! Thread counts: every entry point of the library takes one, and runs its
//! kernels with that many threads, without a process-wide setting.

use recurrent_kernels::Precision;

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

/// What a run asked to train in `requested` is told when its products run in
/// float32 instead: bf16 where this CPU has no bf16 kernel (see
/// [`recurrent_kernels::precision::usable`]).
pub(crate) fn precision_note(requested: Precision) -> Option<String> {
    let used = recurrent_kernels::precision::usable(requested);
    (used != requested).then(|| {
        format!(
            "training in {} instead of {}: this CPU has neither AMX-BF16 nor AVX512-BF16 \
             (RECURRENT_BF16_KERNEL=emulated gives bf16's numbers on any CPU, more slowly)",
            used.name(),
            requested.name()
        )
    })
}

/// The line a run's description adds when its products run in bf16.
pub(crate) fn precision_line(requested: Precision) -> Option<String> {
    use recurrent_kernels::precision::{bf16_kernel, usable};
    let kernel = bf16_kernel().filter(|_| usable(requested) == Precision::Bf16)?;
    Some(format!(
        "\nproducts on bf16 operands with float32 sums (kernel: {}); weights, optimizer, states and loss in float32",
        kernel.name()
    ))
}
