//! A study: trials trained through [`Training`] into a study folder, chosen
//! by a sampler, stopped early by ASHA, validated on held-out text or by
//! K-fold cross-validation, and logged so an interrupted study resumes.
//!
//! ```text
//! study/
//!   study.jsonl     the log: settings, trials, rung results (append-only)
//!   folds/fold-K/   train.txt and val.txt of each fold (K-fold only)
//!   trials/0007/    trial 7's run folder (trials/0007/fold-K/ with folds)
//!   results.csv     the ranked table; results.json (cv_results_-like);
//!   summary.md      the best configuration and the table; search.svg
//!   best/           the best trial's run folder (`recurrent sample study/best`)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use recurrent_checkpoint::layout::LAST_DIR;
use recurrent_text::TokenizerKind;
use recurrent_train::{EvalReport, Observer, StopReason, StopRule};
use serde::{Deserialize, Serialize};

use super::asha::{Asha, Job, Rungs};
use super::folds::{fold_ranges, Validation};
use super::log::{self, Event, LOG_FILE};
use super::outputs::{self, Row};
use super::sampler::{Observation, Sampler, SamplerKind, DEFAULT_TPE_STARTUP};
use super::space::{apply, Params, Space};
use super::{Result, TuneError};
use crate::lm::{ResumeOptions, TextSource, TrainOptions, Training};
use crate::run::RunFolder;
use crate::threads::resolve_threads;
use crate::TensorBoard;

/// What a trial's budget counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Training tokens (steps × batch × seq_len), per fold: reproducible.
    Tokens,
    /// Seconds of training, per fold.
    Seconds,
}

/// Successive halving's settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AshaOptions {
    /// The first rung's budget.
    pub min_budget: f64,
    /// Each rung's budget is this many times the previous one's, and the
    /// best `1 / reduction` of a rung go on to the next.
    pub reduction: usize,
}

/// A study's settings, saved in its log (what a resume keeps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudyOptions {
    /// The text to train on.
    pub input: PathBuf,
    /// Token level.
    pub tokenizer: TokenizerKind,
    /// Held-out text or K folds.
    pub validation: Validation,
    /// What varies.
    pub space: Space,
    /// How configurations are chosen.
    pub sampler: SamplerKind,
    /// Random trials before TPE models the results.
    pub tpe_startup: usize,
    /// Seed of the sampler and of every trial's training.
    pub seed: u64,
    /// What a budget counts.
    pub budget: Budget,
    /// The full budget of a trial (per fold).
    pub max_budget: f64,
    /// Stop poor trials early by successive halving.
    pub asha: Option<AshaOptions>,
}

impl StudyOptions {
    /// A random search over `space` on `input`, validated on its last 10%,
    /// each trial trained for `max_budget` tokens.
    pub fn new(input: impl Into<PathBuf>, space: Space, max_budget: f64) -> StudyOptions {
        StudyOptions {
            input: input.into(),
            tokenizer: TokenizerKind::Char,
            validation: Validation::HeldOut { fraction: 0.1 },
            space,
            sampler: SamplerKind::Random,
            tpe_startup: DEFAULT_TPE_STARTUP,
            seed: 42,
            budget: Budget::Tokens,
            max_budget,
            asha: None,
        }
    }

    /// The rungs trials train through.
    pub fn rungs(&self) -> Rungs {
        match self.asha {
            Some(a) => Rungs::geometric(a.min_budget, self.max_budget, a.reduction),
            None => Rungs::single(self.max_budget),
        }
    }

