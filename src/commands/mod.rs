//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod info;
pub mod plot;
pub mod sample;
pub mod seq2seq;
pub mod train;

use anyhow::{bail, Result};
use recurrent_kernels::threads;

/// The most `--threads` accepted: far beyond any core count this runs on, and
/// low enough that a typo cannot start a hundred thousand spinning threads.
const MAX_THREADS: usize = 256;

/// Applies `--threads` (default: all cores).
pub fn set_threads(requested: Option<usize>) -> Result<usize> {
    let n = requested.unwrap_or_else(|| threads::available().min(MAX_THREADS));
    if !(1..=MAX_THREADS).contains(&n) {
        bail!("--threads must be between 1 and {MAX_THREADS}, got {n}");
    }
    threads::set_threads(n);
    Ok(n)
}
