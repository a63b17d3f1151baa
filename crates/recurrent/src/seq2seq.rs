//! Training a sequence-to-sequence model with attention on sentence pairs,
//! in a run folder, and resuming it.
//!
//! The pairs are split once into training, validation and test sets (the
//! latter two written to the run folder as `valid.tsv` and `test.tsv`), both
//! sides are tokenized, and an encoder-decoder is trained on length-bucketed
//! batches. At each validation, greedy BLEU on a sample of validation pairs is
//! recorded with the loss.

use std::path::{Path, PathBuf};

use recurrent_checkpoint::atomic_write;
use recurrent_checkpoint::seq2seq as ckpt;
use recurrent_kernels::{Precision, Rng};
use recurrent_model::seq2seq::{Seq2Seq, Seq2SeqConfig};
use recurrent_report::corpus_bleu;
use recurrent_text::{
    read_pairs, split_pairs, Pair, PairColumns, PairSplit, PairTokenizers, SplitFractions,
    TokenizerKind, TokenizerOptions,
};
use recurrent_train::optim::{OptimizerConfig, OptimizerKind};
use recurrent_train::schedule::Schedule;
use recurrent_train::seq2seq::{
    EncodedPair, Seq2SeqTrainConfig, Seq2SeqTrainer, Seq2SeqTrainerState,
};
use recurrent_train::{
    Collective, EvalReport, Observer, OnDivergence, Plan, SaveError, StopRule, Task,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{check, Error, Result};
use crate::lm::human;
use crate::memory::{available_memory, MemoryEstimate};
use crate::recorder::{run_follower, run_recorded, Fields, SavedRun, TaskRecord};
use crate::run::{absolute, RunFolder};
use crate::threads::{precision_line, precision_note, resolve_threads, with_threads};
use crate::translate::{translate_with, DecodeOptions};
use crate::Outcome;

/// BPE vocabulary per side when none is given: room for the words of a few
/// hundred thousand sentences.
pub const DEFAULT_BPE_VOCAB: usize = 8000;

/// Everything a seq2seq run needs. [`TrainOptions::new`] gives the command
/// line's defaults for a pairs file.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Sentence pairs: one per line, source and target in tab-separated columns.
    pub pairs: PathBuf,
    /// Which columns hold source and target, and whether to swap them.
    pub columns: PairColumns,
    /// Share of the pairs held out for validation.
    pub valid_fraction: f64,
    /// Share of the pairs held out for the final test.
    pub test_fraction: f64,
    /// Seed of the validation/test split.
    pub split_seed: u64,
    /// Leave out training pairs with more tokens than this on either side.
    pub max_tokens: usize,
    /// Token level of both sides.
    pub tokenizer: TokenizerKind,
    /// Vocabulary size and minimum counts (word and BPE; BPE defaults to
    /// [`DEFAULT_BPE_VOCAB`] per side).
    pub tokenizer_options: TokenizerOptions,
    /// One vocabulary for source and target.
    pub shared_vocab: bool,
    /// The architecture (vocabulary sizes are set from the tokenizers).
    pub model: Seq2SeqConfig,
    /// Sentence pairs per batch.
    pub batch: usize,
    /// Optimizer kind and its settings.
    pub optimizer: OptimizerConfig,
    /// Learning rate.
    pub lr: f32,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub clip: f32,
    /// Learning-rate schedule (see [`crate::lm::TrainOptions::schedule`]).
    pub schedule: String,
    /// Probability that the decoder reads the gold previous token.
    pub teacher_forcing: f32,
    /// Label smoothing of the training loss.
    pub label_smoothing: f32,
    /// When to stop; with no limit, 10 epochs.
    pub stop: StopRule,
    /// Steps between validations (default: every epoch).
    pub eval_every: Option<u64>,
    /// Stop after this many validations without improvement.
    pub patience: Option<u32>,
    /// Validation pairs greedy-decoded for BLEU at each validation.
    pub val_bleu: usize,
    /// What to do when the run diverges (see
    /// [`crate::lm::TrainOptions::on_divergence`]).
    pub on_divergence: OnDivergence,
    /// Seed of initialization, batch order, dropout and teacher forcing.
    pub seed: u64,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// The products' precision: float32, or bf16 operands with float32
    /// sums where the CPU has bf16 instructions (float32 with a note where not).
    pub precision: Precision,
}

