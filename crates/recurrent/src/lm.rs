//! Training a language model in a run folder, and resuming it.
//!
//! ```no_run
//! use recurrent::lm::{TrainOptions, Training, TextSource};
//! use recurrent::{Quiet, RunFolder, StopRule};
//!
//! let options = TrainOptions {
//!     input: TextSource::text("poems", "roses are red\nviolets are blue\n".repeat(200)),
//!     stop: StopRule { steps: Some(50), ..StopRule::default() },
//!     ..TrainOptions::default()
//! };
//! let mut training = Training::start(&options, RunFolder::create("runs/poems")?)?;
//! let outcome = training.run(&mut Quiet)?;
//! println!("{} steps, best validation loss {:?}", outcome.steps, outcome.best_val_loss);
//! # Ok::<(), recurrent::Error>(())
//! ```

use std::path::{Path, PathBuf};

use recurrent_checkpoint::lm as ckpt;
use recurrent_kernels::{Precision, Rng};
use recurrent_model::{LanguageModel, ModelConfig};
use recurrent_text::prepared::{PreparedData, TokenFile, Verify};
use recurrent_text::{Corpus, TextError, Tokenizer, TokenizerKind, TokenizerOptions};
use recurrent_train::batch::{Streams, TokenIds, TokenSource, TokenView};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::trainer::{
    PeriodicAveraging, Regularizers, TrainConfig, Trainer, TrainerState,
};
use recurrent_train::{
    Collective, DataFingerprint, EvalReport, Observer, OnDivergence, Plan, SaveError, StepReport,
    StopRule,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::builtin;
use crate::error::{check, Error, Result};
use crate::memory::{available_memory, MemoryEstimate};
use crate::recorder::{run_follower, run_recorded, Fields, SavedRun, TaskRecord};
use crate::run::{absolute, RunFolder};
use crate::sizing::{self, FitToCorpus};
use crate::threads::{precision_line, precision_note, resolve_threads, with_threads};
use crate::Outcome;

/// Where training text comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum TextSource {
    /// The built-in corpus (this project's documentation).
    Builtin,
    /// A text file, or a folder of documents.
    Path(PathBuf),
    /// Text in memory. The run folder keeps a copy (`input.txt`), so the run
    /// can be resumed.
    Text {
        /// A name for it, shown in descriptions.
        name: String,
        /// The text.
        text: String,
    },
    /// A prepared data folder (written by [`recurrent_text::prepared::prepare`]):
    /// its token files are memory-mapped, so memory does not grow with the
    /// corpus. The tokenizer and the validation split are the folder's; the
    /// options' tokenizer settings and `val_fraction` are not used.
    Prepared(PathBuf),
}

