//! The one training engine: the run loop every model's trainer goes through.
//!
//! A model's trainer (the language model's [`Trainer`](crate::trainer::Trainer),
//! the [`Seq2SeqTrainer`](crate::seq2seq::Seq2SeqTrainer)) implements [`Task`]:
//! one optimizer step, one validation. Everything else is here, once: the stop
//! rule, when to validate, recording a validation, early stopping, which
//! checkpoint is the best, and the part of the resume state all trainers share
//! ([`RunProgress`]). The engine does no I/O; it reports to an [`Observer`],
//! which prints progress and writes checkpoints.

use std::time::{Duration, Instant};

use recurrent_kernels::Rng;
use serde::{Deserialize, Serialize};

use crate::clip::{clip_grad_norm, grad_norm};
use crate::collective::{Collective, SingleProcess};
use crate::divergence::{
    check_validation, DivergenceReason, DivergenceWatch, OnDivergence, MAX_ROLLBACKS,
    ROLLBACK_LR_FACTOR, VAL_WINDOW,
};
use crate::error::{ParallelError, TrainError};
use crate::schedule::LrScheduler;

/// Which checkpoint slot of a run to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The weights with the lowest validation loss so far.
    Best,
    /// The latest state, for resuming.
    Last,
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The step limit was reached.
    Steps,
    /// The epoch limit was reached.
    Epochs,
    /// The time budget was used.
    Time,
    /// Validation stopped improving for `patience` validations.
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

/// When a run ends: the first of a step count, an epoch count and a time
/// budget reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StopRule {
    /// Passes over the training data, counted over the whole run.
    pub epochs: Option<u64>,
    /// Optimizer steps, counted over the whole run.
    pub steps: Option<u64>,
    /// Wall-clock seconds of this invocation.
    pub time_secs: Option<f64>,
}

impl StopRule {
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

/// How a run is driven: when it stops, when it validates, how patient it is.
///
/// Every trainer's config holds one, flattened, so `trainer_state.json` keeps
/// `epochs`, `steps`, `time_secs`, `eval_every` and `patience` at the
/// config's top level, where they always were.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// When the run ends.
    #[serde(flatten)]
    pub stop: StopRule,
    /// Steps between validations; 0 validates at each new epoch.
    pub eval_every: u64,
    /// Stop after this many scheduled validations without improvement.
    pub patience: Option<u32>,
}

/// How often to write `last/` between validations, without validating:
/// frequent checkpoints that do not cost a pass over the validation data.
///
/// It belongs to an invocation, not to the run's saved state: saving does
/// not change what is trained, so a resumed run may save on another cadence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveEvery {
    /// After every step whose number is a multiple of this (counted over the whole run).
    Steps(u64),
    /// When this much wall-clock time has passed since `last/` was last written.
    Time(Duration),
}

/// When `last/` was last written, to tell when [`SaveEvery`] is due again.
struct SaveClock {
    every: SaveEvery,
    saved_at: Instant,
}

impl SaveClock {
    fn new(every: SaveEvery) -> SaveClock {
        SaveClock {
            every,
            saved_at: Instant::now(),
        }
    }

    /// Whether `last/` is due after step `step`.
    fn due(&self, step: u64) -> bool {
        match self.every {
            SaveEvery::Steps(n) => n > 0 && step.is_multiple_of(n),
            SaveEvery::Time(d) => self.saved_at.elapsed() >= d,
        }
    }

    /// `last/` was just written.
    fn saved(&mut self) {
        self.saved_at = Instant::now();
    }
}

/// Fingerprint of the training data, checked on resume so a run never
/// silently continues on different data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Token ids fingerprinted.
    pub tokens: usize,
    /// FNV-1a of the ids.
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
    /// Optimizer steps done when it was measured.
    pub step: u64,
    /// Epochs done when it was measured.
    pub epoch: u64,
    /// Mean loss, nats per predicted token.
    pub loss: f64,
    /// Fraction of tokens that were the argmax prediction.
    pub accuracy: f64,
}