    fn check(&self) -> Result<()> {
        let invalid = |field, value: String, expected: &str| TuneError::InvalidOption {
            field,
            value,
            expected: expected.into(),
        };
        if !(self.max_budget.is_finite() && self.max_budget > 0.0) {
            return Err(invalid(
                "max_budget",
                self.max_budget.to_string(),
                "a number > 0",
            ));
        }
        if let Some(a) = self.asha {
            if !(a.min_budget > 0.0 && a.min_budget <= self.max_budget) {
                return Err(invalid(
                    "min_budget",
                    a.min_budget.to_string(),
                    "a number > 0 and at most the trial budget",
                ));
            }
            if a.reduction < 2 {
                return Err(invalid("reduction", a.reduction.to_string(), "at least 2"));
            }
        }
        match &self.validation {
            Validation::Folds { k } if *k < 2 => {
                return Err(invalid("folds", k.to_string(), "at least 2"))
            }
            Validation::HeldOut { fraction } if !(*fraction > 0.0 && *fraction < 1.0) => {
                return Err(invalid("val_fraction", fraction.to_string(), "in (0, 1)"))
            }
            _ => {}
        }
        if self.space.params.is_empty() {
            return Err(invalid(
                "space",
                "no parameters".into(),
                "at least one parameter",
            ));
        }
        Sampler::new(
            self.sampler,
            self.space.clone(),
            self.seed,
            self.tpe_startup,
        )?;
        Ok(())
    }
}

/// What limits one invocation of a study (not saved: a resume sets them anew).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Trials in the whole study (default: the grid, or 20 without a time limit).
    pub trials: Option<usize>,
    /// Seconds for this invocation; running trials are saved and resumed later.
    pub time_secs: Option<f64>,
    /// Trials trained at once (default 1).
    pub parallel: usize,
    /// Threads in all, split between parallel trials (default: all cores).
    pub threads: Option<usize>,
    /// Write each trial's curves and the hyper-parameters (TensorBoard's
    /// hparams form) under this folder.
    pub tensorboard: Option<PathBuf>,
}

/// Trials of a random or TPE search without a trial or time limit.
pub const DEFAULT_TRIALS: usize = 20;

/// Watches a study; called from the worker threads.
pub trait StudyProgress: Sync {
    /// A trial starts (or continues) training towards `rung`.
    fn started(&self, _trial: usize, _rung: usize, _params: &Params) {}
    /// A trial finished a rung, or failed.
    fn finished(&self, _row: &Row) {}
    /// Checked before every training step: true saves the running trials
    /// and ends the study (it can be resumed).
    fn should_stop(&self) -> bool {
        false
    }
}

impl StudyProgress for crate::Quiet {}

/// How an invocation of a study ended.
#[derive(Clone, Debug, PartialEq)]
pub struct StudySummary {
    /// Every trial, best first.
    pub rows: Vec<Row>,
    /// Whether the study has nothing left to run (else: time ran out or it
    /// was stopped, and `resume` continues it).
    pub complete: bool,
    /// The best trial's run folder, copied to `best/`.
    pub best: Option<PathBuf>,
    /// The files written: table, JSON, summary, SVG.
    pub files: Vec<PathBuf>,
}

/// What the log says about one trial.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TrialState {
    pub params: Params,
    /// Results of the rungs done, in order.
    pub rungs: Vec<RungResult>,
    /// Folds done towards the rung being trained.
    pub folds: BTreeMap<usize, FoldResult>,
    /// The rung it trains towards (its last when done).
    pub target: usize,
    pub failed: Option<String>,
}

/// One rung's result for a trial.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RungResult {
    pub losses: Vec<f64>,
    pub tokens: u64,
    pub secs: f64,
}

/// One fold's result at a rung.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FoldResult {
    pub loss: f64,
    pub tokens: u64,
    pub secs: f64,
}

/// Everything the log rebuilds.
struct State {
    trials: Vec<TrialState>,
    asha: Asha,
    /// Jobs known (from the log) but not running: resumed first, in order.
    pending: VecDeque<Job>,
}