impl TextSource {
    /// In-memory text with a name.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> TextSource {
        TextSource::Text {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// How a model starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// A new model of this architecture (`vocab_size` is set from the
    /// tokenizer), with an optional LSTM forget-gate bias.
    Fresh {
        /// The architecture.
        config: ModelConfig,
        /// Initial LSTM forget-gate bias (char-rnn uses 1); `None` keeps
        /// PyTorch's initialization.
        forget_bias: Option<f32>,
    },
    /// The weights and tokenizer of a checkpoint (fine-tuning).
    From {
        /// Checkpoint folder or run folder.
        path: PathBuf,
        /// Add characters the checkpoint's vocabulary lacks instead of failing.
        extend_vocab: bool,
        /// Replace the checkpoint's dropout.
        dropout: Option<f32>,
    },
}

/// Everything a language-model run needs. [`TrainOptions::default`] is the
/// command line's defaults: a 2x128 LSTM with a 64-wide embedding on
/// characters, Adam at 2e-3, blocks of 50 streams by 100 steps.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// The training text.
    pub input: TextSource,
    /// Separate validation text; otherwise the last `val_fraction` of the input.
    pub val: Option<PathBuf>,
    /// Fraction of the input held out for validation, taken from the end.
    pub val_fraction: f64,
    /// Token level.
    pub tokenizer: TokenizerKind,
    /// Vocabulary size and minimum counts (word and BPE tokenizers).
    pub tokenizer_options: TokenizerOptions,
    /// The model to train.
    pub init: Init,
    /// AWD-LSTM's regularizers and variable BPTT.
    pub regularizers: Regularizers,
    /// Steps of back-propagation through time per block.
    pub seq_len: usize,
    /// Parallel streams per block.
    pub batch: usize,
    /// Optimizer kind and its settings.
    pub optimizer: OptimizerConfig,
    /// Learning rate.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// Learning-rate schedule: `constant`, `step:EVERY:GAMMA`,
    /// `cosine[:WARMUP[:MIN_LR]]` or `plateau[:FACTOR[:PATIENCE]]`.
    pub schedule: String,
    /// When to stop. With no limit: one minute on the built-in corpus, else
    /// 10 epochs.
    pub stop: StopRule,
    /// Steps between validations (default: every epoch, or every 100 steps
    /// when epochs are shorter).
    pub eval_every: Option<u64>,
    /// Stop after this many validations without improvement.
    pub patience: Option<u32>,
    /// NT-ASGD (SGD only): average the weights once validation is worse than
    /// the best before the last `n` validations.
    pub nt_asgd: Option<usize>,
    /// Reset a stream's state where a new document starts.
    pub reset_between_docs: bool,
    /// What to do when the run diverges (see [`recurrent_train::divergence`]):
    /// stop with [`recurrent_train::TrainError::Diverged`] (the default), or
    /// roll back to the last good state with a lower learning rate.
    pub on_divergence: OnDivergence,
    /// Seed of initialization, dropout and every other draw.
    pub seed: u64,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// Options to choose from the corpus instead of taking as given (see
    /// [`crate::sizing`]): the command line's `recurrent train` fits the
    /// sizes a user leaves unset. None by default.
    pub fit: FitToCorpus,
    /// The products' precision: float32, or bf16 operands with float32
    /// sums where the CPU has bf16 instructions (float32 with a note where not).
    pub precision: Precision,
}

impl Default for TrainOptions {
    fn default() -> TrainOptions {
        TrainOptions {
            input: TextSource::Builtin,
            val: None,
            val_fraction: 0.1,
            tokenizer: TokenizerKind::Char,
            tokenizer_options: TokenizerOptions::default(),
            init: Init::Fresh {
                config: TrainOptions::fixed_model(),
                forget_bias: None,
            },
            regularizers: Regularizers::default(),
            seq_len: 100,
            batch: 50,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam),
            lr: 2e-3,
            clip: 5.0,
            schedule: "constant".into(),
            stop: StopRule::default(),
            eval_every: None,
            patience: None,
            nt_asgd: None,
            reset_between_docs: false,
            on_divergence: OnDivergence::Stop,
            seed: 42,
            threads: None,
            fit: FitToCorpus::NONE,
            precision: Precision::F32,
        }
    }
}

impl TrainOptions {
    /// The model of [`TrainOptions::default`]: a 2x128 LSTM with a 64-wide
    /// embedding (its vocabulary is filled in from the text).
    pub fn fixed_model() -> ModelConfig {
        ModelConfig {
            cell: recurrent_model::CellKind::Lstm,
            vocab_size: 0,
            embed: 64,
            hidden: 128,
            layers: 2,
            dense: 0,
            dropout: 0.0,
            tie: false,
            layer_norm: false,
            last_hidden: 0,
        }
    }
}

/// A checkpoint's model, or the architecture of one to build.
enum ModelStart {
    Loaded(LanguageModel),
    Fresh(ModelConfig, Option<f32>),
}

/// The run folder's copy of in-memory training text, which a resume reads.
const INPUT_COPY: &str = "input.txt";

/// What may change when a run is resumed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResumeOptions {
    /// Read the training text (or the prepared data folder) from here
    /// instead (it must be the same text or tokens).
    pub input: Option<PathBuf>,
    /// A new stop rule, counted over the whole run (steps, epochs) or this
    /// invocation (time); `None` keeps the saved one.
    pub stop: Option<StopRule>,
    /// A new divergence policy; `None` keeps the saved one (rollbacks taken
    /// and the learning-rate cut stay as saved).
    pub on_divergence: Option<OnDivergence>,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// A new precision for the products from the next step on; `None` keeps
    /// the saved one.
    pub precision: Option<Precision>,
}