/// The part of a run's resume state every trainer shares: counters, the
/// learning-rate schedule, the random state, and the validation record that
/// decides the best checkpoint and early stopping.
///
/// Trainers flatten it into their own state, so `trainer_state.json` keeps
/// the field names it always had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Optimizer steps done.
    pub step: u64,
    /// Passes over the training data done.
    pub epoch: u64,
    /// The learning-rate schedule and its own state.
    pub scheduler: LrScheduler,
    /// Dropout and other draws of training.
    pub rng: Rng,
    /// Lowest validation loss of any validation (the `best/` checkpoint's).
    pub best_val_loss: Option<f64>,
    /// Lowest loss of the scheduled validations, which early stopping
    /// compares against (the extra validation at a run's end is not one).
    #[serde(default)]
    pub best_scheduled_val_loss: Option<f64>,
    /// Scheduled validations since the best scheduled one.
    pub evals_since_best: u32,
    /// Fingerprint of the training data.
    pub train_data: DataFingerprint,
    /// Every validation, oldest first.
    pub history: Vec<EvalRecord>,
    /// Losses of the scheduled validations, oldest first.
    #[serde(default)]
    pub scheduled_val_losses: Vec<f64>,
    /// Seconds spent training over all invocations.
    pub elapsed_secs: f64,
    /// What to do on divergence, the rollbacks taken, and the recent
    /// training losses a new one is compared with.
    #[serde(default)]
    pub divergence: DivergenceWatch,
}

impl RunProgress {
    /// The progress of a run that has not started.
    pub fn new(scheduler: LrScheduler, rng: Rng, train_data: DataFingerprint) -> RunProgress {
        RunProgress {
            step: 0,
            epoch: 0,
            scheduler,
            rng,
            best_val_loss: None,
            best_scheduled_val_loss: None,
            evals_since_best: 0,
            train_data,
            history: Vec::new(),
            scheduled_val_losses: Vec::new(),
            elapsed_secs: 0.0,
            divergence: DivergenceWatch::default(),
        }
    }

    /// The learning rate of the next step: the schedule's, times what
    /// rollbacks have cut it by.
    pub fn lr(&self) -> f32 {
        self.scheduler.lr(self.step) * self.divergence.lr_factor
    }

    /// Fills what states saved before a field existed lack: runs saved before
    /// the scheduled best was kept apart compared patience against the best
    /// of all validations.
    pub fn upgrade(&mut self) {
        if self.best_scheduled_val_loss.is_none() {
            self.best_scheduled_val_loss = self.best_val_loss;
        }
    }
}

/// What one optimizer step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// Optimizer steps done, this one included.
    pub step: u64,
    /// Epochs done after this step.
    pub epoch: u64,
    /// Mean training loss of the step, nats per token.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Learning rate the step used.
    pub lr: f32,
    /// Tokens predicted in the step.
    pub tokens: usize,
    /// The activation-regularization penalty (0 when off), not part of `loss`.
    pub ar: f64,
    /// The temporal activation-regularization penalty (0 when off).
    pub tar: f64,
    /// Fraction of the whole run done, when the stop rule makes that known.
    pub progress: Option<f64>,
    /// Seconds spent training over all invocations, after this step.
    pub elapsed_secs: f64,
}

/// Loss statistics over a validation or evaluation set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalReport {
    /// Mean cross-entropy in nats per predicted token.
    pub loss: f64,
    /// Fraction of tokens that were the argmax prediction.
    pub accuracy: f64,
    /// Tokens predicted.
    pub tokens: usize,
    /// Corpus BLEU of greedy translations of validation pairs, where a
    /// front end measures it (seq2seq runs); `None` otherwise.
    pub bleu: Option<f64>,
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

/// An error an observer returns from [`Observer::save`].
pub type SaveError = Box<dyn std::error::Error + Send + Sync>;

/// Receives a run's progress and writes its checkpoints.
///
/// `T` is the trainer being run. Every method has a default, so an observer
/// that only shows progress implements what it needs; the engine calls
/// [`Observer::save`] when a checkpoint is due, and an observer that keeps no
/// checkpoints leaves it as it is.
pub trait Observer<T: ?Sized> {
    /// After every optimizer step.
    fn on_step(&mut self, _trainer: &T, _report: &StepReport) {}
    /// After every validation; `improved` when it is the best so far.
    fn on_eval(&mut self, _trainer: &T, _report: &EvalReport, _improved: bool) {}
    /// Something the user should know that did not stop the run (a metrics
    /// line that could not be written, ...).
    fn on_warning(&mut self, _message: &str) {}
    /// Checked before every step: true ends the run cleanly (it is saved and
    /// can be resumed).
    fn should_stop(&self) -> bool {
        false
    }
    /// Writes a checkpoint of `trainer` into `slot`.
    fn save(&mut self, _trainer: &T, _slot: Slot) -> Result<(), SaveError> {
        Ok(())
    }
    /// How often to write `last/` between validations, if at all (asked
    /// once as a run starts).
    fn save_every(&self) -> Option<SaveEvery> {
        None
    }
}

