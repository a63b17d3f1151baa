//! The trainer: one optimizer step per block of `seq_len × batch` tokens with
//! the hidden state carried between blocks, periodic validation, early
//! stopping, and a state that can be saved and resumed bit for bit.
//!
//! The trainer does no I/O: it reports to an [`Observer`], which prints
//! progress and writes checkpoints.

use std::time::Instant;

use recurrent_kernels::Rng;
use recurrent_model::{LanguageModel, ModelError, Regularization, State, Workspace};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::asgd::{self, Averager};
use crate::batch::{fill_keep, BatchError, Streams};
use crate::clip::clip_grad_norm;
use crate::optim::{OptimError, Optimizer, OptimizerConfig};
use crate::schedule::{LrScheduler, Schedule};

/// Errors that stop training.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("training stopped: the loss became {loss} at step {step} (try a lower --lr or --clip); the parameters were not updated")]
    NonFinite { loss: f64, step: u64 },
    #[error("training stopped: the validation loss became {loss} after step {step}, so the weights have diverged (try a lower --lr or --clip)")]
    NonFiniteValidation { loss: f64, step: u64 },
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Training data the trainer cannot use (e.g. an empty set of pairs).
    #[error("invalid training data: {0}")]
    Data(String),
    #[error("{0}")]
    Observer(String),
}

/// How to train; saved with the run so `--resume` continues the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub seq_len: usize,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    pub schedule: Schedule,
    pub epochs: Option<u64>,
    pub steps: Option<u64>,
    /// Wall-clock budget of one invocation, in seconds.
    pub time_secs: Option<f64>,
    /// Steps between validations; 0 validates once per epoch.
    pub eval_every: u64,
    /// Stop after this many validations without improvement.
    pub patience: Option<u32>,
    pub seed: u64,
    /// Reset the hidden state of a stream where a new document starts.
    pub reset_between_docs: bool,
    /// NT-ASGD: start averaging the weights when a validation is worse than the
    /// best before the last this-many validations (see [`crate::asgd`]).
    #[serde(default)]
    pub nt_asgd: Option<usize>,
}

/// AWD-LSTM's regularizers (Merity et al. 2017) and variable BPTT: all off by
/// default, so runs without them, and runs saved before they existed, train
/// exactly as before. Saved in `trainer_state.json` so `--resume` keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Regularizers {
    /// Dropouts, weight drop, AR and TAR, applied by the model each block.
    #[serde(flatten)]
    pub model: Regularization,
    /// Variable BPTT: each block's length is drawn around `seq_len` (see
    /// [`draw_bptt`]) and the learning rate scaled by `length / seq_len`.
    pub variable_bptt: bool,
}

/// The shortest block [`draw_bptt`] returns (AWD-LSTM's floor).
pub const MIN_VARIABLE_BPTT: usize = 5;

/// How far above `seq_len` [`draw_bptt`] may go: four standard deviations of
/// its spread of 5, so the cap almost never binds, and the block buffers stay bounded.
pub const MAX_VARIABLE_BPTT_EXTRA: usize = 20;

/// AWD-LSTM's variable BPTT length: the base is `seq_len` with probability
/// 0.95, else `seq_len / 2`; the length is a draw from N(base, 5) truncated to
/// an integer (as AWD's `int()`), kept within
/// `[MIN_VARIABLE_BPTT, seq_len + MAX_VARIABLE_BPTT_EXTRA]`.
pub fn draw_bptt(rng: &mut Rng, seq_len: usize) -> usize {
    let base = if rng.next_f64() < 0.95 {
        seq_len as f64
    } else {
        seq_len as f64 / 2.0
    };
    // Box-Muller; 1 - u lies in (0, 1], so the logarithm is finite.
    let (u1, u2) = (1.0 - rng.next_f64(), rng.next_f64());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let len = (base + 5.0 * z).trunc().max(0.0) as usize;
    len.clamp(MIN_VARIABLE_BPTT, seq_len + MAX_VARIABLE_BPTT_EXTRA)
}

/// Fingerprint of the token data, checked on resume so a run never silently
/// continues on different text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    pub tokens: usize,
    pub hash: u64,
}

impl DataFingerprint {
    /// FNV-1a over the token ids.
    pub fn of(tokens: &[u32]) -> DataFingerprint {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for &t in tokens {
            for byte in t.to_le_bytes() {
                hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
            }
        }
        DataFingerprint {
            tokens: tokens.len(),
            hash,
        }
    }
}

