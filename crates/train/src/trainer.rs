//! The trainer: one optimizer step per block of `seq_len × batch` tokens with
//! the hidden state carried between blocks, periodic validation, early
//! stopping, and a state that can be saved and resumed bit for bit.
//!
//! The [engine] runs it: the trainer provides the step and
//! the validation, and does no I/O.

use recurrent_kernels::precision::usable;
use recurrent_kernels::{with_precision, Precision, Rng};
use recurrent_model::{GradientSink, LanguageModel, Regularization, State, TokenBlock, Workspace};
use serde::{Deserialize, Serialize};

use std::ops::Range;

use crate::asgd::{self, Averager};
use crate::batch::{fill_keep, Streams, TokenIds, TokenSource};
use crate::collective::{share, Collective, SingleProcess};
use crate::data_parallel::{
    check_agreement, gather_streams, local_state, GradientBuckets, DEFAULT_BUCKET_FLOATS,
};
use crate::engine::{
    self, check_and_clip, EvalReport, Observer, Plan, RunProgress, Slot, StepReport, StopReason,
    Task,
};
use crate::error::{ParallelError, ResumeError, TrainError, TrainingData};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::schedule::{LrScheduler, Schedule};

/// How to train; saved with the run so a resumed run continues the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Time steps per block: how far gradients flow back through time.
    pub seq_len: usize,
    /// Streams trained side by side, each carrying its own hidden state.
    pub batch: usize,
    /// The optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Base learning rate, which `schedule` scales.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// How the learning rate changes over the run.
    pub schedule: Schedule,
    /// When to stop, validate and give up (saved flattened: `epochs`,
    /// `steps`, `time_secs`, `eval_every`, `patience`).
    #[serde(flatten)]
    pub plan: Plan,
    /// Seeds dropout and the other draws of training.
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
/// exactly as before. Saved in `trainer_state.json` so a resumed run keeps them.
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

/// Everything besides parameters and optimizer buffers that a resume needs
/// (this is `trainer_state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// How to train.
    pub config: TrainConfig,
    /// Counters, schedule, random state and validation record.
    #[serde(flatten)]
    pub progress: RunProgress,
    /// Next block within the epoch: the data position.
    pub block_in_epoch: usize,
    /// Hidden state carried into the next block, `[L, B, H]`.
    pub carried_h: Vec<f32>,
    /// Cell state carried into the next block (LSTM), `[L, B, H]`.
    pub carried_c: Vec<f32>,
    /// The step NT-ASGD started averaging at.
    #[serde(default)]
    pub averaging_since: Option<u64>,
    /// How many steps NT-ASGD's average holds.
    #[serde(default)]
    pub averaging_count: u64,
    /// AWD-LSTM's regularizers and variable BPTT (off in runs saved before them).
    #[serde(default)]
    pub regularizers: Regularizers,
    /// With variable BPTT, where the next block starts in every stream (blocks
    /// differ in length, so `block_in_epoch` cannot say); unused otherwise.
    #[serde(default)]
    pub stream_pos: usize,
    /// The precision of the products asked for (see
    /// [`recurrent_kernels::precision`]); float32 in runs saved before it.
    #[serde(default)]
    pub precision: Precision,
}

/// The token ids a trainer reads, and the document-boundary token.
struct TokenData {
    train: TokenSource,
    val: Option<TokenSource>,
    boundary: Option<u32>,
}

/// A model being trained, with everything needed to continue.
pub struct Trainer {
    /// The model, its parameters updated in place.
    pub model: LanguageModel,
    /// The optimizer and its buffers.
    pub optimizer: Optimizer,
    /// The resumable state, saved as `trainer_state.json`.
    pub state: TrainerState,
    train: TokenSource,
    val: Option<TokenSource>,
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
    /// The job this trainer is one rank of (a single process by default).
    collective: Box<dyn Collective + Send>,
    /// This rank's streams of the global batch; `carried` holds their state.
    local: Range<usize>,
    /// Local SGD: after the warm-up, ranks step on their own gradients and
    /// average their weights every so many steps.
    averaging: Option<PeriodicAveraging>,
    /// Steps taken since the ranks' weights were last averaged (local SGD).
    unaveraged: u64,
    /// Values per gradient bucket summed during the backward pass; 0 sums
    /// the whole gradient after it.
    bucket: usize,
}