/// A model's trainer, as the engine drives it.
pub trait Task {
    /// Everything a rollback restores: weights, optimizer buffers, state.
    type Snapshot;
    /// The shared part of the run's state.
    fn progress(&self) -> &RunProgress;
    /// The shared part of the run's state, to update.
    fn progress_mut(&mut self) -> &mut RunProgress;
    /// When to stop, validate and give up.
    fn plan(&self) -> Plan;
    /// One optimizer step on the next batch; advances `step` and `epoch`.
    fn step(&mut self) -> Result<StepReport, TrainError>;
    /// Fraction of the current epoch done.
    fn epoch_fraction(&self) -> f64;
    /// Mean loss over the validation data, or `None` without any.
    fn validate(&mut self) -> Option<EvalReport>;
    /// Called after a scheduled validation's loss is recorded in the
    /// scheduler, before it joins `scheduled_val_losses`.
    fn after_scheduled_validation(&mut self, _loss: f64) {}
    /// Copies state the trainer keeps elsewhere into its saved state.
    fn sync_state(&mut self) {}
    /// The loss of a uniform guess over the predicted vocabulary, `ln V`
    /// (see [`crate::divergence`]).
    fn uniform_loss(&self) -> f64;
    /// The trainer as it is now, to go back to on divergence.
    fn snapshot(&mut self) -> Self::Snapshot;
    /// Goes back to `snapshot`, all of it: weights, optimizer, state.
    fn restore(&mut self, snapshot: &Self::Snapshot) -> Result<(), TrainError>;
    /// The job this trainer is a rank of: a single process unless it was
    /// distributed. The engine makes its decisions (stop, save) on rank 0
    /// and tells the others, so every rank takes the same path.
    fn collective(&self) -> &dyn Collective {
        &SingleProcess
    }
    /// Saves the best checkpoint (a trainer that validates other weights
    /// than it trains, as NT-ASGD's average, saves those).
    fn save_best(&mut self, observer: &mut dyn Observer<Self>) -> Result<(), TrainError> {
        save(self, observer, Slot::Best)
    }
}