impl TrainOptions {
    /// The command line's defaults for the pairs in `pairs`: a 2x256 LSTM
    /// encoder-decoder with general attention on BPE tokens.
    pub fn new(pairs: impl Into<PathBuf>) -> TrainOptions {
        let mut model = Seq2SeqConfig::new(0, 0, 256, 256);
        model.dropout = 0.2;
        TrainOptions {
            pairs: pairs.into(),
            columns: PairColumns::default(),
            valid_fraction: 0.05,
            test_fraction: 0.05,
            split_seed: 1,
            max_tokens: 100,
            tokenizer: TokenizerKind::Bpe,
            tokenizer_options: TokenizerOptions::default(),
            shared_vocab: false,
            model,
            batch: 64,
            optimizer: OptimizerConfig::new(OptimizerKind::Adam),
            lr: 1e-3,
            clip: 5.0,
            schedule: "constant".into(),
            teacher_forcing: 1.0,
            label_smoothing: 0.0,
            stop: StopRule::default(),
            eval_every: None,
            patience: None,
            val_bleu: 500,
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
    /// Read the pairs from here instead (they must be the same pairs).
    pub pairs: Option<PathBuf>,
    /// A new stop rule; `None` keeps the saved one.
    pub stop: Option<StopRule>,
    /// A new divergence policy; `None` keeps the saved one.
    pub on_divergence: Option<OnDivergence>,
    /// Validation pairs greedy-decoded for BLEU at each validation.
    pub val_bleu: usize,
    /// Threads for the kernels (default: all cores).
    pub threads: Option<usize>,
    /// A new precision for the products from the next step on; `None` keeps
    /// the saved one.
    pub precision: Option<Precision>,
}

/// Where the pairs came from and how they were split, saved with the run so
/// a resume rebuilds the same sets.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PairSource {
    pairs: PathBuf,
    src_col: usize,
    tgt_col: usize,
    reverse: bool,
    valid_fraction: f64,
    test_fraction: f64,
    split_seed: u64,
    max_tokens: usize,
}

/// A seq2seq run in its folder, ready to train.
pub struct Training {
    trainer: Seq2SeqTrainer,
    tokenizers: PairTokenizers,
    data: PairSource,
    folder: RunFolder,
    valid: Vec<Pair>,
    val_bleu: usize,
    threads: usize,
    notes: Vec<String>,
}

impl Training {
    /// Reads and splits the pairs, builds the tokenizers and the model, and
    /// prepares a run in `folder` (writing `valid.tsv` and `test.tsv` there).
    pub fn start(options: &TrainOptions, folder: RunFolder) -> Result<Training> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::start_inner(options, folder, threads))
    }

    fn start_inner(o: &TrainOptions, folder: RunFolder, threads: usize) -> Result<Training> {
        check_options(o)?;
        let data = PairSource {
            pairs: absolute(&o.pairs),
            src_col: o.columns.src,
            tgt_col: o.columns.tgt,
            reverse: o.columns.reverse,
            valid_fraction: o.valid_fraction,
            test_fraction: o.test_fraction,
            split_seed: o.split_seed,
            max_tokens: o.max_tokens,
        };
        let split = read_split(&data)?;
        if split.train.is_empty() {
            return Err(Error::Conflict(
                "no training pairs are left after holding out validation and test pairs".into(),
            ));
        }
        let mut tokenizer_options = o.tokenizer_options.clone();
        if o.tokenizer == TokenizerKind::Bpe && tokenizer_options.vocab_size.is_none() {
            tokenizer_options.vocab_size = Some(DEFAULT_BPE_VOCAB);
        }
        let available = available_memory();
        if o.tokenizer == TokenizerKind::Bpe {
            // Each side's vocabulary is learned from its own text.
            let bytes: usize = split.train.iter().map(|(s, t)| s.len().max(t.len())).sum();
            let size = tokenizer_options.bpe_vocab_size(bytes);
            MemoryEstimate::bpe_training(size, bytes).check(available)?;
        }
        let tokenizers = PairTokenizers::build(
            o.tokenizer,
            &tokenizer_options,
            &split.train,
            &[&split.valid, &split.test],
            o.shared_vocab,
        )?;
        let mut notes = Vec::new();
        let (train, dropped) = encode(
            &tokenizers,
            &split.train,
            Some(o.max_tokens),
            "training pair",
        )?;
        if dropped > 0 {
            notes.push(format!(
                "left out {dropped} training pair(s) with a blank side or more than {} tokens",
                o.max_tokens
            ));
        }
        if train.is_empty() {
            return Err(Error::InvalidOption {
                field: "max_tokens",
                value: o.max_tokens.to_string(),
                expected: "large enough to leave some training pairs".into(),
            });
        }
        let (val, _) = encode(&tokenizers, &split.valid, None, "validation pair")?;
        let config = Seq2SeqConfig {
            src_vocab: tokenizers.source_vocab_size(),
            tgt_vocab: tokenizers.target_vocab_size(),
            ..o.model.clone()
        };
        let tokens: usize = train.iter().map(|p| p.src.len() + p.tgt.len()).sum();
        let longest = train.iter().map(|p| p.src.len().max(p.tgt.len())).max();
        // Before the model's buffers are allocated: an absurd size is an
        // error (the parameter cap, else both memory figures), not an
        // aborted process.
        config.validate()?;
        MemoryEstimate::seq2seq(&config, o.batch, longest.unwrap_or(0), &o.optimizer, tokens)
            .check(available)?;
        let model = Seq2Seq::new(config, &mut Rng::new(o.seed))?;
        let batches = train.len().div_ceil(o.batch) as u64;
        let mut stop = o.stop;
        if stop.epochs.is_none() && stop.steps.is_none() && stop.time_secs.is_none() {
            stop.epochs = Some(10);
        }
        let total_steps = stop.steps.or(stop.epochs.map(|e| e * batches));
        let schedule = Schedule::parse(&o.schedule, total_steps).map_err(Error::Schedule)?;
        let config = Seq2SeqTrainConfig {
            batch: o.batch,
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
            teacher_forcing: o.teacher_forcing,
            label_smoothing: o.label_smoothing,
        };
        let mut trainer = Seq2SeqTrainer::new(model, config, train, val)?;
        trainer.state.progress.divergence.on_divergence = o.on_divergence;
        trainer.set_precision(o.precision);
        notes.extend(precision_note(o.precision));
        folder.make()?;
        write_tsv(&folder.path().join("valid.tsv"), &split.valid)?;
        write_tsv(&folder.path().join("test.tsv"), &split.test)?;
        Ok(Training {
            trainer,
            tokenizers,
            data,
            folder,
            valid: split.valid,
            val_bleu: o.val_bleu,
            threads,
            notes,
        })
    }

    /// Continues the run in `folder` from its `last/` checkpoint.
    pub fn resume(folder: RunFolder, options: &ResumeOptions) -> Result<Training> {
        let threads = resolve_threads(options.threads)?;
        with_threads(threads, || Self::resume_inner(folder, options, threads))
    }

    fn resume_inner(folder: RunFolder, o: &ResumeOptions, threads: usize) -> Result<Training> {
        let saved = ckpt::load(&folder.last_dir())?;
        let (run, optimizer) =
            SavedRun::<Seq2SeqTrainerState, PairSource>::read(&saved.path, saved.resume)?;
        let mut data = run.data;
        if let Some(p) = &o.pairs {
            data.pairs = absolute(p);
        }
        let split = read_split(&data)?;
        let tokenizers = saved.tokenizers;
        let (train, _) = encode(
            &tokenizers,
            &split.train,
            Some(data.max_tokens),
            "training pair",
        )?;
        let (val, _) = encode(&tokenizers, &split.valid, None, "validation pair")?;
        let mut trainer_state = run.trainer;
        if let Some(stop) = o.stop {
            trainer_state.config.plan.stop = stop;
        }
        if let Some(policy) = o.on_divergence {
            trainer_state.progress.divergence.on_divergence = policy;
        }
        if let Some(precision) = o.precision {
            trainer_state.precision = precision;
        }
        let notes = precision_note(trainer_state.precision)
            .into_iter()
            .collect();
        let trainer = Seq2SeqTrainer::resume(saved.model, &optimizer, trainer_state, train, val)?;
        Ok(Training {
            trainer,
            tokenizers,
            data,
            folder,
            valid: split.valid,
            val_bleu: o.val_bleu,
            threads,
            notes,
        })
    }

    /// Makes this run one rank of a data-parallel job, as
    /// [`crate::lm::Training::distribute`] does for language models.
    pub fn distribute(&mut self, collective: Box<dyn Collective + Send>) -> Result<()> {
        let threads = self.threads;
        with_threads(threads, || self.trainer.distribute(collective))?;
        Ok(())
    }

    /// Trains until the stop rule, writing checkpoints, `metrics.jsonl` and
    /// the loss plot into the run folder, and reporting to `observer`. On a
    /// rank other than 0 of a job, nothing is written and `observer` only
    /// watches.
    pub fn run(&mut self, observer: &mut dyn Observer<Seq2SeqTrainer>) -> Result<Outcome> {
        if !Task::collective(&self.trainer).is_leader() {
            return run_follower(&mut self.trainer, self.threads, observer);
        }
        let bleu_pairs: Vec<Pair> = self.valid.iter().take(self.val_bleu).cloned().collect();
        let record = Seq2SeqRecord {
            tokenizers: &self.tokenizers,
            data: &self.data,
            bleu_pairs,
        };
        run_recorded(
            &mut self.trainer,
            &self.folder,
            self.threads,
            record,
            observer,
        )
    }

    /// Greedy translations of the first `n` validation sources, each with
    /// its reference: `(source, reference, output)`.
    pub fn examples(&self, n: usize) -> Result<Vec<(String, String, String)>> {
        let shown: Vec<&Pair> = self.valid.iter().take(n).collect();
        let sources: Vec<String> = shown.iter().map(|p| p.0.clone()).collect();
        let out = with_threads(self.threads, || {
            translate_with(
                &self.trainer.model,
                &self.tokenizers,
                &sources,
                &DecodeOptions::greedy(),
            )
        })?;
        Ok(shown
            .into_iter()
            .zip(out)
            .map(|(p, t)| (p.0.clone(), p.1.clone(), t.text))
            .collect())
    }

    /// The trainer: model, optimizer and state.
    pub fn trainer(&self) -> &Seq2SeqTrainer {
        &self.trainer
    }

    /// Source and target tokenizers.
    pub fn tokenizers(&self) -> &PairTokenizers {
        &self.tokenizers
    }

    /// The run folder.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// Things the user should know about how the run was set up.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// A few lines on what is trained on what, and how.
    pub fn describe(&self) -> String {
        let t = &self.trainer;
        let c = &t.model.config;
        let s = &t.state.config;
        let text = format!(
            "training a {}x{} {} encoder-decoder{} with {} attention (embed {}, {} parameters) on {}\n\
             {} training pairs, {} validation pairs; {} tokenizer, vocabularies {} (source) and {} (target)\n\
             batch {}, {} batches per epoch, optimizer {} lr {}, threads: {}",
            c.layers,
            c.hidden,
            c.cell,
            if c.bidirectional { " (bidirectional encoder)" } else { "" },
            c.attention.name(),
            c.embed,
            human(t.model.num_params() as f64),
            self.data.pairs.display(),
            t.train_pairs(),
            t.val_pairs().len(),
            self.tokenizers.source.kind(),
            c.src_vocab,
            c.tgt_vocab,
            s.batch,
            t.batches_per_epoch(),
            s.optimizer.kind,
            s.lr,
            self.threads
        );
        text + &precision_line(t.state.precision).unwrap_or_default()
    }
}