impl State {
    fn new(options: &StudyOptions) -> State {
        let reduction = options.asha.map_or(2, |a| a.reduction);
        State {
            trials: Vec::new(),
            asha: Asha::new(options.rungs(), reduction),
            pending: VecDeque::new(),
        }
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Study { .. } => {}
            Event::Trial { trial, params } => {
                debug_assert_eq!(*trial, self.trials.len());
                self.trials.push(TrialState {
                    params: params.clone(),
                    ..TrialState::default()
                });
                self.pending.push_back(Job {
                    trial: *trial,
                    rung: 0,
                });
            }
            Event::Promote { trial, rung } => {
                self.asha.mark_promoted(*trial, rung - 1);
                self.trials[*trial].target = *rung;
                self.pending.push_back(Job {
                    trial: *trial,
                    rung: *rung,
                });
            }
            Event::Fold {
                trial,
                fold,
                loss,
                tokens,
                secs,
                ..
            } => {
                self.trials[*trial].folds.insert(
                    *fold,
                    FoldResult {
                        loss: *loss,
                        tokens: *tokens,
                        secs: *secs,
                    },
                );
            }
            Event::Rung {
                trial,
                rung,
                losses,
                tokens,
                secs,
            } => {
                let t = &mut self.trials[*trial];
                t.folds.clear();
                t.rungs.push(RungResult {
                    losses: losses.clone(),
                    tokens: *tokens,
                    secs: *secs,
                });
                let mean = losses.iter().sum::<f64>() / losses.len() as f64;
                self.asha.record(*trial, *rung, mean);
                self.pending.retain(|j| j.trial != *trial);
            }
            Event::Failed { trial, message } => {
                self.trials[*trial].failed = Some(message.clone());
                self.pending.retain(|j| j.trial != *trial);
            }
        }
    }

    /// What the sampler knows: each trial's latest mean loss, trials stopped
    /// at lower rungs (or failed) sorting after those that went further.
    fn history(&self) -> Vec<Observation> {
        let top = self.asha.rungs().top();
        self.trials
            .iter()
            .filter_map(|t| {
                let score = match (&t.failed, t.rungs.last()) {
                    (Some(_), _) => 1e12,
                    (None, Some(r)) => {
                        let mean = r.losses.iter().sum::<f64>() / r.losses.len() as f64;
                        mean + 1e6 * (top + 1 - t.rungs.len()) as f64
                    }
                    (None, None) => return None,
                };
                Some(Observation {
                    params: t.params.clone(),
                    score,
                })
            })
            .collect()
    }
}

/// A hyper-parameter search in its folder.
pub struct Study {
    dir: PathBuf,
    options: StudyOptions,
    sampler: Sampler,
    state: State,
}