/// Where the text came from, saved with the run so a resume reads it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DataSource {
    /// None for the built-in corpus.
    input: Option<PathBuf>,
    val: Option<PathBuf>,
    val_fraction: f64,
    /// A prepared data folder, read instead of `input` (absent in runs on text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prepared: Option<PathBuf>,
}

/// A language-model run in its folder, ready to train.
pub struct Training {
    trainer: Trainer,
    tokenizer: Tokenizer,
    data: DataSource,
    folder: RunFolder,
    threads: usize,
    notes: Vec<String>,
    resumed: bool,
}

impl Training {
    /// Reads the text, builds the tokenizer and the model (or loads the
    /// model to fine-tune), and prepares a run in `folder`.
    pub fn start(options: &TrainOptions, folder: RunFolder) -> Result<Training> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::start_inner(options, folder, threads))
    }

    fn start_inner(options: &TrainOptions, folder: RunFolder, threads: usize) -> Result<Training> {
        check_options(options)?;
        let mut rng = Rng::new(options.seed);
        let mut notes = Vec::new();
        let (data, start, tokenizer, train, val) = match &options.input {
            TextSource::Prepared(dir) => prepared_start(options, dir)?,
            _ => text_start(options, &folder, &mut rng, &mut notes)?,
        };
        let builtin = data.is_builtin();
        let (start, batch, lr) = match start {
            ModelStart::Fresh(config, forget_bias) if options.fit.any() => {
                let (config, batch, lr) =
                    fit_to_corpus(options, config, train.len(), threads, builtin, &mut notes)?;
                (ModelStart::Fresh(config, forget_bias), batch, lr)
            }
            start => (start, options.batch, options.lr),
        };
        let streams = Streams::for_training(train.len(), batch, options.seq_len)?;
        let model = match start {
            ModelStart::Loaded(model) => model,
            ModelStart::Fresh(config, forget_bias) => {
                let tokens = resident_tokens(&train) + val.as_ref().map_or(0, resident_tokens);
                MemoryEstimate::language_model(
                    &config,
                    options.seq_len,
                    batch,
                    &options.optimizer,
                    tokens,
                )
                .check(available_memory())?;
                LanguageModel::new(config, &mut rng, forget_bias)?
            }
        };
        let blocks = streams.blocks_per_epoch(options.seq_len) as u64;
        let stop = default_stop(options.stop, builtin, options.fit.any());
        let total_steps = stop.steps.or(stop.epochs.map(|e| e * blocks));
        let schedule = Schedule::parse(&options.schedule, total_steps).map_err(Error::Schedule)?;
        let config = TrainConfig {
            seq_len: options.seq_len,
            batch,
            optimizer: options.optimizer.clone(),
            lr,
            clip: options.clip,
            schedule,
            plan: Plan {
                stop,
                eval_every: options
                    .eval_every
                    .unwrap_or(if blocks >= 100 { 0 } else { 100 }),
                patience: options.patience,
            },
            seed: options.seed,
            reset_between_docs: options.reset_between_docs,
            nt_asgd: options.nt_asgd,
        };
        let boundary = tokenizer.boundary();
        let mut trainer =
            Trainer::with_sources(model, config, options.regularizers, train, val, boundary)?;
        trainer.state.progress.divergence.on_divergence = options.on_divergence;
        trainer.set_precision(options.precision);
        notes.extend(precision_note(options.precision));
        folder.make()?;
        if let TextSource::Text { text, .. } = &options.input {
            recurrent_checkpoint::atomic_write(&folder.path().join(INPUT_COPY), text.as_bytes())?;
        }
        Ok(Training {
            trainer,
            tokenizer,
            data,
            folder,
            threads,
            notes,
            resumed: false,
        })
    }

    /// Continues the run in `folder` from its `last/` checkpoint, exactly
    /// where it stopped.
    pub fn resume(folder: RunFolder, options: &ResumeOptions) -> Result<Training> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::resume_inner(folder, options, threads))
    }

    fn resume_inner(
        folder: RunFolder,
        options: &ResumeOptions,
        threads: usize,
    ) -> Result<Training> {
        let saved = ckpt::load(&folder.last_dir())?;
        let (run, optimizer) =
            SavedRun::<TrainerState, DataSource>::read(&saved.path, saved.resume)?;
        let mut data = run.data;
        let (train, val) = match &mut data.prepared {
            Some(dir) => {
                if let Some(input) = &options.input {
                    *dir = absolute(input);
                }
                open_prepared(dir, Some(&saved.tokenizer))?.1
            }
            None => {
                if let Some(input) = &options.input {
                    data.input = Some(absolute(input));
                }
                let (corpus, val_corpus) = read_corpora(&data, None, saved.tokenizer.kind())?;
                let (train, val) = split(
                    &saved.tokenizer,
                    &corpus,
                    val_corpus.as_ref(),
                    data.val_fraction,
                )?;
                (train.into(), val.map(TokenSource::from))
            }
        };
        let mut trainer_state = run.trainer;
        if let Some(stop) = options.stop {
            trainer_state.config.plan.stop = stop;
        }
        if let Some(policy) = options.on_divergence {
            trainer_state.progress.divergence.on_divergence = policy;
        }
        let boundary = saved.tokenizer.boundary();
        if let Some(precision) = options.precision {
            trainer_state.precision = precision;
        }
        let notes = precision_note(trainer_state.precision)
            .into_iter()
            .collect();
        let trainer =
            Trainer::resume_sources(saved.model, &optimizer, trainer_state, train, val, boundary)?;
        Ok(Training {
            trainer,
            tokenizer: saved.tokenizer,
            data,
            folder,
            threads,
            notes,
            resumed: true,
        })
    }

    /// Makes this run one rank of a data-parallel job (see
    /// [`Trainer::distribute`]): every rank of the job starts or resumes the
    /// same run, then calls this. Rank 0 keeps the run folder; the other
    /// ranks write nothing (give them a scratch folder to start in, or the
    /// run's folder with [`RunFolder::at`] to resume from).
    pub fn distribute(&mut self, collective: Box<dyn Collective + Send>) -> Result<()> {
        let threads = self.threads;
        with_threads(threads, || self.trainer.distribute(collective))?;
        Ok(())
    }

    /// Trains a distributed run by local SGD after a synchronous warm-up
    /// (see [`PeriodicAveraging`]); call it on every rank, after
    /// [`Training::distribute`].
    pub fn average_periodically(&mut self, averaging: PeriodicAveraging) {
        self.trainer.average_periodically(averaging);
    }

    /// Sums a distributed run's gradient in buckets of about `values` values,
    /// each started while the backward pass goes on (see
    /// [`Trainer::set_gradient_bucket`]); 0 sums it after the backward pass.
    pub fn set_gradient_bucket(&mut self, values: usize) {
        self.trainer.set_gradient_bucket(values);
    }

    /// Trains until the stop rule, writing checkpoints, `metrics.jsonl` and
    /// the loss plot into the run folder, and reporting to `observer`. On an
    /// error the last good checkpoint is kept. On a rank other than 0 of a
    /// job, nothing is written and `observer` only watches.
    pub fn run(&mut self, observer: &mut dyn Observer<Trainer>) -> Result<Outcome> {
        if !self.trainer.collective().is_leader() {
            return run_follower(&mut self.trainer, self.threads, observer);
        }
        let record = LmRecord {
            tokenizer: &self.tokenizer,
            data: &self.data,
        };
        run_recorded(
            &mut self.trainer,
            &self.folder,
            self.threads,
            record,
            observer,
        )
    }

    /// The trainer: model, optimizer and state.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The model as trained so far.
    pub fn model(&self) -> &LanguageModel {
        &self.trainer.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The run folder.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// Threads the kernels use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether this run continues an earlier one.
    pub fn is_resumed(&self) -> bool {
        self.resumed
    }

    /// Things the user should know about how the run was set up (a
    /// vocabulary that was extended, ...).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// A few lines on what is trained on what, and how.
    pub fn describe(&self) -> String {
        let trainer = &self.trainer;
        let c = &trainer.model.config;
        let t = &trainer.state.config;
        let source = match (&self.data.prepared, &self.data.input) {
            (Some(dir), _) => format!("{} (prepared)", dir.display()),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => builtin::NAME.to_string(),
        };
        let mut text = format!(
            "training a {}x{} {} (embed {}, {} parameters) on {} ({} tokenizer, {} tokens in the vocabulary)\n\
             batch {} x seq-len {}, {} blocks per epoch, optimizer {} lr {}, threads: {}",
            c.layers,
            c.hidden,
            c.cell,
            c.embed,
            human(trainer.model.num_params() as f64),
            source,
            self.tokenizer.kind(),
            self.tokenizer.vocab().len(),
            t.batch,
            t.seq_len,
            trainer.blocks_per_epoch(),
            t.optimizer.kind,
            t.lr,
            self.threads
        );
        text.extend(precision_line(trainer.state.precision));
        let r = &trainer.state.regularizers;
        if *r != Regularizers::default() {
            let m = &r.model;
            text.push_str(&format!(
                "\nregularization: dropout input {} hidden {} output {} embed {}, weight drop {}, \
                 alpha {}, beta {}{}",
                m.dropout_input,
                m.dropout_hidden,
                m.dropout_output,
                m.dropout_embed,
                m.weight_drop,
                m.alpha,
                m.beta,
                if r.variable_bptt {
                    ", variable BPTT"
                } else {
                    ""
                }
            ));
        }
        text
    }
}

