//! The run recorder: the one observer every task's training runs under.
//!
//! It writes the run folder as training goes (a `metrics.jsonl` line per step
//! and per validation, the loss plot after each validation, `best/` and
//! `last/` with the resume state) and passes every report on to the user's
//! observer. What differs per task (a language model's AR and TAR penalties,
//! its bits per token, seq2seq's BLEU, how a checkpoint is written) is a
//! [`TaskRecord`]; a new task plugs in by implementing it.

use std::path::Path;

use recurrent_checkpoint::lm::ResumeState;
use recurrent_train::engine::SaveEvery;
use recurrent_train::{
    EvalReport, Observer, RunProgress, SaveError, Slot, StepReport, StopReason, Task,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::curves::Curves;
use crate::error::{Error, Result};
use crate::run::RunFolder;
use crate::threads::with_threads;
use crate::Outcome;

/// The fields of one `metrics.jsonl` line, which a task adds its own to.
pub(crate) type Fields = Map<String, Value>;

/// What a task adds to the run recorder.
pub(crate) trait TaskRecord<T: ?Sized> {
    /// Fields of a training line beyond `kind`, `step`, `epoch`, `loss`,
    /// `lr`, `grad_norm` and `elapsed`.
    fn train_fields(&self, _trainer: &T, _report: &StepReport, _fields: &mut Fields) {}

    /// Fields of a validation line beyond `kind`, `step`, `epoch`, `loss` and
    /// `elapsed`. A task that measures more at a validation (seq2seq's BLEU)
    /// fills it into `report`, which the user's observer then receives.
    fn val_fields(&mut self, trainer: &T, report: &mut EvalReport, fields: &mut Fields);

    /// Writes `trainer`'s checkpoint, with its resume state, into `dir`.
    fn save(&self, trainer: &T, dir: &Path) -> Result<(), SaveError>;
}

/// An optimizer's buffers by name, flat, as a checkpoint keeps them.
pub(crate) type OptimizerBuffers = Vec<(String, Vec<f32>)>;

/// What `trainer_state.json` holds for every task: the trainer's state `S`
/// and where its data came from, `D`, so a resume reads the same data again.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedRun<S, D> {
    /// The trainer's resumable state.
    pub trainer: S,
    /// Where the data came from.
    pub data: D,
}

impl<S: Serialize, D: Serialize> SavedRun<S, D> {
    /// The resume state of a checkpoint: the optimizer's buffers and this.
    pub fn resume_state(&self, optimizer: OptimizerBuffers) -> Result<ResumeState, SaveError> {
        Ok(ResumeState {
            optimizer,
            trainer_state: serde_json::to_value(self)?,
        })
    }
}

impl<S: for<'de> Deserialize<'de>, D: for<'de> Deserialize<'de>> SavedRun<S, D> {
    /// The saved run of the checkpoint at `path` with resume state `resume`
    /// (`None`: the checkpoint cannot be resumed), and its optimizer buffers.
    pub fn read(
        path: &Path,
        resume: Option<ResumeState>,
    ) -> Result<(SavedRun<S, D>, OptimizerBuffers)> {
        let Some(state) = resume else {
            return Err(Error::NotResumable {
                path: path.to_path_buf(),
                reason: "it has no optimizer and trainer state".into(),
            });
        };
        let run =
            serde_json::from_value(state.trainer_state).map_err(|source| Error::TrainerState {
                path: path.to_path_buf(),
                source,
            })?;
        Ok((run, state.optimizer))
    }
}

/// Writes the run folder as training goes, and passes everything on to the
/// user's observer.
pub(crate) struct RunRecorder<'a, T: ?Sized, K> {
    folder: &'a RunFolder,
    curves: Curves,
    task: K,
    inner: &'a mut dyn Observer<T>,
}

impl<'a, T: ?Sized, K: TaskRecord<T>> RunRecorder<'a, T, K> {
    /// A recorder into `folder`, whose loss plot continues the curves
    /// already in its `metrics.jsonl`.
    pub fn new(folder: &'a RunFolder, task: K, inner: &'a mut dyn Observer<T>) -> Self {
        RunRecorder {
            folder,
            curves: Curves::from_metrics(&folder.metrics_path()),
            task,
            inner,
        }
    }

