//! [`SeriesTrainer`]: a sequence-regression model trained on the windows of
//! a series, as a [`Task`] of the one engine.
//!
//! Each epoch visits every training window once, in an order drawn from the
//! run's seed and the epoch number (so a resumed run recomputes it), in
//! batches of `batch` windows (the last one smaller). The model predicts the
//! `horizon` rows after each window, every column, from its last step.

use recurrent_kernels::precision::usable;
use recurrent_kernels::{with_precision, Precision, Rng};
use recurrent_model::series::{SeriesBatch, SeriesModel, SeriesOutput, SeriesWorkspace};
use recurrent_nn::regression::{regression_loss, RegressionLoss};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::data::{Part, SeriesData, SeriesDataError};
use crate::batch::BatchError;
use crate::engine::{
    self, check_and_clip, DataFingerprint, EvalReport, Observer, Plan, RunProgress, StepReport,
    StopReason, Task,
};
use crate::error::TrainError;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::{LrScheduler, Schedule};

/// Why a series run cannot start or resume.
#[derive(Debug, Error)]
pub enum SeriesTrainError {
    /// The series cannot be cut into windows.
    #[error(transparent)]
    Data(#[from] SeriesDataError),
    /// The model does not fit the data.
    #[error(
        "the model reads {model_inputs} columns and predicts {model_outputs} values, but the \
         data has {columns} columns and windows predict {outputs} values"
    )]
    ModelMismatch {
        /// Columns the model reads.
        model_inputs: usize,
        /// Values the model predicts per window.
        model_outputs: usize,
        /// Columns of the data.
        columns: usize,
        /// Values a window predicts (horizon × columns).
        outputs: usize,
    },
    /// The training rows are not the ones the run was trained on.
    #[error(
        "cannot resume: the training series differs from the one this run was trained on \
         ({} values now, {} before)",
        found.tokens,
        saved.tokens
    )]
    DataChanged {
        /// The fingerprint saved with the run.
        saved: DataFingerprint,
        /// The fingerprint of the data given now.
        found: DataFingerprint,
    },
    /// The trainer's settings or saved state are wrong.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// How to train; saved with the run so a resumed run continues the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesTrainConfig {
    /// Windows per batch.
    pub batch: usize,
    /// The loss between predictions and targets (normalised units).
    pub loss: RegressionLoss,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Base learning rate, which `schedule` scales.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// How the learning rate changes over the run.
    pub schedule: Schedule,
    /// When to stop, validate and give up (saved flattened).
    #[serde(flatten)]
    pub plan: Plan,
    /// Seeds the window order.
    pub seed: u64,
}

/// Everything besides parameters and optimizer buffers that a resume needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesTrainerState {
    /// How to train.
    pub config: SeriesTrainConfig,
    /// Counters, schedule, random state and validation record.
    #[serde(flatten)]
    pub progress: RunProgress,
    /// Batches of the current epoch already trained on.
    pub batch_in_epoch: usize,
    /// The precision of the products asked for (see
    /// [`recurrent_kernels::precision`]); float32 in runs saved before it.
    #[serde(default)]
    pub precision: Precision,
}

/// The fingerprint of the training rows (normalised values, bit for bit).
pub fn fingerprint(data: &SeriesData) -> DataFingerprint {
    let rows = &data.values[..data.split.train * data.columns];
    let bits: Vec<u32> = rows.iter().map(|v| v.to_bits()).collect();
    DataFingerprint::of(&bits)
}