fn check_options(o: &TrainOptions) -> Result<()> {
    check(o.batch >= 1, "batch", o.batch, "at least 1")?;
    let (v, t) = (o.valid_fraction, o.test_fraction);
    let unit = |f: f64| (0.0..=1.0).contains(&f);
    if !(unit(v) && unit(t) && v + t < 1.0) {
        return Err(Error::InvalidOption {
            field: "valid_fraction",
            value: format!("{v} (with `test_fraction` {t})"),
            expected: "in [0, 1], as `test_fraction` is, leaving some pairs for training".into(),
        });
    }
    check(o.max_tokens >= 1, "max_tokens", o.max_tokens, "at least 1")?;
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
    check(
        (0.0..=1.0).contains(&o.teacher_forcing),
        "teacher_forcing",
        o.teacher_forcing,
        "in [0, 1]",
    )?;
    check(
        (0.0..1.0).contains(&o.label_smoothing),
        "label_smoothing",
        o.label_smoothing,
        "in [0, 1)",
    )?;
    Ok(())
}

/// Reads and splits the pairs as `data` says.
fn read_split(data: &PairSource) -> Result<PairSplit> {
    let columns = PairColumns {
        src: data.src_col,
        tgt: data.tgt_col,
        reverse: data.reverse,
    };
    let pairs = read_pairs(&data.pairs, &columns)?;
    let fractions = SplitFractions {
        valid: data.valid_fraction,
        test: data.test_fraction,
    };
    Ok(split_pairs(pairs, fractions, data.split_seed)?)
}