impl Study {
    /// A new study in `dir` (created; it must not hold a study already).
    /// With K folds, the fold texts are written under `folds/`.
    pub fn create(dir: impl Into<PathBuf>, options: StudyOptions) -> Result<Study> {
        let dir = crate::run::absolute(&dir.into());
        options.check()?;
        let log_path = dir.join(LOG_FILE);
        if log_path.exists() {
            return Err(TuneError::StudyExists { path: dir });
        }
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| TuneError::Io {
                action,
                path,
                source,
            }
        };
        let mut options = options;
        options.input = crate::run::absolute(&options.input);
        if let Validation::File { path } = &mut options.validation {
            *path = crate::run::absolute(path);
        }
        let text = std::fs::read(&options.input).map_err(io("read", &options.input))?;
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        if let Validation::Folds { k } = options.validation {
            let text = String::from_utf8(text).map_err(|_| TuneError::InvalidOption {
                field: "input",
                value: options.input.display().to_string(),
                expected: "UTF-8 text to split into folds".into(),
            })?;
            write_folds(&dir, &text, k)?;
        }
        log::append(
            &log_path,
            &Event::Study {
                options: Box::new(options.clone()),
            },
        )?;
        Study::with(dir, options)
    }

    /// The study in `dir`, as its log left it.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Study> {
        let dir = crate::run::absolute(&dir.into());
        let log_path = dir.join(LOG_FILE);
        if !log_path.is_file() {
            return Err(TuneError::NoStudy { path: dir });
        }
        let events = log::read(&log_path)?;
        let Some(Event::Study { options }) = events.first() else {
            return Err(TuneError::BadLog {
                path: log_path,
                line: 1,
                message: "the first line is not the study's settings".into(),
            });
        };
        let mut study = Study::with(dir, (**options).clone())?;
        for (i, event) in events.iter().enumerate().skip(1) {
            study.check_event(event, &log_path, i + 1)?;
            study.state.apply(event);
        }
        Ok(study)
    }

    fn with(dir: PathBuf, options: StudyOptions) -> Result<Study> {
        let sampler = Sampler::new(
            options.sampler,
            options.space.clone(),
            options.seed,
            options.tpe_startup,
        )?;
        let state = State::new(&options);
        Ok(Study {
            dir,
            options,
            sampler,
            state,
        })
    }

    /// An event that refers to a trial or rung the log has not introduced is damage.
    fn check_event(&self, event: &Event, path: &Path, line: usize) -> Result<()> {
        let n = self.state.trials.len();
        let rungs = self.state.asha.rungs().len();
        let ok = match event {
            Event::Study { .. } => false,
            Event::Trial { trial, .. } => *trial == n,
            Event::Promote { trial, rung } => *trial < n && (1..rungs).contains(rung),
            Event::Fold { trial, rung, .. } | Event::Rung { trial, rung, .. } => {
                *trial < n && *rung < rungs
            }
            Event::Failed { trial, .. } => *trial < n,
        };
        if ok {
            Ok(())
        } else {
            Err(TuneError::BadLog {
                path: path.to_path_buf(),
                line,
                message: format!("an event out of order: {event:?}"),
            })
        }
    }

    /// The study's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The study's settings.
    pub fn options(&self) -> &StudyOptions {
        &self.options
    }

    /// The table as the log has it now, best first.
    pub fn rows(&self) -> Vec<Row> {
        outputs::rows(&self.options, &self.state.trials, &self.running_jobs())
    }

    fn running_jobs(&self) -> Vec<Job> {
        self.state.pending.iter().copied().collect()
    }

    /// Runs trials until the limits or the end of the search, then writes
    /// the table, JSON, summary and SVG, and copies the best trial to `best/`.
    pub fn run(&mut self, limits: &Limits, progress: &dyn StudyProgress) -> Result<StudySummary> {
        let parallel = limits.parallel.max(1);
        let total = resolve_threads(limits.threads)?;
        let threads = (total / parallel).max(1);
        let deadline = limits
            .time_secs
            .map(|s| Instant::now() + std::time::Duration::from_secs_f64(s.max(0.0)));
        let trial_limit = limits
            .trials
            .or(match (self.sampler.limit(), limits.time_secs) {
                (Some(grid), _) => Some(grid),
                (None, None) => Some(DEFAULT_TRIALS),
                (None, Some(_)) => None,
            });
        let shared = Shared {
            study: Mutex::new(Scheduler {
                study: self,
                running: 0,
                error: None,
                stopped: false,
            }),
            changed: Condvar::new(),
        };
        let context = Context {
            threads,
            deadline,
            trial_limit,
            progress,
            tensorboard: limits.tensorboard.clone(),
        };
        std::thread::scope(|scope| {
            for _ in 0..parallel {
                scope.spawn(|| worker(&shared, &context));
            }
        });
        let scheduler = shared.study.into_inner().expect("no worker panicked");
        if let Some(e) = scheduler.error {
            return Err(e);
        }
        let stopped = scheduler.stopped;
        let complete = !stopped
            && self.state.pending.is_empty()
            && self.state.asha.clone().promote().is_none();
        let rows = self.rows();
        let files = outputs::write(&self.dir, &self.options, &rows)?;
        let best = outputs::keep_best(&self.dir, &self.options, &rows)?;
        outputs::drop_checkpoints(&self.dir, &self.options, &rows)?;
        if let Some(dir) = &limits.tensorboard {
            super::hparams::write(dir, &self.options, &rows)?;
        }
        Ok(StudySummary {
            rows,
            complete,
            best,
            files,
        })
    }

    /// The run folder of a trial's fold.
    pub fn trial_dir(&self, trial: usize, fold: usize) -> PathBuf {
        trial_dir(&self.dir, &self.options, trial, fold)
    }
}