fn check_options(o: &TrainOptions) -> Result<()> {
    check(
        (0.0..1.0).contains(&o.val_fraction),
        "val_fraction",
        o.val_fraction,
        "in [0, 1)",
    )?;
    check(o.batch >= 1, "batch", o.batch, "at least 1")?;
    check(o.seq_len >= 1, "seq_len", o.seq_len, "at least 1")?;
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
    let m = &o.regularizers.model;
    for (field, p) in [
        ("dropout_input", m.dropout_input),
        ("dropout_hidden", m.dropout_hidden),
        ("dropout_output", m.dropout_output),
        ("dropout_embed", m.dropout_embed),
        ("weight_drop", m.weight_drop),
    ] {
        check((0.0..1.0).contains(&p), field, p, "a probability in [0, 1)")?;
    }
    for (field, x) in [("alpha", m.alpha), ("beta", m.beta)] {
        check(x.is_finite() && x >= 0.0, field, x, "a finite number >= 0")?;
    }
    if o.nt_asgd.is_some() && o.optimizer.kind != OptimizerKind::Sgd {
        return Err(Error::Conflict(
            "NT-ASGD averages SGD iterates; it needs the sgd optimizer".into(),
        ));
    }
    Ok(())
}

/// Tokens, tokenizer and model start of a run on text: read, tokenize, split.
type Start = (
    DataSource,
    ModelStart,
    Tokenizer,
    TokenSource,
    Option<TokenSource>,
);

