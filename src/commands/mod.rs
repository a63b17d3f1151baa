//! One module per subcommand.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod info;
pub mod inspect;
pub mod plot;
pub mod prepare;
pub mod runs;
pub mod sample;
pub mod seq2seq;
pub mod series;
pub mod serve;
pub mod train;
pub mod tune;

use std::path::Path;

use anyhow::{bail, Result};
use clap::ValueEnum;
use recurrent::kernels::panel::WeightFormat;
use recurrent::kernels::threads;
use recurrent::train::schedule::ScheduleError;
use recurrent::train::TrainError;

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
pub fn training_failed(e: recurrent::Error, run_dir: &Path) -> anyhow::Error {
    let e = cli_error(e);
    let last = run_dir.join(recurrent::checkpoint::layout::LAST_DIR);
    if last.is_dir() {
        anyhow::anyhow!(
            "{e:#}; the last good checkpoint is kept in {}",
            last.display()
        )
    } else {
        anyhow::anyhow!("{e:#}; no checkpoint was saved")
    }
}

/// Says how many rollbacks a run took and what they left of `--lr`.
pub fn report_rollbacks(progress: &recurrent::train::RunProgress) {
    let watch = &progress.divergence;
    if watch.rollbacks > 0 {
        eprintln!(
            "the run diverged and was rolled back {} time(s); it now trains at {} times the --lr \
             schedule",
            watch.rollbacks, watch.lr_factor
        );
    }
}

/// A TensorBoard writer into `dir`, when `--tensorboard` gave one.
pub fn tensorboard(
    dir: Option<&std::path::Path>,
) -> anyhow::Result<Option<recurrent::TensorBoard>> {
    dir.map(recurrent::TensorBoard::create)
        .transpose()
        .map_err(cli_error)
}

/// Says where the TensorBoard events went, or why they stopped.
pub fn report_tensorboard(board: &recurrent::TensorBoard, last: recurrent::Result<()>) {
    match (board.error(), last) {
        (Some(e), _) => eprintln!("warning: TensorBoard logging stopped: {e}"),
        (None, Err(e)) => eprintln!("warning: {e}"),
        (None, Ok(())) => eprintln!("TensorBoard events: {}", board.path().display()),
    }
}

/// A library error in the command line's words: options by their flags.
pub fn cli_error(e: recurrent::Error) -> anyhow::Error {
    use recurrent::Error;
    match e {
        Error::InvalidOption {
            field,
            value,
            expected,
        } => anyhow::anyhow!(
            "{} must be {}, got {}",
            flag(field),
            flags_in(&expected),
            flags_in(&value)
        ),
        Error::Schedule(e) => schedule_error(&e),
        Error::RunExists { path } => anyhow::anyhow!(
            "{} already holds a run; use --resume {0} to continue it, or another --out",
            path.display()
        ),
        Error::UnknownChars { path, count, shown } => anyhow::anyhow!(
            "the text has {count} character(s) that {} does not know: {shown}; add --extend-vocab to grow its vocabulary",
            path.display()
        ),
        Error::Train(e @ TrainError::Diverged { .. }) => {
            anyhow::anyhow!("{}", crate::errors::diverged(&e).unwrap_or_else(|| e.to_string()))
        }
        Error::Conflict(message) if message.starts_with("NT-ASGD") => {
            anyhow::anyhow!("--nt-asgd averages SGD iterates; use it with --optimizer sgd")
        }
        e => anyhow::Error::new(e),
    }
}

/// A schedule that cannot be parsed, in the command line's words.
fn schedule_error(e: &ScheduleError) -> anyhow::Error {
    match e {
        ScheduleError::UnknownTotalSteps => anyhow::anyhow!(
            "--schedule cosine needs the total number of training steps: give --steps or --epochs"
        ),
        ScheduleError::UnknownName { .. } => anyhow::anyhow!("bad --schedule: {e}"),
        // The other errors name the schedule, its form and the field.
        e => anyhow::anyhow!("bad --schedule: {e}"),
    }
}

/// The error of `--resume DIR` when `DIR` holds no run.
pub fn resume_error(e: recurrent::Error, dir: &Path) -> anyhow::Error {
    match e {
        recurrent::Error::NotARun { path, reason } => {
            let hint = if path
                .join(recurrent::checkpoint::layout::CONFIG_FILE)
                .exists()
            {
                ", or use --init-from to fine-tune from this checkpoint"
            } else {
                ""
            };
            let reason = match reason {
                "there is no such folder" => "no such run folder".to_string(),
                r => format!("not a run folder ({r}){hint}"),
            };
            anyhow::anyhow!("--resume {}: {reason}", dir.display())
        }
        e => cli_error(e),
    }
}

/// `text` with every option named in backticks (`` `test_fraction` ``) as its flag.
fn flags_in(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&flag(part));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `--lr` for the field `lr`, `--seq-len` for `seq_len`.
fn flag(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

/// The first Ctrl-C finishes the current step, validates and saves, so the run
/// can be resumed; a second one quits at once.
pub(crate) fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if train::INTERRUPTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: saving after this step (Ctrl-C again to quit without saving)");
    });
}