/// The run folder of a trial's fold.
pub(crate) fn trial_dir(dir: &Path, options: &StudyOptions, trial: usize, fold: usize) -> PathBuf {
    let base = dir.join("trials").join(format!("{trial:04}"));
    match options.validation {
        Validation::Folds { .. } => base.join(format!("fold-{fold}")),
        _ => base,
    }
}

fn fold_dir(dir: &Path, fold: usize) -> PathBuf {
    dir.join("folds").join(format!("fold-{fold}"))
}

fn write_folds(dir: &Path, text: &str, k: usize) -> Result<()> {
    let ranges = fold_ranges(text, k);
    for (i, range) in ranges.iter().enumerate() {
        let mut train = String::with_capacity(text.len() - range.len());
        train.push_str(&text[..range.start]);
        train.push_str(&text[range.end..]);
        let folder = fold_dir(dir, i);
        let write = |name: &str, body: &str| {
            let path = folder.join(name);
            std::fs::create_dir_all(&folder)
                .and_then(|()| {
                    recurrent_checkpoint::atomic_write(&path, body.as_bytes())
                        .map_err(std::io::Error::other)
                })
                .map_err(|source| TuneError::Io {
                    action: "write",
                    path,
                    source,
                })
        };
        write("train.txt", &train)?;
        write("val.txt", &text[range.clone()])?;
    }
    Ok(())
}

/// The training options of a trial's fold.
fn trial_options(
    dir: &Path,
    options: &StudyOptions,
    params: &Params,
    fold: usize,
    threads: usize,
) -> Result<TrainOptions> {
    let mut base = TrainOptions {
        input: TextSource::Path(options.input.clone()),
        tokenizer: options.tokenizer,
        seed: options.seed,
        threads: Some(threads),
        ..TrainOptions::default()
    };
    match &options.validation {
        Validation::HeldOut { fraction } => base.val_fraction = *fraction,
        Validation::File { path } => base.val = Some(path.clone()),
        Validation::Folds { .. } => {
            let folder = fold_dir(dir, fold);
            base.input = TextSource::Path(folder.join("train.txt"));
            base.val = Some(folder.join("val.txt"));
        }
    }
    let mut o = apply(&base, params)?;
    if options.budget == Budget::Tokens && !params.contains_key("eval_every") {
        // About eight validations over the full budget, for the curves.
        let steps = (options.max_budget / (o.batch * o.seq_len).max(1) as f64).ceil() as u64;
        o.eval_every = Some(steps.div_ceil(8).max(1));
    }
    Ok(o)
}

struct Scheduler<'s> {
    study: &'s mut Study,
    running: usize,
    error: Option<TuneError>,
    stopped: bool,
}

struct Shared<'s> {
    study: Mutex<Scheduler<'s>>,
    changed: Condvar,
}

struct Context<'p> {
    threads: usize,
    deadline: Option<Instant>,
    trial_limit: Option<usize>,
    progress: &'p dyn StudyProgress,
    tensorboard: Option<PathBuf>,
}