/// The start of a run on text (built-in, a path, or in memory).
fn text_start(
    options: &TrainOptions,
    folder: &RunFolder,
    rng: &mut Rng,
    notes: &mut Vec<String>,
) -> Result<Start> {
    let input = match &options.input {
        TextSource::Builtin | TextSource::Prepared(_) => None,
        TextSource::Path(p) => Some(absolute(p)),
        TextSource::Text { .. } => Some(folder.path().join(INPUT_COPY)),
    };
    let data = DataSource {
        input,
        val: options.val.as_deref().map(absolute),
        val_fraction: options.val_fraction,
        prepared: None,
    };
    let in_memory = match &options.input {
        TextSource::Text { name, text } => Some(Corpus::from_text(name, text)),
        _ => None,
    };
    let (corpus, val_corpus) = read_corpora(&data, in_memory, options.tokenizer)?;
    // A fresh model is only built once the text is known to fill a
    // block and the run to fit in memory, so that neither a short text
    // nor an absurd size allocates it first.
    let (start, tokenizer) = match &options.init {
        Init::From {
            path,
            extend_vocab,
            dropout,
        } => {
            let (model, tokenizer) = init_from(
                path,
                *extend_vocab,
                *dropout,
                &corpus,
                val_corpus.as_ref(),
                rng,
                notes,
            )?;
            (ModelStart::Loaded(model), tokenizer)
        }
        Init::Fresh {
            config,
            forget_bias,
        } => {
            if options.tokenizer == TokenizerKind::Bpe {
                let bytes = corpus.total_bytes();
                let size = options.tokenizer_options.bpe_vocab_size(bytes);
                MemoryEstimate::bpe_training(size, bytes).check(available_memory())?;
            }
            let tokenizer = build_tokenizer(options, &corpus, val_corpus.as_ref())?;
            let config = ModelConfig {
                vocab_size: tokenizer.vocab().len(),
                ..config.clone()
            };
            config.validate()?;
            (ModelStart::Fresh(config, *forget_bias), tokenizer)
        }
    };
    let (train, val) = split(&tokenizer, &corpus, val_corpus.as_ref(), data.val_fraction)?;
    Ok((
        data,
        start,
        tokenizer,
        train.into(),
        val.map(TokenSource::from),
    ))
}