/// Writes `slot` through the observer, after syncing the trainer's state.
pub fn save<T: Task + ?Sized>(
    trainer: &mut T,
    observer: &mut dyn Observer<T>,
    slot: Slot,
) -> Result<(), TrainError> {
    trainer.sync_state();
    let saved = observer.save(trainer, slot);
    let c = trainer.collective();
    if c.ranks() > 1 {
        // Only rank 0 writes; if it failed, every rank stops with it.
        let mut failure = match (&saved, c.is_leader()) {
            (Err(e), true) => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        c.broadcast(&mut failure);
        if !failure.is_empty() && !c.is_leader() {
            let message = String::from_utf8_lossy(&failure).into_owned();
            return Err(ParallelError::LeaderSave(message).into());
        }
    }
    saved.map_err(|source| TrainError::Save { slot, source })
}

/// Rank 0's choice, told to every rank of a job (one byte); a single
/// process keeps its own.
fn agree(c: &dyn Collective, choice: u8) -> u8 {
    if c.ranks() == 1 {
        return choice;
    }
    let mut byte = vec![choice];
    c.broadcast(&mut byte);
    byte.first().copied().unwrap_or(choice)
}

/// Why to stop before the next step, as one byte for [`agree`].
fn stop_code(reason: Option<StopReason>) -> u8 {
    match reason {
        None => 0,
        Some(StopReason::Steps) => 1,
        Some(StopReason::Epochs) => 2,
        Some(StopReason::Time) => 3,
        Some(StopReason::EarlyStopping) => 4,
        Some(StopReason::Interrupted) => 5,
    }
}

fn stop_reason(code: u8) -> Option<StopReason> {
    match code {
        1 => Some(StopReason::Steps),
        2 => Some(StopReason::Epochs),
        3 => Some(StopReason::Time),
        4 => Some(StopReason::EarlyStopping),
        5 => Some(StopReason::Interrupted),
        _ => None,
    }
}

/// Trains until the stop rule is met, the observer asks to stop, or early
/// stopping ends the run, validating and writing `last/` when due (every
/// `eval_every` steps, or at each new epoch), and once more at the end unless
/// the last step was just validated. Between validations it also writes
/// `last/` as often as [`Observer::save_every`] says. On an error the last
/// good checkpoint stays as it was.
///
/// A run that diverges (see [`crate::divergence`]) stops with
/// [`TrainError::Diverged`], or under [`OnDivergence::Rollback`] goes back to
/// the state `last/` was last saved with, multiplies the learning rate by
/// [`ROLLBACK_LR_FACTOR`] and goes on, at most [`MAX_ROLLBACKS`] times.
///
/// # Examples
///
/// A tiny LSTM language model trained four steps on a repeating text, with
/// an observer that counts the steps (the trainer is made as in
/// [`Trainer::new`](crate::trainer::Trainer::new)):
///
/// ```
/// use recurrent_train::trainer::Trainer;
/// use recurrent_train::{engine, Observer, StepReport, StopReason};
/// # use recurrent_kernels::Rng;
/// # use recurrent_model::{CellKind, LanguageModel, ModelConfig};
/// # use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
/// # use recurrent_train::schedule::Schedule;
/// # use recurrent_train::trainer::TrainConfig;
/// # use recurrent_train::{Plan, StopRule};
///
/// /// Counts optimizer steps.
/// struct StepCounter(u64);
///
/// impl Observer<Trainer> for StepCounter {
///     fn on_step(&mut self, _trainer: &Trainer, report: &StepReport) {
///         self.0 += 1;
///         assert_eq!(report.step, self.0);
///     }
/// }
///
/// # let model = ModelConfig::new(CellKind::Lstm, 3, 4, 8, 1);
/// # let model = LanguageModel::new(model, &mut Rng::new(1), None)?;
/// # let config = TrainConfig {
/// #     seq_len: 8,
/// #     batch: 2,
/// #     optimizer: OptimizerConfig::new(OptimizerKind::Adam),
/// #     lr: 0.01,
/// #     clip: 1.0,
/// #     schedule: Schedule::Constant,
/// #     plan: Plan {
/// #         stop: StopRule { steps: Some(4), ..StopRule::default() },
/// #         eval_every: 0,
/// #         patience: None,
/// #     },
/// #     seed: 1,
/// #     reset_between_docs: false,
/// #     nt_asgd: None,
/// # };
/// # let text: Vec<u32> = (0..120).map(|i| i % 3).collect();
/// let mut trainer = Trainer::new(model, config, text, None, None)?;
/// let mut counter = StepCounter(0);
/// let reason = engine::run(&mut trainer, &mut counter)?;
/// assert_eq!(reason, StopReason::Steps);
/// assert_eq!(counter.0, 4);
/// assert_eq!(trainer.state.progress.step, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run<T: Task + ?Sized>(
    trainer: &mut T,
    observer: &mut dyn Observer<T>,
) -> Result<StopReason, TrainError> {
    let clock = Clock {
        started: Instant::now(),
        elapsed_before: trainer.progress().elapsed_secs,
    };
    let mut good = GoodState::new(trainer);
    let mut last_eval_step = None;
    loop {
        match attempt(trainer, observer, &clock, &mut good, &mut last_eval_step) {
            Ok(reason) => return Ok(reason),
            Err(e) => last_eval_step = good.roll_back(trainer, observer, e)?,
        }
    }
}

/// When this invocation started, and the training time of the ones before.
struct Clock {
    started: Instant,
    elapsed_before: f64,
}

impl Clock {
    /// Seconds spent training over all invocations, now.
    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }
}

/// Trains until the stop rule, then validates and saves `last/` unless the
/// last step was just validated. A divergence is an error, which
/// [`GoodState::roll_back`] may recover from.
fn attempt<T: Task + ?Sized>(
    trainer: &mut T,
    observer: &mut dyn Observer<T>,
    clock: &Clock,
    good: &mut GoodState<T::Snapshot>,
    last_eval_step: &mut Option<u64>,
) -> Result<StopReason, TrainError> {
    let reason = train_until_stop(trainer, observer, clock, good, last_eval_step)?;
    if *last_eval_step != Some(trainer.progress().step) {
        validate_and_record(trainer, observer, false)?;
        save(trainer, observer, Slot::Last)?;
    }
    Ok(reason)
}

