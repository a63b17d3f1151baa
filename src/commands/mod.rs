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
use clap::ValueEnum;
use recurrent_kernels::panel::WeightFormat;
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
    threads::set_this_thread(n);
    Ok(n)
}

/// `--weights`: how `sample` and `eval` hold the weight matrices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Weights {
    /// As trained.
    #[default]
    F32,
    /// Rounded to bfloat16 (biases stay f32): half the bytes per token, so
    /// sampling a few streams runs up to twice as fast; the logits move by
    /// about 1e-3 relative.
    Bf16,
}

impl From<Weights> for WeightFormat {
    fn from(w: Weights) -> WeightFormat {
        match w {
            Weights::F32 => WeightFormat::F32,
            Weights::Bf16 => WeightFormat::Bf16,
        }
    }
}

/// A training run's error, saying whether a good checkpoint is left in
/// `run_dir` (the trainers never overwrite `last/` with a bad state).
pub fn training_failed(e: impl std::fmt::Display, run_dir: &std::path::Path) -> anyhow::Error {
    let last = run_dir.join(recurrent_checkpoint::layout::LAST_DIR);
    if last.is_dir() {
        anyhow::anyhow!(
            "{e}; the last good checkpoint is kept in {}",
            last.display()
        )
    } else {
        anyhow::anyhow!("{e}; no checkpoint was saved")
    }
}