/// The training windows' origins of epoch `epoch`, shuffled by `(seed, epoch)`.
pub fn epoch_order(data: &SeriesData, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed ^ 0x005e_71e5_u64 ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut order: Vec<usize> = data.origins(Part::Train).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// A series model being trained, with everything needed to continue.
pub struct SeriesTrainer {
    /// The model, its parameters updated in place.
    pub model: SeriesModel,
    /// The optimizer and its buffers.
    pub optimizer: Optimizer,
    /// The resumable state, saved as `trainer_state.json`.
    pub state: SeriesTrainerState,
    data: SeriesData,
    order: Vec<usize>,
    baseline: f64,
    ws: SeriesWorkspace,
    grads: Vec<f32>,
    x: Vec<f32>,
    target: Vec<f32>,
}

impl SeriesTrainer {
    /// A fresh run of `model` on `data`.
    pub fn new(
        model: SeriesModel,
        config: SeriesTrainConfig,
        data: SeriesData,
    ) -> Result<SeriesTrainer, SeriesTrainError> {
        config.optimizer.validate().map_err(TrainError::from)?;
        let state = SeriesTrainerState {
            progress: RunProgress::new(
                LrScheduler::new(config.schedule.clone(), config.lr),
                Rng::new(config.seed ^ 0x005e_7135),
                fingerprint(&data),
            ),
            batch_in_epoch: 0,
            precision: Precision::F32,
            config,
        };
        let optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        Self::assemble(model, optimizer, state, data)
    }

    /// Continues a saved run: the optimizer buffers and state as saved, on the
    /// same training rows (checked by fingerprint).
    pub fn resume(
        model: SeriesModel,
        optimizer_state: &[(String, Vec<f32>)],
        mut state: SeriesTrainerState,
        data: SeriesData,
    ) -> Result<SeriesTrainer, SeriesTrainError> {
        state.progress.upgrade();
        let found = fingerprint(&data);
        if found != state.progress.train_data {
            return Err(SeriesTrainError::DataChanged {
                saved: state.progress.train_data.clone(),
                found,
            });
        }
        let mut optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        optimizer
            .load_state(optimizer_state)
            .map_err(TrainError::from)?;
        Self::assemble(model, optimizer, state, data)
    }

    fn assemble(
        model: SeriesModel,
        optimizer: Optimizer,
        state: SeriesTrainerState,
        data: SeriesData,
    ) -> Result<SeriesTrainer, SeriesTrainError> {
        if state.config.batch == 0 {
            let zero = BatchError::ZeroSize { field: "batch" };
            return Err(TrainError::from(zero).into());
        }
        let c = &model.config;
        if c.inputs != data.columns || c.outputs != data.outputs() || c.output != SeriesOutput::Last
        {
            return Err(SeriesTrainError::ModelMismatch {
                model_inputs: c.inputs,
                model_outputs: c.outputs,
                columns: data.columns,
                outputs: data.outputs(),
            });
        }
        let order = epoch_order(&data, state.config.seed, state.progress.epoch);
        let grads = vec![0.0; model.num_params()];
        let mut trainer = SeriesTrainer {
            model,
            optimizer,
            state,
            data,
            order,
            baseline: 0.0,
            ws: SeriesWorkspace::default(),
            grads,
            x: Vec::new(),
            target: Vec::new(),
        };
        trainer.baseline = trainer.mean_guess_loss();
        Ok(trainer)
    }

    /// The data being trained on.
    pub fn data(&self) -> &SeriesData {
        &self.data
    }

    /// Batches in one pass over the training windows.
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.state.config.batch)
    }

    /// The optimizer's buffers, to save for resuming.
    pub fn state_tensors(&self) -> Vec<(String, Vec<f32>)> {
        self.optimizer.state_tensors()
    }

    /// The loss of always predicting no change from the window's last row
    /// (a target of 0, windows being relative), the larger over the
    /// validation and training windows: the regression's "uniform guess",
    /// which the divergence watch and the best checkpoint compare against.
    fn mean_guess_loss(&self) -> f64 {
        let loss = self.state.config.loss;
        [Part::Valid, Part::Train]
            .into_iter()
            .map(|part| {
                let origins: Vec<usize> = self.data.origins(part).collect();
                let mut x = Vec::new();
                let mut target = Vec::new();
                self.data.fill(&origins, &mut x, &mut target);
                let zeros = vec![0.0; target.len()];
                regression_loss(loss, &zeros, &target, None, None, 1.0)
            })
            .fold(0.0, f64::max)
    }

    /// Trains the products in `precision` from the next step on, where this
    /// CPU has a bf16 kernel ([`recurrent_kernels::precision::usable`]); saved
    /// with the run, so a resume keeps it.
    pub fn set_precision(&mut self, precision: Precision) {
        self.state.precision = precision;
    }

    /// One optimizer step on the next batch.
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        let c = &self.state.config;
        let len = self.order.len();
        let first = self.state.batch_in_epoch.saturating_mul(c.batch).min(len);
        let origins = &self.order[first..first.saturating_add(c.batch).min(len)];
        self.data.fill(origins, &mut self.x, &mut self.target);
        let batch = SeriesBatch {
            x: &self.x,
            steps: self.data.window,
            batch: origins.len(),
            target: &self.target,
            weights: None,
        };
        self.grads.fill(0.0);
        let loss = with_precision(usable(self.state.precision), || {
            self.model
                .loss_and_grad(&mut self.ws, &batch, c.loss, &mut self.grads)
        })?;
        let values = self.target.len();
        let p = &mut self.state.progress;
        let norm = check_and_clip(&mut self.grads, loss, c.clip, p.step + 1)?;
        let lr = p.lr();
        self.optimizer.step(&mut self.model.params, &self.grads, lr);
        p.step += 1;
        self.state.batch_in_epoch += 1;
        if self.state.batch_in_epoch.saturating_mul(c.batch) >= self.order.len() {
            p.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.order = epoch_order(&self.data, c.seed, p.epoch);
        }
        Ok(StepReport {
            step: p.step,
            epoch: p.epoch,
            loss,
            grad_norm: norm,
            lr,
            tokens: values,
            ar: 0.0,
            tar: 0.0,
            progress: None,
            elapsed_secs: p.elapsed_secs,
        })
    }

    /// Mean loss over the windows of `part`, `None` when it has none.
    pub fn evaluate(&mut self, part: Part) -> Option<EvalReport> {
        let origins: Vec<usize> = self.data.origins(part).collect();
        evaluate_windows(
            &self.model,
            &mut self.ws,
            &self.data,
            &origins,
            self.state.config.batch,
            self.state.config.loss,
        )
    }

    /// Trains until the stop rule is met, validating and checkpointing on the
    /// way; `last/` is written at every validation and at the end.
    pub fn run(
        &mut self,
        observer: &mut dyn Observer<SeriesTrainer>,
    ) -> Result<StopReason, TrainError> {
        engine::run(self, observer)
    }
}

