//! A run's progress as TensorBoard event files, and a way to watch a run
//! with two observers at once.

use std::path::Path;
use std::time::{Duration, Instant};

use recurrent_report::EventWriter;
use recurrent_train::{EvalReport, Observer, SaveError, Slot, StepReport};

use crate::error::{Error, Result};

/// How often buffered events reach the file while training, so a running
/// `tensorboard` shows the curves as they grow.
const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// An [`Observer`] that writes every step's and every validation's figures
/// as TensorBoard scalars into a log directory:
/// `train/{loss, bits_per_token, learning_rate, grad_norm, tokens_per_second}`
/// (and `train/{ar, tar}` when those penalties are on) per step,
/// `valid/{loss, bits_per_token, perplexity, accuracy}` (and `valid/bleu` for
/// seq2seq runs) per validation. [`TensorBoard::text`] adds texts (samples).
///
/// A write that fails stops the logging, not the run: see [`TensorBoard::error`].
///
/// ```
/// use recurrent::lm::{TextSource, TrainOptions, Training};
/// use recurrent::{RunFolder, StopRule, TensorBoard};
///
/// let dir = tempfile::tempdir()?;
/// let options = TrainOptions {
///     input: TextSource::text("abc", "abcabcabc\n".repeat(40)),
///     stop: StopRule { steps: Some(3), ..StopRule::default() },
///     seq_len: 10,
///     batch: 2,
///     threads: Some(1),
///     ..TrainOptions::default()
/// };
/// let mut training = Training::start(&options, RunFolder::create(dir.path().join("run"))?)?;
/// let mut board = TensorBoard::create(dir.path().join("logs"))?;
/// training.run(&mut board)?;
/// board.text("sample", 3, "abcabc")?;
/// assert!(board.error().is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TensorBoard {
    writer: EventWriter,
    /// Seconds of training at the previous step, for tokens per second.
    last_elapsed: Option<f64>,
    /// The latest step: where a validation's figures go.
    last_step: u64,
    last_flush: Instant,
    error: Option<std::io::Error>,
}

impl TensorBoard {
    /// Starts a new event file in `dir` (created if needed).
    pub fn create(dir: impl AsRef<Path>) -> Result<TensorBoard> {
        let dir = dir.as_ref();
        let writer = EventWriter::create(dir).map_err(|source| Error::Io {
            action: "create a TensorBoard event file in",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(TensorBoard {
            writer,
            last_elapsed: None,
            last_step: 0,
            last_flush: Instant::now(),
            error: None,
        })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Writes `text` (shown as Markdown) under `tag` at `step`, and flushes.
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> Result<()> {
        let written = self
            .writer
            .text(tag, step, text)
            .and_then(|()| self.writer.flush());
        written.map_err(|source| Error::Io {
            action: "write to",
            path: self.writer.path().to_path_buf(),
            source,
        })
    }

    /// The first write that failed, if one did (later events were dropped).
    pub fn error(&self) -> Option<&std::io::Error> {
        self.error.as_ref()
    }

    fn scalars(&mut self, step: u64, values: &[(&str, f64)], flush: bool) {
        if self.error.is_some() {
            return;
        }
        let mut written = values
            .iter()
            .try_for_each(|&(tag, v)| self.writer.scalar(tag, step, v));
        if flush || self.last_flush.elapsed() >= FLUSH_EVERY {
            written = written.and_then(|()| self.writer.flush());
            self.last_flush = Instant::now();
        }
        if let Err(e) = written {
            self.error = Some(e);
        }
    }
}

impl<T: ?Sized> Observer<T> for TensorBoard {
    fn on_step(&mut self, _trainer: &T, r: &StepReport) {
        let seconds = self.last_elapsed.map(|last| r.elapsed_secs - last);
        self.last_elapsed = Some(r.elapsed_secs);
        self.last_step = r.step;
        let mut values = vec![
            ("train/loss", r.loss),
            ("train/bits_per_token", r.loss / std::f64::consts::LN_2),
            ("train/learning_rate", r.lr as f64),
            ("train/grad_norm", r.grad_norm as f64),
        ];
        if let Some(s) = seconds.filter(|&s| s > 0.0) {
            values.push(("train/tokens_per_second", r.tokens as f64 / s));
        }
        if r.ar > 0.0 {
            values.push(("train/ar", r.ar));
        }
        if r.tar > 0.0 {
            values.push(("train/tar", r.tar));
        }
        self.scalars(r.step, &values, false);
    }

    fn on_eval(&mut self, _trainer: &T, r: &EvalReport, _improved: bool) {
        let mut values = vec![
            ("valid/loss", r.loss),
            ("valid/bits_per_token", r.bits_per_token()),
            ("valid/perplexity", r.perplexity()),
            ("valid/accuracy", r.accuracy),
        ];
        if let Some(bleu) = r.bleu {
            values.push(("valid/bleu", bleu));
        }
        // A validation has no step of its own: the last step's.
        self.scalars(self.last_step, &values, true);
    }
}

/// Two observers as one: every event goes to both, the run stops when
/// either asks, and a save is done by both (the first error wins).
pub struct Tee<'a, T: ?Sized> {
    first: &'a mut dyn Observer<T>,
    second: &'a mut dyn Observer<T>,
}

impl<'a, T: ?Sized> Tee<'a, T> {
    /// `first`, then `second`.
    pub fn new(first: &'a mut dyn Observer<T>, second: &'a mut dyn Observer<T>) -> Tee<'a, T> {
        Tee { first, second }
    }
}

impl<T: ?Sized> Observer<T> for Tee<'_, T> {
    fn on_step(&mut self, trainer: &T, report: &StepReport) {
        self.first.on_step(trainer, report);
        self.second.on_step(trainer, report);
    }

    fn on_eval(&mut self, trainer: &T, report: &EvalReport, improved: bool) {
        self.first.on_eval(trainer, report, improved);
        self.second.on_eval(trainer, report, improved);
    }

    fn on_warning(&mut self, message: &str) {
        self.first.on_warning(message);
        self.second.on_warning(message);
    }

    fn should_stop(&self) -> bool {
        self.first.should_stop() || self.second.should_stop()
    }

    fn save(&mut self, trainer: &T, slot: Slot) -> std::result::Result<(), SaveError> {
        let first = self.first.save(trainer, slot);
        let second = self.second.save(trainer, slot);
        first.and(second)
    }
}