/// The start of a run on a prepared data folder: its tokenizer (a
/// checkpoint to fine-tune must have the same one) and its mapped tokens.
fn prepared_start(options: &TrainOptions, dir: &Path) -> Result<Start> {
    if options.val.is_some() {
        return Err(Error::Conflict(
            "a prepared data folder has its own validation split; \
             a separate validation text cannot be given with it"
                .into(),
        ));
    }
    let dir = absolute(dir);
    let (start, tokenizer, (train, val), val_fraction) = match &options.init {
        Init::From { path, dropout, .. } => {
            let saved = ckpt::load(path)?;
            let (tokenizer, sources, val_fraction) = open_prepared(&dir, Some(&saved.tokenizer))?;
            let mut model = saved.model;
            if let Some(p) = dropout {
                model.config.dropout = *p;
            }
            (ModelStart::Loaded(model), tokenizer, sources, val_fraction)
        }
        Init::Fresh {
            config,
            forget_bias,
        } => {
            let (tokenizer, sources, val_fraction) = open_prepared(&dir, None)?;
            let config = ModelConfig {
                vocab_size: tokenizer.vocab().len(),
                ..config.clone()
            };
            config.validate()?;
            let start = ModelStart::Fresh(config, *forget_bias);
            (start, tokenizer, sources, val_fraction)
        }
    };
    let data = DataSource {
        input: None,
        val: None,
        val_fraction,
        prepared: Some(dir),
    };
    Ok((data, start, tokenizer, train, val))
}

/// Opens a prepared data folder (sizes checked; the resume fingerprint is
/// the manifest's checksum), checking its tokenizer is `expected` when given.
fn open_prepared(
    dir: &Path,
    expected: Option<&Tokenizer>,
) -> Result<(Tokenizer, (TokenSource, Option<TokenSource>), f64)> {
    let data = PreparedData::open(dir, Verify::Size)?;
    if let Some(tokenizer) = expected {
        data.check_tokenizer(tokenizer).map_err(TextError::from)?;
    }
    let (manifest, tokenizer, train, val) = data.into_parts();
    let mapped = |file: TokenFile| TokenSource::View(Box::new(MappedTokens(file)));
    Ok((
        tokenizer,
        (mapped(train), val.map(mapped)),
        manifest.val_fraction,
    ))
}

/// A memory-mapped token file as the trainer's token view.
struct MappedTokens(TokenFile);

impl TokenView for MappedTokens {
    fn ids(&self) -> TokenIds<'_> {
        match self.0.ids() {
            recurrent_text::prepared::TokenIds::U16(ids) => TokenIds::U16(ids),
            recurrent_text::prepared::TokenIds::U32(ids) => TokenIds::U32(ids),
        }
    }

    fn fingerprint(&self) -> DataFingerprint {
        DataFingerprint {
            tokens: self.0.len(),
            hash: self.0.checksum(),
        }
    }
}

/// Tokens a source keeps in memory (a mapped file keeps only pages in use).
fn resident_tokens(source: &TokenSource) -> usize {
    match source {
        TokenSource::Owned(ids) => ids.len(),
        TokenSource::View(_) => 0,
    }
}