/// One validation result, kept in the run's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub accuracy: f64,
}

/// Everything besides parameters and optimizer buffers that a resume needs
/// (this is `trainer_state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub config: TrainConfig,
    pub step: u64,
    pub epoch: u64,
    /// Next block within the epoch: the data position.
    pub block_in_epoch: usize,
    pub scheduler: LrScheduler,
    pub rng: Rng,
    pub best_val_loss: Option<f64>,
    /// Best loss of the scheduled validations, which early stopping compares against.
    #[serde(default)]
    pub best_scheduled_val_loss: Option<f64>,
    pub evals_since_best: u32,
    /// Hidden state carried into the next block, `[L, B, H]` (and `c` for LSTM).
    pub carried_h: Vec<f32>,
    pub carried_c: Vec<f32>,
    pub train_data: DataFingerprint,
    pub history: Vec<EvalRecord>,
    /// Losses of the scheduled validations, oldest first (NT-ASGD's trigger reads them).
    #[serde(default)]
    pub scheduled_val_losses: Vec<f64>,
    /// The step NT-ASGD started averaging at, and how many steps the average holds.
    #[serde(default)]
    pub averaging_since: Option<u64>,
    #[serde(default)]
    pub averaging_count: u64,
    /// AWD-LSTM's regularizers and variable BPTT (off in runs saved before them).
    #[serde(default)]
    pub regularizers: Regularizers,
    /// With variable BPTT, where the next block starts in every stream (blocks
    /// differ in length, so `block_in_epoch` cannot say); unused otherwise.
    #[serde(default)]
    pub stream_pos: usize,
    /// Seconds spent training over all invocations.
    pub elapsed_secs: f64,
}

/// What one training step did.
#[derive(Clone, Copy, Debug)]
pub struct StepReport {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub grad_norm: f32,
    pub lr: f32,
    pub tokens: usize,
    /// The AR and TAR penalties of the step (0 when off), not part of `loss`.
    pub ar: f64,
    pub tar: f64,
    /// Fraction of the whole run done, when the stop rule makes that known.
    pub progress: Option<f64>,
}

/// Loss statistics over a whole text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalReport {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    pub accuracy: f64,
    pub tokens: usize,
}

impl EvalReport {
    /// Bits per token (`loss / ln 2`).
    pub fn bits_per_token(&self) -> f64 {
        self.loss / std::f64::consts::LN_2
    }

    /// Perplexity (`e^loss`).
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

/// Which checkpoint slot of the run folder to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Best,
    Last,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Steps,
    Epochs,
    Time,
    EarlyStopping,
    /// The observer asked to stop (e.g. Ctrl-C); the run can be resumed.
    Interrupted,
}

impl StopReason {
    /// Why the run ended, in words for the user.
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Steps => "step limit reached",
            StopReason::Epochs => "epoch limit reached",
            StopReason::Time => "time budget used",
            StopReason::EarlyStopping => "early stopping: validation stopped improving",
            StopReason::Interrupted => "interrupted",
        }
    }
}

/// When a run ends: the first of `--steps`, `--epochs` and `--time` reached
/// (shared by the language-model and seq2seq trainers).
#[derive(Clone, Copy, Debug)]
pub struct StopRule {
    pub epochs: Option<u64>,
    pub steps: Option<u64>,
    /// Wall-clock seconds of this invocation.
    pub time_secs: Option<f64>,
}

impl StopRule {
    pub fn new(epochs: Option<u64>, steps: Option<u64>, time_secs: Option<f64>) -> StopRule {
        StopRule {
            epochs,
            steps,
            time_secs,
        }
    }

    /// Why to stop after `step` optimizer steps in epoch `epoch`, if at all.
    pub fn reason(&self, step: u64, epoch: u64, started: Instant) -> Option<StopReason> {
        if self.steps.is_some_and(|s| step >= s) {
            Some(StopReason::Steps)
        } else if self.epochs.is_some_and(|e| epoch >= e) {
            Some(StopReason::Epochs)
        } else if self
            .time_secs
            .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
        {
            Some(StopReason::Time)
        } else {
            None
        }
    }