/// Encodes pairs; with `max_tokens`, leaves out those longer on either side
/// (returning how many were left out).
fn encode(
    tokenizers: &PairTokenizers,
    pairs: &[Pair],
    max_tokens: Option<usize>,
    what: &str,
) -> Result<(Vec<EncodedPair>, usize)> {
    let line_error = |i: usize, side: &str, source| Error::Line {
        what: format!("{what} ({side})"),
        line: i + 1,
        source,
    };
    let mut out = Vec::with_capacity(pairs.len());
    let mut dropped = 0;
    for (i, (s, t)) in pairs.iter().enumerate() {
        let src = tokenizers
            .encode_source(s)
            .map_err(|e| line_error(i, "source", e))?;
        let tgt = tokenizers
            .encode_target(t)
            .map_err(|e| line_error(i, "target", e))?;
        let too_long = max_tokens.is_some_and(|m| src.len() > m || tgt.len() > m + 2);
        if src.is_empty() || too_long {
            dropped += 1;
            continue;
        }
        out.push(EncodedPair { src, tgt });
    }
    Ok((out, dropped))
}

/// Held-out pairs as `source<TAB>target` lines.
fn write_tsv(path: &Path, pairs: &[Pair]) -> Result<()> {
    let text: String = pairs.iter().map(|(s, t)| format!("{s}\t{t}\n")).collect();
    atomic_write(path, text.as_bytes())?;
    Ok(())
}