impl Context<'_> {
    fn should_stop(&self) -> bool {
        self.progress.should_stop() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What a worker needs to train a job, copied out under the lock.
struct Assignment {
    job: Job,
    dir: PathBuf,
    options: StudyOptions,
    params: Params,
    done: BTreeMap<usize, FoldResult>,
    previous_secs: f64,
}

impl Scheduler<'_> {
    fn commit(&mut self, event: Event) -> Result<()> {
        let event = log::append(&self.study.dir.join(LOG_FILE), &event)?;
        self.study.state.apply(&event);
        Ok(())
    }

    /// The next job: a trial the log left running, a promotion, or a new trial.
    fn next(&mut self, context: &Context) -> Result<Option<Job>> {
        loop {
            if let Some(job) = self.study.state.pending.pop_front() {
                return Ok(Some(job));
            }
            if let Some(job) = self.study.state.asha.promote() {
                self.commit(Event::Promote {
                    trial: job.trial,
                    rung: job.rung,
                })?;
                continue;
            }
            let n = self.study.state.trials.len();
            if context.trial_limit.is_some_and(|limit| n >= limit) {
                return Ok(None);
            }
            let history = self.study.state.history();
            match self.study.sampler.suggest(n, &history) {
                Some(params) => self.commit(Event::Trial { trial: n, params })?,
                None => return Ok(None),
            }
        }
    }

    fn assignment(&self, job: Job) -> Assignment {
        let study = &self.study;
        let t = &study.state.trials[job.trial];
        let folds = study.options.validation.runs();
        Assignment {
            job,
            dir: study.dir.clone(),
            options: study.options.clone(),
            params: t.params.clone(),
            done: t.folds.clone(),
            // Seconds each fold trained before this rung (the log keeps their sum).
            previous_secs: t.rungs.last().map_or(0.0, |r| r.secs / folds as f64),
        }
    }
}

fn worker(shared: &Shared, context: &Context) {
    loop {
        let assignment = {
            let mut s = shared.study.lock().expect("no worker panicked");
            loop {
                if s.error.is_some() || s.stopped {
                    return;
                }
                if context.should_stop() {
                    s.stopped = true;
                    shared.changed.notify_all();
                    return;
                }
                match s.next(context) {
                    Err(e) => {
                        s.error = Some(e);
                        shared.changed.notify_all();
                        return;
                    }
                    Ok(Some(job)) => {
                        s.running += 1;
                        break s.assignment(job);
                    }
                    Ok(None) if s.running == 0 => {
                        shared.changed.notify_all();
                        return;
                    }
                    Ok(None) => s = shared.changed.wait(s).expect("no worker panicked"),
                }
            }
        };
        let job = assignment.job;
        context
            .progress
            .started(job.trial, job.rung, &assignment.params);
        let result = train_job(&assignment, context, |event| {
            let mut s = shared.study.lock().expect("no worker panicked");
            s.commit(event)
        });
        let mut s = shared.study.lock().expect("no worker panicked");
        s.running -= 1;
        let event = match result {
            Ok(JobEnd::Done {
                losses,
                tokens,
                secs,
            }) => Some(Event::Rung {
                trial: job.trial,
                rung: job.rung,
                losses,
                tokens,
                secs,
            }),
            Ok(JobEnd::Interrupted) => {
                s.stopped = true;
                // Resumed first next time, as the log says.
                s.study.state.pending.push_front(job);
                None
            }
            Err(JobError::Training(message)) => Some(Event::Failed {
                trial: job.trial,
                message,
            }),
            Err(JobError::Study(e)) => {
                s.error = Some(e);
                None
            }
        };
        if let Some(event) = event {
            if let Err(e) = s.commit(event) {
                s.error = Some(e);
            } else {
                let rows = s.study.rows();
                if let Some(row) = rows.iter().find(|r| r.trial == job.trial) {
                    context.progress.finished(row);
                }
            }
        }
        shared.changed.notify_all();
    }
}

enum JobEnd {
    Done {
        losses: Vec<f64>,
        tokens: u64,
        secs: f64,
    },
    Interrupted,
}

enum JobError {
    /// The trial failed; the study goes on.
    Training(String),
    /// The study cannot go on (its log cannot be written).
    Study(TuneError),
}