/// Mean loss of `model` over the windows at `origins`, in batches of up to
/// `batch`; `None` without windows.
pub fn evaluate_windows(
    model: &SeriesModel,
    ws: &mut SeriesWorkspace,
    data: &SeriesData,
    origins: &[usize],
    batch: usize,
    loss: RegressionLoss,
) -> Option<EvalReport> {
    if origins.is_empty() {
        return None;
    }
    let (mut x, mut target) = (Vec::new(), Vec::new());
    let (mut sum, mut values) = (0.0f64, 0usize);
    for chunk in origins.chunks(batch.max(1)) {
        data.fill(chunk, &mut x, &mut target);
        let b = SeriesBatch {
            x: &x,
            steps: data.window,
            batch: chunk.len(),
            target: &target,
            weights: None,
        };
        // The shapes come from the data the trainer checked against the model.
        let mean = model.loss(ws, &b, loss).unwrap_or(f64::NAN);
        sum += mean * target.len() as f64;
        values += target.len();
    }
    Some(EvalReport {
        loss: sum / values as f64,
        accuracy: 0.0,
        tokens: values,
        bleu: None,
    })
}

/// What a rollback restores of a series run.
#[derive(Clone, Debug)]
pub struct SeriesSnapshot {
    params: Vec<f32>,
    optimizer: Vec<(String, Vec<f32>)>,
    state: SeriesTrainerState,
}

impl Task for SeriesTrainer {
    type Snapshot = SeriesSnapshot;

    fn progress(&self) -> &RunProgress {
        &self.state.progress
    }

    fn progress_mut(&mut self) -> &mut RunProgress {
        &mut self.state.progress
    }

    fn plan(&self) -> Plan {
        self.state.config.plan
    }

    fn step(&mut self) -> Result<StepReport, TrainError> {
        SeriesTrainer::step(self)
    }

    fn epoch_fraction(&self) -> f64 {
        self.state.batch_in_epoch as f64 / self.batches_per_epoch().max(1) as f64
    }

    fn validate(&mut self) -> Option<EvalReport> {
        self.evaluate(Part::Valid)
    }

    fn uniform_loss(&self) -> f64 {
        self.baseline
    }

    fn snapshot(&mut self) -> SeriesSnapshot {
        SeriesSnapshot {
            params: self.model.params.clone(),
            optimizer: self.state_tensors(),
            state: self.state.clone(),
        }
    }

    fn restore(&mut self, snapshot: &SeriesSnapshot) -> Result<(), TrainError> {
        self.optimizer.load_state(&snapshot.optimizer)?;
        self.model.params.clone_from(&snapshot.params);
        self.state.clone_from(&snapshot.state);
        let (seed, epoch) = (self.state.config.seed, self.state.progress.epoch);
        self.order = epoch_order(&self.data, seed, epoch);
        Ok(())
    }
}