impl DataSource {
    /// Whether the run trains on the built-in corpus.
    fn is_builtin(&self) -> bool {
        self.input.is_none() && self.prepared.is_none()
    }
}

/// The stop rule given, or with none, one minute on the built-in corpus and
/// 10 epochs otherwise; a model fitted to the corpus stops at the budget it
/// was sized for too, if that comes first.
fn default_stop(stop: StopRule, builtin: bool, fitted: bool) -> StopRule {
    if stop.epochs.is_some() || stop.steps.is_some() || stop.time_secs.is_some() {
        return stop;
    }
    if builtin {
        StopRule {
            time_secs: Some(BUILTIN_SECS),
            ..stop
        }
    } else {
        StopRule {
            epochs: Some(10),
            time_secs: fitted.then_some(sizing::DEFAULT_BUDGET_SECS),
            ..stop
        }
    }
}

/// A run on the built-in corpus with no stop rule trains for a minute.
const BUILTIN_SECS: f64 = 60.0;

/// Chooses the sizes `options.fit` leaves to the corpus (see
/// [`crate::sizing`]), noting the choice and its reason for the user.
fn fit_to_corpus(
    options: &TrainOptions,
    config: ModelConfig,
    tokens: usize,
    threads: usize,
    builtin: bool,
    notes: &mut Vec<String>,
) -> Result<(ModelConfig, usize, f32)> {
    let budget_secs = match options.stop.time_secs {
        Some(secs) => secs,
        None if builtin => BUILTIN_SECS,
        None => sizing::DEFAULT_BUDGET_SECS,
    };
    let corpus = sizing::Corpus {
        tokens,
        vocab: config.vocab_size,
        threads,
        budget_secs,
        seq_len: options.seq_len,
    };
    let adam = matches!(
        options.optimizer.kind,
        OptimizerKind::Adam | OptimizerKind::AdamW
    );
    let fit = FitToCorpus {
        lr: options.fit.lr && adam,
        ..options.fit
    };
    let choice = sizing::choose(&corpus, fit, &config, options.batch, options.lr);
    let config = ModelConfig {
        layers: choice.best.layers,
        hidden: choice.best.hidden,
        embed: choice.best.embed,
        ..config
    };
    config.validate()?;
    let mut note = format!("sized for the corpus (docs/DEFAULTS.md): {}", choice.reason);
    if fit.batch || fit.lr {
        note += &format!("; batch {}, learning rate {:.2e}", choice.batch, choice.lr);
    }
    if options.stop.time_secs.is_none() && !builtin {
        note += "; no --time given, so sized for 30 minutes";
    }
    notes.push(note);
    Ok((config, choice.batch, choice.lr))
}

/// The training text (`in_memory` when given, else as `data` says) and the
/// validation text.
fn read_corpora(
    data: &DataSource,
    in_memory: Option<Corpus>,
    kind: TokenizerKind,
) -> Result<(Corpus, Option<Corpus>)> {
    let corpus = match (in_memory, &data.input) {
        (Some(corpus), _) => corpus,
        (None, Some(path)) => Corpus::read(path)?,
        (None, None) => Corpus::from_text(builtin::NAME, &builtin::text()),
    };
    let val = data.val.as_deref().map(Corpus::read).transpose()?;
    if kind.needs_utf8() {
        corpus.check_utf8()?;
        if let Some(v) = &val {
            v.check_utf8()?;
        }
    }
    Ok((corpus, val))
}

/// Token ids for training and validation: a separate validation text, or the
/// last `fraction` of the input (nanoGPT's split).
fn split(
    tokenizer: &Tokenizer,
    corpus: &Corpus,
    val: Option<&Corpus>,
    fraction: f64,
) -> Result<(Vec<u32>, Option<Vec<u32>>)> {
    let mut tokens = tokenizer.encode_corpus(corpus)?;
    if tokens.len() < 2 {
        return Err(Error::InvalidOption {
            field: "input",
            value: format!("a text of {} token(s)", tokens.len()),
            expected: "a text of at least 2 tokens".into(),
        });
    }
    if let Some(v) = val {
        return Ok((tokens, Some(tokenizer.encode_corpus(v)?)));
    }
    let n_val = (tokens.len() as f64 * fraction) as usize;
    if n_val < 2 {
        return Ok((tokens, None));
    }
    let val = tokens.split_off(tokens.len() - n_val);
    Ok((tokens, Some(val)))
}