    /// The largest fraction done by any limit (`epochs_done` counts the
    /// current epoch's share), or `None` without limits.
    pub fn progress(&self, step: u64, epochs_done: f64, started: Instant) -> Option<f64> {
        let steps = self.steps.map(|s| step as f64 / s.max(1) as f64);
        let epochs = self.epochs.map(|e| epochs_done / e.max(1) as f64);
        let time = self
            .time_secs
            .map(|s| started.elapsed().as_secs_f64() / s.max(1e-9));
        [steps, epochs, time]
            .into_iter()
            .flatten()
            .reduce(f64::max)
            .map(|p| p.min(1.0))
    }
}

/// Receives progress and performs the run's I/O.
pub trait Observer {
    fn on_step(&mut self, _trainer: &Trainer, _report: &StepReport) {}
    fn on_eval(&mut self, _trainer: &Trainer, _report: &EvalReport, _improved: bool) {}
    /// Checked before every step: true ends the run cleanly (it is saved and can resume).
    fn should_stop(&self) -> bool {
        false
    }
    /// Writes a checkpoint of `trainer` into `slot`.
    fn save(&mut self, trainer: &Trainer, slot: Slot) -> Result<(), String>;
}

/// A model being trained, with everything needed to continue.
pub struct Trainer {
    pub model: LanguageModel,
    pub optimizer: Optimizer,
    pub state: TrainerState,
    train: Vec<u32>,
    val: Option<Vec<u32>>,
    boundary: Option<u32>,
    streams: Streams,
    carried: State,
    grads: Vec<f32>,
    ws: Workspace,
    x: Vec<u32>,
    y: Vec<u32>,
    keep: Vec<f32>,
    /// NT-ASGD's running average of the weights, once averaging has started.
    averager: Option<Averager>,
}

/// The name of NT-ASGD's weight average among the saved optimizer tensors.
pub const AVERAGE_TENSOR: &str = "asgd_average";

impl Trainer {
    /// A fresh run of `model` on `train` tokens (and `val` tokens for validation).
    /// `boundary` is the document-boundary token, used when resetting between documents.
    pub fn new(
        model: LanguageModel,
        config: TrainConfig,
        train: Vec<u32>,
        val: Option<Vec<u32>>,
        boundary: Option<u32>,
    ) -> Result<Trainer, TrainError> {
        let off = Regularizers::default();
        Self::with_regularizers(model, config, off, train, val, boundary)
    }

    /// [`Trainer::new`] with AWD-LSTM's regularizers and variable BPTT.
    pub fn with_regularizers(
        model: LanguageModel,
        config: TrainConfig,
        regularizers: Regularizers,
        train: Vec<u32>,
        val: Option<Vec<u32>>,
        boundary: Option<u32>,
    ) -> Result<Trainer, TrainError> {
        config.optimizer.validate()?;
        regularizers.model.validate()?;
        let streams = Streams::for_training(train.len(), config.batch, config.seq_len)?;
        if let Some(v) = &val {
            Streams::for_evaluation(v.len(), config.batch, "validation")?;
        }
        let carried = State::zeros(&model.config, config.batch);
        let state = TrainerState {
            step: 0,
            epoch: 0,
            block_in_epoch: 0,
            scheduler: LrScheduler::new(config.schedule.clone(), config.lr),
            rng: Rng::new(config.seed ^ 0x5eed_d12a_u64),
            best_val_loss: None,
            best_scheduled_val_loss: None,
            evals_since_best: 0,
            carried_h: carried.h.clone(),
            carried_c: carried.c.clone(),
            train_data: DataFingerprint::of(&train),
            history: Vec::new(),
            scheduled_val_losses: Vec::new(),
            averaging_since: None,
            averaging_count: 0,
            regularizers,
            stream_pos: 0,
            elapsed_secs: 0.0,
            config,
        };
        let optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        Ok(Self::assemble(
            model, optimizer, state, train, val, boundary, streams, carried,
        ))
    }