/// The loop of [`run`]: stop rule, step, divergence watch, validation when due.
fn train_until_stop<T: Task + ?Sized>(
    trainer: &mut T,
    observer: &mut dyn Observer<T>,
    clock: &Clock,
    good: &mut GoodState<T::Snapshot>,
    last_eval_step: &mut Option<u64>,
) -> Result<StopReason, TrainError> {
    let plan = trainer.plan();
    let mut save_clock = observer.save_every().map(SaveClock::new);
    loop {
        let p = trainer.progress();
        let epoch_before = p.epoch;
        let reason = plan
            .stop
            .reason(p.step, p.epoch, clock.started)
            .or_else(|| observer.should_stop().then_some(StopReason::Interrupted));
        // The clock and Ctrl-C are each rank's own: rank 0 decides for all.
        if let Some(reason) = stop_reason(agree(trainer.collective(), stop_code(reason))) {
            return Ok(reason);
        }
        let mut report = trainer.step()?;
        let elapsed = clock.elapsed();
        trainer.progress_mut().elapsed_secs = elapsed;
        report.elapsed_secs = elapsed;
        let done = report.epoch as f64 + trainer.epoch_fraction();
        report.progress = plan.stop.progress(report.step, done, clock.started);
        observer.on_step(trainer, &report);
        let baseline = trainer.uniform_loss();
        let watch = &mut trainer.progress_mut().divergence;
        if let Some(reason) = watch.observe(report.loss, baseline) {
            return Err(TrainError::Diverged {
                step: report.step,
                loss: report.loss,
                reason,
                rollbacks: 0,
            });
        }
        let due = if plan.eval_every > 0 {
            report.step.is_multiple_of(plan.eval_every)
        } else {
            report.epoch > epoch_before
        };
        if due {
            validate_and_record(trainer, observer, true)?;
            *last_eval_step = Some(report.step);
            save(trainer, observer, Slot::Last)?;
            if let Some(clock) = save_clock.as_mut() {
                clock.saved();
            }
            good.refresh(trainer);
            let waited = trainer.progress().evals_since_best;
            if plan.patience.is_some_and(|p| waited >= p) {
                return Ok(StopReason::EarlyStopping);
            }
        } else {
            // Rank 0's observer says when (the other ranks' may not know).
            let due = save_clock.as_ref().is_some_and(|c| c.due(report.step));
            if agree(trainer.collective(), u8::from(due)) == 1 {
                // Only `last/`, for a resume: the rollback state and `best/`
                // stay tied to validations.
                save(trainer, observer, Slot::Last)?;
                if let Some(clock) = save_clock.as_mut() {
                    clock.saved();
                }
            }
        }
    }
}

/// The state a run under [`OnDivergence::Rollback`] goes back to: the one
/// `last/` was last saved with (or the run's start), kept in memory. Runs
/// that stop on divergence keep nothing.
struct GoodState<S> {
    snapshot: Option<S>,
    /// The step whose validation the snapshot was taken after.
    validated_at: Option<u64>,
}

impl<S> GoodState<S> {
    /// The state at the start of a run, when its policy is to roll back.
    fn new<T: Task<Snapshot = S> + ?Sized>(trainer: &mut T) -> GoodState<S> {
        let keep = trainer.progress().divergence.on_divergence == OnDivergence::Rollback;
        GoodState {
            snapshot: keep.then(|| trainer.snapshot()),
            validated_at: None,
        }
    }

    /// Takes the trainer's state after a validation saved as `last/`, unless
    /// the run stops on divergence or a step is already above the bound.
    fn refresh<T: Task<Snapshot = S> + ?Sized>(&mut self, trainer: &mut T) {
        let p = trainer.progress();
        if self.snapshot.is_some() && p.divergence.is_clear() {
            self.validated_at = Some(p.step);
            self.snapshot = Some(trainer.snapshot());
        }
    }