/// Loads a checkpoint to fine-tune, reconciling its vocabulary with the new text.
fn init_from(
    path: &Path,
    extend_vocab: bool,
    dropout: Option<f32>,
    corpus: &Corpus,
    val: Option<&Corpus>,
    rng: &mut Rng,
    notes: &mut Vec<String>,
) -> Result<(LanguageModel, Tokenizer)> {
    let saved = ckpt::load(path)?;
    let (mut model, mut tokenizer) = (saved.model, saved.tokenizer);
    let mut missing = tokenizer.missing_chars(corpus);
    if let Some(v) = val {
        missing.extend(tokenizer.missing_chars(v));
        missing.sort_unstable();
        missing.dedup();
    }
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).map(|c| format!("{c:?}")).collect();
        let shown = format!(
            "{}{}",
            shown.join(", "),
            if missing.len() > 20 { ", ..." } else { "" }
        );
        if !extend_vocab {
            return Err(Error::UnknownChars {
                path: saved.path,
                count: missing.len(),
                shown,
            });
        }
        tokenizer.extend(&missing)?;
        model.extend_vocab(tokenizer.vocab().len(), rng)?;
        notes.push(format!(
            "extended the vocabulary by {} character(s): {shown}",
            missing.len()
        ));
    }
    if let Some(p) = dropout {
        model.config.dropout = p;
    }
    Ok((model, tokenizer))
}

/// A char vocabulary covers the training and validation text (so validation
/// never meets an unknown character); word and BPE vocabularies are learned
/// from the training text only, as the benchmarks require.
fn build_tokenizer(
    options: &TrainOptions,
    train: &Corpus,
    val: Option<&Corpus>,
) -> Result<Tokenizer> {
    let kind = options.tokenizer;
    let mut all = train.clone();
    if let (Some(val), TokenizerKind::Char) = (val, kind) {
        // Appended to the last document: only the characters matter here.
        let last = all.docs.last_mut().expect("a corpus has a document");
        for doc in &val.docs {
            last.bytes.extend_from_slice(&doc.bytes);
        }
    }
    Ok(Tokenizer::build_with(
        kind,
        &all,
        &options.tokenizer_options,
    )?)
}

/// What a language model's run records beyond every task's fields: the AR
/// and TAR penalties when they are on, bits per token at validations, and
/// its checkpoints with the tokenizer and the data source.
struct LmRecord<'a> {
    tokenizer: &'a Tokenizer,
    data: &'a DataSource,
}

impl TaskRecord<Trainer> for LmRecord<'_> {
    fn train_fields(&self, trainer: &Trainer, r: &StepReport, fields: &mut Fields) {
        // The AR and TAR penalties, only when they are on (`loss` is the cross-entropy).
        let m = &trainer.state.regularizers.model;
        if m.alpha > 0.0 {
            fields.insert("ar".into(), json!(r.ar));
        }
        if m.beta > 0.0 {
            fields.insert("tar".into(), json!(r.tar));
        }
    }

    fn val_fields(&mut self, _trainer: &Trainer, r: &mut EvalReport, fields: &mut Fields) {
        fields.insert("bits_per_token".into(), json!(r.bits_per_token()));
        fields.insert("perplexity".into(), json!(r.perplexity()));
        fields.insert("accuracy".into(), json!(r.accuracy));
    }

    fn save(&self, trainer: &Trainer, dir: &Path) -> Result<(), SaveError> {
        let run = SavedRun {
            trainer: &trainer.state,
            data: self.data,
        };
        let resume = run.resume_state(trainer.state_tensors())?;
        ckpt::save(dir, &trainer.model, self.tokenizer, Some(&resume))?;
        Ok(())
    }
}

/// A count with a k or M suffix: `1.25M`.
pub fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