    /// Continues a saved run. `stop` replaces the saved stop rule (so a resumed
    /// run can go further); everything else comes from the saved state.
    pub fn resume(
        model: LanguageModel,
        optimizer_state: &[(String, Vec<f32>)],
        mut state: TrainerState,
        train: Vec<u32>,
        val: Option<Vec<u32>>,
        boundary: Option<u32>,
    ) -> Result<Trainer, TrainError> {
        let fp = DataFingerprint::of(&train);
        if fp != state.train_data {
            return Err(TrainError::Resume(format!(
                "the training text differs from the one this run was trained on ({} tokens now, {} before)",
                fp.tokens, state.train_data.tokens
            )));
        }
        let config = &state.config;
        let streams = Streams::for_training(train.len(), config.batch, config.seq_len)?;
        state.regularizers.model.validate()?;
        if state.regularizers.variable_bptt && state.stream_pos + 1 >= streams.stream_len {
            return Err(TrainError::Resume(format!(
                "the saved stream position {} is past the end of the streams ({} tokens)",
                state.stream_pos, streams.stream_len
            )));
        }
        let mut carried = State::zeros(&model.config, config.batch);
        if state.carried_h.len() != carried.h.len() || state.carried_c.len() != carried.c.len() {
            return Err(TrainError::Resume(
                "the saved hidden state does not match the model".into(),
            ));
        }
        carried.h.clone_from(&state.carried_h);
        carried.c.clone_from(&state.carried_c);
        let mut optimizer = Optimizer::new(config.optimizer.clone(), model.num_params());
        let (average, moments): (Vec<_>, Vec<_>) = optimizer_state
            .iter()
            .cloned()
            .partition(|(name, _)| name == AVERAGE_TENSOR);
        optimizer.load_state(&moments)?;
        state.config.optimizer = optimizer.config().clone();
        let averager = match (average.into_iter().next(), state.averaging_since) {
            (Some((_, average)), Some(_)) if average.len() == model.num_params() => {
                Some(Averager {
                    average,
                    count: state.averaging_count,
                })
            }
            (None, None) => None,
            _ => {
                return Err(TrainError::Resume(
                    "the saved NT-ASGD average does not match the trainer state".into(),
                ))
            }
        };
        let mut trainer = Self::assemble(
            model, optimizer, state, train, val, boundary, streams, carried,
        );
        trainer.averager = averager;
        Ok(trainer)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        model: LanguageModel,
        optimizer: Optimizer,
        state: TrainerState,
        train: Vec<u32>,
        val: Option<Vec<u32>>,
        boundary: Option<u32>,
        streams: Streams,
        carried: State,
    ) -> Trainer {
        let mut max_len = state.config.seq_len;
        if state.regularizers.variable_bptt {
            max_len += MAX_VARIABLE_BPTT_EXTRA;
        }
        let n = max_len * state.config.batch;
        let boundary = boundary.filter(|_| state.config.reset_between_docs);
        Trainer {
            grads: vec![0.0; model.num_params()],
            model,
            optimizer,
            state,
            train,
            val,
            boundary,
            streams,
            carried,
            ws: Workspace::default(),
            x: vec![0; n],
            y: vec![0; n],
            keep: vec![1.0; n],
            averager: None,
        }
    }

    /// NT-ASGD's current weight average, once averaging has started.
    pub fn average(&self) -> Option<&[f32]> {
        self.averager.as_ref().map(|a| &a.average[..])
    }

    /// Optimizer buffers to save for resuming, with NT-ASGD's average when it runs.
    pub fn state_tensors(&self) -> Vec<(String, Vec<f32>)> {
        let mut out = self.optimizer.state_tensors();
        if let Some(avg) = &self.averager {
            out.push((AVERAGE_TENSOR.to_string(), avg.average.clone()));
        }
        out
    }

    /// Runs `f` with the averaged weights in place of the trained ones when
    /// NT-ASGD is averaging (evaluation and the best checkpoint use them).
    fn with_average<R>(&mut self, f: impl FnOnce(&mut Trainer) -> R) -> R {
        let Some(mut avg) = self.averager.take().filter(|a| a.count > 0) else {
            return f(self);
        };
        std::mem::swap(&mut self.model.params, &mut avg.average);
        let out = f(self);
        std::mem::swap(&mut self.model.params, &mut avg.average);
        self.averager = Some(avg);
        out
    }

    /// Training blocks per epoch.
    pub fn blocks_per_epoch(&self) -> usize {
        self.streams.blocks_per_epoch(self.state.config.seq_len)
    }

    /// Whether validation text was given.
    pub fn has_validation(&self) -> bool {
        self.val.is_some()
    }

    /// Fraction of the current epoch done.
    fn epoch_fraction(&self) -> f64 {
        if self.state.regularizers.variable_bptt {
            self.state.stream_pos as f64 / (self.streams.stream_len - 1) as f64
        } else {
            self.state.block_in_epoch as f64 / self.blocks_per_epoch() as f64
        }
    }