    /// Recovers from `error` when it is a divergence and a rollback is left:
    /// restores the good state, multiplies the learning rate by
    /// [`ROLLBACK_LR_FACTOR`], warns the observer, and returns the step whose
    /// validation the state follows. Any other error, or a divergence without
    /// a rollback left, is returned.
    fn roll_back<T: Task<Snapshot = S> + ?Sized>(
        &self,
        trainer: &mut T,
        observer: &mut dyn Observer<T>,
        error: TrainError,
    ) -> Result<Option<u64>, TrainError> {
        let TrainError::Diverged {
            step, loss, reason, ..
        } = error
        else {
            return Err(error);
        };
        let p = trainer.progress();
        let rollbacks = p.divergence.rollbacks;
        let Some(snapshot) = self.snapshot.as_ref().filter(|_| rollbacks < MAX_ROLLBACKS) else {
            return Err(TrainError::Diverged {
                step,
                loss,
                reason,
                rollbacks,
            });
        };
        let (best, elapsed, lr_factor) = (p.best_val_loss, p.elapsed_secs, p.divergence.lr_factor);
        trainer.restore(snapshot)?;
        let p = trainer.progress_mut();
        // `best/` may hold a validation made after the snapshot: keep its loss.
        p.best_val_loss = match (best, p.best_val_loss) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        p.elapsed_secs = elapsed;
        p.divergence.rollbacks = rollbacks + 1;
        p.divergence.lr_factor = lr_factor * ROLLBACK_LR_FACTOR;
        let message = format!(
            "training diverged at step {step}: {}; rolled back to step {} and multiplied the \
             learning rate by {ROLLBACK_LR_FACTOR} (rollback {} of {MAX_ROLLBACKS})",
            reason.describe(loss),
            p.step,
            p.divergence.rollbacks,
        );
        observer.on_warning(&message);
        Ok(self.validated_at)
    }
}

/// Validates, records the result, and saves `best/` on improvement.
///
/// Scheduled validations also drive the plateau schedule and early stopping,
/// against the best of the scheduled validations only: the extra validation
/// at the end of a run changes no later decision, so a run stopped and
/// resumed takes the same steps as one that ran straight through.
pub fn validate_and_record<T: Task + ?Sized>(
    trainer: &mut T,
    observer: &mut dyn Observer<T>,
    scheduled: bool,
) -> Result<(), TrainError> {
    let Some(report) = trainer.validate() else {
        return Ok(());
    };
    let baseline = trainer.uniform_loss();
    let p = trainer.progress_mut();
    let earlier: Vec<f64> = p.history[p.history.len().saturating_sub(VAL_WINDOW)..]
        .iter()
        .map(|r| r.loss)
        .collect();
    if let Some(reason) = check_validation(report.loss, &earlier, baseline) {
        // Diverged weights: stop before they can overwrite a good checkpoint.
        return Err(TrainError::Diverged {
            step: p.step,
            loss: report.loss,
            reason,
            rollbacks: 0,
        });
    }
    // A model worse than a uniform guess is never the best one.
    let improved = report.loss <= baseline && p.best_val_loss.is_none_or(|b| report.loss < b);
    if improved {
        p.best_val_loss = Some(report.loss);
    }
    if scheduled {
        let better = p.best_scheduled_val_loss.is_none_or(|b| report.loss < b);
        if better {
            p.best_scheduled_val_loss = Some(report.loss);
        }
        p.evals_since_best = if better { 0 } else { p.evals_since_best + 1 };
        p.scheduler.observe_validation(report.loss as f32);
        trainer.after_scheduled_validation(report.loss);
        trainer
            .progress_mut()
            .scheduled_val_losses
            .push(report.loss);
    }
    let p = trainer.progress_mut();
    p.history.push(EvalRecord {
        step: p.step,
        epoch: p.epoch,
        loss: report.loss,
        accuracy: report.accuracy,
    });
    observer.on_eval(trainer, &report, improved);
    if improved {
        trainer.save_best(observer)?;
    }
    Ok(())
}