    /// Appends a line to `metrics.jsonl`; a failure is a warning, not the
    /// end of the run.
    fn metric(&mut self, fields: Fields) {
        if let Err(e) = self.folder.append_metric(&Value::Object(fields)) {
            self.inner.on_warning(&e.to_string());
        }
    }
}

impl<T: Task + ?Sized, K: TaskRecord<T>> Observer<T> for RunRecorder<'_, T, K> {
    fn on_step(&mut self, trainer: &T, r: &StepReport) {
        self.curves.train(r.step, r.loss);
        let mut fields = object(json!({
            "kind": "train", "step": r.step, "epoch": r.epoch, "loss": r.loss,
            "lr": short_f32(r.lr), "grad_norm": r.grad_norm, "elapsed": r.elapsed_secs,
        }));
        self.task.train_fields(trainer, r, &mut fields);
        self.metric(fields);
        self.inner.on_step(trainer, r);
    }

    fn on_eval(&mut self, trainer: &T, r: &EvalReport, improved: bool) {
        // The engine calls this after recording the validation in the progress.
        let p = trainer.progress();
        let (step, epoch, elapsed) = (p.step, p.epoch, p.elapsed_secs);
        self.curves.val(step, r.loss);
        if let Err(e) = self.curves.write_to(&self.folder.loss_plot_path()) {
            self.inner
                .on_warning(&format!("cannot write the loss curve: {e}"));
        }
        let mut fields = object(json!({
            "kind": "val", "step": step, "epoch": epoch, "loss": r.loss, "elapsed": elapsed,
        }));
        let mut report = *r;
        self.task.val_fields(trainer, &mut report, &mut fields);
        self.metric(fields);
        self.inner.on_eval(trainer, &report, improved);
    }

    fn on_warning(&mut self, message: &str) {
        self.inner.on_warning(message);
    }

    fn should_stop(&self) -> bool {
        self.inner.should_stop()
    }

    fn save(&mut self, trainer: &T, slot: Slot) -> Result<(), SaveError> {
        self.task.save(trainer, &self.folder.slot_dir(slot))?;
        if slot == Slot::Last {
            if let Err(e) = self.folder.sync_metrics() {
                self.inner.on_warning(&e.to_string());
            }
        }
        self.inner.save(trainer, slot)
    }

    fn save_every(&self) -> Option<SaveEvery> {
        self.folder.save_every()
    }
}

/// Trains `trainer` with `threads` threads until its stop rule, recording the
/// run into `folder` as `task` says and reporting to `observer`, under the
/// folder's lock, after removing what crashed saves left in it.
pub(crate) fn run_recorded<T: Task, K: TaskRecord<T>>(
    trainer: &mut T,
    folder: &RunFolder,
    threads: usize,
    task: K,
    observer: &mut dyn Observer<T>,
) -> Result<Outcome> {
    // Held until the run ends, an error included: one writer per run folder.
    let (_lock, removed) = folder.lock()?;
    if !removed.is_empty() {
        observer.on_warning(&format!(
            "removed what interrupted saves left in {}: {}",
            folder.path().display(),
            removed.join(", ")
        ));
    }
    let mut recorder = RunRecorder::new(folder, task, observer);
    let reason = with_threads(threads, || {
        recurrent_train::engine::run(trainer, &mut recorder)
    })?;
    Ok(outcome(reason, trainer.progress()))
}

/// How a run ended, from its progress.
fn outcome(reason: StopReason, p: &RunProgress) -> Outcome {
    Outcome {
        reason,
        steps: p.step,
        epochs: p.epoch,
        elapsed_secs: p.elapsed_secs,
        best_val_loss: p.best_val_loss,
    }
}

/// Runs a rank other than 0 of a data-parallel job: the same engine, the
/// same collectives, but no folder, lock or files (rank 0 writes them).
pub(crate) fn run_follower<T: Task>(
    trainer: &mut T,
    threads: usize,
    observer: &mut dyn Observer<T>,
) -> Result<Outcome> {
    let reason = with_threads(threads, || recurrent_train::engine::run(trainer, observer))?;
    Ok(outcome(reason, trainer.progress()))
}

/// A JSON object's fields.
fn object(value: Value) -> Fields {
    match value {
        Value::Object(fields) => fields,
        _ => unreachable!("a json! object literal"),
    }
}

/// An f32 as the f64 its shortest decimal form reads as (`0.002`, not
/// `0.0020000000949949026`).
pub(crate) fn short_f32(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}
