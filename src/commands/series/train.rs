//! `recurrent series train`: read columns of a CSV file, train a regression
//! model on its windows, checkpoint it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::{Args, ValueEnum};
use recurrent::series::{RegressionLoss, ResumeOptions, SeriesTrainer, TrainOptions, Training};
use recurrent::train::engine::SaveEvery;
use recurrent::train::OnDivergence;
use recurrent::Precision;
use recurrent::{
    CellKind, EvalReport, Observer, OptimizerConfig, OptimizerKind, RunFolder, StepReport,
    StopReason, StopRule,
};

use super::series_error;
use crate::commands::train::{parse_save_every, run_name, with_save_every, INTERRUPTED};
use crate::duration::parse_duration;
use crate::progress::Progress;

/// `--loss`: what training minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    Mae,
    /// Huber: squared below --huber-delta, absolute above.
    Huber,
}

/// Arguments of `recurrent series train`.
#[derive(Args, Debug)]
#[command(allow_negative_numbers = true)]
pub struct TrainArgs {
    /// The series: a CSV file with a header, one row per time step, oldest first.
    #[arg(long, required_unless_present = "resume")]
    csv: Option<PathBuf>,
    /// Columns the model reads, comma-separated (default: every column).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// The column forecasts and `series eval` report (default: the first of --columns).
    #[arg(long)]
    target: Option<String>,
    /// Rows of input per prediction.
    #[arg(long, default_value_t = 48)]
    window: usize,
    /// Rows predicted at once (the longest direct forecast).
    #[arg(long, default_value_t = 12)]
    horizon: usize,
    /// Share of the rows before the test part that validates.
    #[arg(long, default_value_t = 0.15)]
    valid_fraction: f64,
    /// Share of the rows at the end held out for `series eval`.
    #[arg(long, default_value_t = 0.15)]
    test_fraction: f64,
    /// Training loss: mse, mae or huber.
    #[arg(long, value_enum, default_value_t = LossArg::Mse)]
    loss: LossArg,
    /// Huber's threshold between its squared and absolute parts (normalised units).
    #[arg(long, default_value_t = 1.0)]
    huber_delta: f32,
    /// Recurrent cell: lstm, gru, rnn-tanh or rnn-relu.
    #[arg(long, default_value = "lstm")]
    cell: CellKind,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// Stacked recurrent layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Windows per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Optimizer: sgd, adam, adamw or rmsprop.
    #[arg(long, default_value = "adam")]
    optimizer: OptimizerKind,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Weight decay (L2 for SGD/Adam/RMSprop, decoupled for AdamW).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Learning-rate schedule: constant, step:EVERY:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:FACTOR[:PATIENCE]].
    #[arg(long, default_value = "constant")]
    schedule: String,
    /// Stop after this many passes over the training windows [default: 30 with no other limit].
    #[arg(long)]
    epochs: Option<u64>,
    /// Stop at this many optimizer steps in total.
    #[arg(long)]
    steps: Option<u64>,
    /// Stop after this much wall-clock time, e.g. 90s, 10m, 1h.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    time: Option<f64>,
    /// Validate every N steps (default: every epoch).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Early stopping: stop after this many validations without improvement.
    #[arg(long)]
    patience: Option<u32>,
    /// Also write last/ (for --resume) every N steps, or every DURATION (e.g. 10m), without
    /// validating; best/ stays tied to validations. For this invocation only.
    #[arg(long, value_name = "STEPS|DURATION", value_parser = parse_save_every)]
    save_every: Option<SaveEvery>,
    /// When training diverges: stop with an error, or rollback to the last checkpoint's state
    /// with half the learning rate, at most 3 times [default: stop; with --resume, the run's own].
    #[arg(long, value_name = "POLICY")]
    on_divergence: Option<OnDivergence>,
    /// Run folder (default: runs/NAME, never overwriting).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Random seed for initialization and window order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Threads for the kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Number format of the training products: f32, or bf16 (bf16 operands
    /// with float32 sums, where the CPU has AMX-BF16 or AVX512-BF16; float32
    /// with a note elsewhere). A resumed run keeps its own unless given.
    #[arg(long, value_name = "f32|bf16")]
    precision: Option<Precision>,
    /// Continue the run in this folder exactly where it stopped.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Also write TensorBoard event files into this folder (losses, learning rate,
    /// gradient norm, rows/s, validation figures).
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let stop = (args.epochs.is_some() || args.steps.is_some() || args.time.is_some()).then_some(
        StopRule {
            epochs: args.epochs,
            steps: args.steps,
            time_secs: args.time,
        },
    );
    let mut training = match &args.resume {
        Some(dir) => {
            let folder = RunFolder::open(dir).map_err(|e| super::super::resume_error(e, dir))?;
            let folder = with_save_every(folder, args.save_every);
            let options = ResumeOptions {
                csv: args.csv.clone(),
                stop,
                on_divergence: args.on_divergence,
                threads: args.threads,
                precision: args.precision,
            };
            let t = Training::resume(folder, &options).map_err(series_error)?;
            let p = &t.trainer().state.progress;
            eprintln!(
                "resuming {} at step {} (epoch {})",
                dir.display(),
                p.step,
                p.epoch
            );
            t
        }
        None => {
            let options = options(&args, stop);
            let folder = match &args.out {
                Some(out) => RunFolder::create(out),
                None => RunFolder::create_fresh(Path::new("runs"), &run_name(args.csv.as_deref())),
            }
            .map_err(super::super::cli_error)?;
            let folder = with_save_every(folder, args.save_every);
            Training::start(&options, folder).map_err(series_error)?
        }
    };
    for note in training.notes() {
        eprintln!("{note}");
    }
    eprintln!("{}", training.describe());
    let run_dir = training.folder().path().to_path_buf();
    eprintln!("run folder: {}", run_dir.display());
    super::super::install_interrupt_handler();
    let mut progress = SeriesProgress {
        progress: Progress::new(),
        at: (0, 0),
    };
    let mut board = super::super::tensorboard(args.tensorboard.as_deref())?;
    let result = match board.as_mut() {
        Some(board) => training.run(&mut recurrent::Tee::new(&mut progress, board)),
        None => training.run(&mut progress),
    };
    progress.progress.finish();
    if let Some(board) = &board {
        super::super::report_tensorboard(board, Ok(()));
    }
    let outcome = result.map_err(|e| match e {
        recurrent::series::SeriesError::Library(e) => super::super::training_failed(e, &run_dir),
        e => series_error(e),
    })?;
    eprintln!(
        "done ({}): {} steps, {} epochs, {:.0}s",
        outcome.reason.describe(),
        outcome.steps,
        outcome.epochs,
        outcome.elapsed_secs
    );
    super::super::report_rollbacks(&training.trainer().state.progress);
    if let Some(best) = outcome.best_val_loss {
        eprintln!(
            "best validation loss {best:.6} (normalised units); saved in {}",
            training.folder().best_dir().display()
        );
    }
    if outcome.reason == StopReason::Interrupted {
        eprintln!(
            "continue with: recurrent series train --resume {}",
            run_dir.display()
        );
    }
    let csv = args
        .csv
        .as_deref()
        .map_or("FILE".into(), |p| p.display().to_string());
    eprintln!(
        "score it on the held-out tail with: recurrent series eval {} --csv {csv} --season S",
        run_dir.display()
    );
    Ok(())
}