    /// One optimizer step on the next block.
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        let (seq_len, b) = (self.state.config.seq_len, self.state.config.batch);
        let regs = self.state.regularizers;
        // The block's length, where it starts, and the learning-rate factor.
        let (t, start, lr_scale) = if regs.variable_bptt {
            let drawn = draw_bptt(&mut self.state.rng, seq_len);
            let start = self.state.stream_pos;
            // The epoch's last block takes what is left of the streams.
            let left = self.streams.stream_len - 1 - start;
            (drawn.min(left), start, drawn as f32 / seq_len as f32)
        } else {
            (seq_len, self.state.block_in_epoch * seq_len, 1.0)
        };
        let n = t * b;
        let (x, y) = (&mut self.x[..n], &mut self.y[..n]);
        self.streams.fill(&self.train, start, t, x, y);
        let keep = self.boundary.map(|bd| {
            fill_keep(&self.x[..n], bd, &mut self.keep[..n]);
            &self.keep[..n]
        });
        self.grads.fill(0.0);
        let stats = self.model.train_block_regularized(
            &mut self.ws,
            &self.x[..n],
            &self.y[..n],
            t,
            b,
            &mut self.carried,
            keep,
            &regs.model,
            &mut self.state.rng,
            &mut self.grads,
        );
        if !stats.loss.is_finite() {
            return Err(TrainError::NonFinite {
                loss: stats.loss,
                step: self.state.step + 1,
            });
        }
        let grad_norm = if self.state.config.clip > 0.0 {
            clip_grad_norm(&mut self.grads, self.state.config.clip)
        } else {
            crate::clip::grad_norm(&self.grads)
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                loss: grad_norm as f64,
                step: self.state.step + 1,
            });
        }
        // Under variable BPTT a longer block takes a larger step (AWD-LSTM).
        let lr = self.state.scheduler.lr(self.state.step) * lr_scale;
        self.optimizer.step(&mut self.model.params, &self.grads, lr);
        if let Some(avg) = &mut self.averager {
            avg.update(&self.model.params);
        }
        self.state.step += 1;
        self.state.block_in_epoch += 1;
        let epoch_done = if regs.variable_bptt {
            self.state.stream_pos += t;
            self.state.stream_pos + 1 >= self.streams.stream_len
        } else {
            self.state.block_in_epoch == self.blocks_per_epoch()
        };
        if epoch_done {
            // A new pass starts each stream from its beginning, so from a zero state.
            self.state.epoch += 1;
            self.state.block_in_epoch = 0;
            self.state.stream_pos = 0;
            self.carried = State::zeros(&self.model.config, b);
        }
        Ok(StepReport {
            step: self.state.step,
            epoch: self.state.epoch,
            loss: stats.loss,
            grad_norm,
            lr,
            tokens: n,
            ar: stats.ar,
            tar: stats.tar,
            progress: None,
        })
    }

    /// Mean loss and accuracy over the validation text from a zero state.
    pub fn validate(&mut self) -> Option<EvalReport> {
        let val = self.val.take()?;
        let (batch, seq_len, boundary) = (
            self.state.config.batch,
            self.state.config.seq_len,
            self.boundary,
        );
        let report = self.with_average(|tr| {
            evaluate(
                &tr.model,
                &mut tr.ws,
                &val,
                batch,
                seq_len,
                boundary,
                "validation",
            )
        });
        self.val = Some(val);
        report.ok()
    }

    /// Copies the carried state into the serializable state (before saving).
    pub fn sync_state(&mut self) {
        self.state.carried_h.clone_from(&self.carried.h);
        self.state.carried_c.clone_from(&self.carried.c);
        self.state.averaging_count = self.averager.as_ref().map_or(0, |a| a.count);
    }

    fn stop_reason(&self, started: Instant) -> Option<StopReason> {
        let c = &self.state.config;
        let rule = StopRule::new(c.epochs, c.steps, c.time_secs);
        rule.reason(self.state.step, self.state.epoch, started)
    }

    fn progress(&self, started: Instant) -> Option<f64> {
        let c = &self.state.config;
        let epochs_done = self.state.epoch as f64 + self.epoch_fraction();
        StopRule::new(c.epochs, c.steps, c.time_secs).progress(
            self.state.step,
            epochs_done,
            started,
        )
    }

    /// Validates, records the result, and saves `best/` on improvement. Scheduled
    /// validations also drive the plateau schedule and early stopping; the extra
    /// one at the end of a run does not, so stopping and resuming changes nothing.
    fn validate_and_record(
        &mut self,
        observer: &mut dyn Observer,
        scheduled: bool,
    ) -> Result<bool, TrainError> {
        let Some(report) = self.validate() else {
            return Ok(false);
        };
        if !report.loss.is_finite() {
            // Diverged weights: stop before they can overwrite a good checkpoint.
            return Err(TrainError::NonFiniteValidation {
                loss: report.loss,
                step: self.state.step,
            });
        }
        let improved = self.state.best_val_loss.is_none_or(|b| report.loss < b);
        if improved {
            self.state.best_val_loss = Some(report.loss);
        }
        if scheduled {
            // Patience counts scheduled validations only, against the best of
            // those, so an extra validation at a stop changes no later decision.
            let s = &mut self.state;
            let better = s.best_scheduled_val_loss.is_none_or(|b| report.loss < b);
            if better {
                s.best_scheduled_val_loss = Some(report.loss);
            }
            s.evals_since_best = if better { 0 } else { s.evals_since_best + 1 };
            s.scheduler.observe_validation(report.loss as f32);
            if let Some(window) = s.config.nt_asgd {
                if self.averager.is_none()
                    && asgd::should_start(&s.scheduled_val_losses, report.loss, window)
                {
                    s.averaging_since = Some(s.step);
                    self.averager = Some(Averager::new(self.model.num_params()));
                }
            }
            self.state.scheduled_val_losses.push(report.loss);
        }
        self.state.history.push(EvalRecord {
            step: self.state.step,
            epoch: self.state.epoch,
            loss: report.loss,
            accuracy: report.accuracy,
        });
        observer.on_eval(self, &report, improved);
        if improved {
            // Under NT-ASGD the best checkpoint holds the averaged weights it was scored with.
            self.with_average(|tr| tr.save(observer, Slot::Best))?;
        }
        Ok(improved)
    }

    fn save(&mut self, observer: &mut dyn Observer, slot: Slot) -> Result<(), TrainError> {
        self.sync_state();
        observer.save(self, slot).map_err(TrainError::Observer)
    }

    /// Trains until the stop rule is met, validating and checkpointing on the way.
    /// On an error the last good checkpoint stays as it was.
    pub fn run(&mut self, observer: &mut dyn Observer) -> Result<StopReason, TrainError> {
        run_loop(self, observer)
    }
}