/// Clips `grads` to the global norm `clip` (0: no clipping) and returns
/// their norm before clipping; a non-finite loss or norm is a
/// [`TrainError::Diverged`], raised before any parameter is updated. `step`
/// is the step being taken.
pub fn check_and_clip(
    grads: &mut [f32],
    loss: f64,
    clip: f32,
    step: u64,
) -> Result<f32, TrainError> {
    if !loss.is_finite() {
        let reason = DivergenceReason::NonFiniteLoss;
        return Err(TrainError::Diverged {
            step,
            loss,
            reason,
            rollbacks: 0,
        });
    }
    let norm = if clip > 0.0 {
        clip_grad_norm(grads, clip)
    } else {
        grad_norm(grads)
    };
    if !norm.is_finite() {
        let reason = DivergenceReason::NonFiniteGradient { norm: norm as f64 };
        return Err(TrainError::Diverged {
            step,
            loss,
            reason,
            rollbacks: 0,
        });
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config holding a plan, as the trainers' configs do.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Config {
        #[serde(flatten)]
        plan: Plan,
        seed: u64,
    }

    #[test]
    fn a_plan_is_saved_as_the_flat_fields_configs_always_had() {
        let config = Config {
            plan: Plan {
                stop: StopRule {
                    epochs: None,
                    steps: Some(12),
                    time_secs: Some(1.5),
                },
                eval_every: 5,
                patience: Some(2),
            },
            seed: 7,
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"epochs":null,"steps":12,"time_secs":1.5,"eval_every":5,"patience":2,"seed":7}"#
        );
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
    }

    /// A task whose loss explodes from step `explode_from` on while the
    /// learning rate is uncut, and whose validation loss is `val_loss`.
    struct Toy {
        progress: RunProgress,
        plan: Plan,
        /// The sum of the learning rates of the steps taken.
        travelled: f64,
        explode_from: u64,
        /// Explode even with a cut learning rate.
        always: bool,
        val_loss: f64,
    }

    impl Toy {
        fn new(on_divergence: OnDivergence, explode_from: u64) -> Toy {
            let scheduler = LrScheduler::new(crate::schedule::Schedule::Constant, 1.0);
            let mut progress = RunProgress::new(scheduler, Rng::new(1), DataFingerprint::of(&[]));
            progress.divergence.on_divergence = on_divergence;
            Toy {
                progress,
                plan: Plan {
                    stop: StopRule {
                        steps: Some(20),
                        ..StopRule::default()
                    },
                    eval_every: 5,
                    patience: None,
                },
                travelled: 0.0,
                explode_from,
                always: false,
                val_loss: 1.0,
            }
        }
    }

    impl Task for Toy {
        type Snapshot = (f64, RunProgress);

        fn progress(&self) -> &RunProgress {
            &self.progress
        }
        fn progress_mut(&mut self) -> &mut RunProgress {
            &mut self.progress
        }
        fn plan(&self) -> Plan {
            self.plan
        }
        fn step(&mut self) -> Result<StepReport, TrainError> {
            let p = &mut self.progress;
            let lr = p.lr();
            p.step += 1;
            self.travelled += lr as f64;
            let cut = p.divergence.lr_factor < 1.0 && !self.always;
            let loss = if p.step >= self.explode_from && !cut {
                1e30
            } else {
                1.0
            };
            Ok(StepReport {
                step: p.step,
                epoch: 0,
                loss,
                grad_norm: 1.0,
                lr,
                tokens: 1,
                ar: 0.0,
                tar: 0.0,
                progress: None,
                elapsed_secs: 0.0,
            })
        }
        fn epoch_fraction(&self) -> f64 {
            0.0
        }
        fn validate(&mut self) -> Option<EvalReport> {
            Some(EvalReport {
                loss: self.val_loss,
                accuracy: 0.0,
                tokens: 1,
                bleu: None,
            })
        }
        fn uniform_loss(&self) -> f64 {
            4.0
        }
        fn snapshot(&mut self) -> (f64, RunProgress) {
            (self.travelled, self.progress.clone())
        }
        fn restore(&mut self, snapshot: &(f64, RunProgress)) -> Result<(), TrainError> {
            (self.travelled, self.progress) = snapshot.clone();
            Ok(())
        }
    }

    /// Records saves and warnings.
    #[derive(Default)]
    struct Record {
        saves: Vec<(Slot, u64)>,
        warnings: Vec<String>,
        save_every: Option<SaveEvery>,
    }

    impl Record {
        /// The steps `slot` was saved after.
        fn steps(&self, slot: Slot) -> Vec<u64> {
            let saves = self.saves.iter().filter(|&&(s, _)| s == slot);
            saves.map(|&(_, step)| step).collect()
        }
    }

    impl Observer<Toy> for Record {
        fn save_every(&self) -> Option<SaveEvery> {
            self.save_every
        }
        fn on_warning(&mut self, message: &str) {
            self.warnings.push(message.into());
        }
        fn save(&mut self, toy: &Toy, slot: Slot) -> Result<(), SaveError> {
            self.saves.push((slot, toy.progress.step));
            Ok(())
        }
    }

    #[test]
    fn an_exploding_loss_stops_the_run_and_saves_nothing_after_it() {
        let mut toy = Toy::new(OnDivergence::Stop, 12);
        let mut record = Record::default();
        let err = run(&mut toy, &mut record).unwrap_err();
        assert!(
            matches!(
                err,
                TrainError::Diverged {
                    step: 14,
                    reason: DivergenceReason::ExplodingLoss { .. },
                    rollbacks: 0,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(record.saves.iter().all(|&(_, step)| step <= 10));
        assert!(err.to_string().contains("diverged at step 14"), "{err}");
    }

    #[test]
    fn a_rollback_restores_the_last_good_state_with_half_the_learning_rate() {
        let mut toy = Toy::new(OnDivergence::Rollback, 12);
        let mut record = Record::default();
        assert_eq!(run(&mut toy, &mut record).unwrap(), StopReason::Steps);
        let p = &toy.progress;
        assert_eq!((p.step, p.divergence.rollbacks), (20, 1));
        assert_eq!(p.divergence.lr_factor, ROLLBACK_LR_FACTOR);
        // Steps 1 to 10 at the full rate, 11 to 20 again at half of it.
        assert_eq!(toy.travelled, 10.0 + 10.0 * 0.5);
        assert_eq!(record.warnings.len(), 1);
        assert!(
            record.warnings[0].contains("diverged at step 14")
                && record.warnings[0].contains("rolled back to step 10"),
            "{}",
            record.warnings[0]
        );
        // The validations after the snapshot were dropped with it.
        let steps: Vec<u64> = p.history.iter().map(|r| r.step).collect();
        assert_eq!(steps, [5, 10, 15, 20]);
    }

    #[test]
    fn rollbacks_are_bounded() {
        let mut toy = Toy::new(OnDivergence::Rollback, 3);
        toy.always = true;
        let mut record = Record::default();
        let err = run(&mut toy, &mut record).unwrap_err();
        assert!(
            matches!(
                err,
                TrainError::Diverged {
                    step: 5,
                    rollbacks: MAX_ROLLBACKS,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(record.warnings.len(), MAX_ROLLBACKS as usize);
        assert!(record.saves.is_empty());
        assert!(err.to_string().contains("after 3 rollback(s)"), "{err}");
    }

    #[test]
    fn save_every_writes_last_between_validations_and_nothing_else() {
        let mut toy = Toy::new(OnDivergence::Stop, u64::MAX);
        let mut record = Record {
            save_every: Some(SaveEvery::Steps(3)),
            ..Record::default()
        };
        run(&mut toy, &mut record).unwrap();
        assert_eq!(record.steps(Slot::Last), [3, 5, 6, 9, 10, 12, 15, 18, 20]);
        assert_eq!(record.steps(Slot::Best), [5]);
        // Only the scheduled validations and the one at the end ran.
        let validated: Vec<u64> = toy.progress.history.iter().map(|r| r.step).collect();
        assert_eq!(validated, [5, 10, 15, 20]);

        let mut toy = Toy::new(OnDivergence::Stop, u64::MAX);
        let mut record = Record {
            save_every: Some(SaveEvery::Time(Duration::ZERO)),
            ..Record::default()
        };
        run(&mut toy, &mut record).unwrap();
        assert_eq!(record.steps(Slot::Last), (1..=20).collect::<Vec<u64>>());
    }

    #[test]
    fn a_model_worse_than_a_uniform_guess_is_never_the_best() {
        let mut toy = Toy::new(OnDivergence::Stop, u64::MAX);
        toy.val_loss = 4.5;
        let mut record = Record::default();
        run(&mut toy, &mut record).unwrap();
        assert!(!record.saves.iter().any(|&(slot, _)| slot == Slot::Best));
        assert_eq!(toy.progress.best_val_loss, None);
        let mut toy = Toy::new(OnDivergence::Stop, u64::MAX);
        toy.val_loss = 3.9;
        let mut record = Record::default();
        run(&mut toy, &mut record).unwrap();
        assert!(record.saves.contains(&(Slot::Best, 5)));
    }

    #[test]
    fn a_progress_saved_before_the_watch_existed_reads_with_a_fresh_one() {
        let scheduler = LrScheduler::new(crate::schedule::Schedule::Constant, 1.0);
        let progress = RunProgress::new(scheduler, Rng::new(1), DataFingerprint::of(&[1, 2]));
        let mut json = serde_json::to_value(&progress).unwrap();
        json.as_object_mut().unwrap().remove("divergence");
        let read: RunProgress = serde_json::from_value(json).unwrap();
        assert_eq!(read, progress);
    }
}