/// The library's options from the flags.
fn options(args: &TrainArgs, stop: Option<StopRule>) -> TrainOptions {
    let csv = args.csv.as_deref().expect("clap requires --csv");
    let mut optimizer = OptimizerConfig::new(args.optimizer);
    if let Some(wd) = args.weight_decay {
        optimizer.weight_decay = wd;
    }
    let target = args
        .target
        .clone()
        .or_else(|| args.columns.first().cloned())
        .unwrap_or_default();
    TrainOptions {
        columns: args.columns.clone(),
        target,
        window: args.window,
        horizon: args.horizon,
        valid_fraction: args.valid_fraction,
        test_fraction: args.test_fraction,
        loss: match args.loss {
            LossArg::Mse => RegressionLoss::Mse,
            LossArg::Mae => RegressionLoss::Mae,
            LossArg::Huber => RegressionLoss::Huber {
                delta: args.huber_delta,
            },
        },
        cell: args.cell,
        hidden: args.hidden,
        layers: args.layers,
        batch: args.batch,
        optimizer,
        lr: args.lr,
        clip: args.clip,
        schedule: args.schedule.clone(),
        stop: stop.unwrap_or_default(),
        eval_every: args.eval_every,
        patience: args.patience,
        on_divergence: args.on_divergence.unwrap_or_default(),
        seed: args.seed,
        threads: args.threads,
        precision: args.precision.unwrap_or_default(),
        ..TrainOptions::new(csv)
    }
}

/// Progress of a series run: the bar, and validation lines in normalised units.
struct SeriesProgress {
    progress: Progress,
    at: (u64, u64),
}

impl Observer<SeriesTrainer> for SeriesProgress {
    fn on_step(&mut self, _: &SeriesTrainer, r: &StepReport) {
        self.at = (r.step, r.epoch);
        self.progress
            .step(r.step, r.epoch, r.loss, r.tokens, r.progress);
    }

    fn on_eval(&mut self, t: &SeriesTrainer, r: &EvalReport, improved: bool) {
        let best = if improved { " best" } else { "" };
        let (step, epoch) = self.at;
        let loss = t.state.config.loss.name();
        self.progress.println(&format!(
            "step {step} epoch {epoch}: validation {loss} {:.6} (normalised){best}",
            r.loss
        ));
    }

    fn on_warning(&mut self, message: &str) {
        self.progress.println(&format!("warning: {message}"));
    }

    fn should_stop(&self) -> bool {
        INTERRUPTED.load(Ordering::SeqCst)
    }
}
