//! Training a regression model on a series read from CSV, in a run folder,
//! and resuming it: [`Training`].

use std::path::{Path, PathBuf};

use recurrent_checkpoint::series::{self as ckpt, SeriesInfo, SplitRows};
use recurrent_kernels::{Precision, Rng};
use recurrent_model::series::{SeriesConfig, SeriesModel, SeriesOutput};
use recurrent_model::CellKind;
use recurrent_nn::regression::RegressionLoss;
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::series::data::{Normalization, SeriesData, Split};
use recurrent_train::series::{SeriesTrainConfig, SeriesTrainer, SeriesTrainerState};
use recurrent_train::{EvalReport, Observer, OnDivergence, Plan, SaveError, StopRule};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::csv::{read_csv, Table};
use super::error::SeriesError;
use crate::error::check;
use crate::recorder::{run_recorded, Fields, SavedRun, TaskRecord};
use crate::run::{absolute, RunFolder};
use crate::threads::{precision_line, precision_note, resolve_threads, with_threads};
use crate::Outcome;

/// Everything a series run needs. [`TrainOptions::new`] gives the command
/// line's defaults for a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// The CSV file: a header, then one row per time step, oldest first.
    pub csv: PathBuf,
    /// The columns the model reads (every column when empty).
    pub columns: Vec<String>,
    /// The column forecasts are reported for (the first column when empty).
    pub target: String,
    /// Rows of input per prediction.
    pub window: usize,
    /// Rows predicted at once.
    pub horizon: usize,
    /// Share of the rows, before the test part, that validates.
    pub valid_fraction: f64,
    /// Share of the rows at the end held out for the final test.
    pub test_fraction: f64,
    /// The training loss.
    pub loss: RegressionLoss,
    /// Recurrent cell.
    pub cell: CellKind,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// Windows per batch.
    pub batch: usize,
    /// Optimizer kind and its settings.
    pub optimizer: OptimizerConfig,
    /// Learning rate.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// Learning-rate schedule (see [`crate::lm::TrainOptions::schedule`]).
    pub schedule: String,
    /// When to stop; with no limit, 30 epochs.
    pub stop: StopRule,
    /// Steps between validations (default: every epoch).
    pub eval_every: Option<u64>,
    /// Stop after this many validations without improvement.
    pub patience: Option<u32>,
    /// What to do when the run diverges.
    pub on_divergence: OnDivergence,
    /// Seed of initialization and window order.
    pub seed: u64,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// The products' precision: float32, or bf16 operands with float32
    /// sums where the CPU has bf16 instructions (float32 with a note where not).
    pub precision: Precision,
}

impl TrainOptions {
    /// The command line's defaults for `csv`: a 1 × 64 LSTM reading windows of
    /// 48 rows and predicting 12, trained with MSE and Adam.
    pub fn new(csv: impl Into<PathBuf>) -> TrainOptions {
        TrainOptions {
            csv: csv.into(),
            columns: Vec::new(),
            target: String::new(),
            window: 48,
            horizon: 12,
            valid_fraction: 0.15,
            test_fraction: 0.15,
            loss: RegressionLoss::Mse,
            cell: CellKind::Lstm,
            hidden: 64,
            layers: 1,
            batch: 32,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam),
            lr: 3e-3,
            clip: 1.0,
            schedule: "constant".into(),
            stop: StopRule::default(),
            eval_every: None,
            patience: None,
            on_divergence: OnDivergence::Stop,
            seed: 42,
            threads: None,
            precision: Precision::F32,
        }
    }
}

/// What may change when a run is resumed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeOptions {
    /// Read the CSV from here instead (its training rows must be the same).
    pub csv: Option<PathBuf>,
    /// A new stop rule; `None` keeps the saved one.
    pub stop: Option<StopRule>,
    /// A new divergence policy; `None` keeps the saved one.
    pub on_divergence: Option<OnDivergence>,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// A new precision for the products from the next step on; `None` keeps
    /// the saved one.
    pub precision: Option<Precision>,
}

/// Where the series came from, saved with the run so a resume reads it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SeriesSource {
    csv: PathBuf,
}

/// A series run in its folder, ready to train.
pub struct Training {
    trainer: SeriesTrainer,
    info: SeriesInfo,
    source: SeriesSource,
    folder: RunFolder,
    threads: usize,
    notes: Vec<String>,
}