/// What a seq2seq run records beyond every task's fields: perplexity,
/// accuracy and greedy BLEU at validations, and its checkpoints with both
/// tokenizers and the pair source.
struct Seq2SeqRecord<'a> {
    tokenizers: &'a PairTokenizers,
    data: &'a PairSource,
    /// Validation pairs whose greedy BLEU is recorded at each validation.
    bleu_pairs: Vec<Pair>,
}

impl Seq2SeqRecord<'_> {
    /// Greedy BLEU of the model on `bleu_pairs`, or None without any.
    fn bleu(&self, model: &Seq2Seq) -> Option<f64> {
        if self.bleu_pairs.is_empty() {
            return None;
        }
        let sources: Vec<String> = self.bleu_pairs.iter().map(|p| p.0.clone()).collect();
        let out =
            translate_with(model, self.tokenizers, &sources, &DecodeOptions::greedy()).ok()?;
        let hyps: Vec<String> = out.into_iter().map(|t| t.text).collect();
        let refs: Vec<&str> = self.bleu_pairs.iter().map(|p| p.1.as_str()).collect();
        Some(corpus_bleu(&hyps, &refs).ok()?.score)
    }
}

impl TaskRecord<Seq2SeqTrainer> for Seq2SeqRecord<'_> {
    fn val_fields(&mut self, t: &Seq2SeqTrainer, r: &mut EvalReport, fields: &mut Fields) {
        r.bleu = self.bleu(&t.model);
        fields.insert("perplexity".into(), json!(r.perplexity()));
        fields.insert("accuracy".into(), json!(r.accuracy));
        fields.insert("bleu".into(), json!(r.bleu));
    }

    fn save(&self, t: &Seq2SeqTrainer, dir: &Path) -> Result<(), SaveError> {
        let run = SavedRun {
            trainer: &t.state,
            data: self.data,
        };
        let resume = run.resume_state(t.state_tensors())?;
        ckpt::save(dir, &t.model, self.tokenizers, Some(&resume))?;
        Ok(())
    }
}