/// Trains every fold of a job to its rung's budget, logging each fold.
fn train_job(
    a: &Assignment,
    context: &Context,
    mut commit: impl FnMut(Event) -> Result<()>,
) -> std::result::Result<JobEnd, JobError> {
    let folds = a.options.validation.runs();
    let budget = a.options.rungs().budgets[a.job.rung];
    let mut results = a.done.clone();
    for fold in 0..folds {
        if results.contains_key(&fold) {
            continue;
        }
        let options = trial_options(&a.dir, &a.options, &a.params, fold, context.threads)
            .map_err(|e| JobError::Training(e.to_string()))?;
        let run_dir = trial_dir(&a.dir, &a.options, a.job.trial, fold);
        let tokens_per_step = (options.batch * options.seq_len) as u64;
        let stop = match a.options.budget {
            Budget::Tokens => StopRule {
                steps: Some(((budget / tokens_per_step as f64).ceil() as u64).max(1)),
                ..StopRule::default()
            },
            Budget::Seconds => StopRule {
                time_secs: Some((budget - a.previous_secs).max(0.0)),
                ..StopRule::default()
            },
        };
        let board_dir = context.tensorboard.as_ref().map(|d| {
            let d = d.join(format!("trial-{:04}", a.job.trial));
            if folds > 1 {
                d.join(format!("fold-{fold}"))
            } else {
                d
            }
        });
        let fold_result = train_fold(&run_dir, &options, stop, board_dir.as_deref(), context)
            .map_err(|e| JobError::Training(e.to_string()))?;
        let Some((loss, steps, secs)) = fold_result else {
            return Ok(JobEnd::Interrupted);
        };
        let tokens = steps * tokens_per_step;
        commit(Event::Fold {
            trial: a.job.trial,
            rung: a.job.rung,
            fold,
            loss,
            tokens,
            secs,
        })
        .map_err(JobError::Study)?;
        results.insert(fold, FoldResult { loss, tokens, secs });
    }
    Ok(JobEnd::Done {
        losses: results.values().map(|r| r.loss).collect(),
        tokens: results.values().map(|r| r.tokens).max().unwrap_or(0),
        secs: results.values().map(|r| r.secs).sum(),
    })
}

/// Trains one run folder to `stop` (starting it, or resuming it from its
/// `last/`), returning the final validation loss, steps and seconds, or
/// `None` when the study was stopped first.
fn train_fold(
    run_dir: &Path,
    options: &TrainOptions,
    stop: StopRule,
    board: Option<&Path>,
    context: &Context,
) -> crate::Result<Option<(f64, u64, f64)>> {
    let mut training = if run_dir.join(LAST_DIR).is_dir() {
        let resume = ResumeOptions {
            stop: Some(stop),
            threads: options.threads,
            ..ResumeOptions::default()
        };
        Training::resume(RunFolder::open(run_dir)?, &resume)?
    } else {
        if run_dir.exists() {
            // A trial killed before its first save: start it again.
            std::fs::remove_dir_all(run_dir).map_err(|source| crate::Error::Io {
                action: "remove",
                path: run_dir.to_path_buf(),
                source,
            })?;
        }
        let options = TrainOptions {
            stop,
            ..options.clone()
        };
        Training::start(&options, RunFolder::create(run_dir)?)?
    };
    let mut board = board.map(TensorBoard::create).transpose()?;
    let mut watch = TrialWatch {
        context,
        last_val: None,
    };
    let outcome = match board.as_mut() {
        Some(b) => training.run(&mut crate::Tee::new(&mut watch, b))?,
        None => training.run(&mut watch)?,
    };
    if outcome.reason == StopReason::Interrupted {
        return Ok(None);
    }
    let loss = watch.last_val.ok_or_else(|| crate::Error::InvalidOption {
        field: "val_fraction",
        value: "no validation text".into(),
        expected: "a validation text of at least 2 tokens".into(),
    })?;
    Ok(Some((loss, outcome.steps, outcome.elapsed_secs)))
}

/// A trial's observer: the last validation loss, and the study's stop.
struct TrialWatch<'c, 'p> {
    context: &'c Context<'p>,
    last_val: Option<f64>,
}

impl<T: ?Sized> Observer<T> for TrialWatch<'_, '_> {
    fn on_eval(&mut self, _trainer: &T, report: &EvalReport, _improved: bool) {
        self.last_val = Some(report.loss);
    }

    fn should_stop(&self) -> bool {
        self.context.should_stop()
    }
}