/// The table's rows normalised and cut into windows as `info` says, with
/// the normalisation `norm`.
pub(crate) fn windows(
    table: &Table,
    info: &SeriesInfo,
    norm: &Normalization,
) -> Result<SeriesData, SeriesError> {
    let s = info.split;
    let split = Split {
        train: s.train,
        valid: s.valid,
        test: s.test,
    };
    Ok(SeriesData::new(
        norm.apply(&table.values),
        table.columns.len(),
        info.window,
        info.horizon,
        split,
    )?)
}

/// The target's column in `columns`, or the first when `target` is empty.
pub(crate) fn target_column(columns: &[String], target: &str) -> Result<String, SeriesError> {
    if target.is_empty() {
        return Ok(columns[0].clone());
    }
    if columns.iter().any(|c| c == target) {
        Ok(target.to_string())
    } else {
        Err(SeriesError::TargetNotAColumn {
            target: target.into(),
            columns: columns.to_vec(),
        })
    }
}

impl Training {
    /// Reads the CSV, fits the normalisation on the training rows, builds the
    /// model and prepares a run in `folder` (written to only when training).
    pub fn start(options: &TrainOptions, folder: RunFolder) -> Result<Training, SeriesError> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::start_inner(options, folder, threads))
    }

    fn start_inner(
        o: &TrainOptions,
        folder: RunFolder,
        threads: usize,
    ) -> Result<Training, SeriesError> {
        check_options(o)?;
        let table = read_csv(&o.csv, &o.columns)?;
        let target = target_column(&table.columns, &o.target)?;
        let split = Split::new(table.rows(), o.valid_fraction, o.test_fraction)?;
        let f = table.columns.len();
        let norm = Normalization::fit(&table.values, f, split.train);
        let info = SeriesInfo {
            columns: table.columns.clone(),
            target,
            window: o.window,
            horizon: o.horizon,
            mean: norm.mean.clone(),
            std: norm.std.clone(),
            loss: o.loss,
            split: SplitRows {
                train: split.train,
                valid: split.valid,
                test: split.test,
            },
        };
        let data = windows(&table, &info, &norm)?;
        let config = SeriesConfig {
            cell: o.cell,
            inputs: f,
            hidden: o.hidden,
            layers: o.layers,
            outputs: data.outputs(),
            output: SeriesOutput::Last,
        };
        let model = SeriesModel::new(config, &mut Rng::new(o.seed))?;
        let windows = data.origins(recurrent_train::series::Part::Train).len();
        let batches = windows.div_ceil(o.batch) as u64;
        let mut stop = o.stop;
        if stop.epochs.is_none() && stop.steps.is_none() && stop.time_secs.is_none() {
            stop.epochs = Some(30);
        }
        let total_steps = stop.steps.or(stop.epochs.map(|e| e * batches));
        let schedule = Schedule::parse(&o.schedule, total_steps).map_err(crate::Error::Schedule)?;
        let config = SeriesTrainConfig {
            batch: o.batch,
            loss: o.loss,
            optimizer: o.optimizer.clone(),
            lr: o.lr,
            clip: o.clip,
            schedule,
            plan: Plan {
                stop,
                eval_every: o.eval_every.unwrap_or(0),
                patience: o.patience,
            },
            seed: o.seed,
        };
        let mut trainer = SeriesTrainer::new(model, config, data)?;
        trainer.state.progress.divergence.on_divergence = o.on_divergence;
        trainer.set_precision(o.precision);
        folder.make()?;
        Ok(Training {
            trainer,
            info,
            source: SeriesSource {
                csv: absolute(&o.csv),
            },
            folder,
            threads,
            notes: precision_note(o.precision).into_iter().collect(),
        })
    }

    /// Continues the run in `folder` from its `last/` checkpoint, reading the
    /// CSV again (its training rows must be the ones trained on).
    pub fn resume(folder: RunFolder, options: &ResumeOptions) -> Result<Training, SeriesError> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::resume_inner(folder, options, threads))
    }

    fn resume_inner(
        folder: RunFolder,
        o: &ResumeOptions,
        threads: usize,
    ) -> Result<Training, SeriesError> {
        let saved = ckpt::load(&folder.last_dir())?;
        let (run, optimizer) =
            SavedRun::<SeriesTrainerState, SeriesSource>::read(&saved.path, saved.resume)?;
        let mut source = run.data;
        if let Some(csv) = &o.csv {
            source.csv = absolute(csv);
        }
        let info = saved.info;
        let table = read_csv(&source.csv, &info.columns)?;
        let norm = Normalization {
            mean: info.mean.clone(),
            std: info.std.clone(),
        };
        let data = windows(&table, &info, &norm)?;
        let mut state = run.trainer;
        if let Some(stop) = o.stop {
            state.config.plan.stop = stop;
        }
        if let Some(policy) = o.on_divergence {
            state.progress.divergence.on_divergence = policy;
        }
        if let Some(precision) = o.precision {
            state.precision = precision;
        }
        let notes = precision_note(state.precision).into_iter().collect();
        let trainer = SeriesTrainer::resume(saved.model, &optimizer, state, data)?;
        Ok(Training {
            trainer,
            info,
            source,
            folder,
            threads,
            notes,
        })
    }

    /// Trains until the stop rule, writing checkpoints, `metrics.jsonl` and
    /// the loss plot into the run folder, and reporting to `observer`.
    pub fn run(
        &mut self,
        observer: &mut dyn Observer<SeriesTrainer>,
    ) -> Result<Outcome, SeriesError> {
        let record = SeriesRecord {
            info: &self.info,
            source: &self.source,
        };
        Ok(run_recorded(
            &mut self.trainer,
            &self.folder,
            self.threads,
            record,
            observer,
        )?)
    }

    /// The trainer: model, optimizer and state.
    pub fn trainer(&self) -> &SeriesTrainer {
        &self.trainer
    }

    /// How the model reads the series: columns, target, window, normalisation.
    pub fn info(&self) -> &SeriesInfo {
        &self.info
    }

    /// The run folder.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// What the start or resume decided that the user did not say (the
    /// precision used instead of the one asked for).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// A few lines on what is trained on what, and how.
    pub fn describe(&self) -> String {
        let t = &self.trainer;
        let c = &t.model.config;
        let s = &t.state.config;
        let i = &self.info;
        let text = format!(
            "training a {}x{} {} regression model ({} parameters) on {}\n\
             columns {} (target {}), window {}, horizon {}; rows {} training, {} validation, {} test\n\
             loss {}, batch {}, {} batches per epoch, optimizer {} lr {}, threads: {}",
            c.layers,
            c.hidden,
            c.cell,
            t.model.num_params(),
            self.source.csv.display(),
            i.columns.join(","),
            i.target,
            i.window,
            i.horizon,
            i.split.train,
            i.split.valid,
            i.split.test,
            s.loss.name(),
            s.batch,
            t.batches_per_epoch(),
            s.optimizer.kind,
            s.lr,
            self.threads
        );
        text + &precision_line(t.state.precision).unwrap_or_default()
    }
}