impl<'o> TrainingRun<dyn Observer + 'o> for Trainer {
    fn counters(&self) -> Counters {
        let s = &self.state;
        Counters {
            step: s.step,
            epoch: s.epoch,
            elapsed_secs: s.elapsed_secs,
            eval_every: s.config.eval_every,
            patience: s.config.patience,
            evals_since_best: s.evals_since_best,
        }
    }

    fn stop_reason(&self, started: Instant) -> Option<StopReason> {
        Trainer::stop_reason(self, started)
    }

    fn should_stop(observer: &(dyn Observer + 'o)) -> bool {
        observer.should_stop()
    }

    fn train_step(
        &mut self,
        observer: &mut (dyn Observer + 'o),
        started: Instant,
        elapsed_before: f64,
    ) -> Result<(), TrainError> {
        let mut report = self.step()?;
        self.state.elapsed_secs = elapsed_before + started.elapsed().as_secs_f64();
        report.progress = self.progress(started);
        observer.on_step(self, &report);
        Ok(())
    }

    fn validate_and_record(
        &mut self,
        observer: &mut (dyn Observer + 'o),
        scheduled: bool,
    ) -> Result<(), TrainError> {
        Trainer::validate_and_record(self, observer, scheduled).map(|_| ())
    }

    fn save_last(&mut self, observer: &mut (dyn Observer + 'o)) -> Result<(), TrainError> {
        self.save(observer, Slot::Last)
    }
}

/// Where a run stands, for [`run_loop`].
pub(crate) struct Counters {
    pub step: u64,
    pub epoch: u64,
    pub elapsed_secs: f64,
    pub eval_every: u64,
    pub patience: Option<u32>,
    pub evals_since_best: u32,
}

/// What [`run_loop`] asks of a trainer (the language-model and the seq2seq
/// trainer) and of its observer.
/// `O` is the observer the trainer reports to and saves through.
pub(crate) trait TrainingRun<O: ?Sized> {
    fn counters(&self) -> Counters;
    /// Why to stop now, if a `--steps`/`--epochs`/`--time` limit is reached.
    fn stop_reason(&self, started: Instant) -> Option<StopReason>;
    fn should_stop(observer: &O) -> bool;
    /// One optimizer step, with the elapsed time and progress updated and
    /// the step reported to the observer.
    fn train_step(
        &mut self,
        observer: &mut O,
        started: Instant,
        elapsed_before: f64,
    ) -> Result<(), TrainError>;
    /// Validates and records the result (saving `best/` on improvement);
    /// `scheduled` validations also drive schedules and early stopping.
    fn validate_and_record(&mut self, observer: &mut O, scheduled: bool) -> Result<(), TrainError>;
    fn save_last(&mut self, observer: &mut O) -> Result<(), TrainError>;
}

/// The run loop of both trainers: steps until a stop rule, the observer or
/// early stopping ends the run, validating and writing `last/` when due
/// (every `eval_every` steps, or at each new epoch), and once more at the end
/// unless the last step was just validated.
pub(crate) fn run_loop<O: ?Sized, T: TrainingRun<O>>(
    trainer: &mut T,
    observer: &mut O,
) -> Result<StopReason, TrainError> {
    let started = Instant::now();
    let elapsed_before = trainer.counters().elapsed_secs;
    let mut last_eval_step = None;
    let reason = loop {
        if let Some(reason) = trainer.stop_reason(started) {
            break reason;
        }
        if T::should_stop(observer) {
            break StopReason::Interrupted;
        }
        let epoch_before = trainer.counters().epoch;
        trainer.train_step(observer, started, elapsed_before)?;
        let c = trainer.counters();
        let due = if c.eval_every > 0 {
            c.step.is_multiple_of(c.eval_every)
        } else {
            c.epoch > epoch_before
        };
        if due {
            trainer.validate_and_record(observer, true)?;
            last_eval_step = Some(c.step);
            trainer.save_last(observer)?;
            let waited = trainer.counters().evals_since_best;
            if c.patience.is_some_and(|p| waited >= p) {
                break StopReason::EarlyStopping;
            }
        }
    };
    if last_eval_step != Some(trainer.counters().step) {
        trainer.validate_and_record(observer, false)?;
        trainer.save_last(observer)?;
    }
    Ok(reason)
}

/// Mean loss of `model` over `tokens`, cut into at most `batch` streams that
/// start from a zero state and carry it to their end (`batch` 1 reads the text
/// as one stream). Every token but each stream's first is predicted once.
pub fn evaluate(
    model: &LanguageModel,
    ws: &mut Workspace,
    tokens: &[u32],
    batch: usize,
    seq_len: usize,
    boundary: Option<u32>,
    what: &'static str,
) -> Result<EvalReport, BatchError> {
    let streams = Streams::for_evaluation(tokens.len(), batch, what)?;
    let b = streams.batch;
    // Blocks never run past a stream, so a huge seq_len cannot inflate the buffers.
    let seq_len = seq_len.clamp(1, streams.stream_len);
    let mut state = State::zeros(&model.config, b);
    let (mut x, mut y, mut keep) = (
        vec![0; seq_len * b],
        vec![0; seq_len * b],
        vec![1.0; seq_len * b],
    );
    let (mut loss_sum, mut correct, mut count) = (0.0f64, 0usize, 0usize);
    let mut start = 0;
    while start + 1 < streams.stream_len {
        let t = seq_len.min(streams.stream_len - 1 - start);
        let n = t * b;
        streams.fill(tokens, start, t, &mut x, &mut y);
        let keep = boundary.map(|bd| {
            fill_keep(&x[..n], bd, &mut keep[..n]);
            &keep[..n]
        });
        let stats = model.evaluate_block(ws, &x[..n], &y[..n], t, b, &mut state, keep);
        loss_sum += stats.loss * n as f64;
        correct += stats.correct;
        count += n;
        start += t;
    }
    Ok(EvalReport {
        loss: loss_sum / count as f64,
        accuracy: correct as f64 / count as f64,
        tokens: count,
    })
}