/// Local SGD's schedule (Stich 2019; PyTorch's post-local SGD): synchronous
/// steps until `after`, then every rank steps on its own gradient and the
/// weights are averaged every `every` steps (and before every validation
/// and checkpoint, so that those see one model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodicAveraging {
    /// Steps between averages.
    pub every: u64,
    /// The step local SGD starts at: synchronous steps before it.
    pub after: u64,
}

/// The name of NT-ASGD's weight average among the saved optimizer tensors.
pub const AVERAGE_TENSOR: &str = "asgd_average";

impl Trainer {
    /// A fresh run of `model` on `train` tokens (and `val` tokens for validation).
    /// `boundary` is the document-boundary token, used when resetting between documents.
    ///
    /// Fails when the text is too short for one block of `batch` streams of
    /// `seq_len` steps, or a setting is out of range.
    ///
    /// # Examples
    ///
    /// A small LSTM learns a text that repeats `0 1 2`, validating every 10
    /// steps on more of it:
    ///
    /// ```
    /// use recurrent_kernels::Rng;
    /// use recurrent_model::{CellKind, LanguageModel, ModelConfig};
    /// use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
    /// use recurrent_train::schedule::Schedule;
    /// use recurrent_train::trainer::{TrainConfig, Trainer};
    /// use recurrent_train::{Observer, Plan, StopReason, StopRule};
    ///
    /// // Vocabulary 3, embedding 4, one layer of 16 units.
    /// let model = ModelConfig::new(CellKind::Lstm, 3, 4, 16, 1);
    /// let model = LanguageModel::new(model, &mut Rng::new(1), None)?;
    /// let config = TrainConfig {
    ///     seq_len: 8,
    ///     batch: 4,
    ///     optimizer: OptimizerConfig::new(OptimizerKind::Adam),
    ///     lr: 0.02,
    ///     clip: 1.0,
    ///     schedule: Schedule::Constant,
    ///     plan: Plan {
    ///         stop: StopRule { steps: Some(40), ..StopRule::default() },
    ///         eval_every: 10,
    ///         patience: None,
    ///     },
    ///     seed: 1,
    ///     reset_between_docs: false,
    ///     nt_asgd: None,
    /// };
    /// let text: Vec<u32> = (0..400).map(|i| i % 3).collect();
    /// let val = text[..60].to_vec();
    /// let mut trainer = Trainer::new(model, config, text, Some(val), None)?;
    /// let before = trainer.validate().expect("validation text given").loss;
    ///
    /// /// Shows nothing and keeps no checkpoints.
    /// struct Quiet;
    /// impl Observer<Trainer> for Quiet {}
    ///
    /// assert_eq!(trainer.run(&mut Quiet)?, StopReason::Steps);
    /// let after = trainer.state.progress.best_val_loss.expect("validated");
    /// assert!(after < before / 2.0, "{before} -> {after}");
    /// assert_eq!(trainer.state.progress.history.len(), 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
        let (train, val) = (train.into(), val.map(TokenSource::from));
        Self::with_sources(model, config, regularizers, train, val, boundary)
    }

    /// [`Trainer::with_regularizers`] reading its tokens from sources (owned
    /// ids or a memory-mapped view); the numbers are the same for the same ids.
    pub fn with_sources(
        model: LanguageModel,
        config: TrainConfig,
        regularizers: Regularizers,
        train: TokenSource,
        val: Option<TokenSource>,
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
            progress: RunProgress::new(
                LrScheduler::new(config.schedule.clone(), config.lr),
                Rng::new(config.seed ^ 0x5eed_d12a_u64),
                train.fingerprint(),
            ),
            block_in_epoch: 0,
            carried_h: carried.h.clone(),
            carried_c: carried.c.clone(),
            averaging_since: None,
            averaging_count: 0,
            regularizers,
            stream_pos: 0,
            precision: Precision::F32,
            config,
        };
        let optimizer = Optimizer::new(state.config.optimizer.clone(), model.num_params());
        let data = TokenData {
            train,
            val,
            boundary,
        };
        Ok(Self::assemble(
            model, optimizer, state, data, streams, carried,
        ))
    }

    /// Continues a saved run. `stop` replaces the saved stop rule (so a resumed
    /// run can go further); everything else comes from the saved state.
    pub fn resume(
        model: LanguageModel,
        optimizer_state: &[(String, Vec<f32>)],
        state: TrainerState,
        train: Vec<u32>,
        val: Option<Vec<u32>>,
        boundary: Option<u32>,
    ) -> Result<Trainer, TrainError> {
        let (train, val) = (train.into(), val.map(TokenSource::from));
        Self::resume_sources(model, optimizer_state, state, train, val, boundary)
    }

    /// [`Trainer::resume`] reading its tokens from sources; the source's
    /// fingerprint must be the one the run saved.
    pub fn resume_sources(
        model: LanguageModel,
        optimizer_state: &[(String, Vec<f32>)],
        mut state: TrainerState,
        train: TokenSource,
        val: Option<TokenSource>,
        boundary: Option<u32>,
    ) -> Result<Trainer, TrainError> {
        let found = train.fingerprint();
        if found != state.progress.train_data {
            return Err(ResumeError::DataChanged {
                data: TrainingData::Text,
                saved: state.progress.train_data.clone(),
                found,
            }
            .into());
        }
        state.progress.upgrade();
        let config = &state.config;
        let streams = Streams::for_training(train.len(), config.batch, config.seq_len)?;
        state.regularizers.model.validate()?;
        if state.regularizers.variable_bptt && state.stream_pos + 1 >= streams.stream_len {
            return Err(ResumeError::StreamPosition {
                position: state.stream_pos,
                stream_len: streams.stream_len,
            }
            .into());
        }
        let mut carried = State::zeros(&model.config, config.batch);
        for (name, saved, needed) in [
            ("hidden", &state.carried_h, &carried.h),
            ("cell", &state.carried_c, &carried.c),
        ] {
            if saved.len() != needed.len() {
                return Err(ResumeError::CarriedState {
                    state: name,
                    saved: saved.len(),
                    expected: needed.len(),
                }
                .into());
            }
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
        let expected = model.num_params();
        let averager = match (average.into_iter().next(), state.averaging_since) {
            (Some((_, average)), Some(_)) if average.len() == expected => Some(Averager {
                average,
                count: state.averaging_count,
            }),
            (Some((_, average)), Some(_)) => {
                let found = average.len();
                return Err(ResumeError::AverageLength { found, expected }.into());
            }
            (Some(_), None) => return Err(ResumeError::AverageUnexpected.into()),
            (None, Some(since)) => return Err(ResumeError::AverageMissing { since }.into()),
            (None, None) => None,
        };
        let data = TokenData {
            train,
            val,
            boundary,
        };
        let mut trainer = Self::assemble(model, optimizer, state, data, streams, carried);
        trainer.averager = averager;
        Ok(trainer)
    }

    fn assemble(
        model: LanguageModel,
        optimizer: Optimizer,
        state: TrainerState,
        data: TokenData,
        streams: Streams,
        carried: State,
    ) -> Trainer {
        let TokenData {
            train,
            val,
            boundary,
        } = data;
        let mut max_len = state.config.seq_len;
        if state.regularizers.variable_bptt {
            max_len += MAX_VARIABLE_BPTT_EXTRA;
        }
        let batch = state.config.batch;
        let n = max_len * batch;
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
            collective: Box::new(SingleProcess),
            local: 0..batch,
            averaging: None,
            unaveraged: 0,
            bucket: DEFAULT_BUCKET_FLOATS,
        }
    }

    /// Trains by local SGD from step `averaging.after` on (see
    /// [`PeriodicAveraging`]): fewer collectives, each rank a few steps on
    /// its own. Only a distributed trainer has anything to average; the
    /// optimizer's moments stay each rank's own (a checkpoint keeps rank
    /// 0's), so a resumed run continues from the averaged weights.
    pub fn average_periodically(&mut self, averaging: PeriodicAveraging) {
        self.averaging = Some(PeriodicAveraging {
            every: averaging.every.max(1),
            ..averaging
        });
    }

    /// Sums the gradient over the ranks in buckets of about `values` values,
    /// each started as soon as the backward pass has finished it (the
    /// default is [`DEFAULT_BUCKET_FLOATS`]); 0 sums the whole gradient in
    /// one all-reduce after the backward pass. The sums are the same either
    /// way; only the overlap of summing and computing differs.
    pub fn set_gradient_bucket(&mut self, values: usize) {
        self.bucket = values;
    }

    /// Whether this step is one of local SGD's (no gradient all-reduce).
    fn local_step(&self) -> bool {
        self.collective.ranks() > 1
            && self
                .averaging
                .is_some_and(|a| self.state.progress.step >= a.after)
    }

    /// Replaces every rank's weights by their mean, if they moved apart.
    fn average_weights(&mut self) {
        if self.unaveraged == 0 {
            return;
        }
        let scale = 1.0 / self.collective.ranks() as f32;
        self.collective.sum_f32(&mut self.model.params);
        self.model.params.iter_mut().for_each(|w| *w *= scale);
        self.unaveraged = 0;
    }

    /// Makes this trainer one rank of a data-parallel job: it trains its
    /// share of the global batch's streams, and gradients and validation
    /// sums are added over the ranks, so that every rank takes the same
    /// steps. Every rank must have been made the same way (same data,
    /// options and state, as `mpirun` starts them); this checks it.
    ///
    /// With one rank nothing changes. With more, dropout and other random
    /// draws differ from a single process's (each rank draws its own), so
    /// runs agree with a single process to rounding only without them.
    pub fn distribute(&mut self, collective: Box<dyn Collective + Send>) -> Result<(), TrainError> {
        let batch = self.state.config.batch;
        let (rank, ranks) = (collective.rank(), collective.ranks());
        if ranks > batch {
            return Err(ParallelError::TooFewStreams { batch, ranks }.into());
        }
        // Rank 0's fingerprint of the run: data, step and weights.
        check_agreement(&*collective, &self.state.progress, &self.model.params)?;
        self.local = share(batch, rank, ranks);
        self.sync_state();
        self.carried = local_state(
            &self.model.config,
            &self.state.carried_h,
            &self.state.carried_c,
            batch,
            &self.local,
        );
        self.collective = collective;
        Ok(())
    }

    /// The job this trainer is a rank of.
    pub fn collective(&self) -> &dyn Collective {
        &*self.collective
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

    /// Trains the products in `precision` from the next step on, where this
    /// CPU has a bf16 kernel ([`recurrent_kernels::precision::usable`]); saved
    /// with the run, so a resume keeps it.
    pub fn set_precision(&mut self, precision: Precision) {
        self.state.precision = precision;
    }

    /// One optimizer step on the next block.
    pub fn step(&mut self) -> Result<StepReport, TrainError> {
        let (seq_len, b) = (self.state.config.seq_len, self.state.config.batch);
        let regs = self.state.regularizers;
        // The block's length, where it starts, and the learning-rate factor.
        let (t, start, lr_scale) = if regs.variable_bptt {
            let drawn = draw_bptt(&mut self.state.progress.rng, seq_len);
            let start = self.state.stream_pos;
            // The epoch's last block takes what is left of the streams.
            let left = self.streams.stream_len - 1 - start;
            (drawn.min(left), start, drawn as f32 / seq_len as f32)
        } else {
            (seq_len, self.state.block_in_epoch * seq_len, 1.0)
        };
        let ranks = self.collective.ranks();
        let local_step = self.local_step();
        let mine = self.local.len();
        let n = t * mine;
        let (x, y) = (&mut self.x[..n], &mut self.y[..n]);
        self.streams
            .fill_range_ids(self.train.ids(), &self.local, start, t, x, y);
        let keep = self.boundary.map(|bd| {
            fill_keep(&self.x[..n], bd, &mut self.keep[..n]);
            &self.keep[..n]
        });
        self.grads.fill(0.0);
        // Ranks draw their dropout from a seed they share, each its own stream.
        let mut rank_rng = (ranks > 1).then(|| {
            let seed = self.state.progress.rng.next_u64();
            Rng::new(seed ^ (self.collective.rank() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        });
        let block = TokenBlock::new(&self.x[..n], &self.y[..n], t, mine).with_keep(keep);
        let rng = rank_rng.as_mut().unwrap_or(&mut self.state.progress.rng);
        // Each rank's loss is its tokens' mean: weigh it by its share of the block.
        let weight = n as f32 / (t * b) as f32;
        let summed_in_buckets = ranks > 1 && !local_step && self.bucket > 0;
        let mut buckets =
            summed_in_buckets.then(|| GradientBuckets::new(&*self.collective, weight, self.bucket));
        let mut stats = with_precision(usable(self.state.precision), || {
            self.model.train_block_with_sink(
                &mut self.ws,
                block,
                &mut self.carried,
                &regs.model,
                rng,
                &mut self.grads,
                buckets.as_mut().map(|b| b as &mut dyn GradientSink),
            )
        })?;
        if let Some(buckets) = buckets {
            buckets.finish(&mut self.grads);
        }
        if ranks > 1 {
            if !local_step && !summed_in_buckets {
                self.grads.iter_mut().for_each(|g| *g *= weight);
                self.collective.sum_f32(&mut self.grads);
            }
            // The loss is added even under local SGD: every rank must judge
            // divergence on the same number.
            let w = f64::from(weight);
            let mut sums = [stats.loss * w, stats.ar * w, stats.tar * w];
            self.collective.sum_f64(&mut sums);
            [stats.loss, stats.ar, stats.tar] = sums;
        }
        let p = &mut self.state.progress;
        let grad_norm = check_and_clip(
            &mut self.grads,
            stats.loss,
            self.state.config.clip,
            p.step + 1,
        )?;
        // Under variable BPTT a longer block takes a larger step (AWD-LSTM).
        let lr = p.lr() * lr_scale;
        self.optimizer.step(&mut self.model.params, &self.grads, lr);
        self.state.progress.step += 1;
        if local_step {
            self.unaveraged += 1;
            let every = self.averaging.map_or(1, |a| a.every);
            if self.state.progress.step.is_multiple_of(every) {
                self.average_weights();
            }
        }
        if let Some(avg) = &mut self.averager {
            avg.update(&self.model.params);
        }
        self.state.block_in_epoch += 1;
        let epoch_done = if regs.variable_bptt {
            self.state.stream_pos += t;
            self.state.stream_pos + 1 >= self.streams.stream_len
        } else {
            self.state.block_in_epoch == self.blocks_per_epoch()
        };
        if epoch_done {
            // A new pass starts each stream from its beginning, so from a zero state.
            self.state.progress.epoch += 1;
            self.state.block_in_epoch = 0;
            self.state.stream_pos = 0;
            self.carried = State::zeros(&self.model.config, mine);
        }
        Ok(StepReport {
            step: self.state.progress.step,
            epoch: self.state.progress.epoch,
            loss: stats.loss,
            grad_norm,
            lr,
            tokens: t * b,
            ar: stats.ar,
            tar: stats.tar,
            progress: None,
            elapsed_secs: self.state.progress.elapsed_secs,
        })
    }

    /// Mean loss and accuracy over the validation text from a zero state
    /// (each rank of a job reads its share of the streams).
    pub fn validate(&mut self) -> Option<EvalReport> {
        self.average_weights();
        let val = self.val.take()?;
        let (batch, seq_len, boundary) = (
            self.state.config.batch,
            self.state.config.seq_len,
            self.boundary,
        );
        let report = self.with_average(|tr| {
            let streams = Streams::for_evaluation(val.len(), batch, "validation")?;
            let (rank, ranks) = (tr.collective.rank(), tr.collective.ranks());
            let mine = share(streams.batch, rank, ranks);
            let sums = evaluate_streams(
                &tr.model,
                &mut tr.ws,
                val.ids(),
                streams,
                mine,
                seq_len,
                boundary,
            )?;
            let mut all = [sums.loss_sum, sums.correct as f64, sums.count as f64];
            tr.collective.sum_f64(&mut all);
            Ok::<_, TrainError>(
                EvalSums {
                    loss_sum: all[0],
                    correct: all[1] as usize,
                    count: all[2] as usize,
                }
                .report(),
            )
        });
        self.val = Some(val);
        report.ok()
    }

    /// Copies the carried state into the serializable state (before saving):
    /// every stream's, gathered from the ranks of a job.
    pub fn sync_state(&mut self) {
        self.average_weights();
        if self.collective.ranks() > 1 {
            let (config, batch) = (&self.model.config, self.state.config.batch);
            let c = &*self.collective;
            self.state.carried_h = gather_streams(config, &self.carried.h, batch, c);
            self.state.carried_c = gather_streams(config, &self.carried.c, batch, c);
        } else {
            self.state.carried_h.clone_from(&self.carried.h);
            self.state.carried_c.clone_from(&self.carried.c);
        }
        self.state.averaging_count = self.averager.as_ref().map_or(0, |a| a.count);
    }

    /// Trains until the stop rule is met, validating and checkpointing on the
    /// way (see [`engine::run`]). On an error the last good checkpoint stays
    /// as it was.
    pub fn run(&mut self, observer: &mut dyn Observer<Trainer>) -> Result<StopReason, TrainError> {
        engine::run(self, observer)
    }
}

/// What a rollback restores of a language-model run.
#[derive(Clone, Debug)]
pub struct TrainerSnapshot {
    params: Vec<f32>,
    optimizer: Vec<(String, Vec<f32>)>,
    state: TrainerState,
}

impl Task for Trainer {
    type Snapshot = TrainerSnapshot;

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
        Trainer::step(self)
    }

    fn epoch_fraction(&self) -> f64 {
        Trainer::epoch_fraction(self)
    }

    fn validate(&mut self) -> Option<EvalReport> {
        Trainer::validate(self)
    }

    /// NT-ASGD starts averaging at the first validation worse than the best
    /// before the last `window` ones.
    fn after_scheduled_validation(&mut self, loss: f64) {
        let s = &mut self.state;
        if let Some(window) = s.config.nt_asgd {
            if self.averager.is_none()
                && asgd::should_start(&s.progress.scheduled_val_losses, loss, window)
            {
                s.averaging_since = Some(s.progress.step);
                self.averager = Some(Averager::new(self.model.num_params()));
            }
        }
    }

    fn sync_state(&mut self) {
        Trainer::sync_state(self)
    }

    fn collective(&self) -> &dyn Collective {
        &*self.collective
    }

    fn uniform_loss(&self) -> f64 {
        (self.model.config.vocab_size as f64).ln()
    }

    fn snapshot(&mut self) -> TrainerSnapshot {
        self.sync_state();
        TrainerSnapshot {
            params: self.model.params.clone(),
            optimizer: self.state_tensors(),
            state: self.state.clone(),
        }
    }

    fn restore(&mut self, snapshot: &TrainerSnapshot) -> Result<(), TrainError> {
        let (average, moments): (Vec<_>, Vec<_>) = snapshot
            .optimizer
            .iter()
            .cloned()
            .partition(|(name, _)| name == AVERAGE_TENSOR);
        self.optimizer.load_state(&moments)?;
        self.model.params.clone_from(&snapshot.params);
        self.state.clone_from(&snapshot.state);
        self.carried = local_state(
            &self.model.config,
            &self.state.carried_h,
            &self.state.carried_c,
            self.state.config.batch,
            &self.local,
        );
        self.averager = average.into_iter().next().map(|(_, average)| Averager {
            average,
            count: self.state.averaging_count,
        });
        Ok(())
    }

    /// Under NT-ASGD the best checkpoint holds the averaged weights it was
    /// scored with.
    fn save_best(&mut self, observer: &mut dyn Observer<Self>) -> Result<(), TrainError> {
        self.with_average(|tr| engine::save(tr, observer, Slot::Best))
    }
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
) -> Result<EvalReport, TrainError> {
    evaluate_ids(
        model,
        ws,
        TokenIds::U32(tokens),
        batch,
        seq_len,
        boundary,
        what,
    )
}

/// [`evaluate`] over ids of either width.
pub fn evaluate_ids(
    model: &LanguageModel,
    ws: &mut Workspace,
    tokens: TokenIds<'_>,
    batch: usize,
    seq_len: usize,
    boundary: Option<u32>,
    what: &'static str,
) -> Result<EvalReport, TrainError> {
    let streams = Streams::for_evaluation(tokens.len(), batch, what)?;
    let all = 0..streams.batch;
    Ok(evaluate_streams(model, ws, tokens, streams, all, seq_len, boundary)?.report())
}

/// What an evaluation adds up: summed over streams, and over ranks.
struct EvalSums {
    loss_sum: f64,
    correct: usize,
    count: usize,
}

impl EvalSums {
    fn report(&self) -> EvalReport {
        EvalReport {
            loss: self.loss_sum / self.count as f64,
            accuracy: self.correct as f64 / self.count as f64,
            tokens: self.count,
            bleu: None,
        }
    }
}

/// The loss sums of `model` over the streams `range` of `streams`, each
/// from a zero state to its end.
fn evaluate_streams(
    model: &LanguageModel,
    ws: &mut Workspace,
    tokens: TokenIds<'_>,
    streams: Streams,
    range: Range<usize>,
    seq_len: usize,
    boundary: Option<u32>,
) -> Result<EvalSums, TrainError> {
    let mut sums = EvalSums {
        loss_sum: 0.0,
        correct: 0,
        count: 0,
    };
    let b = range.len();
    if b == 0 {
        return Ok(sums); // a rank with no validation stream of its own
    }
    // Blocks never run past a stream, so a huge seq_len cannot inflate the buffers.
    let seq_len = seq_len.clamp(1, streams.stream_len);
    let mut state = State::zeros(&model.config, b);
    let (mut x, mut y, mut keep) = (
        vec![0; seq_len * b],
        vec![0; seq_len * b],
        vec![1.0; seq_len * b],
    );
    let mut start = 0;
    while start + 1 < streams.stream_len {
        let t = seq_len.min(streams.stream_len - 1 - start);
        let n = t * b;
        streams.fill_range_ids(tokens, &range, start, t, &mut x, &mut y);
        let keep = boundary.map(|bd| {
            fill_keep(&x[..n], bd, &mut keep[..n]);
            &keep[..n]
        });
        let stats = model.evaluate_block(
            ws,
            TokenBlock::new(&x[..n], &y[..n], t, b).with_keep(keep),
            &mut state,
        )?;
        sums.loss_sum += stats.loss * n as f64;
        sums.correct += stats.correct;
        sums.count += n;
        start += t;
    }
    Ok(sums)
}