fn check_options(o: &TrainOptions) -> Result<(), SeriesError> {
    check(o.batch >= 1, "batch", o.batch, "at least 1")?;
    check(o.window >= 1, "window", o.window, "at least 1")?;
    check(o.horizon >= 1, "horizon", o.horizon, "at least 1")?;
    check(o.hidden >= 1, "hidden", o.hidden, "at least 1")?;
    check(o.layers >= 1, "layers", o.layers, "at least 1")?;
    check(
        (0.0..=0.5).contains(&o.valid_fraction),
        "valid_fraction",
        o.valid_fraction,
        "in [0, 0.5]",
    )?;
    check(
        (0.0..=0.5).contains(&o.test_fraction),
        "test_fraction",
        o.test_fraction,
        "in [0, 0.5]",
    )?;
    check(
        o.lr.is_finite() && o.lr > 0.0,
        "lr",
        o.lr,
        "a finite number > 0",
    )?;
    check(
        o.clip.is_finite() && o.clip >= 0.0,
        "clip",
        o.clip,
        "a finite number >= 0 (0 turns clipping off)",
    )?;
    if let RegressionLoss::Huber { delta } = o.loss {
        check(
            delta.is_finite() && delta > 0.0,
            "huber_delta",
            delta,
            "a finite number > 0",
        )?;
    }
    Ok(())
}

/// What a series run records: the validation loss's square root when it is
/// an MSE (in normalised units), and checkpoints with the series' info.
struct SeriesRecord<'a> {
    info: &'a SeriesInfo,
    source: &'a SeriesSource,
}

impl TaskRecord<SeriesTrainer> for SeriesRecord<'_> {
    fn val_fields(&mut self, _: &SeriesTrainer, r: &mut EvalReport, fields: &mut Fields) {
        if self.info.loss == RegressionLoss::Mse {
            fields.insert("rmse".into(), json!(r.loss.sqrt()));
        }
        fields.insert("values".into(), json!(r.tokens));
    }

    fn save(&self, t: &SeriesTrainer, dir: &Path) -> Result<(), SaveError> {
        let run = SavedRun {
            trainer: &t.state,
            data: self.source,
        };
        let resume = run.resume_state(t.state_tensors())?;
        ckpt::save(dir, &t.model, self.info, Some(&resume))?;
        Ok(())
    }
}
